"""Dashboard tables from fitted runs: ROAS, weekly contributions and diagnostics, one file each.

:func:`export_runs` reads any mix of batch output folders (``mmm-jax batch``: every brand of
the manifest) and fitted-model folders (``mmm-jax fit`` / ``refresh``, or ``model.save``: one
brand named after its folder) and writes, into one folder,

* ``roas.<fmt>``: one row per run, brand, level and channel — ``level`` is ``"brand"`` for a
  single-market model, ``"market"`` (with ``market``) and ``"national"`` for a market model;
  ``mean``, ``median``, ``sd`` and the HDI bounds (``hdi_low`` / ``hdi_high`` at ``hdi_prob``) of
  ROAS = contribution / spend over the fitted weeks (original units);
* ``contributions.<fmt>``: one row per run, brand, [market,] date and component (``baseline``,
  each non-media treatment and each channel for a single-market model; each channel and each
  treatment per market for a market model):
  posterior ``mean`` and ``sd`` of the weekly contribution in the target's units;
* ``diagnostics.<fmt>``: one row per run and brand: ``status`` (``done`` / ``failed``),
  ``converged``, ``max_rhat``, ``min_ess_bulk``, ``min_ess_tail``, ``divergences``, ``draws``,
  ``n_weeks``, ``error`` — a brand that failed in the batch, or whose stored file cannot be read,
  is a row with its error, never a reason to stop.

``fmt`` is ``"parquet"`` (pyarrow) or ``"csv"``; files are written atomically. Labels are
plain columns (no index), ready for a BI tool or ``pd.read_parquet``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
import xarray as xr

from .compat import get_group
from .persist import RunFormatError, check_output_dir, mark_output_dir, output_kind, write_table
from .posterior.results import RHAT_MAX
from .posterior.tables import posterior_table, summary_contributions

__all__ = ["TABLES", "FORMATS", "export_runs", "model_tables"]

TABLES = ("roas", "contributions", "diagnostics")
FORMATS = ("parquet", "csv")
DIAGNOSTIC_COLUMNS = ("run", "brand", "kind", "status", "converged", "max_rhat", "min_ess_bulk", "min_ess_tail",
                      "divergences", "draws", "n_weeks", "error")


def _summary(da: xr.DataArray, hdi_prob: float) -> pd.DataFrame:
    """Mean, median, sd and HDI of ``da`` (chain, draw, ...) as a frame with its other dims as columns."""
    return posterior_table(da, hdi_prob, sd=True, hdi_names=("hdi_low", "hdi_high")).reset_index()


def model_tables(model, *, run: str, brand: str, hdi_prob: float = 0.9) -> dict[str, pd.DataFrame]:
    """The three tables (:data:`TABLES`) of one fitted model (an :class:`mmm_jax.MMM` or a
    :class:`mmm_jax.hierarchical.HierarchicalMMM`, fitted or loaded)."""
    post = model.idata.posterior
    markets = "market" in post.dims
    if markets:
        roas = pd.concat([_summary(post["roas"], hdi_prob).assign(level="market"),
                          _summary(post["roas_national"], hdi_prob).assign(level="national", market=pd.NA)])
        summ = get_group(model.idata, "contribution_summary")
        contrib = (summary_contributions(summ).rename(columns={"contribution_mean": "mean", "contribution_sd": "sd"})
                   .reset_index().rename(columns={"channel": "component"}))
        weeks = int(summ.sizes["date"])
    else:
        roas = _summary(post["roas"], hdi_prob).assign(level="brand", market=pd.NA)
        ch = post["channel_contribution_original"]
        base = post["baseline_original"]

        def moments(da):
            return xr.Dataset({"mean": da.mean(("chain", "draw")), "sd": da.std(("chain", "draw"))}).to_dataframe()

        parts = [moments(base).reset_index().assign(component="baseline")]
        if "treatment_contribution_original" in post:  # non-media treatments, between baseline and channels
            parts.append(moments(post["treatment_contribution_original"]).reset_index()
                         .rename(columns={"treatment": "component"}))
        parts.append(moments(ch).reset_index().rename(columns={"channel": "component"}))
        contrib = pd.concat(parts).assign(market=pd.NA)
        weeks = int(ch.sizes["date"])
    d = model.diagnostics()
    diag = {"status": "done", "converged": int(d["max_rhat"] < RHAT_MAX and d["divergences"] == 0), **d,
            "n_weeks": weeks, "error": None}
    label = {"run": run, "brand": brand}
    roas = roas.assign(**label)[["run", "brand", "level", "market", "channel", "mean", "median", "sd", "hdi_low",
                                 "hdi_high"]]
    contrib = contrib.assign(**label)[["run", "brand", "market", "date", "component", "mean", "sd"]]
    return {"roas": roas, "contributions": contrib.sort_values(["market", "component", "date"], kind="stable"),
            "diagnostics": _diagnostics_frame([{**label, "kind": model.kind, **diag}])}


def _diagnostics_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows).reindex(columns=list(DIAGNOSTIC_COLUMNS))


def _batch_rows(path: Path, run: str, hdi_prob: float, progress: bool) -> Iterable[dict[str, pd.DataFrame]]:
    from .batch.run import load_brand
    from .batch.store import read_manifest

    manifest = read_manifest(path)
    rows = list(manifest.itertuples(index=False))
    bar = None
    if progress and len(rows) > 1:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(rows), desc=f"export {path.name}", unit="brand")
    for r in rows:
        base = {"run": run, "brand": str(r.brand), "kind": "batch", "n_weeks": r.n_weeks}
        if r.status != "done":
            yield {"diagnostics": _diagnostics_frame([{**base, "status": r.status, "error": r.error}])}
        else:
            try:
                model = load_brand(path, r.brand)
                yield model_tables(model, run=run, brand=str(r.brand), hdi_prob=hdi_prob)
            except (OSError, ValueError, KeyError, RuntimeError) as err:  # a damaged file: a row, not a stop
                yield {"diagnostics": _diagnostics_frame([{**base, "status": "unreadable",
                                                           "error": f"{type(err).__name__}: {err}"}])}
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()


def export_runs(paths: Sequence[str | os.PathLike], dest: str | os.PathLike, *, fmt: str = "parquet",
                hdi_prob: float = 0.9, progress: bool = True, overwrite: bool = False) -> dict[str, Path]:
    """Write :data:`TABLES` for every brand of ``paths`` into ``dest``: a new folder, an empty one
    or an earlier export (``overwrite``: any folder; only the three tables are replaced).

    Returns ``{table: file}``. Raises :class:`mmm_jax.persist.RunFormatError` naming a path that
    is neither a batch output nor a fitted model, :class:`mmm_jax.persist.OutputDirError` for a
    ``dest`` it may not write to (both before anything is written), ``ValueError`` for an unknown
    ``fmt`` or ``hdi_prob`` outside (0, 1).
    """
    from .api.fitted import load

    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if not 0.0 < float(hdi_prob) < 1.0:
        raise ValueError(f"hdi_prob must be in (0, 1), got {hdi_prob}")
    if not paths:
        raise ValueError("name at least one batch output or fitted-model folder to export")
    kinds = []
    for p in paths:
        kind = output_kind(p) if Path(p).is_dir() else None
        if kind not in ("batch", "brand", "markets"):
            what = "no such folder" if not Path(p).exists() else (
                "not an mmm_jax output" if kind is None else f"an mmm_jax {kind} output")
            raise RunFormatError(f"{p}: {what}; export reads batch outputs (mmm-jax batch) and fitted models "
                                 "(mmm-jax fit / refresh)")
        kinds.append(kind)
    check_output_dir(dest, "export", overwrite=overwrite, inputs=paths)
    parts: dict[str, list[pd.DataFrame]] = {t: [] for t in TABLES}
    for p, kind in zip(paths, kinds, strict=True):
        path, run = Path(p), str(p)
        found = (_batch_rows(path, run, hdi_prob, progress) if kind == "batch"
                 else [model_tables(load(path), run=run, brand=path.resolve().name, hdi_prob=hdi_prob)])
        for tables in found:
            for name, frame in tables.items():
                parts[name].append(frame)
    out = mark_output_dir(dest, "export")
    written = {}
    for name in TABLES:
        frame = pd.concat(parts[name], ignore_index=True) if parts[name] else pd.DataFrame()
        if name == "diagnostics":
            frame = frame.reindex(columns=list(DIAGNOSTIC_COLUMNS))
            for col in ("max_rhat", "min_ess_bulk", "min_ess_tail", "draws", "divergences", "converged", "n_weeks"):
                frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
        for col in ("run", "brand", "kind", "status", "error", "level", "market", "channel", "component"):
            if col in frame:
                frame[col] = frame[col].astype("string")
        written[name] = write_table(frame, out / f"{name}.{fmt}")
    return written
