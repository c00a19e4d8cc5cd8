"""Benchmark worker for Google Meridian (JAX backend), in an interpreter that has ``google-meridian``.

Fits one of Meridian's simulated geo data sets the way its getting-started notebook does
(``DataFrameInputDataBuilder``, ``ModelSpec(enable_aks=True)``, ROI prior LogNormal(0.2, 0.9),
``sample_posterior(n_chains, n_adapt, n_burnin, n_keep, unrolled_leapfrog_steps)``), with the
drivers the parent gives (``media`` columns: the same columns our model sees, spend by default),
and reports wall time, convergence over the sampled (latent) variables (those Meridian keeps only
per geo -- ``beta_gm_dev``, ``gamma_gc_dev``, ``tau_g_excl_baseline`` -- through their per-geo
values ``beta_gm``, ``gamma_gc``, ``tau_g``) and over every posterior variable, and Meridian's
own national ROI per channel (``Analyzer.roi()``).

Spec keys: ``csv``, ``target``, ``geo``, ``time``, ``population``, ``media`` (columns),
``spend`` (columns), ``channels`` (names), ``controls``, ``n_chains``, ``n_adapt``, ``n_burnin``,
``n_keep``, ``unrolled_leapfrog_steps``, ``seed``, ``roi_prior`` ([mu, sigma]), ``enable_aks``.
Prints one ``@@BENCH_RESULT@@ {...}`` line (:mod:`mmm_jax.bench.common`, loaded by its path: this
interpreter has no mmm_jax).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MERIDIAN_BACKEND", "jax")
# mmm_jax/bench/common.py as the module `common`, by its path: importing mmm_jax here would need mmm_jax
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mmm_jax" / "bench"))

from common import convergence, run_main  # noqa: E402


def _data(spec: dict):
    import pandas as pd
    from meridian.data import data_frame_input_data_builder as dfb

    df = pd.read_csv(spec["csv"])
    df = df.loc[:, [c for c in df.columns if not c.startswith("Unnamed")]]
    builder = dfb.DataFrameInputDataBuilder(kpi_type="revenue", default_kpi_column=spec["target"],
                                            default_geo_column=spec["geo"], default_time_column=spec["time"],
                                            default_population_column=spec["population"])
    builder = builder.with_kpi(df).with_population(df)
    if spec["controls"]:
        builder = builder.with_controls(df, control_cols=list(spec["controls"]))
    builder = builder.with_media(df, media_cols=list(spec["media"]), media_spend_cols=list(spec["spend"]),
                                 media_channels=list(spec["channels"]))
    return builder.build()


#: Sampled variables that Meridian's posterior keeps only as their per-geo values.
_KEPT_AS = {"tau_g_excl_baseline": "tau_g", "beta_gm_dev": "beta_gm", "gamma_gc_dev": "gamma_gc",
            "beta_grf_dev": "beta_grf", "beta_gom_dev": "beta_gom", "beta_gorf_dev": "beta_gorf",
            "gamma_gn_dev": "gamma_gn"}


def _latent_names(mmm) -> list[str]:
    """Names of the variables NUTS samples (Meridian's sampling joint distribution), else []."""
    try:
        jd = mmm.posterior_sampler_callable._get_joint_dist_sampling()  # noqa: SLF001 - Meridian keeps no public list
        shape = jd.event_shape
        names = list(shape._asdict()) if hasattr(shape, "_asdict") else list(shape)
        return [str(n) for n in names]
    except Exception:  # noqa: BLE001 - best effort: the caller falls back to every posterior variable
        return []


def run(spec: dict) -> dict:
    import jax
    import numpy as np
    import tensorflow_probability.substrates.jax as tfp_jax
    from meridian import constants
    from meridian.analysis import analyzer
    from meridian.model import model, prior_distribution
    from meridian.model import spec as mspec

    t0 = time.perf_counter()
    data = _data(spec)
    mu, sigma = spec.get("roi_prior", (0.2, 0.9))
    dtype = np.float64 if jax.config.jax_enable_x64 else np.float32  # Meridian checks the prior's dtype
    prior = prior_distribution.PriorDistribution(
        roi_m=tfp_jax.distributions.LogNormal(dtype(mu), dtype(sigma), name=constants.ROI_M))
    model_spec = mspec.ModelSpec(prior=prior, enable_aks=spec.get("enable_aks", True))
    mmm = model.Meridian(input_data=data, model_spec=model_spec)
    build_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    mmm.sample_posterior(n_chains=spec["n_chains"], n_adapt=spec["n_adapt"], n_burnin=spec["n_burnin"],
                         n_keep=spec["n_keep"], seed=spec["seed"],
                         unrolled_leapfrog_steps=spec.get("unrolled_leapfrog_steps", 1))
    sample_s = time.perf_counter() - t1
    wall = time.perf_counter() - t0
    post = mmm.inference_data.posterior
    stats = mmm.inference_data.sample_stats
    everything = [v for v in post.data_vars if {"chain", "draw"} <= set(post[v].dims)]
    latent = [_KEPT_AS.get(v, v) for v in _latent_names(mmm)]
    latent = [v for v in latent if v in post.data_vars]
    out = {"wall_s": wall, "build_s": build_s, "sample_s": sample_s, "jax_platform": jax.default_backend(),
           "latent_variables": latent}
    out.update(convergence(post, stats, latent or everything))
    every = convergence(post, stats, everything)
    out["all_variables"] = {k: every[k] for k in ("min_ess_bulk", "min_ess_bulk_param", "max_rhat")}
    t2 = time.perf_counter()
    roi = np.asarray(analyzer.Analyzer(mmm).roi(use_posterior=True))  # (chain, draw, channel), national
    out["roi_s"] = time.perf_counter() - t2
    out["roi_mean"] = {c: float(v) for c, v in zip(spec["channels"], roi.reshape(-1, roi.shape[-1]).mean(axis=0))}
    out["n_knots"] = int(post.sizes.get("knots", 0)) or None
    return out


if __name__ == "__main__":
    run_main(run)
