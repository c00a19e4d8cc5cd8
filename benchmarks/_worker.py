"""Benchmark worker for the runs that live in *our* interpreter.

Runs: ``ours-numpyro``, ``ours-blackjax`` (``mmm_jax.MMM.fit``) and ``pymc-default``
(``pm.sample`` with PyMC's own NUTS on the very ``pm.Model`` that ``MMM.build`` creates).

Usage (the parent, ``bench_single.py``, does this)::

    python benchmarks/_worker.py '<spec json>'      # or the spec on stdin

Prints one line ``@@BENCH_RESULT@@ {...}`` on stdout.
"""

from __future__ import annotations

import math
import os
import time

from _bench_common import Timer, convergence, load_data, roas_from_contributions, run_main, wrap_timed


def _config(spec):
    from mmm_jax import GeometricAdstock, ModelConfig

    return ModelConfig(
        date=spec["date"],
        target=spec["target"],
        channels=tuple(spec["channels"]),
        controls=tuple(spec["controls"]),
        adstock=GeometricAdstock(l_max=spec["l_max"]),
        trend=True,
        seasonality=spec["seasonality"],
    )


def run_ours(spec: dict) -> dict:
    t_imp = time.perf_counter()
    import jax

    from mmm_jax import MMM

    import_s = time.perf_counter() - t_imp
    sampler = spec["run"].split("-", 1)[1]  # numpyro | blackjax
    df, _ = load_data(spec)
    mmm = MMM(_config(spec))
    mmm.fit(
        df,
        sampler=sampler,
        chains=spec["chains"],
        warmup=spec["warmup"],
        draws=spec["draws"],
        target_accept=spec["target_accept"],
        seed=spec["seed"],
        progress=spec.get("progress", False),
        **({"until": spec["until"], "max_draws": spec.get("max_draws")} if spec.get("until") else {}),
    )
    timings = {k: float(v) for k, v in mmm.timings.items()}
    free = [rv.name for rv in mmm.model.free_RVs]
    # build_compile: validate + scale + pm.Model + PyTensor->JAX graph conversion;
    # jit_warmup_sampling: the sampler (XLA compile + warmup + draws), split further when the
    # sampler reports it (NaN otherwise); postprocess: deterministics, predictive, InferenceData
    breakdown = {"build_compile": timings.get("build_compile"), "jit_warmup_sampling": timings.get("total")}
    for key, label in (("warmup", "of_which_warmup_incl_jit"), ("sampling", "of_which_sampling")):
        if math.isfinite(timings.get(key, float("nan"))):
            breakdown[label] = timings[key]
    breakdown["postprocess"] = timings.get("postprocess")
    out = {
        "wall_s": timings["wall"],
        "breakdown_s": breakdown,
        "timings_raw": timings,
        "mmm_jax_file": __import__("mmm_jax").__file__,
        "import_s": import_s,
        "sampler_settings": {k: v for k, v in mmm.fit_settings.items() if k != "tuned"},
        "jax_device_count": jax.local_device_count(),
        "jax_platform": jax.default_backend(),
        "roas_mean": {str(k): float(v) for k, v in mmm.roas()["mean"].items()},
    }
    out.update(convergence(mmm.idata.posterior, mmm.idata.sample_stats, free))
    return out


def run_pymc_default(spec: dict) -> dict:
    t_imp = time.perf_counter()
    import pymc as pm

    import mmm_jax.api.mmm as facade
    from mmm_jax import MMM

    import_s = time.perf_counter() - t_imp
    timer = Timer()
    # MMM.build also converts the model to a JAX log-density, which PyMC's own sampler does
    # not need: time that step separately and leave it out of the wall time.
    wrap_timed(facade, "compile_logdensity", timer, "jax_logdensity_conversion")
    df, _ = load_data(spec)
    mmm = MMM(_config(spec))
    with timer("build_total"):
        mmm.build(df)
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


def main(spec: dict) -> dict:
    run = spec["run"]
    if run in ("ours-numpyro", "ours-blackjax"):
        return run_ours(spec)
    if run == "pymc-default":
        return run_pymc_default(spec)
    raise ValueError(f"_worker.py does not handle run {run!r}")


if __name__ == "__main__":
    run_main(main)
