"""Posterior summary tables: mean, median (sd) and HDI of draws over ``chain`` and ``draw``.

One builder for every results table (``MMM.roas()``, ``HierarchicalMMM.roas()``, the export), so
their statistics and column names agree; :func:`summary_contributions` is the markets' weekly
contribution table (``HierarchicalMMM.contributions()`` and the export).
"""

from __future__ import annotations

import pandas as pd
import xarray as xr

from ..compat import hdi_bounds

__all__ = ["hdi_columns", "posterior_table", "summary_contributions"]


def hdi_columns(hdi_prob: float) -> tuple[str, str]:
    """The HDI column names ArviZ 0.x uses, e.g. ``("hdi_5%", "hdi_95%")`` for 0.9."""
    return f"hdi_{(1 - hdi_prob) / 2:.0%}", f"hdi_{1 - (1 - hdi_prob) / 2:.0%}"


def posterior_table(da: xr.DataArray, hdi_prob: float, *, sd: bool = False,
                    hdi_names: tuple[str, str] | None = None) -> pd.DataFrame:
    """Summary of ``da`` (chain, draw, *dims): one row per cell of ``dims`` (the index), columns
    ``mean``, ``median`` (``sd`` where asked), then the HDI bounds named ``hdi_names`` (default
    :func:`hdi_columns`). Units are ``da``'s."""
    lo, hi = hdi_names or hdi_columns(hdi_prob)
    lower, upper = hdi_bounds(da, hdi_prob)
    stats = {"mean": da.mean(("chain", "draw")), "median": da.median(("chain", "draw"))}
    if sd:
        stats["sd"] = da.std(("chain", "draw"))
    stats.update({lo: lower, hi: upper})
    ds = xr.Dataset(stats).reset_coords(drop=True)
    return ds.to_dataframe()[list(stats)]


def summary_contributions(summ: xr.Dataset) -> pd.DataFrame:
    """A ``contribution_summary`` group (:meth:`mmm_jax.hierarchical.HierarchicalMMM.fit`) as a long frame of
    ``contribution_mean`` / ``contribution_sd`` (original units): index (market, date, channel), or
    with treatments (``treatment_contribution_mean`` / ``_sd`` over (market, date, treatment))
    (market, date, component) with the channels' rows, then the treatments'."""
    channels = summ[["contribution_mean", "contribution_sd"]].to_dataframe()
    if "treatment_contribution_mean" not in summ:
        return channels
    treat = (summ[["treatment_contribution_mean", "treatment_contribution_sd"]]
             .rename({"treatment_contribution_mean": "contribution_mean",
                      "treatment_contribution_sd": "contribution_sd", "treatment": "component"}).to_dataframe())
    channels.index = channels.index.rename("component", level="channel")
    return pd.concat([channels, treat.reorder_levels(channels.index.names)])
