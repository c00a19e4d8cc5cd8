#!/usr/bin/env python
"""Batch-engine benchmark: brands per minute and ESS/s per brand, batch vs loops of single fits.

Data: ``mmm_jax.datasets.simulate(weeks, channels, seed=1000 + i)`` for brand ``i`` (one CSV per
brand). Every run is a fresh interpreter (compile time counted), one run at a time:

batch-B     ``fit_many`` over the first B brands (for each B in ``--grid``, plus ``--target-brands``)
loop-ours   a loop of our single fits, ONE compiled program reused (chains pmapped), over
            ``--loop-brands`` brands (default: the target's brands, so both fit the same data)
loop-ours-full  the same loop, also making what a single fit returns (posterior quantities and the
            brand's InferenceData with diagnostics; not written to disk)
loop-pmm    a loop of PyMC-Marketing fits with ``nuts_sampler="numpyro"`` over ``--pmm-brands``
            brands, in its own interpreter (``--pmm-python``)

Output: a Markdown table, ``<out>/bench_batch_<stamp>.json``, ``bench_batch_latest.{json,md}`` and
``bench_batch_latest.png`` (throughput vs B).

Example::

    python benchmarks/bench_batch.py                       # CPU defaults (about 40 min on 2 cores)
    python benchmarks/bench_batch.py --grid 1,8 --target-brands 0 --loop-brands 2 --warmup 100 --draws 100
    python benchmarks/bench_batch.py --grid 1000 --weeks 156 --channels 10 --target-brands 0   # GPU
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
from mmm_jax.bench.pmm import resolve_pmm_python  # noqa: E402
from mmm_jax.bench.report import finite, git_info, machine_info, redact_paths  # noqa: E402
from mmm_jax.bench.runner import log, raise_on_sigterm, run_one  # noqa: E402

HERE = Path(__file__).resolve().parent


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="bench_batch.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--weeks", type=int, default=104)
    p.add_argument("--channels", type=int, default=5)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--draws", type=int, default=500)
    p.add_argument("--target-accept", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grid", default="1,8,32,128", help="batch sizes B")
    p.add_argument("--target-brands", type=int, default=64, help="the issue's target batch (0: skip)")
    p.add_argument("--loop-brands", type=int, default=None,
                   help="brands in the loop of our single fits (default: the target's brands, so both fit the "
                        "same brands; 0: skip)")
    p.add_argument("--no-loop-full", action="store_true",
                   help="skip loop-ours-full (the loop that also makes each brand's InferenceData, as a single fit does)")
    p.add_argument("--pmm-brands", type=int, default=4, help="brands in the PyMC-Marketing loop (0: skip)")
    p.add_argument("--pmm-python", default=None, help="python with pymc-marketing + numpyro")
    p.add_argument("--setup-pmm-venv", action="store_true")
    p.add_argument("--chunk-size", type=int, default=None, help="fit_many chunk size (default: its own)")
    p.add_argument("--hsgp-grid", default="", help="batch sizes B of HSGP brands (time-varying intercept and media, "
                                                   "m = --hsgp-m); empty: none")
    p.add_argument("--hsgp-m", type=int, default=12)
    p.add_argument("--vmap-group", type=int, default=None, help="fit_many lock-step group per device")
    p.add_argument("--layouts", action="store_true",
                   help="also run B=32 with vmap groups 1, 2 and all (lock-step waste vs vectorisation)")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--out", default=None)
    p.add_argument("--show-worker-output", action="store_true")
    p.add_argument("--device-name", default=None, help="label for the results (default: JAX's device kind)")
    a = p.parse_args(argv)
    if a.loop_brands is None:
        a.loop_brands = a.target_brands or 16
    return a


def make_data(args, tmp: Path, n: int) -> dict:
    from mmm_jax.datasets import simulate

    d = tmp / "brands"
    d.mkdir()
    for i in range(n):
        df, truth = simulate(args.weeks, args.channels, seed=1000 + i)
        df.to_csv(d / f"brand{i:04d}.csv", index=False)
        (d / f"brand{i:04d}.json").write_text(json.dumps(truth.to_dict()))
    return {"data_dir": str(d), "date": "date", "target": "sales", "channels": list(truth.channels),
            "controls": list(truth.controls), "l_max": 8, "seasonality": 2}


def markdown(rep: dict) -> str:
    c = rep["config"]
    lines = [
        f"### Batch engine: {c['weeks']} weeks x {c['channels']} channels, {c['chains']} chains x "
        f"{c['warmup']} warm-up x {c['draws']} draws ({rep['device']})",
        "",
        "| run | brands | wall s | brands/min | min ESS/s per brand | median ESS/s per brand | share R-hat<1.01 | divergences | lock-step waste |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rep["runs"].items():
        if r.get("status") != "ok":
            lines.append(f"| {name} | - | - | {r.get('status')}: {str(r.get('error'))[:60]} | | | | | |")
            continue
        w = r.get("lockstep_waste")
        lines.append(
            f"| {name} | {r['fitted']} | {r['wall_s']:.1f} | {r['brands_per_min']:.2f} | "
            f"{r['min_ess_per_s_per_brand']:.2f} | {r['median_ess_per_s_per_brand']:.2f} | "
            f"{r['share_rhat_ok']:.0%} | {r['divergences']} | {'-' if w is None else f'{w:.0%}'} |"
        )
    if rep.get("ratios"):
        lines += ["", "Throughput ratios (brands/min): " + "; ".join(f"{k} {v:.2f}x" for k, v in rep["ratios"].items())]
    return "\n".join(lines) + "\n"


def plot(rep: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = sorted((r["fitted"], r["brands_per_min"]) for k, r in rep["runs"].items()
                 if k.startswith("batch-") and r.get("status") == "ok" and "-g" not in k and "hsgp" not in k)
    fig, ax = plt.subplots(figsize=(6, 4))
    if pts:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label="fit_many (batch)")
    for k, style in (("loop-ours", "--"), ("loop-ours-full", "-."), ("loop-pmm", ":")):
        r = rep["runs"].get(k)
        if r and r.get("status") == "ok":
            ax.axhline(r["brands_per_min"], ls=style, color="gray" if k == "loop-ours" else "red",
                       label=f"{k} ({r['brands_per_min']:.2f}/min)")
    ax.set_xscale("log")
    ax.set_xlabel("brands in the batch (B)")
    ax.set_ylabel("brands per minute (incl. compile)")
    ax.set_title(f"Batch throughput, {rep['device']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_on_sigterm)
    now = dt.datetime.now(dt.UTC)
    git = git_info()
    out_dir = Path(args.out) if args.out else HERE / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    grid = [int(x) for x in args.grid.split(",") if x.strip()]
    plan = [(f"batch-{b}", {"brands": b}) for b in grid]
    plan += [(f"batch-hsgp-{b}", {"brands": int(b), "hsgp_m": args.hsgp_m})
             for b in args.hsgp_grid.split(",") if b.strip()]
    if args.target_brands and args.target_brands not in grid:
        plan.append((f"batch-{args.target_brands}", {"brands": args.target_brands}))
    if args.layouts:
        plan += [(f"batch-32-g{g}", {"brands": 32, "vmap_group": g}) for g in (1, 2)]
    if args.loop_brands:
        plan.append(("loop-ours", {"brands": args.loop_brands}))
        if not args.no_loop_full:
            plan.append(("loop-ours-full", {"brands": args.loop_brands}))
    pmm_python, why = (None, "--pmm-brands 0")
    if args.pmm_brands:
        pmm_python, why = resolve_pmm_python(args.pmm_python, setup=args.setup_pmm_venv)
        if pmm_python:
            plan.append(("loop-pmm", {"brands": args.pmm_brands}))
        else:
            log(f"NOTE: skipping loop-pmm: {why}")
    n_max = max(p[1]["brands"] for p in plan)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp_s:
        tmp = Path(tmp_s)
        shared = make_data(args, tmp, n_max)
        base = {**shared, "chains": args.chains, "warmup": args.warmup, "draws": args.draws,
                "target_accept": args.target_accept, "seed": args.seed, "chunk_size": args.chunk_size,
                "vmap_group": args.vmap_group, "progress": False}
        for i, (name, extra) in enumerate(plan, 1):
            spec = {**base, **extra, "run": name, "out": str(tmp / f"out-{name}")}
            worker = HERE / ("_pmm_loop_worker.py" if name == "loop-pmm" else "_batch_worker.py")
            python = pmm_python if name == "loop-pmm" else sys.executable
            log(f"[{i}/{len(plan)}] {name} ({extra['brands']} brands) ...")
            res = run_one(name, [python, worker], spec, args, tmp, _CLEAN_ENV)
            results[name] = res
            if res.get("status") == "ok":
                log(f"    {res['wall_s']:.1f} s, {res['brands_per_min']:.2f} brands/min, min ESS/s per brand "
                    f"{res['min_ess_per_s_per_brand']:.2f}, waste {res.get('lockstep_waste')}")
            else:
                log(f"    {res.get('status')}: {res.get('error')}\n{res.get('traceback', '')}")
    device = args.device_name or next((r.get("device_kind") for r in results.values() if r.get("device_kind")), "?")
    if device.lower() == "cpu":
        device = f"CPU, {os.cpu_count()} cores"
    ratios = {}
    tgt = results.get(f"batch-{args.target_brands}") if args.target_brands else None
    for other in ("loop-ours", "loop-ours-full", "loop-pmm"):
        r = results.get(other)
        if tgt and tgt.get("status") == "ok" and r and r.get("status") == "ok":
            ratios[f"batch-{args.target_brands} / {other}"] = tgt["brands_per_min"] / r["brands_per_min"]
    rep = finite({
        "benchmark": "bench_batch", "created_utc": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "device": device,
        "config": {k: getattr(args, k) for k in ("weeks", "channels", "chains", "warmup", "draws", "target_accept",
                                                  "seed", "grid", "target_brands", "loop_brands", "pmm_brands",
                                                  "chunk_size", "vmap_group")},
        "machine": machine_info(), "parent_versions": versions(), "git": git, "runs": results, "ratios": ratios,
    })
    md = markdown(rep)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(redact_paths(rep), indent=2, default=str, allow_nan=False)
    (out_dir / f"bench_batch_{stamp}.json").write_text(text)
    (out_dir / "bench_batch_latest.json").write_text(text)
    (out_dir / "bench_batch_latest.md").write_text(md)
    plot(rep, out_dir / "bench_batch_latest.png")
    print(md)
    log(f"wrote {out_dir / f'bench_batch_{stamp}.json'} (+ bench_batch_latest.json/.md/.png)")
    return 0 if all(r.get("status") == "ok" for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
