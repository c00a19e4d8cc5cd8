"""``fit_many``: fit one model per brand for many brands in one compiled program (any config).

>>> from mmm_jax.batch import fit_many                                   # doctest: +SKIP
>>> res = fit_many(df_long, by="brand", config=cfg, out="runs/q1")     # doctest: +SKIP
>>> res.manifest()                  # one row per brand: status, R-hat, ESS, ...  # doctest: +SKIP
>>> res.load("brand_17").roas()     # a brand's fit as an MMM             # doctest: +SKIP

Rerunning the same call resumes: finished brands are skipped, the rest are fitted.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jax
import pandas as pd

from ..compile import LogDensity
from ..config.markets import HierarchicalConfig, load_config
from ..config.model import ModelConfig
from ..data.lift import lift_table_for, split_lift_tests
from ..data.validate import DataError
from ..inference.base import SamplerConfig, checked
from ..persist import check_output_dir, is_storage_error, mark_output_dir, read_netcdf
from ..posterior.results import RHAT_MAX, package_versions
from .engine import brand_mesh, make_batch_sampler
from .jobs import run_chunks
from .stack import BrandFailure, split_brands
from .store import ResultStore, read_manifest

__all__ = ["fit_many", "BatchResult", "load_brand", "default_chunk_size", "CPU_VMAP_GROUP", "Progress", "Job",
           "Template", "BatchKind", "pending_brands", "default_layout", "sampler_job_fields"]

log = logging.getLogger(__name__)

_FORMAT_VERSION = 1
#: Brands vmapped together on a CPU device (1 = no vmap: brands and their chains run one after
#: another with ``lax.map``). Measured (2-core CPU, 104 weeks x 5 channels, 4 chains, 500 + 500,
#: sampling of 4 brands on 4 host devices): no vmap 22.7 s; chains vmapped 26.5 s; a loop of single
#: fits (chains pmapped) 23.3 s. Even a size-1 vmap turns NUTS's while loops and conds into their
#: batched forms (about 45% more CPU per chain), and on CPU vectorising these small programs gains
#: nothing that pays for the lock-step waiting (35% of leapfrog steps with 2 brands x 4 chains).
CPU_VMAP_GROUP = 1


@dataclass
class BatchResult:
    """Handle on a batch output directory.

    Attributes
    ----------
    out : Path
    stats : dict
        This run's numbers: brands fitted / skipped / failed, wall seconds, brands per
        minute, lock-step waste, chunk size, devices.
    """

    out: Path
    stats: dict

    def __post_init__(self):
        self.out = Path(self.out)

    def manifest(self) -> pd.DataFrame:
        """One row per brand (see :data:`mmm_jax.batch.store.MANIFEST_COLUMNS`)."""
        return read_manifest(self.out)

    def load(self, brand: str):
        """The fitted brand as an :class:`mmm_jax.MMM` (roas, contributions, predict, optimize...)."""
        return load_brand(self.out, brand)

    def idata(self, brand: str):
        """The brand's InferenceData (read into memory; its file is checked against the size and
        SHA-256 recorded when it was written: :class:`mmm_jax.persist.RunFormatError` if damaged)."""
        row = self.row(brand)
        expect = None if pd.isna(row.get("file_bytes")) else {"bytes": row["file_bytes"], "sha256": row["file_sha256"]}
        return read_netcdf(self.out / row["file"], expect=expect)

    def row(self, brand: str) -> dict:
        """The brand's manifest row (KeyError if unknown, RuntimeError if it failed)."""
        m = self.manifest()
        hit = m[m["brand"] == str(brand)]
        if hit.empty:
            raise KeyError(f"brand {brand!r} is not in {self.out}; known: {m['brand'].tolist()[:20]}")
        row = hit.iloc[0].to_dict()
        if row["status"] != "done":
            raise RuntimeError(f"brand {brand!r} failed: {row['error']}")
        return row

    def summary(self) -> str:
        """A few lines: how many brands converged, which did not, which failed and why."""
        return summarize(self.manifest(), self.stats)


def summarize(m: pd.DataFrame, stats: Mapping | None = None) -> str:
    done = m[m["status"] == "done"]
    failed = m[m["status"] == "failed"]
    conv = done[done["converged"] == 1]
    lines = [
        f"{len(m)} brands: {len(conv)} converged, {len(done) - len(conv)} fitted but not converged "
        f"(R-hat >= {RHAT_MAX} or divergences), {len(failed)} failed"
    ]
    if stats:
        if stats.get("fitted"):
            lines.append(
                f"this run: {stats['fitted']} fitted in {stats['wall_s']:.1f} s ({stats['brands_per_min']:.1f} brands/min), "
                f"{stats['skipped']} already done, lock-step waste {stats['lockstep_waste']:.0%}"
            )
        else:
            lines.append(f"this run: nothing to fit ({stats.get('skipped', 0)} already done)")
    nc = done[done["converged"] != 1]
    if len(nc):
        worst = nc.sort_values("max_rhat", ascending=False).head(10)
        lines.append("not converged: " + ", ".join(
            f"{r.brand} (R-hat {r.max_rhat:.3f}, {int(r.divergences)} div)" for r in worst.itertuples()
        ) + (" ..." if len(nc) > 10 else ""))
    for r in failed.head(10).itertuples():
        lines.append(f"failed: {r.brand}: {r.error}")
    if len(failed) > 10:
        lines.append(f"... and {len(failed) - 10} more failed (see the manifest)")
    return "\n".join(lines)


def sampler_job_fields(cfg: SamplerConfig) -> dict:
    """The sampler settings that define a job's results (recorded and hashed by the store)."""
    # until / max_draws: single fits only (a batch runs fixed draws); left out so that the jobs of
    # batch folders written before they existed keep their hash
    return {k: v for k, v in cfg._asdict().items() if k not in ("progress", "chain_method", "split_timing",
                                                                 "gradient_batching", "until", "max_draws")}


def pending_brands(store: ResultStore, ok: list, bad: list, job_hash: str, versions: dict, retry_failed: bool) -> list:
    """Record brands whose data failed validation; return the prepared brands still to fit.

    ``ok``: prepared brands (``.name``, ``.data_hash``); ``bad``: :class:`BrandFailure`. A brand is
    pending if it has no record, its data changed, or it failed before and ``retry_failed``.
    """
    done = store.finished()
    for f in bad:
        old = done.get(f.name)
        if store.is_lead and (old is None or old["status"] != "failed" or old["error"] != f.reason):
            store.write_failure(f.name, f.reason, {"config_hash": job_hash, "versions": versions})
    if store.damaged:
        warnings.warn(f"{store.root}: {len(store.damaged)} finished brand file(s) are missing, truncated or changed "
                      f"and are refitted: {', '.join(store.damaged[:10])}{' ...' if len(store.damaged) > 10 else ''}",
                      RuntimeWarning, stacklevel=3)
    # a failure of the storage (an older manifest's full disk) is retried without being asked
    return [b for b in ok if (rec := done.get(b.name)) is None or rec["data_hash"] != b.data_hash
            or (rec["status"] == "failed" and (retry_failed or is_storage_error(rec["error"] or "")))]


def default_layout(devices: list, vmap_group: int | None, vmap_chains: bool | None) -> tuple[int | None, bool]:
    """Lock-step layout defaults: on CPU devices no vmap (:data:`CPU_VMAP_GROUP`, chains one after
    another); on accelerators a device's brands x chains in one vmap."""
    on_cpu = devices[0].platform == "cpu"
    if vmap_group is None and on_cpu:
        vmap_group = CPU_VMAP_GROUP
    if vmap_chains is None:
        vmap_chains = not (on_cpu and vmap_group == 1)
    return vmap_group, vmap_chains


def default_chunk_size(n_brands: int, n_devices: int, per_brand_bytes: float) -> int:
    """Brands per compiled call.

    Accelerators: as many as fit in a quarter of device memory (``bytes_limit`` from the
    device's memory stats), at most 4096. CPU: 8 per device (larger vmap groups gain
    little on CPU and a killed job loses at most one chunk).
    """
    dev = jax.devices()[0]
    if dev.platform == "cpu":
        cap = 8 * n_devices
    else:
        try:
            limit = float(dev.memory_stats()["bytes_limit"])
        except Exception:  # noqa: BLE001 - no memory stats on this backend
            limit = 16e9
        cap = max(n_devices, int(0.25 * limit * n_devices // max(per_brand_bytes, 1.0)))
        cap = min(cap, 4096)
    return max(1, min(n_brands, cap))


def fit_many(
    data: Any,
    *,
    config: ModelConfig | HierarchicalConfig | Mapping | str | os.PathLike,
    out: str | os.PathLike,
    by: str | None = None,
    chains: int = 4,
    warmup: int = 1000,
    draws: int = 1000,
    target_accept: float = 0.9,
    max_tree_depth: int = 10,
    dense_mass: bool = False,
    seed: int = 0,
    chunk_size: int | None = None,
    devices=None,
    vmap_group: int | None = None,
    vmap_chains: bool | None = None,
    template_weeks: int | None = None,
    force: bool = False,
    overwrite: bool = False,
    retry_failed: bool = False,
    progress: bool = True,
    max_chunks: int | None = None,
    chunk_draws: int = 256,
    lift_tests=None,
    holdout=None,
    log_likelihood: bool = False,
) -> BatchResult:
    """Fit one model per brand, many brands per compiled call; resumable.

    Any config runs here: without market keys each brand is one market (an :class:`mmm_jax.MMM`
    per brand), with market keys each brand is a market panel (a
    :class:`mmm_jax.hierarchical.HierarchicalMMM` per brand). Brands are padded to one template
    (weeks and channels; markets and hierarchy groups for panels) with masks, so the padding
    adds nothing to a brand's posterior.

    Parameters
    ----------
    data : long-format DataFrame (with ``by``), ``{brand: DataFrame}``, a CSV/Parquet file
        (long format) or a directory of per-brand files (brand = file stem).
    config : ModelConfig, HierarchicalConfig, dict or YAML/JSON path (see :func:`mmm_jax.load_config`)
        One model for every brand; a brand without some channel fits without it (single-market
        brands; a market panel's absent channels are zero spend).
    out : path
        Output directory: ``manifest.sqlite`` + ``brands/<brand>.nc``.
    by : str
        Brand column of a long-format table.
    chains, warmup, draws, target_accept, max_tree_depth, dense_mass : NUTS settings.
    seed : int
        Job seed; brand ``b`` uses ``brand_seed(seed, b)``, so its draws do not depend on
        which other brands are in the batch or in which chunk it runs.
    chunk_size : int, optional
        Brands per compiled call (default :func:`default_chunk_size` for single-market brands,
        one per device for market panels).
    devices : list of jax devices, optional
        Devices to shard the brand axis over (default: all).
    vmap_group, vmap_chains :
        Lock-step layout on each device, see :func:`mmm_jax.batch.engine.make_batch_sampler`.
        Default: on CPU, no vmap at all (:data:`CPU_VMAP_GROUP` = 1, chains one after another:
        measured fastest there); on accelerators, the whole chunk of a device and its chains in
        one ``vmap``.
    template_weeks : int, optional
        Template length (default: the longest brand).
    force : bool
        Refit everything when ``out`` holds a job with a different configuration (else
        :class:`~mmm_jax.batch.store.ConfigChangedError`).
    overwrite : bool
        Also write into an existing folder that is not a batch output (its files are kept);
        without it such a folder is refused (:class:`mmm_jax.persist.OutputDirError`).
    retry_failed : bool
        Also refit brands that failed in an earlier run (failures of the storage are always
        retried).
    progress : bool
        Show a brands-done bar (with chunk, NUTS step and ETA).
    max_chunks : int, optional
        Stop after this many chunks (the rest stays pending for a rerun).
    chunk_draws : int
        Draws per post-processing step (bounds its memory; results do not depend on it).
    lift_tests : DataFrame or path, optional
        Lift tests of every brand (default: the config's ``lift_tests`` path): the columns of
        :mod:`mmm_jax.data.lift` plus the brand column (``by``, else ``brand``). Each brand's
        tests enter its own likelihood; a bad row fails its brand (named in the manifest), a row
        naming an unknown brand raises :class:`~mmm_jax.DataError`.
    holdout : int, date or None
        Every brand's last weeks kept out of the likelihood (a number of weeks, or the first
        held-out date), as ``MMM.fit(holdout=)``: scaling on the training weeks, the held-out
        weeks masked; a loaded brand's ``holdout_metrics()`` scores them. A brand the hold-out
        leaves too short fails by name.
    log_likelihood : bool
        Store every brand's pointwise ``log_likelihood`` group (as ``MMM.fit(log_likelihood=True)``),
        so that :func:`mmm_jax.compare` / ``az.loo`` work on loaded brands.

    Returns
    -------
    BatchResult

    Raises
    ------
    StoreLockedError
        Another process is writing to ``out``.
    StorageError
        The disk filled up (or failed) while writing: the batch stops, finished brands are
        kept, a rerun continues.
    """
    t_start = time.perf_counter()
    config = load_config(config)
    if isinstance(config, HierarchicalConfig):
        from .panels import panel_kind as kind_of
    else:
        from .brands import brand_kind as kind_of
    cfg = checked(SamplerConfig(chains=chains, warmup=warmup, draws=draws, target_accept=target_accept,
                                max_tree_depth=max_tree_depth, dense_mass=dense_mass, progress=False))
    if int(chunk_draws) < 1:
        raise ValueError(f"chunk_draws must be >= 1, got {chunk_draws}")
    check_output_dir(out, "batch", overwrite=overwrite, inputs=[data] if isinstance(data, str | os.PathLike) else ())
    frames = split_brands(data, by)
    if not frames:
        raise DataError("no brands in the data")
    base = config.base if isinstance(config, HierarchicalConfig) else config
    lift = split_lift_tests(lift_table_for(lift_tests, base), by, frames)
    mark_output_dir(out, "batch")

    store = ResultStore(out, jax.process_index(), jax.process_count())
    kind = kind_of(config, lift, holdout)
    job = {"format_version": _FORMAT_VERSION, **kind.job_fields(template_weeks), "config": config.to_dict(),
           "sampler": sampler_job_fields(cfg), "seed": int(seed),
           **({} if holdout is None else {"holdout": str(holdout)}),
           **({"log_likelihood": True} if log_likelihood else {})}
    try:
        job_hash = store.open_job(job, force=force)
        ctx = Job(config, cfg, store, job_hash, package_versions(), int(seed), template_weeks, int(chunk_draws),
                  bool(log_likelihood))
        return _run(frames, kind, ctx, chunk_size=chunk_size, devices=devices, vmap_group=vmap_group,
                    vmap_chains=vmap_chains, retry_failed=retry_failed, progress=progress, max_chunks=max_chunks,
                    t_start=t_start)
    finally:
        store.close()


class Job(NamedTuple):
    """One batch job's fixed settings, as a kind of brand sees them."""

    config: ModelConfig | HierarchicalConfig
    cfg: SamplerConfig
    store: ResultStore
    job_hash: str
    versions: dict
    seed: int
    template_weeks: int | None
    chunk_draws: int
    log_likelihood: bool = False

    @property
    def record(self) -> dict:
        """Fields written with every manifest row of the job."""
        return {"config_hash": self.job_hash, "versions": self.versions}

    def weeks(self, longest: int, default: int) -> int:
        """The template's weeks: ``template_weeks``, else ``default``; refused (``ValueError``)
        when shorter than ``longest``, the longest brand to fit."""
        T = int(self.template_weeks or default)
        if T < longest:
            raise ValueError(f"template_weeks={T} is shorter than the longest brand ({longest})")
        return T


class Template(NamedTuple):
    """A kind's compiled template model and the hooks the job loop (:func:`batch.jobs.run_chunks`) calls."""

    ld: LogDensity
    #: ``stack(filled) -> (arrays, context)``: a chunk's brands padded to the template and stacked
    stack: Callable
    #: ``postprocess(chunk, chunk_size) -> brands written``
    postprocess: Callable
    #: ``default_chunk(pending brands, devices) -> brands per compiled call``
    default_chunk: Callable[[int, int], int]
    #: recorded in the run's stats
    info: dict


class BatchKind(NamedTuple):
    """What differs between single-market brands and market panels in a batch: the job's extra
    fields, how one brand's frame is checked and scaled, and the compiled template."""

    #: ``job_fields(template_weeks) -> dict``: extra fields of the job record (hashed)
    job_fields: Callable[[int | None], dict]
    #: ``prepare(name, frame) -> prepared brand | BrandFailure`` (``.name``, ``.n_weeks``, ``.data_hash``)
    prepare: Callable
    #: ``template(pending, prepared, job) -> Template``
    template: Callable


def _run(frames, kind: BatchKind, job: Job, *, chunk_size, devices, vmap_group, vmap_chains, retry_failed,
         progress, max_chunks, t_start) -> BatchResult:
    """The one batch runner: prepare every brand, skip finished ones, compile the kind's template
    once, then :func:`batch.jobs.run_chunks`."""
    prepared = [kind.prepare(name, frame) for name, frame in frames.items()]
    ok = [b for b in prepared if not isinstance(b, BrandFailure)]
    bad = [b for b in prepared if isinstance(b, BrandFailure)]
    pending = pending_brands(job.store, ok, bad, job.job_hash, job.versions, retry_failed)
    stats = {"brands": len(frames), "fitted": 0, "skipped": len(ok) - len(pending), "failed_data": len(bad),
             "failed_fit": 0, "wall_s": 0.0, "sampling_s": 0.0, "brands_per_min": float("nan"),
             "lockstep_waste": float("nan"), "lockstep_waste_if_sorted": float("nan"),
             "chunk_size": 0, "devices": 0, "compile_s": 0.0}
    log.info("batch %s: %d brands, %d to fit, %d done already, %d with bad data", job.store.root, len(frames),
             len(pending), stats["skipped"], len(bad))
    for b in bad:
        log.debug("brand %s: %s", b.name, b.reason)
    if not pending:
        return BatchResult(Path(job.store.root), stats)

    t0 = time.perf_counter()
    tpl = kind.template(pending, ok, job)
    devices = list(jax.devices() if devices is None else devices)
    vmap_group, vmap_chains = default_layout(devices, vmap_group, vmap_chains)
    mesh = brand_mesh(devices[: max(1, min(len(devices), len(pending)))])  # no idle devices for tiny jobs
    n_dev = mesh.devices.size
    bar = Progress(len(pending), progress)
    sampler = make_batch_sampler(tpl.ld, job.cfg, chunk_size or tpl.default_chunk(len(pending), n_dev), mesh=mesh,
                                 on_step=bar.on_step, vmap_group=vmap_group, vmap_chains=vmap_chains)
    chunk = sampler.chunk_size
    stats.update(chunk_size=chunk, devices=n_dev, compile_s=time.perf_counter() - t0, **tpl.info)
    log.info("batch: %d brands per compiled call on %d device(s), template built in %.1f s", chunk, n_dev,
             stats["compile_s"])

    t_fit = time.perf_counter()
    run_chunks(pending, sampler=sampler, seed=job.seed, store=job.store, record=job.record, stack=tpl.stack,
               postprocess=lambda c: tpl.postprocess(c, chunk), bar=bar, stats=stats, max_chunks=max_chunks)
    bar.close()
    stats["fit_s"] = time.perf_counter() - t_fit
    stats["wall_s"] = time.perf_counter() - t_start
    stats["brands_per_min"] = 60.0 * stats["fitted"] / max(stats["wall_s"], 1e-9)
    log.info("batch: %d brands fitted in %.1f s (%.1f brands/min), %d failed while fitting", stats["fitted"],
             stats["wall_s"], stats["brands_per_min"], stats["failed_fit"])
    return BatchResult(Path(job.store.root), stats)


class Progress:
    """Brands done / total with chunk and NUTS step (tqdm), ETA from tqdm's rate."""

    def __init__(self, total: int, enabled: bool):
        self.enabled = enabled and total > 0
        self.bar = None
        self.label = ""
        if self.enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="brand", desc="brands", dynamic_ncols=True)
        self.last = (0, 0)

    def chunk(self, i: int, n: int) -> None:
        self.label = f"chunk {i}/{n}"
        self.last = (0, 0)
        if self.bar is not None:
            self.bar.set_postfix_str(self.label, refresh=True)

    def on_step(self, i: int, n: int) -> None:  # host callback, maybe once per device
        if self.bar is None or i <= self.last[0]:
            return
        self.last = (i, n)
        self.bar.set_postfix_str(f"{self.label}, NUTS step {i}/{n}", refresh=False)

    def advance(self, k: int) -> None:
        if self.bar is not None:
            self.bar.update(k)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def load_brand(out: str | os.PathLike, brand: str):
    """A brand of a batch output directory as a fitted model: an :class:`mmm_jax.MMM`, or a
    :class:`mmm_jax.hierarchical.HierarchicalMMM` for a batch of market panels.

    A market panel's ``roas``, ``contributions`` and ``diagnostics`` work from the stored draws;
    its ``predict`` and ``crps`` need the brand's data: refit it with ``HierarchicalMMM.fit`` for those.
    """
    idata = BatchResult(Path(out), {}).idata(brand)
    idata.load()
    config = load_config(json.loads(idata.posterior.attrs["config"]))
    if isinstance(config, HierarchicalConfig):
        from .panels import restore_panel_brand as restore
    else:
        from .brands import restore_brand as restore
    return restore(config, idata, brand)
