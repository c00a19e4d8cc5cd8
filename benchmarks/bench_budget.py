"""Budget optimizer benchmark: ours (optax, projected Adam, jit) vs SciPy SLSQP, and many brands.

1. One brand, 10 channels, 2,000 posterior draws, 13-week horizon: our optimiser vs
   ``scipy.optimize.minimize(method="SLSQP")`` on the same objective with a jitted JAX value and
   gradient (the fair baseline: SLSQP gets exact gradients). Reports wall time (after
   compilation; compilation reported separately), objective values and the relative gap.
2. B brands (default 1,000) optimised in one ``vmap``-ed call.

Usage::

    python benchmarks/bench_budget.py [--channels 10] [--draws 2000] [--brands 1000] [--repeats 3]

Prints a Markdown table and writes JSON to ``benchmarks/results/bench_budget_<UTC>.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize as so

import mmm_jax  # noqa: F401  (float64, host devices)
from mmm_jax.budget import BudgetProblem, geometric_logistic_params, gross_response, optimize_allocation
from mmm_jax.posterior.results import package_versions

L_MAX = 8


def make_problem(rng, S, C, H):
    beta = rng.uniform(0.05, 0.4, C) * np.exp(0.3 * rng.normal(size=(S, C)))
    alpha = np.clip(rng.uniform(0.1, 0.7, C) + 0.05 * rng.normal(size=(S, C)), 0.01, 0.95)
    lam = rng.uniform(0.5, 4, C) * np.exp(0.2 * rng.normal(size=(S, C)))
    scale = rng.uniform(1e3, 5e4, C)
    params = geometric_logistic_params(
        beta, alpha, lam, l_max=L_MAX, spend_scale=scale, target_scale=2.5e5,
        history=rng.uniform(0.2, 0.8, (L_MAX - 1, C)) * scale,
    )
    total = float(0.5 * H * scale.sum())
    return BudgetProblem(params=params, lo=jnp.zeros(C), hi=jnp.full(C, total), total=jnp.asarray(total),
                         pattern=jnp.full((H, C), 1.0 / H), risk_aversion=jnp.asarray(1.0),
                         alpha=jnp.asarray(0.1), min_mroas=jnp.asarray(0.0))


def timed(fn, repeats):
    best = np.inf
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t)
    return out, best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--channels", type=int, default=10)
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--horizon", type=int, default=13)
    ap.add_argument("--brands", type=int, default=1000)
    ap.add_argument("--brand-draws", type=int, default=500, help="draws per brand in the batched run")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    C, S, H = a.channels, a.draws, a.horizon
    prob = make_problem(rng, S, C, H)
    total = float(prob.total)

    ours = jax.jit(lambda p: optimize_allocation(p, objective="mean", steps=a.steps))
    t = time.perf_counter()
    jax.block_until_ready(ours(prob))
    compile_s = time.perf_counter() - t
    res, ours_s = timed(lambda: ours(prob), a.repeats)

    f = jax.jit(lambda x: jnp.mean(gross_response(prob.pattern * x[None, :], prob.params)))
    g = jax.jit(jax.grad(lambda x: jnp.mean(gross_response(prob.pattern * x[None, :], prob.params))))
    x0 = np.full(C, total / C)
    f(x0), g(x0)  # compile outside the timing

    def slsqp():
        return so.minimize(lambda z: -float(f(z)), x0, jac=lambda z: -np.asarray(g(z)), method="SLSQP",
                           bounds=[(0, total)] * C, options={"maxiter": 1000, "ftol": 1e-12},
                           constraints=[{"type": "eq", "fun": lambda z: z.sum() - total, "jac": lambda z: np.ones(C)}])

    r, slsqp_s = timed(slsqp, a.repeats)
    offset = float(f(jnp.zeros(C)))
    ours_val, slsqp_val = float(res.value), -r.fun - offset
    gap = (slsqp_val - ours_val) / abs(slsqp_val)

    probs = [make_problem(rng, a.brand_draws, C, H) for _ in range(a.brands)]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *probs)
    batch = jax.jit(jax.vmap(lambda p: optimize_allocation(p, objective="mean", steps=a.steps)))
    t = time.perf_counter()
    jax.block_until_ready(batch(stacked))
    batch_first = time.perf_counter() - t
    bres, batch_s = timed(lambda: batch(stacked), 1)
    sums = np.asarray(bres.x).sum(1)
    max_total_err = float(np.max(np.abs(sums - np.asarray(stacked.total)) / np.asarray(stacked.total)))

    rows = {
        "single_brand": {
            "channels": C, "draws": S, "horizon": H, "steps": a.steps,
            "ours_s": ours_s, "ours_compile_s": compile_s, "slsqp_s": slsqp_s, "slsqp_iterations": int(r.nit),
            "speedup": slsqp_s / ours_s, "ours_objective": ours_val, "slsqp_objective": slsqp_val,
            "relative_gap": gap,
        },
        "batch": {
            "brands": a.brands, "draws_per_brand": a.brand_draws, "channels": C, "wall_s": batch_s,
            "first_call_incl_compile_s": batch_first, "brands_per_s": a.brands / batch_s,
            "max_relative_total_error": max_total_err,
        },
    }
    meta = {"date": datetime.now(UTC).isoformat(), "device": str(jax.devices()[0]), "backend": jax.default_backend(),
            "cpu_count": __import__("os").cpu_count(), "platform": platform.platform(), "versions": package_versions()}
    s, b = rows["single_brand"], rows["batch"]
    print(f"\n**bench_budget** — {meta['device']} ({meta['backend']}), {meta['date']}\n")
    print("| case | ours (s) | SLSQP (s) | speed-up | ours objective | SLSQP objective | gap |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| 1 brand, {C} channels, {S} draws | {s['ours_s']:.3f} (+{s['ours_compile_s']:.1f} compile) | "
          f"{s['slsqp_s']:.3f} | {s['speedup']:.1f}x | {ours_val:,.1f} | {slsqp_val:,.1f} | {gap:+.2e} |")
    print(f"\n{b['brands']} brands x {C} channels x {b['draws_per_brand']} draws in one vmapped call: "
          f"{b['wall_s']:.2f} s ({b['brands_per_s']:.0f} brands/s; first call incl. compile {batch_first:.1f} s); "
          f"max relative error of the totals {max_total_err:.1e}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"bench_budget_{stamp}.json"
    path.write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
