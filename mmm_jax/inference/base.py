"""What every sampler returns, and the one entry point that picks a sampler."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

from ..compile import LogDensity
from .batching import GRADIENT_BATCHING
from .until import check_until, default_max_draws
from .warmstart import WarmStart

__all__ = ["SampleResult", "SamplerConfig", "sample", "SAMPLERS", "bind_data", "data_inputs", "checked", "WarmStart"]

SAMPLERS = ("numpyro", "blackjax", "chees", "meads")


class SamplerConfig(NamedTuple):
    """NUTS settings shared by all samplers."""

    chains: int = 4
    warmup: int = 1000
    draws: int = 1000
    target_accept: float = 0.8
    max_tree_depth: int = 10
    dense_mass: bool = False
    chain_method: str = "auto"  # "parallel" (pmap; chains per device one after another), "vectorized" (vmap) or "auto"
    progress: bool = True
    jitter: float = 1.0
    split_timing: bool = False  # kept for configs that set it; every sampler now times warm-up on its own
    gradient_batching: str = "auto"  # chees/meads: "vmap", "map" (chains' gradients one after another) or "auto"
    until: dict | None = None  # {"rhat": 1.01, "ess": 400}: draw past ``draws`` until met (inference.until)
    max_draws: int | None = None  # draws per chain at most with ``until`` (default: until.default_max_draws)


class SampleResult(NamedTuple):
    """Raw output of a sampler, on the unconstrained space.

    Attributes
    ----------
    samples : dict[str, np.ndarray]
        Unconstrained draws, each (chains, draws, *shape).
    stats : dict[str, np.ndarray]
        Per-draw sampler statistics, each (chains, draws): ``diverging``, ``energy``,
        ``tree_depth``, ``n_steps``, ``step_size``, ``acceptance_rate``, ``lp``.
    timings : dict[str, float]
        Wall seconds: ``total`` (compilation + warm-up + sampling); ``warmup`` (includes
        compilation) and ``sampling`` where the sampler can tell them apart (all samplers, except
        NumPyro's ``chain_method="sequential"`` with several chains), else NaN.
    sampler : str
    config : SamplerConfig
    stopped : dict or None
        With ``config.until``: what ended the draws (``stopped_by``: ``"converged"`` or
        ``"max_draws"``), the targets, the draws per chain and the last R-hat / ESS checked.
    tuned : tuple or None
        ``(step_size (chains,), inverse_mass_matrix (chains, d))`` each chain ended its warm-up
        with (diagonal mass matrices; what a refresh starts from).
    """

    samples: dict
    stats: dict
    timings: dict
    sampler: str
    config: SamplerConfig
    stopped: dict | None = None
    tuned: tuple | None = None


def bind_data(ld: LogDensity, data: dict | None):
    """``params -> logp`` with ``data`` fixed; checks the data names."""
    data = data_inputs(ld, data)

    def logdensity(params):
        return ld.logp(params, data)

    return logdensity


def sample(
    ld: LogDensity,
    data: dict | None = None,
    *,
    key: jax.Array | int = 0,
    sampler: str = "numpyro",
    start: WarmStart | None = None,
    **settings: Any,
) -> SampleResult:
    """Run NUTS on a compiled model.

    Parameters
    ----------
    ld : LogDensity
        From :func:`mmm_jax.compile.compile_logdensity`.
    data : dict, optional
        Data inputs (defaults to the data the model was built with).
    key : PRNG key or int seed
    sampler : {"numpyro", "blackjax", "chees", "meads"}
        NUTS with window adaptation (NumPyro or BlackJAX), or BlackJAX's many-chain
        adaptation: ChEES-HMC or MEADS (see :mod:`mmm_jax.inference.chees`).
    start : WarmStart, optional
        Start every chain from these positions, step sizes and (diagonal) inverse mass matrices
        instead of PyMC's initial point with a cold adaptation (a refresh); the warm-up then
        adapts from them (a short warm-up does). NumPyro and BlackJAX NUTS only.
    **settings
        Fields of :class:`SamplerConfig` (chains, warmup, draws, target_accept, ...). With
        ``until`` (``{"rhat": 1.01, "ess": 400}``, see :mod:`mmm_jax.inference.until`) the
        sampler keeps drawing past ``draws`` in chunks until every free parameter meets the
        targets or ``max_draws`` per chain are drawn; ``SampleResult.stopped`` says which.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler {sampler!r} is not available; choose one of {list(SAMPLERS)}")
    unknown = set(settings) - set(SamplerConfig._fields)
    if unknown:
        raise TypeError(f"unknown sampler settings {sorted(unknown)}; allowed: {list(SamplerConfig._fields)}")
    cfg = checked(SamplerConfig(**settings))
    if sampler in ("chees", "meads"):
        refused = [name for name, v in (("until", cfg.until), ("start", start)) if v is not None]
        if refused:
            raise ValueError(f"sampler {sampler!r} does not support {' / '.join(refused)}; use 'numpyro' or 'blackjax'")
    if start is not None and cfg.dense_mass:
        raise ValueError("start (a refresh) carries diagonal mass matrices: it cannot be used with dense_mass=True")
    if isinstance(key, int | np.integer):
        key = jax.random.key(int(key))
    if sampler == "numpyro":
        from .numpyro import sample_numpyro

        return sample_numpyro(ld, data, key=key, config=cfg, start=start)
    if sampler in ("chees", "meads"):
        from .chees import sample_chees, sample_meads

        return (sample_chees if sampler == "chees" else sample_meads)(ld, data, key=key, config=cfg)
    from .blackjax import sample_blackjax

    return sample_blackjax(ld, data, key=key, config=cfg, start=start)


def checked(cfg: SamplerConfig) -> SamplerConfig:
    """``cfg`` itself, or a ValueError naming the setting that is out of range."""
    if cfg.chains < 1 or cfg.draws < 1 or cfg.warmup < 0:
        raise ValueError(f"need chains >= 1, draws >= 1, warmup >= 0; got {cfg.chains}, {cfg.draws}, {cfg.warmup}")
    if not 0.0 < cfg.target_accept < 1.0:
        raise ValueError(f"target_accept must be in (0, 1), got {cfg.target_accept}")
    if cfg.gradient_batching not in GRADIENT_BATCHING:
        raise ValueError(f"gradient_batching {cfg.gradient_batching!r}; allowed: {list(GRADIENT_BATCHING)}")
    until = check_until(cfg.until)
    if cfg.max_draws is not None and until is None:
        raise ValueError("max_draws is the most draws per chain when sampling until converged: give until too, "
                         "e.g. until={'rhat': 1.01, 'ess': 400}")
    max_draws = None if until is None else int(cfg.max_draws or default_max_draws(cfg.draws))
    if max_draws is not None and max_draws < cfg.draws:
        raise ValueError(f"max_draws ({max_draws}) must be >= draws ({cfg.draws}), the draws before the first check")
    return cfg._replace(until=until, max_draws=max_draws)


def data_inputs(ld: LogDensity, data: dict | None) -> dict:
    """The model's data inputs as JAX arrays (defaults: the data it was built with); checks names.

    Samplers pass them to their compiled programs as arguments, not constants, so one program
    (and the persistent compilation cache) serves every data set of the same shapes.
    """
    data = dict(ld.default_data if data is None else data)
    missing = [n for n in ld.data_names if n not in data]
    if missing:
        raise ValueError(f"data is missing inputs {missing}; the model needs {list(ld.data_names)}")
    return {n: jax.numpy.asarray(data[n]) for n in ld.data_names}


def resolve_chain_method(cfg: SamplerConfig) -> str:
    """``auto`` -> ``parallel`` when there is a device per chain, or on CPU when there are at least
    2 devices (each then runs its share of the chains one after another: on CPU, vmapped chains
    cost about twice as much per chain), else ``vectorized``."""
    if cfg.chain_method != "auto":
        if cfg.chain_method not in ("parallel", "vectorized", "sequential"):
            raise ValueError(f"chain_method {cfg.chain_method!r}; allowed: auto, parallel, vectorized, sequential")
        return cfg.chain_method
    n_dev = jax.local_device_count()
    if cfg.chains > 1 and (n_dev >= cfg.chains or (n_dev >= 2 and jax.default_backend() == "cpu")):
        return "parallel"
    return "vectorized"
