"""Model configuration: :class:`ModelConfig` (the model library: adstock, saturation, priors,
likelihood, HSGP terms, ROAS / CAC priors) in :mod:`.model`, and the market keys that make it a
multi-market model (:class:`HierarchicalConfig`, :func:`load_config`) in :mod:`.markets`."""

from .markets import DEFAULT_POOLING, MARKET_KEYS, POOLING_CHOICES, HierarchicalConfig, load_config
from .model import *  # noqa: F401,F403
from .model import __all__ as _model_all

__all__ = [*_model_all, "HierarchicalConfig", "load_config", "MARKET_KEYS", "POOLING_CHOICES", "DEFAULT_POOLING"]
