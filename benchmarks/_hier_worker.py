"""Benchmark worker for the hierarchical (multi-market) model, in our interpreter.

Runs: ``ours-numpyro``, ``ours-blackjax``, ``ours-chees`` (``HierarchicalMMM.fit``), ``pymc-default``
(``pm.sample``, PyMC's own NUTS, on the very ``pm.Model`` that ``HierarchicalMMM.build`` creates) and
``grad-f64`` / ``grad-f32`` (the cost of one value + gradient of the compiled log-density: the
parent sets ``MMM_JAX_X64=0`` for float32).
Prints one ``@@BENCH_RESULT@@ {...}`` line.
"""

from __future__ import annotations

import json
import time
import warnings

from mmm_jax.bench.common import convergence, run_main


def _load(spec):
    import pandas as pd

    from mmm_jax import ModelConfig
    from mmm_jax.hierarchical import HierarchicalConfig, HierarchicalMMM

    m = spec.get("model") or {"date": "date", "target": "sales", "channels": spec["channels"],
                              "controls": ["price_index"], "market": "market", "population": None}
    df = pd.read_csv(spec["data_csv"], parse_dates=[m["date"]])
    base = ModelConfig(date=m["date"], target=m["target"], channels=m["channels"], controls=m["controls"],
                       saturation=spec.get("saturation", "logistic"))
    return df, HierarchicalMMM(HierarchicalConfig(base, market=m["market"], population=m.get("population")))


def grad_cost(h, n_loop: int = 200, repeats: int = 5) -> dict:
    """Microseconds per value + gradient, inside one compiled loop (as NUTS calls it), data as inputs.

    The data are arguments of the jitted loop, not constants, as in the batch engine and in every
    sampler here; the min over ``repeats`` runs of ``n_loop`` evaluations is reported.
    """
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    ld = h.logdensity
    data = {k: jnp.asarray(ld.default_data[k]) for k in ld.data_names}
    flat, unravel = ravel_pytree({k: jnp.asarray(v) for k, v in ld.initial_point.items()})
    vg = jax.value_and_grad(lambda x, d: ld.logp(unravel(x), d))

    @jax.jit
    def loop(x, d):
        def body(i, c):  # the next point depends on the last gradient: no evaluation can be skipped
            v, g = vg(c[0] + 1e-9 * c[1], d)
            return c[0], g + 0.0 * v
        return jax.lax.fori_loop(0, n_loop, body, (x, jnp.zeros_like(x)))

    t0 = time.perf_counter()
    jax.block_until_ready(loop(flat, data))
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(loop(flat, data))
        times.append((time.perf_counter() - t0) / n_loop)
    return {"grad_us": 1e6 * min(times), "grad_us_median": 1e6 * sorted(times)[len(times) // 2],
            "n_params": int(flat.size), "dtype": str(flat.dtype), "compile_s": compile_s}


def run(spec: dict) -> dict:
    t0 = time.perf_counter()
    import jax

    import mmm_jax  # noqa: F401

    df, h = _load(spec)
    import_s = time.perf_counter() - t0
    if spec["run"].startswith("grad-"):
        h.build(df)
        return {**grad_cost(h), "jax_platform": jax.default_backend(), "device_kind": jax.devices()[0].device_kind}
    if spec["run"].startswith("ours-"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            h.fit(df, sampler=spec["run"].split("-", 1)[1], chains=spec["chains"], warmup=spec["warmup"],
                  draws=spec["draws"], target_accept=spec["target_accept"], seed=spec["seed"], progress=False,
                  chain_method=spec.get("chain_method", "auto"),
                  **({"until": spec["until"]} if spec.get("until") else {}))
        t = h.timings
        free = [rv.name for rv in h.model.free_RVs]
        out = {"wall_s": t["wall"], "breakdown_s": {k: t[k] for k in ("build_compile", "total", "postprocess")},
               "jax_platform": jax.default_backend(), "device_kind": jax.devices()[0].device_kind}
        out.update(convergence(h.idata.posterior, h.idata.sample_stats, free))
        if spec.get("until"):
            out["stopped"] = json.loads(h.idata.posterior.attrs.get("until", "null"))
        if spec.get("roi"):  # national ROAS (total contribution over the markets / total spend)
            out["roi_mean"] = {str(c): float(v) for c, v in h.roas(level="national")["mean"].items()}
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
