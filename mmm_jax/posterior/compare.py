"""Model comparison by PSIS-LOO (ArviZ) over fits with a ``log_likelihood`` group."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import pandas as pd

from ..compat import compare_loo, group_names, loo_pareto_k

__all__ = ["compare", "PARETO_K_MAX"]

#: Pareto k above which PSIS-LOO's estimate for an observation is unreliable (ArviZ's threshold)
PARETO_K_MAX = 0.7


def _idata(name: str, fit):
    idata = getattr(fit, "idata", fit)
    if idata is None or not hasattr(idata, "posterior"):
        raise TypeError(f"compare: {name!r} is neither a fitted model nor an InferenceData")
    if "log_likelihood" not in group_names(idata):
        raise ValueError(f"compare: {name!r} has no log_likelihood group; fit it with fit(..., log_likelihood=True) "
                         "or call add_log_likelihood() on the fitted model")
    return idata


def compare(models: Mapping[str, object], *, scale: str = "log") -> pd.DataFrame:
    """ELPD-LOO of every model, best first, with standard errors and Pareto-k checks.

    Parameters
    ----------
    models : ``{name: fitted model or InferenceData}``, each with a ``log_likelihood`` group over
        the same observations (``fit(..., log_likelihood=True)``)
    scale : ArviZ's ELPD scale (``"log"``: higher is better)

    Returns
    -------
    DataFrame of :func:`arviz.compare` (``elpd_loo``, ``p_loo``, ``elpd_diff``, ``weight``, ``se``,
    ``dse``, ``warning``, ...) plus ``n_obs`` and ``pareto_k_bad`` (observations with Pareto k >
    0.7). Warns (``UserWarning``, one line per model) where ``pareto_k_bad > 0``: those models'
    LOO estimates are unreliable there (refit with K-fold / time-slice CV instead).
    """
    if len(models) < 2:
        raise ValueError(f"compare: give at least two models, got {len(models)}")
    data = {name: _idata(name, fit) for name, fit in models.items()}
    sizes = {name: int(idata.log_likelihood["y"].size // (idata.log_likelihood.sizes["chain"]
                                                           * idata.log_likelihood.sizes["draw"]))
             for name, idata in data.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"compare: the models score different numbers of observations {sizes}; compare fits "
                         "of the same data (same weeks, markets and hold-out)")
    bad = {name: int((loo_pareto_k(idata) > PARETO_K_MAX).sum()) for name, idata in data.items()}
    table = compare_loo(data, scale)
    table["n_obs"] = [sizes[n] for n in table.index]
    table["pareto_k_bad"] = [bad[n] for n in table.index]
    for name, k in bad.items():
        if k:
            warnings.warn(f"compare: {name!r} has {k} of {sizes[name]} observations with Pareto k > {PARETO_K_MAX}: "
                          "its PSIS-LOO estimate is unreliable there", UserWarning, stacklevel=2)
    return table
