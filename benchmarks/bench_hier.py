#!/usr/bin/env python
"""Hierarchical (multi-market) benchmark: the joint model, our samplers vs PyMC's default sampler.

Data: ``mmm_jax.hierarchical.simulate_panel(markets, weeks, channels, seed)``. Each run is a fresh
interpreter, one at a time (compile time counted).

Presets
-------
meridian   40 markets x 156 weeks x 5 channels, 10 chains x (2000 + 500) warm-up x 1000 kept: the shape
           of Google Meridian's demo (about 10 minutes on a T4 GPU, its docs); ours on this machine.
compare    50 markets x 156 weeks x 6 channels: ours-numpyro / ours-blackjax vs ``pm.sample`` on the same
           ``pm.Model`` (4 chains; PyMC gets fewer draws by default, ``--pymc-draws``: ESS/s is a rate).

Run ``ours-chees`` (BlackJAX ChEES-HMC, all chains adapted together from cross-chain statistics) has
its own chain and iteration counts (``--chees-chains/--chees-warmup/--chees-draws``; meridian: 10 x
(2500 + 1000), Meridian's counts; compare: 10 x (500 + 500)): its adaptation needs many chains, and it
reaches the same R-hat with a shorter warm-up.
Its chains are sharded over the largest number of host devices that divides them and does not exceed
the CPU cores (2 devices on 2 cores: 5 vectorised chains each).

Example::

    python benchmarks/bench_hier.py --preset meridian
    python benchmarks/bench_hier.py --preset compare --runs ours-numpyro,pymc-default
    python benchmarks/bench_hier.py --preset compare --runs ours-chees,pymc-default
    python benchmarks/bench_hier.py --preset meridian --grad-only   # cost of one value + gradient, f64 and f32
"""

from __future__ import annotations

import os

_CLEAN_ENV = dict(os.environ)

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from mmm_jax.bench.common import versions  # noqa: E402
from mmm_jax.bench.report import finite, git_info, machine_info, redact_paths  # noqa: E402
from mmm_jax.bench.runner import log, raise_on_sigterm, run_one  # noqa: E402

HERE = Path(__file__).resolve().parent

PRESETS = {
    "meridian": dict(markets=40, weeks=156, channels=5, chains=10, warmup=2500, draws=1000,
                     chees_chains=10, chees_warmup=2500, chees_draws=1000,
                     runs="ours-numpyro,ours-blackjax,ours-chees"),
    "compare": dict(markets=50, weeks=156, channels=6, chains=4, warmup=1000, draws=1000,
                    chees_chains=10, chees_warmup=500, chees_draws=500,
                    runs="ours-numpyro,ours-blackjax,ours-chees,pymc-default"),
}


def _chees_devices(chains: int) -> int:
    """Host devices for ours-chees: the largest divisor of ``chains`` that is at most the CPU cores."""
    cores = os.cpu_count() or 1
    return max(d for d in range(1, min(chains, cores) + 1) if chains % d == 0)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="bench_hier.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--preset", choices=list(PRESETS), default="compare")
    for k in ("markets", "weeks", "channels", "chains", "warmup", "draws"):
        p.add_argument(f"--{k}", type=int, default=None, help="override the preset")
    p.add_argument("--runs", default=None, help="comma-separated: ours-numpyro, ours-blackjax, ours-chees, pymc-default")
    p.add_argument("--chees-chains", type=int, default=None, help="chains of ours-chees (preset: 10)")
    p.add_argument("--chees-warmup", type=int, default=None,
                   help="warm-up iterations of ours-chees (preset: meridian 2500, compare 500)")
    p.add_argument("--chees-draws", type=int, default=None,
                   help="draws of ours-chees (preset: meridian 1000, compare 500)")
    p.add_argument("--pymc-draws", type=int, default=300, help="warm-up and draws of pm.sample (a rate is compared)")
    p.add_argument("--target-accept", type=float, default=0.9)
    p.add_argument("--saturation", default="tanh", choices=["tanh", "logistic", "hill", "michaelis_menten"],
                   help="saturation family of the fitted model (tanh: slope 1/cac0 and level are near-orthogonal, "
                        "half the leapfrog steps of logistic's beta-lam ridge on this data)")
    p.add_argument("--float32", action="store_true", help="our runs in single precision (MMM_JAX_X64=0)")
    p.add_argument("--host-devices", type=int, default=None,
                   help="CPU host devices for our runs (default: max(4, chains): one chain per device)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--grad-only", action="store_true",
                   help="only time one value + gradient of the compiled log-density (float64 and float32), no sampling")
    p.add_argument("--out", default=None)
    p.add_argument("--show-worker-output", action="store_true")
    a = p.parse_args(argv)
    for k, v in PRESETS[a.preset].items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.runs = ["grad-f64", "grad-f32"] if a.grad_only else [r.strip() for r in a.runs.split(",") if r.strip()]
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_on_sigterm)
    now = dt.datetime.now(dt.UTC)
    git = git_info()
    out_dir = Path(args.out) if args.out else HERE / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    from mmm_jax.hierarchical import simulate_panel

    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_hier_") as tmp_s:
        tmp = Path(tmp_s)
        df, truth = simulate_panel(args.markets, args.weeks, args.channels, seed=args.seed,
                                   n_short=args.markets // 5, short_weeks=args.weeks // 3)
        df.to_csv(tmp / "panel.csv", index=False)
        base = {"data_csv": str(tmp / "panel.csv"), "channels": truth.channels, "chains": args.chains,
                "warmup": args.warmup, "draws": args.draws, "target_accept": args.target_accept, "seed": args.seed,
                "saturation": args.saturation}
        for i, run in enumerate(args.runs, 1):
            spec = {**base, "run": run}
            if run == "pymc-default":
                spec.update(warmup=args.pymc_draws, draws=args.pymc_draws)
            if run == "ours-chees":
                spec.update(chains=args.chees_chains, warmup=args.chees_warmup, draws=args.chees_draws,
                            chain_method="parallel")
            log(f"[{i}/{len(args.runs)}] {run} ({spec['chains']} chains x {spec['warmup']} + {spec['draws']}) ...")
            env = dict(_CLEAN_ENV)
            if run == "ours-chees":  # chains sharded over devices, vectorised within one: no more devices than cores
                env["MMM_JAX_HOST_DEVICES"] = str(args.host_devices or _chees_devices(args.chees_chains))
            elif run.startswith("ours-"):  # chains in parallel, one per device: 2.7x the vmapped throughput (2 cores)
                env["MMM_JAX_HOST_DEVICES"] = str(args.host_devices or max(4, args.chains))
            if run == "grad-f32" or (args.float32 and run.startswith("ours-")):
                env["MMM_JAX_X64"] = "0"
            res = run_one(run, [sys.executable, HERE / "_hier_worker.py"], spec, args, tmp, env)
            results[run] = res
            if res.get("status") == "ok" and "grad_us" in res:
                log(f"    {res['grad_us']:.0f} us per value + gradient ({res['n_params']} parameters, {res['dtype']})")
            elif res.get("status") == "ok":
                log(f"    wall {res['wall_s']:.1f} s, min ESS {res['min_ess_bulk']:.0f}, ESS/s {res['ess_per_s']:.2f}, "
                    f"R-hat {res['max_rhat']:.3f}, div {res['divergences']}")
            else:
                log(f"    {res.get('status')}: {res.get('error')}\n{res.get('traceback', '')}")
    ratios = {}
    ref = results.get("pymc-default")
    for r in ("ours-numpyro", "ours-blackjax", "ours-chees"):
        if ref and ref.get("status") == "ok" and results.get(r, {}).get("status") == "ok":
            ratios[f"{r} / pymc-default (ESS/s)"] = results[r]["ess_per_s"] / ref["ess_per_s"]
    device = next((r.get("device_kind") for r in results.values() if r.get("device_kind")), "?")
    rep = finite({"benchmark": "bench_hier", "preset": args.preset, "grad_only": args.grad_only, "created_utc": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "device": f"CPU, {os.cpu_count()} cores" if str(device).lower() == "cpu" else device,
                   "config": {k: getattr(args, k) for k in ("markets", "weeks", "channels", "chains", "warmup", "draws",
                                                            "pymc_draws", "chees_chains", "chees_warmup",
                                                            "chees_draws", "target_accept", "seed",
                                                            "saturation", "host_devices", "float32")},
                   "machine": machine_info(), "parent_versions": versions(), "git": git, "runs": results,
                   "ratios": ratios})
    c = rep["config"]
    title = (f"### Hierarchical model ({args.preset}): {c['markets']} markets x {c['weeks']} weeks x {c['channels']} "
             f"channels, {c['saturation']} saturation")
    if args.grad_only:
        lines = [f"{title}: one value + gradient ({rep['device']})", "",
                 "| precision | us per value + gradient (min of 5) | median | parameters | compile s |",
                 "|---|---:|---:|---:|---:|"]
        for name, r in rep["runs"].items():
            if r.get("status") != "ok":
                lines.append(f"| {name} | {r.get('status')} | | | |")
                continue
            lines.append(f"| {r['dtype']} | {r['grad_us']:.0f} | {r['grad_us_median']:.0f} | {r['n_params']} | "
                         f"{r['compile_s']:.1f} |")
    else:
        lines = [f"{title} ({rep['device']})", "",
                 "| run | chains | warm-up + draws | wall s | min bulk ESS | ESS/s | max R-hat | divergences | leapfrogs/draw |",
                 "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
        for name, r in rep["runs"].items():
            if r.get("status") != "ok":
                lines.append(f"| {name} | | | {r.get('status')} | | | | | |")
                continue
            chains, wd = c["chains"], f"{c['warmup']} + {c['draws']}"
            if name == "pymc-default":
                wd = f"{c['pymc_draws']} + {c['pymc_draws']}"
            elif name == "ours-chees":
                chains, wd = c["chees_chains"], f"{c['chees_warmup']} + {c['chees_draws']}"
            lines.append(f"| {name} | {chains} | {wd} | {r['wall_s']:.1f} | {r['min_ess_bulk']:.0f} | {r['ess_per_s']:.2f} | "
                         f"{r['max_rhat']:.3f} | {r['divergences']} | {r.get('mean_n_steps') or float('nan'):.0f} |")
        if ratios:
            lines += ["", "; ".join(f"{k}: {v:.1f}x" for k, v in ratios.items())]
    md = "\n".join(lines) + "\n"
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(redact_paths(rep), indent=2, default=str, allow_nan=False)
    stem = f"bench_hier_{args.preset}" + ("_grad" if args.grad_only else "")
    (out_dir / f"{stem}_{stamp}.json").write_text(text)
    (out_dir / f"{stem}_latest.json").write_text(text)
    (out_dir / f"{stem}_latest.md").write_text(md)
    print(md)
    return 0 if all(r.get("status") == "ok" for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
