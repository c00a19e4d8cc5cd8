"""Single-market brands: the brand kind of the one batch runner (:func:`mmm_jax.batch.fit_many`
with a config without market keys).

Each brand is validated and scaled on its own (:func:`mmm_jax.batch.stack.prepare_brand`: the
same inputs a single fit builds, widened to the batch's channels); the template model is built
once on the first brand padded to the template length; posterior quantities are computed for
several brands at once (``jit(vmap)``), cut to each brand's own weeks and channels and written
as the InferenceData a single fit would give (:func:`brand_idata`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import jax
import numpy as np
import pandas as pd

from ..compile import LogDensity, compile_logdensity
from ..config.model import ModelConfig
from ..data.features import Scaling
from ..data.lift import lift_constant_data, lift_sizes
from ..inference.base import SamplerConfig
from ..model.build import build_pymc_model
from ..posterior.results import (
    cell_log_likelihood,
    dims_for,
    draw_quantities,
    log_likelihood_dataset,
    set_log_likelihood,
    to_inference_data,
)
from .jobs import nonfinite_draws, short_error, write_brand_result
from .run import BatchKind, Job, Template, default_chunk_size
from .stack import BrandData, brand_seed, prepare_brand, stack_brands

__all__ = ["brand_kind", "quantity_fn", "slice_brand", "brand_idata", "restore_brand"]


def brand_kind(config: ModelConfig, lift: Mapping[str, pd.DataFrame] | None = None, holdout=None) -> BatchKind:
    """Single-market brands: each an :class:`mmm_jax.MMM`, padded in weeks and channels (and lift
    tests: ``lift`` maps each brand to its rows, :func:`mmm_jax.data.lift.split_lift_tests`;
    ``holdout``: every brand's held-out weeks)."""
    return BatchKind(job_fields=lambda template_weeks: {"template_weeks": template_weeks},
                     prepare=lambda name, frame: prepare_brand(name, frame, config,
                                                               None if lift is None else lift.get(name), holdout),
                     template=_brand_template)


def _brand_template(pending: list[BrandData], ok: list[BrandData], job: Job) -> Template:
    config, cfg = job.config, job.cfg
    T = job.weeks(max(b.n_weeks for b in pending), default=max(b.n_weeks for b in ok))
    lift = lift_sizes([b.arrays for b in ok])
    ld, info = _template(ok, config, T, lift)
    free = info["free"]
    n_params = sum(int(np.prod(s)) for s in ld.param_shapes.values())
    per_brand = 8.0 * cfg.chains * (cfg.warmup + cfg.draws) * (n_params + 8) * 3
    S = cfg.chains * cfg.draws
    q_bytes = 8.0 * S * T * (3 * len(config.channels) + 2 * len(config.treatments) + 6)
    qfn = quantity_fn(ld, config.likelihood, batch_size=job.chunk_draws, log_likelihood=job.log_likelihood)

    def postprocess(c, chunk: int) -> int:
        """Posterior quantities for this process's brands, a few at a time, then one file each."""
        post_batch = int(max(1, min(chunk, 2e9 // max(q_bytes, 1.0))))
        written = 0
        for s0 in range(0, len(c.mine), post_batch):
            part = c.mine[s0 : s0 + post_batch]
            padded = part + [part[-1]] * (post_batch - len(part))
            samples = {k: np.stack([c.rows[r][0][k] for r in padded]) for k in ld.param_names}
            data = {k: c.arrays[k][padded] for k in ld.data_names}
            ts = np.asarray([c.filled[r].scaling.target_scale for r in padded])
            tot_full = np.zeros((len(padded), len(config.channels)))
            for i, r in enumerate(padded):
                b = c.filled[r]  # spend over the fitted (unmasked) weeks
                tot_full[i, b.present] = (b.data.spend * b.arrays["mask"][:, None]).sum(axis=0)
            try:
                q = qfn(samples, data, ts, tot_full, c.k_pp[padded])
                q = {k: np.asarray(v) for k, v in q.items()}
            except Exception as err:  # noqa: BLE001
                for r in part:
                    job.store.write_failure(c.filled[r].name, f"post-processing failed: {short_error(err)}",
                                            job.record)
                continue
            for i, r in enumerate(part):
                b = c.filled[r]
                stats_b = {k: np.asarray(v) for k, v in c.rows[r][1].items()}
                stats_b["diverging"] = stats_b["diverging"].astype(bool)
                written += _write_brand(job, b, {k: v[i] for k, v in q.items()}, stats_b, ld, free, wall=c.wall)
        return written

    return Template(ld, stack=lambda filled: (stack_brands(filled, T, config.seasonality, lift).arrays, None),
                    postprocess=postprocess,
                    default_chunk=lambda n, n_dev: default_chunk_size(n, n_dev, per_brand), info={})


def _write_brand(job: Job, b: BrandData, q, stats, ld, free, wall) -> bool:
    """Label, check and write one brand; any problem marks it failed (never raises)."""
    rec = {**job.record, "n_weeks": b.n_weeks, "data_hash": b.data_hash, "channels": list(b.config.channels),
           "wall_s": wall}

    def build():
        quantities = dict(q)
        ll = quantities.pop("log_likelihood", None)
        sliced = slice_brand(quantities, ld, b.n_weeks, b.present, job.config,
                             n_tests=0 if b.lift_tests is None else len(b.lift_tests))
        bad = nonfinite_draws(sliced, free)
        if bad:
            return bad
        idata = brand_idata(b, sliced, stats, ld, job.cfg, free, brand_seed(job.seed, b.name), job.job_hash,
                            {"sampling_share": wall}, job.config)
        if ll is not None:
            set_log_likelihood(idata, log_likelihood_dataset(np.asarray(ll)[..., : b.n_weeks], b.arrays["mask"],
                                                             b.data.dates))
        return idata

    return write_brand_result(job.store, b.name, rec, build)


def _template(brands: list[BrandData], config: ModelConfig, T: int, lift: Mapping[str, int] | None = None
              ) -> tuple[LogDensity, dict]:
    """Build and compile the model once, on the first brand padded to the template length (and the
    batch's lift sizes: with any lift test in the batch, every brand's model has the lift term)."""
    st = stack_brands(brands[:1], T, config.seasonality, lift)
    arrays = {k: v[0] for k, v in st.arrays.items()}
    model = build_pymc_model(config, arrays)
    free = sorted(rv.name for rv in model.free_RVs)
    return compile_logdensity(model), {"free": free}


def quantity_fn(ld: LogDensity, likelihood: str, batch_size: int = 256, log_likelihood: bool = False):
    """jit(vmap over brands) of the per-draw quantities (with ``log_likelihood``, also each target
    cell's log-likelihood, key ``"log_likelihood"``); compiled once per job."""

    def per_brand(samples, data, target_scale, total_spend, key_data):
        n = next(iter(samples.values())).shape
        S = n[0] * n[1]
        flat = {k: v.reshape((S, *v.shape[2:])) for k, v in samples.items()}
        keys = jax.random.split(jax.random.wrap_key_data(key_data), S)

        def one(args):
            p, k = args
            q = draw_quantities(ld, p, data, k, target_scale=target_scale, total_spend=total_spend,
                                likelihood=likelihood)
            if log_likelihood:
                q["log_likelihood"] = cell_log_likelihood(ld, p, data, target_scale, likelihood)
            return q

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


def slice_brand(q: Mapping, ld: LogDensity, n_weeks: int, present: np.ndarray, config: ModelConfig,
                n_tests: int = 0) -> dict:
    """Cut a brand's template-shaped quantities to its real weeks, channels and ``n_tests`` lift
    tests (none: ``lift_prediction`` is dropped)."""
    axes, dropped = _channel_axes(config, present)
    axes["lift_test"] = np.arange(n_tests)
    if not n_tests:
        dropped.add("lift_prediction")
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
    if b.config.treatments:
        coords["treatment"] = list(b.config.treatments)
        const["treatments"] = (("date", "treatment"), d.treatment_values)  # original units
    coords.pop("lift_test", None)  # the template's padded tests
    if b.lift_tests is not None:
        coords["lift_test"] = list(range(len(b.lift_tests)))
        const.update(lift_constant_data(b.lift_tests))
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
            **({} if b.holdout_start is None else {"holdout_start": b.holdout_start.isoformat()}),
        },
    )


def restore_brand(config: ModelConfig, idata, brand: str):
    """A stored batch brand (its InferenceData, read) as a fitted :class:`mmm_jax.MMM`."""
    from ..api.mmm import MMM

    attrs = idata.posterior.attrs
    cd = idata.constant_data
    df = pd.DataFrame({config.date: pd.DatetimeIndex(idata.observed_data["date"].values)})
    df[config.target] = idata.observed_data["y"].values
    for i, c in enumerate(config.channels):
        df[c] = cd["spend"].values[:, i]
    for i, c in enumerate(config.controls):
        df[c] = cd["controls"].values[:, i]
    for i, c in enumerate(config.treatments):
        df[c] = cd["treatments"].values[:, i]
    mmm = MMM.restore(config, df, Scaling.from_dict(json.loads(attrs["scaling"])), idata,
                      {"sampler": "blackjax", "seed": int(attrs.get("seed", 0)), "brand": brand})
    return mmm
