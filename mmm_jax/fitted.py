"""One fitted-model interface, whatever its markets: :class:`FittedModel`, ``model_for(config)``
and ``load(path)``.

A config with market keys gives a :class:`mmm_jax.hierarchical.HierarchicalMMM` (ROAS, CAC,
marginal values, curves and budgets at ``level="market"`` or ``"national"``); one without gives
an :class:`mmm_jax.MMM` (the one-market case of the same model). Both are thin facades over the
same model builder (:func:`mmm_jax.model.build_pymc_model`), compile step, per-draw quantities
(:func:`mmm_jax.results.draw_quantities`) and InferenceData builder, and share
:class:`FittedModel`: ``diagnostics``, ``summary`` and ``save`` (one folder format,
:mod:`mmm_jax.persist`), and the same analysis method names (``roas``, ``cac``,
``contributions``, ``predict``, ``marginal_roas``, ``marginal_cac``, ``response_curves``,
``optimize_budget``; with markets they take ``level="market"`` or ``"national"``).

>>> m = model_for({"date": "date", "target": "sales", "channels": ["tv"]})      # doctest: +SKIP
>>> m.fit(df); m.save("run")                                                   # doctest: +SKIP
>>> load("run").roas()                                                         # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from .persist import RunFormatError, output_kind, save_run
from .results import diagnostics, free_parameter_names

if TYPE_CHECKING:
    import pandas as pd

    from .config import ModelConfig
    from .hierarchical import HierarchicalConfig, HierarchicalMMM
    from .mmm import MMM

__all__ = ["FittedModel", "NotFittedError", "model_for", "load"]


class NotFittedError(RuntimeError):
    """The model has not been fitted (or loaded) yet."""


class FittedModel:
    """What every fitted model (:class:`~mmm_jax.MMM`, :class:`~mmm_jax.hierarchical.HierarchicalMMM`)
    answers the same way. A subclass sets ``kind`` (the saved folder's kind), holds ``config``,
    ``scaling``, ``idata`` and ``fit_settings``, and says which frame it was fitted on
    (:meth:`training_frame`)."""

    kind: ClassVar[str]
    #: posterior quantities that :meth:`summary` lists after the free parameters
    summary_quantities: ClassVar[tuple[str, ...]] = ("roas",)

    def _require_fit(self) -> None:
        if getattr(self, "idata", None) is None:
            name = type(self).__name__
            raise NotFittedError(f"fit the model ({name}.fit) or load one ({name}.load) first")

    def diagnostics(self) -> dict[str, float]:
        """``{max_rhat, min_ess_bulk, min_ess_tail, divergences, draws}`` over free parameters."""
        self._require_fit()
        return diagnostics(self.idata)

    def summary(self, var_names: list[str] | None = None, hdi_prob: float = 0.94) -> pd.DataFrame:
        """ArviZ summary (mean, sd, HDI, R-hat, bulk/tail ESS) of the free parameters and ROAS
        (and national ROAS where there are markets)."""
        import arviz as az

        self._require_fit()
        names = var_names or [*free_parameter_names(self.idata),
                              *(n for n in self.summary_quantities if n in self.idata.posterior)]
        return az.summary(self.idata, var_names=names, hdi_prob=hdi_prob)

    def training_frame(self) -> pd.DataFrame:
        """The training data the model was fitted on (what :meth:`save` writes as ``data.csv``)."""
        raise NotImplementedError

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the fitted model to the directory ``path`` (each file atomically).

        Contents (:mod:`mmm_jax.persist`): ``config.json``, ``scaling.json``, ``data.csv``
        (training data; long format with markets), ``idata.nc`` (InferenceData), ``meta.json``
        (format version, kind, versions, sampler settings, file sizes and hashes). ``path`` must
        be new, empty or an earlier saved model; ``overwrite=True`` also writes into another
        folder (keeping its other files). Else :class:`mmm_jax.persist.OutputDirError`.
        """
        self._require_fit()
        return save_run(path, kind=self.kind, config=self.config.to_dict(), scaling=self.scaling.to_dict(),
                        frame=self.training_frame(), idata=self.idata, fit_settings=self.fit_settings,
                        overwrite=overwrite)


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
