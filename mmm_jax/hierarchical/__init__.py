"""Hierarchical (multi-market) MMM: one joint ``pm.Model`` that partially pools media effects
across geos, brands or products (non-centred), compiled to the same pure-JAX log-density with
data as inputs.

The public names of the market model, gathered from where the code lives (the same modules as
one brand: ``config/markets.py``, ``data/panel.py``, ``model/markets.py``, ``api/markets.py``,
``batch/panels.py``, ``datasets/panels.py``)."""

from ..api.markets import HierarchicalMMM
from ..batch.panels import HierarchicalBatchResult, fit_many_hierarchical, load_hierarchical_brand
from ..config.markets import DEFAULT_POOLING, MARKET_KEYS, POOLING_CHOICES, HierarchicalConfig, load_config
from ..data.panel import PanelData, PanelScaling, fit_panel_scaling, panel_arrays, validate_panel
from ..datasets.panels import PanelTruth, simulate_panel
from ..model.markets import build_hierarchical_model

__all__ = [
    "HierarchicalConfig",
    "load_config",
    "MARKET_KEYS",
    "HierarchicalMMM",
    "fit_many_hierarchical",
    "HierarchicalBatchResult",
    "load_hierarchical_brand",
    "DEFAULT_POOLING",
    "POOLING_CHOICES",
    "build_hierarchical_model",
    "PanelData",
    "PanelScaling",
    "validate_panel",
    "fit_panel_scaling",
    "panel_arrays",
    "simulate_panel",
    "PanelTruth",
]
