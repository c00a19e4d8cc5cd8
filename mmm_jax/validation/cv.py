"""Time-slice (rolling-origin) cross-validation, every fold a brand of one batch.

Fold ``k`` of ``K`` (``k = 0..K-1``) trains on the weeks before its origin
``T - (K - k) * horizon`` and is scored on the ``horizon`` weeks after it: the fold's frame is the
data up to ``origin + horizon`` with those last weeks held out (``holdout=horizon``: masked,
scaling on the training weeks — :mod:`mmm_jax.data.holdout`). All folds run through
:func:`mmm_jax.batch.fit_many` as one job (one compiled program, resumable), so a CV costs one
batch rather than ``K`` separate fits.

>>> from mmm_jax.validation import time_slice_cv                        # doctest: +SKIP
>>> cv = time_slice_cv(df, cfg, folds=4, horizon=13, out="runs/cv")     # doctest: +SKIP
>>> cv.metrics        # per fold: CRPS, relative CRPS, MAPE, 50% / 90% coverage   # doctest: +SKIP
>>> cv.roas           # per fold and channel: ROAS mean and 90% HDI (stability)  # doctest: +SKIP
>>> cv.plot("cv.png")                                                    # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..batch.run import BatchResult, fit_many
from ..config.markets import HierarchicalConfig, load_config
from ..data.validate import DataError
from ..persist import atomic_write_text

__all__ = ["time_slice_cv", "CVResult", "fold_frames"]


def fold_frames(df: pd.DataFrame, date: str, folds: int, horizon: int, *, min_train: int = 2,
                by: str | None = None) -> dict[str, pd.DataFrame]:
    """The folds' frames ``{"fold_<k>": rows up to origin_k + horizon}`` (one brand or a long
    market panel: cut by date; with ``by``, ``{"<brand>__fold_<k>": ...}`` for every brand).

    Raises :class:`DataError` when ``folds * horizon`` leaves fewer than ``min_train`` training
    weeks for the first fold."""
    if int(folds) < 1 or int(horizon) < 1:
        raise ValueError(f"folds and horizon must be >= 1, got folds={folds}, horizon={horizon}")
    if date not in df.columns:
        raise DataError(f"missing date column {date!r}", column=date)
    groups = {None: df} if by is None else {str(k): g for k, g in df.groupby(by, sort=True)}
    out = {}
    for name, g in groups.items():
        dates = pd.DatetimeIndex(sorted(pd.to_datetime(g[date]).unique()))
        first_origin = len(dates) - folds * horizon
        if first_origin < min_train:
            who = "" if name is None else f"brand {name!r}: "
            raise DataError(f"{who}{folds} folds x {horizon} weeks leave {max(first_origin, 0)} training weeks for "
                            f"the first fold of {len(dates)} weeks; need at least {min_train}")
        d = pd.to_datetime(g[date])
        if by is not None:
            g = g.drop(columns=[by])
        for k in range(folds):
            end = dates[first_origin + k * horizon + horizon - 1]
            key = f"fold_{k}" if name is None else f"{name}__fold_{k}"
            out[key] = g[d <= end].reset_index(drop=True)
    return out


@dataclass
class CVResult:
    """A time-slice cross-validation's results.

    Attributes
    ----------
    metrics : DataFrame, one row per fold (and brand): ``origin`` (first scored week),
        ``train_weeks``, ``n`` (cells scored), ``crps``, ``crps_relative``, ``mape``,
        ``coverage_50``, ``coverage_90``, ``max_rhat``, ``divergences``
    roas : DataFrame, one row per fold (and brand) and channel: ``mean``, ``hdi_5%``, ``hdi_95%``
        (national ROAS for market configs) — parameter stability across origins
    batch : BatchResult of the folds' batch (``batch.load("fold_2")`` is that fold's fit)
    stats : the batch's run statistics (wall seconds, brands/min)
    """

    metrics: pd.DataFrame
    roas: pd.DataFrame
    batch: BatchResult
    stats: dict

    def stability(self) -> pd.DataFrame:
        """Per (brand and) channel: ROAS mean over folds, its sd across folds and their ratio."""
        keys = [k for k in ("brand", "channel") if k in self.roas.columns]
        g = self.roas.groupby(keys)["mean"]
        out = pd.DataFrame({"mean_over_folds": g.mean(), "sd_across_folds": g.std(ddof=0)})
        out["cv"] = out["sd_across_folds"] / out["mean_over_folds"].abs()
        return out

    def plot(self, path: str | os.PathLike | None = None, title: str | None = None):
        """ROAS per channel by fold (mean and 90% HDI) next to each fold's relative CRPS and
        coverage. Returns the figure; writes it when ``path`` is given."""
        from ..plots import plot_cv

        return plot_cv(self, path, title=title)


def time_slice_cv(df: pd.DataFrame, config, *, folds: int = 4, horizon: int = 13, out: str | os.PathLike,
                  by: str | None = None, chains: int = 4, warmup: int = 1000, draws: int = 1000,
                  seed: int = 0, progress: bool = True, lift_tests=None, **batch_kwargs: Any) -> CVResult:
    """Rolling-origin cross-validation of ``config`` on ``df``, the folds fitted as one batch.

    Parameters
    ----------
    df : one brand's frame, a long market panel (market config), or with ``by`` many brands
    config : any config (:func:`mmm_jax.load_config`)
    folds, horizon : number of origins and weeks scored after each
    out : folder of the folds' batch (``manifest.sqlite``, ``brands/fold_<k>.nc``) and of
        ``cv_metrics.csv`` / ``cv_roas.csv``; rerunning resumes
    chains, warmup, draws, seed, progress, **batch_kwargs : as :func:`mmm_jax.batch.fit_many`
    lift_tests : lift tests of the brand (a fold uses those within its weeks); with ``by``, the
        table's brand column names the brand

    Returns
    -------
    CVResult
    """
    config = load_config(config)
    base = config.base if isinstance(config, HierarchicalConfig) else config
    frames = fold_frames(df, base.date, folds, horizon, min_train=max(2, base.adstock.l_max) + 1, by=by)
    lift = _fold_lift_tests(lift_tests, base, frames, by, int(horizon))
    res = fit_many(frames, config=config, out=out, holdout=int(horizon), chains=chains, warmup=warmup, draws=draws,
                   seed=seed, progress=progress, lift_tests=lift, **batch_kwargs)
    man = res.manifest().set_index("brand")
    rows, roas_rows = [], []
    for name in frames:
        brand, fold = (name.rsplit("__fold_", 1) if by is not None else (None, name.split("_")[1]))
        rec = man.loc[name]
        row = {**({"brand": brand} if by is not None else {}), "fold": int(fold)}
        if rec["status"] != "done":
            rows.append({**row, "error": rec["error"]})
            continue
        fit = res.load(name)
        m = fit.holdout_metrics()
        rows.append({**row, "origin": m.pop("holdout_start"), "train_weeks": int(rec["n_weeks"]) - int(horizon), **m,
                     "max_rhat": _number(rec["max_rhat"]), "divergences": int(_number(rec["divergences"]) or 0)})
        table = fit.roas("national", hdi_prob=0.9) if isinstance(config, HierarchicalConfig) else fit.roas(hdi_prob=0.9)
        for ch, r in table.iterrows():
            roas_rows.append({**row, "channel": ch, "mean": float(r["mean"]), "hdi_5%": float(r["hdi_5%"]),
                              "hdi_95%": float(r["hdi_95%"])})
    metrics, roas = pd.DataFrame(rows), pd.DataFrame(roas_rows)
    folder = Path(out)
    atomic_write_text(folder / "cv_metrics.csv", metrics.to_csv(index=False))
    atomic_write_text(folder / "cv_roas.csv", roas.to_csv(index=False))
    atomic_write_text(folder / "cv_settings.json", json.dumps({"folds": int(folds), "horizon": int(horizon), "by": by,
                                                               "stats": res.stats}, indent=2, default=str))
    return CVResult(metrics, roas, res, res.stats)


def _number(v) -> float:
    """A manifest number (None where it is undefined, e.g. R-hat of one chain) as a float (NaN)."""
    return float("nan") if v is None or pd.isna(v) else float(v)


def _fold_lift_tests(lift_tests, base, frames: dict, by: str | None, horizon: int):
    """The brand's lift tests repeated for every fold whose training weeks contain all of a test's
    weeks (a test inside the scored weeks would leak them)."""
    from ..data.lift import lift_table_for

    table = lift_table_for(lift_tests, base)
    if table is None:
        return None
    table = table.reset_index(drop=True)
    parts = []
    for name, f in frames.items():
        weeks = pd.DatetimeIndex(sorted(pd.to_datetime(f[base.date]).unique()))
        origin = weeks[-horizon]
        rows = table
        if by is not None:
            brand = name.rsplit("__fold_", 1)[0]
            col = by if by in table.columns else "brand"
            rows = table[table[col].astype(str) == brand].drop(columns=[col])
        rows = rows[pd.to_datetime(rows["end"]) < origin]
        parts.append(rows.assign(brand=name))
    out = pd.concat(parts, ignore_index=True)
    return out if len(out) else None

