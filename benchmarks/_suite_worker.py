"""Worker of ``bench_suite.py`` for the runs in *our* interpreter (one run per process).

Runs (``spec["sampler"]``):

* ``numpyro``, ``blackjax``, ``chees``, ``meads`` — ``mmm_jax.MMM(cfg).fit(df, sampler=...)``
  with ``spec["chain_method"]`` / ``spec["dense_mass"]``; float32 and the persistent
  compilation cache come from the environment the parent sets (``MMM_JAX_X64=0``,
  ``MMM_JAX_CACHE_DIR``).
* ``pymc-default`` — ``pm.sample`` (PyMC's NUTS, C backend) on the ``pm.Model`` that
  ``MMM.build`` creates (``_worker.run_pymc_default``, shared with ``bench_single.py``).
* ``nutpie`` — ``nutpie.compile_pymc_model(model, backend="jax", gradient_backend="jax")``
  + ``nutpie.sample`` on the same ``pm.Model`` (needs ``pip install nutpie``).

Besides ``_bench_common.convergence`` it reports compile seconds (JAX's own compile events
during sampling: jaxpr->MLIR lowering + XLA backend compile, or persistent-cache loads),
warm-up / sampling seconds, posterior mean / sd / bulk ESS of every free scalar (for the
float32 vs float64 check) and, through ``run_main``, peak memory.

Prints one line ``@@BENCH_RESULT@@ {...}`` on stdout.
"""

from __future__ import annotations

import math
import os
import time

from _bench_common import Timer, convergence, load_data, roas_from_contributions, run_main, wrap_timed

_COMPILE_EVENTS = {
    "/jax/core/compile/backend_compile_duration": "backend_compile_s",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lowering_s",
    "/jax/core/compile/jaxpr_trace_duration": "trace_s",
    "/jax/compilation_cache/cache_retrieval_time_sec": "cache_retrieval_s",
    "/jax/compilation_cache/compile_time_saved_sec": "cache_saved_s",
}


class CompileMonitor:
    """Records JAX's compile events; ``snapshot()`` / ``since(snap)`` bracket a phase.

    Durations are summed per kind; the spans of lowering and XLA compilation are kept with
    their wall-clock start so that :meth:`compile_between` can count only the compilations that
    started inside the sampler's own clock (not the small eager ops before it).
    """

    def __init__(self):
        import jax

        self.totals = {v: 0.0 for v in _COMPILE_EVENTS.values()}
        self.count = 0
        self.spans = []  # (kind, start, end), wall clock (time.time())

        def on_duration(event, duration, **kwargs):
            key = _COMPILE_EVENTS.get(event)
            if key is not None:
                self.totals[key] += float(duration)
                if key == "backend_compile_s":
                    self.count += 1

        def on_span(event, start, end, **kwargs):
            key = _COMPILE_EVENTS.get(event)
            if key in ("backend_compile_s", "lowering_s"):
                self.spans.append((key, float(start), float(end)))

        jax.monitoring.register_event_duration_secs_listener(on_duration)
        jax.monitoring.register_event_time_span_listener(on_span)

    def snapshot(self) -> dict:
        return {**self.totals, "n_backend_compiles": self.count}

    def since(self, snap: dict) -> dict:
        now = self.snapshot()
        return {k: now[k] - snap[k] for k in now}

    def compile_between(self, t_from: float, t_to: float) -> float:
        """Wall seconds of lowering + XLA compilation that started in ``[t_from, t_to]``.

        Spans can nest (a compile triggered while lowering) or overlap (parallel compiles), so
        this is the length of their union, not their sum.
        """
        total, cur_start, cur_end = 0.0, None, None
        for start, end in sorted((a, b) for _, a, b in self.spans if t_from <= a <= t_to):
            if cur_end is None or start > cur_end:
                if cur_end is not None:
                    total += cur_end - cur_start
                cur_start, cur_end = start, end
            else:
                cur_end = max(cur_end, end)
        if cur_end is not None:
            total += cur_end - cur_start
        return total


def _config(spec):
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


def posterior_moments(posterior, var_names) -> dict:
    """Mean, sd and bulk ESS of every free scalar, flattened per variable (lists)."""
    import arviz as az
    import numpy as np

    post = posterior[list(var_names)]
    ess = az.ess(post, method="bulk")
    out = {}
    for v in var_names:
        x = np.asarray(post[v].values, dtype=float)
        x = x.reshape(x.shape[0] * x.shape[1], -1)
        out[v] = {
            "mean": x.mean(0).tolist(),
            "sd": x.std(0).tolist(),
            "ess_bulk": np.asarray(ess[v].values, dtype=float).ravel().tolist(),
        }
    return out


def _sample_stats_extra(ss) -> dict:
    import numpy as np

    out = {}
    if "warmup_n_steps" in ss:
        out["warmup_leapfrog_steps_per_chain"] = float(np.asarray(ss["warmup_n_steps"]).max())
    return out


def run_ours(spec: dict) -> dict:
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
    mmm = MMM(_config(spec))
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


def run_pymc(spec: dict) -> dict:
    import _worker

    _worker._config = _config  # same model definition as ours (incl. the HSGP axis)
    out = _worker.run_pymc_default(spec)
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
    t_imp = time.perf_counter()
    import nutpie

    import mmm_jax.api.mmm as facade
    from mmm_jax import MMM

    import_s = time.perf_counter() - t_imp
    timer = Timer()
    wrap_timed(facade, "compile_logdensity", timer, "jax_logdensity_conversion")
    df, _ = load_data(spec)
    mmm = MMM(_config(spec))
    with timer("build_total"):
        mmm.build(df)
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
    s = spec["sampler"]
    if s in ("numpyro", "blackjax", "chees", "meads"):
        return run_ours(spec)
    if s == "pymc-default":
        return run_pymc(spec)
    if s == "nutpie":
        return run_nutpie(spec)
    raise ValueError(f"_suite_worker.py does not handle sampler {s!r}")


if __name__ == "__main__":
    run_main(main)
