"""mmm_jax: Bayesian marketing mix models written in PyMC, compiled to JAX, sampled with
NumPyro and BlackJAX NUTS."""

import logging as _logging

from ._runtime import configure as _configure

# the library logs under "mmm_jax" (fits, until, batches, the compilation cache) and stays quiet
# unless the application configures logging (the CLI does: --quiet / --verbose)
_logging.getLogger("mmm_jax").addHandler(_logging.NullHandler())
_configure()

from .api.fitted import FittedModel, load, model_for  # noqa: E402
from .api.mmm import MMM, NotFittedError  # noqa: E402
from .compile import LogDensity, compile_logdensity  # noqa: E402
from .config.markets import HierarchicalConfig, load_config  # noqa: E402
from .config.model import (  # noqa: E402
    ConfigError,
    DelayedAdstock,
    GeometricAdstock,
    HillSaturation,
    LogisticSaturation,
    MichaelisMentenSaturation,
    ModelConfig,
    Prior,
    TanhSaturation,
    TimeVaryingMedia,
    WeibullAdstock,
)
from .data.validate import DataError, MMMData, validate_frame  # noqa: E402
from .inference import SamplerConfig, SampleResult, sample  # noqa: E402
from .model.build import build_pymc_model  # noqa: E402
from .model.hsgp import HSGPSpec  # noqa: E402
from .posterior.compare import compare  # noqa: E402
from .posterior.results import ConvergenceWarning  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "MMM",
    "FittedModel",
    "model_for",
    "load",
    "compare",
    "ModelConfig",
    "HierarchicalConfig",
    "load_config",
    "Prior",
    "GeometricAdstock",
    "DelayedAdstock",
    "WeibullAdstock",
    "LogisticSaturation",
    "TanhSaturation",
    "HillSaturation",
    "MichaelisMentenSaturation",
    "HSGPSpec",
    "TimeVaryingMedia",
    "ConfigError",
    "DataError",
    "MMMData",
    "validate_frame",
    "build_pymc_model",
    "compile_logdensity",
    "LogDensity",
    "sample",
    "SampleResult",
    "SamplerConfig",
    "ConvergenceWarning",
    "NotFittedError",
    "__version__",
]
