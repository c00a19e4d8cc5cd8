"""Benchmark worker for the hierarchical (multi-market) model, in our interpreter.

Runs: ``ours-numpyro``, ``ours-blackjax`` (``HierarchicalMMM.fit``) and ``pymc-default``
(``pm.sample``, PyMC's own NUTS, on the very ``pm.Model`` that ``HierarchicalMMM.build`` creates).
Prints one ``@@BENCH_RESULT@@ {...}`` line.
"""

from __future__ import annotations

import time
import warnings

from _bench_common import convergence, run_main


def _load(spec):
    import pandas as pd

    from mmm_jax import ModelConfig
    from mmm_jax.hierarchical import HierarchicalConfig, HierarchicalMMM

    df = pd.read_csv(spec["data_csv"], parse_dates=["date"])
    base = ModelConfig(date="date", target="sales", channels=spec["channels"], controls=["price_index"])
    return df, HierarchicalMMM(HierarchicalConfig(base, market="market"))


def run(spec: dict) -> dict:
    t0 = time.perf_counter()
    import jax

    import mmm_jax  # noqa: F401

    df, h = _load(spec)
    import_s = time.perf_counter() - t0
    if spec["run"].startswith("ours-"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            h.fit(df, sampler=spec["run"].split("-", 1)[1], chains=spec["chains"], warmup=spec["warmup"],
                  draws=spec["draws"], target_accept=spec["target_accept"], seed=spec["seed"], progress=False)
        t = h.timings
        free = [rv.name for rv in h.model.free_RVs]
        out = {"wall_s": t["wall"], "breakdown_s": {k: t[k] for k in ("build_compile", "total", "postprocess")},
               "jax_platform": jax.default_backend(), "device_kind": jax.devices()[0].device_kind}
        out.update(convergence(h.idata.posterior, h.idata.sample_stats, free))
        return out
    import pymc as pm

    t1 = time.perf_counter()
    h.build(df)
    with h.model:
        idata = pm.sample(draws=spec["draws"], tune=spec["warmup"], chains=spec["chains"], cores=spec.get("cores", 2),
                          target_accept=spec["target_accept"], random_seed=spec["seed"], progressbar=False,
                          compute_convergence_checks=False)
    wall = time.perf_counter() - t1
    free = [rv.name for rv in h.model.free_RVs]
    out = {"wall_s": wall, "import_s": import_s}
    out.update(convergence(idata.posterior, idata.sample_stats, free))
    return out


if __name__ == "__main__":
    run_main(run)
