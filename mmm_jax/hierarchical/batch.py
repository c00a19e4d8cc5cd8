"""Many brands, each a multi-market panel: the hierarchical model through the batch engine.

>>> from mmm_jax.hierarchical import fit_many_hierarchical                   # doctest: +SKIP
>>> res = fit_many_hierarchical(df, by="brand", config=hcfg, out="runs/geo")  # doctest: +SKIP
>>> res.manifest(); res.load("brand_3").roas("national")                      # doctest: +SKIP

One joint model is compiled once for a template panel of ``G`` markets x ``T`` weeks (the
largest brand) and :func:`mmm_jax.batch.engine.make_batch_sampler` runs it over chunks of
brands (sharded over devices, each brand with its own warm-up), exactly as ``fit_many`` does
for single-market brands. A brand with fewer markets or weeks is padded:

* padded weeks (at the end, calendar features continued) and padded markets have ``mask = 0``
  and zero spend/controls/target: they add nothing to the likelihood;
* a padded market's own parameters (its non-centred ``z``, its independent or per-market
  parameters) then appear only in their prior, independent of everything else, so dropping
  them from the draws leaves exactly the posterior of the brand's own, unpadded model (tested:
  the padded log-density is the unpadded one plus those prior terms).

Each brand is written (atomically, with the manifest and resume logic of
:class:`mmm_jax.batch.store.ResultStore`) as the InferenceData that
:meth:`HierarchicalMMM.fit` would produce: per-market and national ROAS, contributions.
One hierarchy level per brand (its markets); nested levels differ between brands and would
make the group structure part of the data.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..batch.engine import brand_mesh, make_batch_sampler
from ..batch.jobs import nonfinite_draws, run_chunks, write_brand_result
from ..batch.run import BatchResult, Progress, default_layout, pending_brands, sampler_job_fields
from ..batch.stack import BrandFailure, brand_seed, split_brands
from ..batch.store import ResultStore
from ..persist import check_output_dir, mark_output_dir
from ..compile import compile_logdensity
from ..data import DataError
from ..features import fourier_features
from ..inference.base import SampleResult, SamplerConfig, checked
from ..results import package_versions
from .config import HierarchicalConfig
from .fit import HierarchicalMMM
from .model import build_hierarchical_model
from .panel import PanelScaling

__all__ = ["fit_many_hierarchical", "PanelBrand", "prepare_panel_brand", "pad_panel_arrays",
           "HierarchicalBatchResult", "load_hierarchical_brand", "template_groups"]

_FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class PanelBrand:
    """One brand's validated, scaled panel (``mmm``: a :class:`HierarchicalMMM`, not yet built)."""

    name: str
    mmm: HierarchicalMMM
    data_hash: str

    @property
    def n_markets(self) -> int:
        return self.mmm.panel.n_markets

    @property
    def n_weeks(self) -> int:
        return len(self.mmm.panel.dates)


def prepare_panel_brand(name: str, frame: pd.DataFrame, config: HierarchicalConfig) -> PanelBrand | BrandFailure:
    """Validate and scale one brand's long-format panel; bad data -> :class:`BrandFailure`."""
    h = HierarchicalMMM(config)
    try:
        h.prepare(frame)
    except (DataError, ValueError, KeyError) as err:
        return BrandFailure(name, f"{type(err).__name__}: {err}")
    return PanelBrand(name, h, _panel_hash(h.panel))


def _panel_hash(p) -> str:
    """Hash of the validated panel (not of the raw frame: a CSV round trip must not look like new data)."""
    digest = hashlib.sha256("|".join([*map(str, p.markets), *map(str, p.dates.asi8)]).encode())
    for x in (p.spend, p.controls, np.nan_to_num(p.target, nan=-1.2345e300), p.observed,
              p.population if p.population is not None else np.zeros(0)):
        digest.update(np.ascontiguousarray(x, dtype=float).tobytes())
    return digest.hexdigest()[:16]


def pad_panel_arrays(b: PanelBrand, n_markets: int, n_weeks: int, n_groups: Mapping[str, int] | None = None
                     ) -> dict[str, np.ndarray]:
    """``b``'s model inputs padded to ``n_markets`` x ``n_weeks`` (padding masked, calendar continued).

    ``n_groups``: the template's number of groups per hierarchy level (default: the brand's own).
    Padded markets belong to group 0 of every level (their weeks are masked, so only the prior
    terms of padded groups and markets remain); padded groups' parent is group 0."""
    a, p, s, cfg = b.mmm.arrays, b.mmm.panel, b.mmm.scaling, b.mmm.config
    G, T = a["target"].shape
    if G > n_markets or T > n_weeks:
        raise ValueError(f"brand {b.name!r} ({G} markets x {T} weeks) is larger than the template "
                         f"({n_markets} x {n_weeks})")

    def pad(x, shape):
        out = np.zeros(shape)
        out[tuple(slice(0, n) for n in x.shape)] = x
        return out

    dates = pd.date_range(p.dates[0], periods=n_weeks, freq=pd.Timedelta(days=int(p.freq_days)))
    out = {
        "spend": pad(a["spend"], (n_markets, n_weeks, a["spend"].shape[2])),
        "national_spend": pad(a["national_spend"], (n_weeks, a["national_spend"].shape[1])),
        "controls": pad(a["controls"], (n_markets, n_weeks, a["controls"].shape[2])),
        "fourier": fourier_features(dates, cfg.base.seasonality),
        "time": np.asarray((dates - s.t0).days, dtype=float) / s.t_unit_days,
        "target": pad(a["target"], (n_markets, n_weeks)),
        "mask": pad(a["mask"], (n_markets, n_weeks)),
    }
    if "target_scale" in a:  # padded markets: any positive scale (their weeks are masked)
        out["target_scale"] = np.concatenate([a["target_scale"], np.ones(n_markets - G)])
    if "spend_scale" in a:
        out["spend_scale"] = np.vstack([a["spend_scale"], np.ones((n_markets - G, a["spend_scale"].shape[1]))])
    if "spend_train" in a:  # ROAS / CAC priors: padded markets and weeks have no spend and are masked
        out["spend_train"] = pad(a["spend_train"], (n_markets, n_weeks, a["spend_train"].shape[2]))
        out["national_spend_train"] = pad(a["national_spend_train"], (n_weeks, a["national_spend_train"].shape[1]))
        out["mask_train"] = pad(a["mask_train"], (n_markets, n_weeks))
    n_groups = n_groups or {}
    for k in a:
        if k.startswith("group_index_"):
            out[k] = np.concatenate([a[k], np.zeros(n_markets - G, dtype=np.int64)])
        elif k.startswith("group_parent_"):
            n = n_groups.get(k[len("group_parent_"):], len(a[k]))
            out[k] = np.concatenate([a[k], np.zeros(n - len(a[k]), dtype=np.int64)])
        elif k.endswith("_phi") or k.endswith("_phi_train"):  # HSGP basis rows of the padded weeks: zero (masked)
            out[k] = pad(a[k], (n_weeks, a[k].shape[1]))
        elif k.endswith("_sqrt_eig"):
            out[k] = a[k]
    missing = sorted(set(a) - set(out))
    if missing:
        raise ValueError(f"pad_panel_arrays: no padding rule for the model inputs {missing}")
    return {k: out[k] for k in a}


def template_groups(brands) -> dict[str, int]:
    """The number of groups per hierarchy level of a template that holds every brand."""
    levels = brands[0].mmm.config.levels
    return {lv: max(len(b.mmm.panel.group_labels[lv]) for b in brands) for lv in levels}


def _template_panel(config: HierarchicalConfig, n_markets: int, n_weeks: int,
                    n_groups: Mapping[str, int] | None = None):
    """Labels of a template panel: ``n_markets`` markets, ``n_groups[level]`` groups per level
    (default: one level, its groups the markets); the group indices are the padded inputs."""
    n_groups = n_groups or {config.levels[0]: n_markets}
    return SimpleNamespace(markets=[f"market_{i}" for i in range(n_markets)], dates=list(range(n_weeks)),
                           group_labels={lv: [f"{lv}_{i}" for i in range(n)] for lv, n in n_groups.items()})


def _slice_to(samples: Mapping, shapes: Mapping) -> dict:
    """Draws (chains, draws, *padded) cut to the brand's own parameter shapes."""
    return {k: np.asarray(v)[(slice(None), slice(None), *(slice(0, n) for n in shapes[k]))]
            for k, v in samples.items()}


class HierarchicalBatchResult(BatchResult):
    """Handle on a hierarchical batch directory; :meth:`load` gives a :class:`HierarchicalMMM`."""

    def load(self, brand: str) -> HierarchicalMMM:
        return load_hierarchical_brand(self.out, brand)


def load_hierarchical_brand(out: str | os.PathLike, brand: str) -> HierarchicalMMM:
    """A brand of a hierarchical batch as a fitted :class:`HierarchicalMMM`.

    ``roas``, ``contributions`` and ``diagnostics`` work from the stored draws; ``predict`` and
    ``crps`` need the brand's data: refit it with :meth:`HierarchicalMMM.fit` for those.
    """
    idata = HierarchicalBatchResult(Path(out), {}).idata(brand)
    idata.load()
    attrs = idata.posterior.attrs
    return HierarchicalMMM.restore(HierarchicalConfig.from_dict(json.loads(attrs["config"])),
                                   PanelScaling.from_dict(json.loads(attrs["scaling"])), idata)


def fit_many_hierarchical(
    data: Any,
    *,
    config: HierarchicalConfig | Mapping | str | os.PathLike,
    out: str | os.PathLike,
    by: str | None = None,
    chains: int = 4,
    warmup: int = 1000,
    draws: int = 1000,
    target_accept: float = 0.9,
    max_tree_depth: int = 10,
    seed: int = 0,
    chunk_size: int | None = None,
    devices=None,
    vmap_group: int | None = None,
    vmap_chains: bool | None = None,
    force: bool = False,
    overwrite: bool = False,
    retry_failed: bool = False,
    progress: bool = True,
    chunk_draws: int = 256,
    max_chunks: int | None = None,
) -> HierarchicalBatchResult:
    """Fit one hierarchical (multi-market) model per brand, many brands per compiled call; resumable.

    Parameters
    ----------
    data : long-format DataFrame with a ``by`` column (each brand's rows: its markets and weeks),
        ``{brand: DataFrame}``, a CSV/Parquet file or a directory of per-brand files.
    config : HierarchicalConfig, dict or YAML/JSON path; one hierarchy level (the market column).
    out : output directory (``manifest.sqlite`` + ``brands/<brand>.nc``); rerun to resume.
    by : brand column of a long-format table.
    chains, warmup, draws, target_accept, max_tree_depth : NUTS settings (BlackJAX window adaptation).
    seed : job seed; brand ``b`` uses ``brand_seed(seed, b)`` (independent of the batch's makeup).
    chunk_size : brands per compiled call (default: one per device).
    devices, vmap_group, vmap_chains : devices and lock-step layout, as in :func:`mmm_jax.batch.fit_many`
        (default: no vmap on CPU devices, a device's brands x chains in one vmap on accelerators).
    force, retry_failed, progress : as in :func:`mmm_jax.batch.fit_many`.
    chunk_draws : draws per post-processing chunk (memory bound, see :meth:`HierarchicalMMM.fit`).
    max_chunks : stop after this many chunks (the rest stays pending for a rerun).
    """
    t_start = time.perf_counter()
    if not isinstance(config, HierarchicalConfig):
        config = (HierarchicalConfig.from_file(config) if isinstance(config, str | os.PathLike)
                  else HierarchicalConfig.from_dict(config))
    cfg = checked(SamplerConfig(chains=chains, warmup=warmup, draws=draws, target_accept=target_accept,
                                max_tree_depth=max_tree_depth, progress=False))
    check_output_dir(out, "batch", overwrite=overwrite, inputs=[data] if isinstance(data, str | os.PathLike) else ())
    frames = split_brands(data, by)
    if not frames:
        raise DataError("no brands in the data")
    mark_output_dir(out, "batch")
    store = ResultStore(out, jax.process_index(), jax.process_count())
    job = {"format_version": _FORMAT_VERSION, "kind": "hierarchical", "config": config.to_dict(),
           "sampler": sampler_job_fields(cfg),
           "seed": int(seed)}
    try:
        job_hash = store.open_job(job, force=force)
        return _run(frames, config, cfg, store, job_hash, seed=seed, chunk_size=chunk_size, devices=devices,
                    vmap_group=vmap_group, vmap_chains=vmap_chains, retry_failed=retry_failed, progress=progress,
                    chunk_draws=chunk_draws, max_chunks=max_chunks, t_start=t_start)
    finally:
        store.close()


def _run(frames, config, cfg, store, job_hash, *, seed, chunk_size, devices, vmap_group, vmap_chains, retry_failed,
         progress, chunk_draws, max_chunks, t_start) -> HierarchicalBatchResult:
    versions = package_versions()
    prepared = [prepare_panel_brand(name, frame, config) for name, frame in frames.items()]
    ok = [b for b in prepared if isinstance(b, PanelBrand)]
    bad = [b for b in prepared if isinstance(b, BrandFailure)]
    pending = pending_brands(store, ok, bad, job_hash, versions, retry_failed)
    stats = {"brands": len(frames), "fitted": 0, "skipped": len(ok) - len(pending),
             "failed_data": len(prepared) - len(ok), "failed_fit": 0, "wall_s": 0.0, "brands_per_min": float("nan"),
             "lockstep_waste": float("nan"), "chunk_size": 0, "devices": 0, "compile_s": 0.0}
    if not pending:
        return HierarchicalBatchResult(Path(store.root), stats)

    G = max(b.n_markets for b in pending)
    T = max(b.n_weeks for b in pending)
    n_groups = template_groups(pending)
    t0 = time.perf_counter()
    template = build_hierarchical_model(config, pad_panel_arrays(pending[0], G, T, n_groups),
                                        _template_panel(config, G, T, n_groups))
    ld = compile_logdensity(template)
    devices = list(jax.devices() if devices is None else devices)
    vmap_group, vmap_chains = default_layout(devices, vmap_group, vmap_chains)
    mesh = brand_mesh(devices[: max(1, min(len(devices), len(pending)))])
    bar = Progress(len(pending), progress)
    sampler = make_batch_sampler(ld, cfg, chunk_size or mesh.devices.size, mesh=mesh, on_step=bar.on_step,
                                 vmap_group=vmap_group, vmap_chains=vmap_chains)
    chunk = sampler.chunk_size
    stats.update(chunk_size=chunk, devices=mesh.devices.size, compile_s=time.perf_counter() - t0,
                 template={"markets": G, "weeks": T, "groups": n_groups})
    record = {"config_hash": job_hash, "versions": versions}

    def stack(filled):
        padded = [pad_panel_arrays(b, G, T, n_groups) for b in filled]  # once per brand, not once per input
        return {k: np.stack([a[k] for a in padded]) for k in ld.data_names}, None

    def postprocess(c) -> int:
        return sum(_write_brand(store, c.members[r], c.rows[r], jax.random.wrap_key_data(jnp.asarray(c.k_pp[r])),
                                cfg, seed, job_hash, versions, c.wall, chunk_draws) for r in c.mine)

    t_fit = time.perf_counter()
    run_chunks(pending, sampler=sampler, seed=seed, store=store, record=record, stack=stack,
               postprocess=postprocess, bar=bar, stats=stats, max_chunks=max_chunks)
    bar.close()
    stats["fit_s"] = time.perf_counter() - t_fit
    stats["wall_s"] = time.perf_counter() - t_start
    stats["brands_per_min"] = 60.0 * stats["fitted"] / max(stats["wall_s"], 1e-9)
    return HierarchicalBatchResult(Path(store.root), stats)


def _write_brand(store, b: PanelBrand, row, k_pp, cfg, seed, job_hash, versions, wall, chunk_draws) -> bool:
    """Build the brand's own model, cut the padding off its draws, post-process and write (never raises)."""
    rec = {"config_hash": job_hash, "versions": versions, "n_weeks": b.n_weeks, "data_hash": b.data_hash,
           "channels": list(b.mmm.channels), "wall_s": wall}
    h = b.mmm

    def build():
        h.build_model()
        positions, stats, _ = row
        samples = _slice_to(positions, h.logdensity.param_shapes)
        bad = nonfinite_draws(samples, list(samples))
        if bad:
            return bad
        stats = {k: np.asarray(v) for k, v in stats.items()}
        stats["diverging"] = stats["diverging"].astype(bool)
        result = SampleResult(samples=samples, stats=stats, timings={"sampling_share": wall}, sampler="blackjax",
                              config=cfg)
        return h.attach(result, key=k_pp, seed=brand_seed(seed, b.name), chunk_draws=chunk_draws)

    return write_brand_result(store, b.name, rec, build)
