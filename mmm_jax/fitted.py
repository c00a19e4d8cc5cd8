"""One entry point to a fitted model, whatever its markets: ``model_for(config)`` and ``load(path)``.

A config with market keys gives a :class:`mmm_jax.hierarchical.HierarchicalMMM` (ROAS, CAC,
marginal values, curves and budgets at ``level="market"`` or ``"national"``); one without gives
an :class:`mmm_jax.MMM` (the one-market case of the same model). Both are thin facades over the
same model builder (:func:`mmm_jax.model.build_pymc_model`), compile step, per-draw quantities
(:func:`mmm_jax.results.draw_quantities`) and InferenceData builder.

>>> m = model_for({"date": "date", "target": "sales", "channels": ["tv"]})      # doctest: +SKIP
>>> m.fit(df); m.save("run")                                                   # doctest: +SKIP
>>> load("run").roas()                                                         # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .persist import RunFormatError, output_kind

if TYPE_CHECKING:
    from .config import ModelConfig
    from .hierarchical import HierarchicalConfig, HierarchicalMMM
    from .mmm import MMM

__all__ = ["model_for", "load"]


def model_for(config: ModelConfig | HierarchicalConfig | Mapping | str | os.PathLike) -> MMM | HierarchicalMMM:
    """An unfitted model for ``config`` (a config object, a mapping, or a YAML / JSON file):
    :class:`~mmm_jax.hierarchical.HierarchicalMMM` when it has market keys, else :class:`~mmm_jax.MMM`."""
    from .hierarchical import HierarchicalConfig, HierarchicalMMM, load_config
    from .mmm import MMM

    cfg = load_config(config)
    return HierarchicalMMM(cfg) if isinstance(cfg, HierarchicalConfig) else MMM(cfg)


def load(path: str | os.PathLike) -> MMM | HierarchicalMMM:
    """Load a fitted model saved by ``save`` (either kind; format version and file hashes checked).

    Raises :class:`mmm_jax.persist.RunFormatError` naming what ``path`` is when it is not a
    saved fitted model (a batch folder, a budget, not an mmm_jax output).
    """
    from .hierarchical import HierarchicalMMM
    from .mmm import MMM

    found = output_kind(path) if Path(path).is_dir() else None
    if found == "brand":
        return MMM.load(path)
    if found == "markets":
        return HierarchicalMMM.load(path)
    what = "not an mmm_jax output" if found is None else f"an mmm_jax {found} output, not a fitted model"
    hint = " (load a brand with mmm_jax.batch.load_brand(path, brand))" if found == "batch" else ""
    raise RunFormatError(f"{path}: {what}{hint}")
