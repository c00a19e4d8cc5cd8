"""One run of the suite in *our* interpreter, in a fresh process:
``python -m mmm_jax.bench.worker`` reads the run's spec (JSON) on stdin and prints one line
``@@BENCH_RESULT@@ {...}`` (:mod:`.common`).

Runs (``spec["sampler"]``):

* ``numpyro``, ``blackjax``, ``chees``, ``meads`` — ``mmm_jax.MMM(cfg).fit(df, sampler=...)``
  with ``spec["chain_method"]`` / ``spec["dense_mass"]``; float32 and the persistent
  compilation cache come from the environment the parent sets (``MMM_JAX_X64=0``,
  ``MMM_JAX_CACHE_DIR``).
* ``pymc-default`` — ``pm.sample`` (PyMC's NUTS, C backend) on the ``pm.Model`` that
  ``MMM.build`` creates (:func:`run_pymc_default`, also used by ``benchmarks/bench_single.py``).
* ``nutpie`` — ``nutpie.compile_pymc_model(model, backend="jax", gradient_backend="jax")``
  + ``nutpie.sample`` on the same ``pm.Model`` (needs ``pip install nutpie``).

Besides :func:`~mmm_jax.bench.common.convergence` it reports compile seconds (JAX's own compile
events during sampling: jaxpr->MLIR lowering + XLA backend compile, or persistent-cache loads),
warm-up / sampling seconds, posterior mean / sd / bulk ESS of every free scalar (for the
float32 vs float64 check) and, through ``run_main``, peak memory. ``import_s`` counts only the
imports left when a run starts: ``python -m`` has imported mmm_jax (and with it JAX and PyMC)
before; the parent's ``elapsed_s`` includes them.
"""

from __future__ import annotations

import math
import os
import time

from .common import (
    Timer,
    convergence,
    load_data,
    posterior_moments,
    roas_from_contributions,
    run_main,
    wrap_timed,
)
from .compile_monitor import CompileMonitor

__all__ = ["main", "model_config", "run_nutpie", "run_ours", "run_pymc", "run_pymc_default"]


def model_config(spec):
    """The benchmark model of a spec: geometric adstock (``l_max``), logistic saturation, linear
    trend, yearly seasonality; with ``spec["hsgp"]`` a time-varying baseline and media effect."""
    from mmm_jax import GeometricAdstock, ModelConfig

    kw = {}
    if spec.get("hsgp"):
        # HSGP axis: time-varying baseline + time-varying media effect, both with the package's
        # default HSGP settings (the suite only sends hsgp=True when ModelConfig has the options)
        kw = {"time_varying_intercept": True, "time_varying_media": True}
    return ModelConfig(
        date=spec["date"],
        target=spec["target"],
        channels=tuple(spec["channels"]),
        controls=tuple(spec["controls"]),
        adstock=GeometricAdstock(l_max=spec["l_max"]),
        trend=True,
        seasonality=spec["seasonality"],
        **kw,
    )


def _sample_stats_extra(ss) -> dict:
    import numpy as np

    out = {}
    if "warmup_n_steps" in ss:
        out["warmup_leapfrog_steps_per_chain"] = float(np.asarray(ss["warmup_n_steps"]).max())
    return out


def run_ours(spec: dict) -> dict:
    """``MMM.fit`` with one of our samplers, its phases and compile time measured."""
    t_imp = time.perf_counter()
    import jax

    import mmm_jax.api.fitted as facade  # FittedModel.fit calls its module's `sample`
    from mmm_jax import MMM

    import_s = time.perf_counter() - t_imp
    monitor = CompileMonitor()
    phases = {}
    sample_fn = facade.sample

    def timed_sample(*args, **kwargs):
        snap = monitor.snapshot()
        try:
            res = sample_fn(*args, **kwargs)
            phases["result_stats"] = res.stats
            return res
        finally:
            phases["sample"] = monitor.since(snap)
            phases["sample_returned_at"] = time.time()

    facade.sample = timed_sample
    df, _ = load_data(spec)
    mmm = MMM(model_config(spec))
    mmm.fit(
        df,
        sampler=spec["sampler"],
        chains=spec["chains"],
        warmup=spec["warmup"],
        draws=spec["draws"],
        target_accept=spec["target_accept"],
        seed=spec["seed"],
        progress=spec.get("progress", False),
        chain_method=spec.get("chain_method", "auto"),
        dense_mass=bool(spec.get("dense_mass", False)),
    )
    t = {k: float(v) for k, v in mmm.timings.items()}
    comp = phases["sample"]
    # compilations inside the sampler's clock (t["total"] ends just before sample() returns); the
    # small eager ops before it (initial points) are in compile_detail but not in compile_s
    t_ret = phases["sample_returned_at"]
    compile_s = monitor.compile_between(t_ret - t["total"], t_ret)
    comp["lowering_plus_backend_all_s"] = comp["backend_compile_s"] + comp["lowering_s"]
    run_s = t["total"] - compile_s  # warm-up + sampling without compilation
    warm = t.get("warmup", float("nan"))
    warmup_s = warm - compile_s if math.isfinite(warm) else float("nan")
    free = [rv.name for rv in mmm.model.free_RVs]
    out = {
        "wall_s": t["wall"],
        "build_s": t["build_compile"],
        "compile_s": compile_s,
        "compile_detail": comp,
        "warmup_s": warmup_s,
        "sampling_s": t.get("sampling", float("nan")),
        "run_s": run_s,
        "postprocess_s": t["postprocess"],
        "timings_raw": t,
        "import_s": import_s,
        "sampler_settings": {k: v for k, v in mmm.fit_settings.items()},
        "jax_device_count": jax.local_device_count(),
        "jax_platform": jax.default_backend(),
        "x64": bool(jax.config.jax_enable_x64),
        "compilation_cache_dir": os.environ.get("MMM_JAX_CACHE_DIR", "default") not in ("0", "off"),
        "roas_mean": {str(k): float(v) for k, v in mmm.roas()["mean"].items()},
        "posterior": posterior_moments(mmm.idata.posterior, free),
    }
    out.update(convergence(mmm.idata.posterior, mmm.idata.sample_stats, free))
    out.update(_sample_stats_extra(phases.get("result_stats", {})))
    return out


def _build_pm_model(spec: dict, timer: Timer):
    """``MMM.build`` on the spec's data, into ``timer["build_total"]``. It also converts the model
    to a JAX log-density, which PyMC's own sampler and nutpie do not need: that step is timed
    apart (``timer["jax_logdensity_conversion"]``), to be left out of their wall time."""
    import mmm_jax.api.mmm as facade
    from mmm_jax import MMM

    wrap_timed(facade, "compile_logdensity", timer, "jax_logdensity_conversion")
    df, _ = load_data(spec)
    mmm = MMM(model_config(spec))
    with timer("build_total"):
        mmm.build(df)
    return mmm


def run_pymc_default(spec: dict) -> dict:
    """``pm.sample`` (PyMC's own NUTS) on the ``pm.Model`` that ``MMM.build`` creates; the JAX
    log-density conversion ``MMM.build`` also does is timed apart and left out of the wall time."""
    t_imp = time.perf_counter()
    import pymc as pm

    import_s = time.perf_counter() - t_imp
    timer = Timer()
    mmm = _build_pm_model(spec, timer)
    cores = min(spec["chains"], os.cpu_count() or 1)
    with timer("pm_sample"):
        idata = pm.sample(
            model=mmm.model,
            draws=spec["draws"],
            tune=spec["warmup"],
            chains=spec["chains"],
            cores=cores,
            target_accept=spec["target_accept"],
            random_seed=spec["seed"],
            progressbar=spec.get("progress", False),
        )
    t = timer.times
    jax_conv = t.get("jax_logdensity_conversion", 0.0)
    build = t["build_total"] - jax_conv
    sampling = float(idata.posterior.attrs.get("sampling_time", float("nan")))
    wall = build + t["pm_sample"]
    post = idata.posterior
    contrib = post["channel_contribution"].transpose("chain", "draw", "date", "channel").values
    contrib = contrib * float(mmm.scaling.target_scale)
    free = [rv.name for rv in mmm.model.free_RVs]
    out = {
        "wall_s": wall,
        "breakdown_s": {
            "build": build,
            # pm.sample minus PyMC's own sampling clock: PyTensor C compile, init, process start-up,
            # then trace -> InferenceData and convergence checks
            "compile_init_postprocess": t["pm_sample"] - sampling,
            "warmup_plus_sampling": sampling,
            "excluded_jax_logdensity_conversion": jax_conv,
        },
        "import_s": import_s,
        "sampler_settings": {"nuts_sampler": "pymc", "cores": cores, "chains": spec["chains"],
                             "tune": spec["warmup"], "draws": spec["draws"],
                             "target_accept": spec["target_accept"]},
        "roas_mean": roas_from_contributions(contrib, mmm.data.spend, list(spec["channels"])),
    }
    out.update(convergence(post, idata.sample_stats, free))
    return out


def run_pymc(spec: dict) -> dict:
    """:func:`run_pymc_default` with the suite's phase columns (build, compile, run seconds)."""
    out = run_pymc_default(spec)
    b = out["breakdown_s"]
    out.update(
        build_s=b["build"],
        # PyTensor C compilation + initial point + chain processes + trace conversion: PyMC does
        # not report them apart, so this is an upper bound on its compile time
        compile_s=b["compile_init_postprocess"],
        warmup_s=float("nan"),
        sampling_s=float("nan"),
        run_s=b["warmup_plus_sampling"],
    )
    return out


def run_nutpie(spec: dict) -> dict:
    """nutpie (JAX backend) on the ``pm.Model`` that ``MMM.build`` creates."""
    t_imp = time.perf_counter()
    import nutpie

    import_s = time.perf_counter() - t_imp
    timer = Timer()
    mmm = _build_pm_model(spec, timer)
    build = timer.times["build_total"] - timer.times.get("jax_logdensity_conversion", 0.0)
    cores = min(spec["chains"], os.cpu_count() or 1)
    with timer("compile"):
        compiled = nutpie.compile_pymc_model(mmm.model, backend="jax", gradient_backend="jax")
    with timer("sample"):
        idata = nutpie.sample(
            compiled,
            draws=spec["draws"],
            tune=spec["warmup"],
            chains=spec["chains"],
            cores=cores,
            seed=spec["seed"],
            target_accept=spec["target_accept"],
            progress_bar=spec.get("progress", False),
            save_warmup=False,
        )
    t = timer.times
    post = idata.posterior
    free = [rv.name for rv in mmm.model.free_RVs]
    contrib = post["channel_contribution"].transpose("chain", "draw", "date", "channel").values
    ss = idata.sample_stats.rename({"depth": "tree_depth"}) if "depth" in idata.sample_stats else idata.sample_stats
    out = {
        "wall_s": build + t["compile"] + t["sample"],
        "build_s": build,
        # nutpie's PyTensor->JAX compile; the XLA compile happens lazily inside sample()
        "compile_s": t["compile"],
        "warmup_s": float("nan"),
        "sampling_s": float("nan"),
        "run_s": t["sample"],
        "breakdown_s": {"build": build, "compile_pymc_model": t["compile"], "sample": t["sample"]},
        "import_s": import_s,
        "sampler_settings": {"nutpie": nutpie.__version__, "backend": "jax", "gradient_backend": "jax",
                             "cores": cores, "chains": spec["chains"], "tune": spec["warmup"],
                             "draws": spec["draws"], "target_accept": spec["target_accept"]},
        "posterior": posterior_moments(post, free),
    }
    contrib = contrib * float(mmm.scaling.target_scale)
    out["roas_mean"] = roas_from_contributions(contrib, mmm.data.spend, list(spec["channels"]))
    out.update(convergence(post, ss, free))
    return out


def main(spec: dict) -> dict:
    """The run ``spec["sampler"]`` names."""
    s = spec["sampler"]
    if s in ("numpyro", "blackjax", "chees", "meads"):
        return run_ours(spec)
    if s == "pymc-default":
        return run_pymc(spec)
    if s == "nutpie":
        return run_nutpie(spec)
    raise ValueError(f"mmm_jax.bench.worker does not handle sampler {s!r}")


if __name__ == "__main__":
    run_main(main)
