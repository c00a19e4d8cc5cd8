"""Benchmark worker for the runs that live in *our* interpreter.

Runs: ``ours-numpyro``, ``ours-blackjax`` (``mmm_jax.MMM.fit``) and ``pymc-default``
(``pm.sample`` with PyMC's own NUTS on the very ``pm.Model`` that ``MMM.build`` creates:
:func:`mmm_jax.bench.worker.run_pymc_default`, shared with the suite).

Usage (the parent, ``bench_single.py``, does this)::

    python benchmarks/_worker.py '<spec json>'      # or the spec on stdin

Prints one line ``@@BENCH_RESULT@@ {...}`` on stdout.
"""

from __future__ import annotations

import math
import time

from mmm_jax.bench.common import convergence, load_data, run_main
from mmm_jax.bench.worker import model_config, run_pymc_default


def run_ours(spec: dict) -> dict:
    t_imp = time.perf_counter()
    import jax

    from mmm_jax import MMM

    import_s = time.perf_counter() - t_imp
    sampler = spec["run"].split("-", 1)[1]  # numpyro | blackjax
    df, _ = load_data(spec)
    mmm = MMM(model_config(spec))
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


def main(spec: dict) -> dict:
    run = spec["run"]
    if run in ("ours-numpyro", "ours-blackjax"):
        return run_ours(spec)
    if run == "pymc-default":
        return run_pymc_default(spec)
    raise ValueError(f"_worker.py does not handle run {run!r}")


if __name__ == "__main__":
    run_main(main)
