"""``fit_many``: fit one MMM per brand (or market) for many brands in one compiled program.

>>> from mmm_jax.batch import fit_many                                   # doctest: +SKIP
>>> res = fit_many(df_long, by="brand", config=cfg, out="runs/q1")     # doctest: +SKIP
>>> res.manifest()                  # one row per brand: status, R-hat, ESS, ...  # doctest: +SKIP
>>> res.load("brand_17").roas()     # a brand's fit as an MMM             # doctest: +SKIP

Rerunning the same call resumes: finished brands are skipped, the rest are fitted.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pandas as pd

from ..compile import LogDensity, compile_logdensity
from ..config import ModelConfig
from ..data import DataError
from ..features import Scaling
from ..inference.base import SamplerConfig, checked
from ..model import build_pymc_model
from ..results import RHAT_MAX, dims_for, draw_quantities, package_versions, to_inference_data
from .engine import brand_mesh, make_batch_sampler
from .jobs import nonfinite_draws, run_chunks, short_error, write_brand_result
from .stack import BrandData, BrandFailure, brand_seed, prepare_brand, split_brands, stack_brands
from ..persist import check_output_dir, is_storage_error, mark_output_dir, read_netcdf
from .store import ResultStore, read_manifest

__all__ = ["fit_many", "BatchResult", "load_brand", "default_chunk_size", "CPU_VMAP_GROUP", "Progress",
           "pending_brands", "default_layout", "sampler_job_fields", "quantity_fn", "slice_brand", "brand_idata"]

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
    return {k: v for k, v in cfg._asdict().items() if k not in ("progress", "chain_method", "split_timing",
                                                                 "gradient_batching")}


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


def _template(brands: list[BrandData], config: ModelConfig, T: int) -> tuple[LogDensity, dict]:
    """Build and compile the model once, on the first brand padded to the template length."""
    st = stack_brands(brands[:1], T, config.seasonality)
    arrays = {k: v[0] for k, v in st.arrays.items()}
    model = build_pymc_model(config, arrays)
    free = sorted(rv.name for rv in model.free_RVs)
    return compile_logdensity(model), {"free": free}


def quantity_fn(ld: LogDensity, likelihood: str, batch_size: int = 256):
    """jit(vmap over brands) of the per-draw quantities; compiled once per job."""

    def per_brand(samples, data, target_scale, total_spend, key_data):
        n = next(iter(samples.values())).shape
        S = n[0] * n[1]
        flat = {k: v.reshape((S, *v.shape[2:])) for k, v in samples.items()}
        keys = jax.random.split(jax.random.wrap_key_data(key_data), S)

        def one(args):
            p, k = args
            return draw_quantities(ld, p, data, k, target_scale=target_scale, total_spend=total_spend,
                                   likelihood=likelihood)

        out = jax.lax.map(one, (flat, keys), batch_size=min(batch_size, S))
        return {k: v.reshape((n[0], n[1], *v.shape[1:])) for k, v in out.items()}

    return jax.jit(jax.vmap(per_brand))


def _channel_axes(config: ModelConfig, present: np.ndarray) -> tuple[dict, set]:
    """How to cut template-shaped draws to a brand's channels: ``({dim: kept indices}, dropped names)``.

    ``channel`` keeps the brand's present channels, ``beta_free_channel`` (ROAS / CAC priors:
    the channels whose ``beta`` is free) its present free channels; the ``roas_<c>`` /
    ``cac_<c>`` variables of absent channels are dropped.
    """
    business = config.business_priors
    free = [i for i, c in enumerate(config.channels) if c not in business]
    axes = {"channel": np.flatnonzero(present),
            "beta_free_channel": np.asarray([j for j, i in enumerate(free) if present[i]], dtype=int)}
    dropped = {f"{business[c][0]}_{c}" for i, c in enumerate(config.channels) if c in business and not present[i]}
    if not len(axes["beta_free_channel"]):
        dropped.add("beta_free")
    return axes, dropped


def slice_brand(q: Mapping, ld: LogDensity, n_weeks: int, present: np.ndarray, config: ModelConfig) -> dict:
    """Cut a brand's template-shaped quantities to its real weeks and channels."""
    axes, dropped = _channel_axes(config, present)
    out = {}
    for name, v in q.items():
        if name in dropped:
            continue
        dims = dims_for(name, ld, v.shape[2:])
        idx = [slice(None)] * v.ndim
        for ax, d in enumerate(dims):
            if d == "date":
                idx[ax] = slice(0, n_weeks)
            elif d in axes:
                idx[ax] = axes[d]
        out[name] = np.asarray(v[tuple(idx)])
    return out


def brand_idata(b: BrandData, q: dict, stats: dict, ld: LogDensity, cfg: SamplerConfig, free: list,
                seed: int, job_hash: str, timings: dict, config: ModelConfig):
    """One batch brand's InferenceData from its sliced quantities ``q`` ((chains, draws, ...) arrays
    cut to its weeks and channels by :func:`slice_brand`) and NUTS ``stats`` ((chains, draws))."""
    from ..inference.base import SampleResult

    d = b.data
    axes, _ = _channel_axes(config, b.present)
    coords = {"date": d.dates, "channel": list(b.config.channels)}
    if "beta_free_channel" in ld.coords:
        coords["beta_free_channel"] = [ld.coords["beta_free_channel"][j] for j in axes["beta_free_channel"]]
    for k, v in ld.coords.items():
        coords.setdefault(k, v)
    Tb = b.n_weeks
    const = {
        "spend": (("date", "channel"), d.spend),
        "spend_scaled": (("date", "channel"), b.arrays["spend"][:, b.present]),
        "mask": (("date",), b.arrays["mask"]),
    }
    if b.config.controls:
        coords["control"] = list(b.config.controls)
        const["controls"] = (("date", "control"), d.control_values)
    result = SampleResult(samples={}, stats=stats, timings=timings, sampler="blackjax", config=cfg)
    return to_inference_data(
        result,
        ld,
        {},
        coords=coords,
        target_scale=b.scaling.target_scale,
        spend=d.spend,
        target=d.target[:Tb],
        likelihood=b.config.likelihood,
        key=None,
        constant_data=const,
        quantities=q,
        attrs={
            "config": b.config.to_json(),
            "scaling": json.dumps(b.scaling.to_dict()),
            "free_parameters": json.dumps([n for n in free if n in q]),
            "seed": seed,
            "brand": b.name,
            "batch_config_hash": job_hash,
            "data_hash": b.data_hash,
        },
    )


def fit_many(
    data: Any,
    *,
    config: ModelConfig | Mapping | str | os.PathLike,
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
) -> BatchResult:
    """Fit one MMM per brand, many brands per compiled call; resumable.

    Parameters
    ----------
    data : long-format DataFrame (with ``by``), ``{brand: DataFrame}``, a CSV/Parquet file
        (long format) or a directory of per-brand files (brand = file stem).
    config : ModelConfig, dict or YAML/JSON path
        One model for every brand; a brand without some channel fits without it.
    out : path
        Output directory: ``manifest.sqlite`` + ``brands/<brand>.nc``.
    by : str
        Brand/market column of a long-format table.
    chains, warmup, draws, target_accept, max_tree_depth, dense_mass : NUTS settings.
    seed : int
        Job seed; brand ``b`` uses ``brand_seed(seed, b)``, so its draws do not depend on
        which other brands are in the batch or in which chunk it runs.
    chunk_size : int, optional
        Brands per compiled call (default :func:`default_chunk_size`).
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
    if not isinstance(config, ModelConfig):
        config = ModelConfig.from_file(config) if isinstance(config, str | os.PathLike) else ModelConfig.from_dict(config)
    cfg = checked(SamplerConfig(chains=chains, warmup=warmup, draws=draws, target_accept=target_accept,
                                max_tree_depth=max_tree_depth, dense_mass=dense_mass, progress=False))
    check_output_dir(out, "batch", overwrite=overwrite, inputs=[data] if isinstance(data, str | os.PathLike) else ())
    frames = split_brands(data, by)
    if not frames:
        raise DataError("no brands in the data")
    mark_output_dir(out, "batch")

    store = ResultStore(out, jax.process_index(), jax.process_count())
    job = {
        "format_version": _FORMAT_VERSION,
        "config": config.to_dict(),
        "sampler": sampler_job_fields(cfg),
        "seed": int(seed),
        "template_weeks": template_weeks,
    }
    try:
        job_hash = store.open_job(job, force=force)
        return _run(frames, config, cfg, store, job_hash, seed=seed, chunk_size=chunk_size, devices=devices,
                    vmap_group=vmap_group, vmap_chains=vmap_chains, template_weeks=template_weeks,
                    retry_failed=retry_failed, progress=progress, max_chunks=max_chunks, t_start=t_start)
    finally:
        store.close()


def _run(frames, config, cfg, store, job_hash, *, seed, chunk_size, devices, vmap_group, vmap_chains,
         template_weeks, retry_failed, progress, max_chunks, t_start) -> BatchResult:
    versions = package_versions()
    prepared = [prepare_brand(name, frame, config) for name, frame in frames.items()]
    ok = [b for b in prepared if isinstance(b, BrandData)]
    bad = [b for b in prepared if isinstance(b, BrandFailure)]
    pending = pending_brands(store, ok, bad, job_hash, versions, retry_failed)
    skipped = len(ok) - len(pending)
    stats = {"brands": len(frames), "fitted": 0, "skipped": skipped, "failed_data": len(bad), "failed_fit": 0,
             "wall_s": 0.0, "sampling_s": 0.0, "brands_per_min": float("nan"), "lockstep_waste": float("nan"),
             "lockstep_waste_if_sorted": float("nan"),
             "chunk_size": 0, "devices": 0, "compile_s": 0.0}
    if not pending:
        return BatchResult(Path(store.root), stats)

    T = int(template_weeks or max(b.n_weeks for b in ok))
    if T < max(b.n_weeks for b in pending):
        raise ValueError(f"template_weeks={T} is shorter than the longest brand ({max(b.n_weeks for b in pending)})")
    t0 = time.perf_counter()
    ld, info = _template(ok, config, T)
    free = info["free"]
    devices = list(jax.devices() if devices is None else devices)
    vmap_group, vmap_chains = default_layout(devices, vmap_group, vmap_chains)
    mesh = brand_mesh(devices[: max(1, min(len(devices), len(pending)))])  # no idle devices for tiny jobs
    n_dev = mesh.devices.size
    n_params = sum(int(np.prod(s)) for s in ld.param_shapes.values())
    per_brand = 8.0 * cfg.chains * (cfg.warmup + cfg.draws) * (n_params + 8) * 3
    chunk = chunk_size or default_chunk_size(len(pending), n_dev, per_brand)
    bar = Progress(len(pending), progress)
    sampler = make_batch_sampler(ld, cfg, chunk, mesh=mesh, on_step=bar.on_step,
                                 vmap_group=vmap_group, vmap_chains=vmap_chains)
    chunk = sampler.chunk_size
    stats.update(chunk_size=chunk, devices=n_dev, compile_s=time.perf_counter() - t0)
    S = cfg.chains * cfg.draws
    q_bytes = 8.0 * S * T * (3 * len(config.channels) + 6)
    post_batch = int(max(1, min(chunk, 2e9 // max(q_bytes, 1.0))))
    qfn = quantity_fn(ld, config.likelihood)
    record = {"config_hash": job_hash, "versions": versions}

    def postprocess(c) -> int:
        """Posterior quantities for this process's brands, a few at a time, then one file each."""
        written = 0
        for s0 in range(0, len(c.mine), post_batch):
            part = c.mine[s0 : s0 + post_batch]
            padded = part + [part[-1]] * (post_batch - len(part))
            samples = {k: np.stack([c.rows[r][0][k] for r in padded]) for k in ld.param_names}
            data = {k: c.arrays[k][padded] for k in ld.data_names}
            ts = np.asarray([c.filled[r].scaling.target_scale for r in padded])
            tot_full = np.zeros((len(padded), len(config.channels)))
            for i, r in enumerate(padded):
                tot_full[i, c.filled[r].present] = c.filled[r].data.spend.sum(axis=0)
            try:
                q = qfn(samples, data, ts, tot_full, c.k_pp[padded])
                q = {k: np.asarray(v) for k, v in q.items()}
            except Exception as err:  # noqa: BLE001
                for r in part:
                    store.write_failure(c.filled[r].name, f"post-processing failed: {short_error(err)}", record)
                continue
            for i, r in enumerate(part):
                b = c.filled[r]
                stats_b = {k: np.asarray(v) for k, v in c.rows[r][1].items()}
                stats_b["diverging"] = stats_b["diverging"].astype(bool)
                written += _write_brand(store, b, {k: v[i] for k, v in q.items()}, stats_b, ld, cfg, free,
                                        brand_seed(seed, b.name), job_hash, versions, wall=c.wall, config=config)
        return written

    def stack(filled):
        return stack_brands(filled, T, config.seasonality).arrays, None

    t_fit = time.perf_counter()
    run_chunks(pending, sampler=sampler, seed=seed, store=store, record=record, stack=stack,
               postprocess=postprocess, bar=bar, stats=stats, max_chunks=max_chunks)
    bar.close()
    stats["fit_s"] = time.perf_counter() - t_fit
    stats["wall_s"] = time.perf_counter() - t_start
    stats["brands_per_min"] = 60.0 * stats["fitted"] / max(stats["wall_s"], 1e-9)
    return BatchResult(Path(store.root), stats)


def _write_brand(store, b, q, stats, ld, cfg, free, seed, job_hash, versions, wall, config) -> bool:
    """Label, check and write one brand; any problem marks it failed (never raises)."""
    rec = {"config_hash": job_hash, "versions": versions, "n_weeks": b.n_weeks, "data_hash": b.data_hash,
           "channels": list(b.config.channels), "wall_s": wall}

    def build():
        sliced = slice_brand(q, ld, b.n_weeks, b.present, config)
        return (nonfinite_draws(sliced, free)
                or brand_idata(b, sliced, stats, ld, cfg, free, seed, job_hash, {"sampling_share": wall}, config))

    return write_brand_result(store, b.name, rec, build)


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
    """A brand of a batch output directory as a fitted :class:`mmm_jax.MMM`."""
    from ..mmm import MMM

    idata = BatchResult(Path(out), {}).idata(brand)
    idata.load()
    attrs = idata.posterior.attrs
    config = ModelConfig.from_dict(json.loads(attrs["config"]))
    cd = idata.constant_data
    df = pd.DataFrame({config.date: pd.DatetimeIndex(idata.observed_data["date"].values)})
    df[config.target] = idata.observed_data["y"].values
    for i, c in enumerate(config.channels):
        df[c] = cd["spend"].values[:, i]
    for i, c in enumerate(config.controls):
        df[c] = cd["controls"].values[:, i]
    mmm = MMM.restore(config, df, Scaling.from_dict(json.loads(attrs["scaling"])), idata,
                      {"sampler": "blackjax", "seed": int(attrs.get("seed", 0)), "brand": brand})
    return mmm
