#!/usr/bin/env python
"""Single-brand MMM benchmark: one model, one data set, several samplers.

Every run gets the same simulated data (``mmm_jax.datasets.simulate``, written once to a CSV
in a temporary directory) and runs in its own fresh interpreter, one after another, so that
start-up and compile time are counted and no JAX/XLA settings leak from one run to the next.

Runs
----
ours-numpyro   ``mmm_jax.MMM(cfg).fit(df, sampler="numpyro")``
ours-blackjax  ``mmm_jax.MMM(cfg).fit(df, sampler="blackjax")``
pymc-default   ``pm.sample`` (PyMC's own NUTS) on the ``pm.Model`` that ``MMM.build`` creates
pmm-numpyro    PyMC-Marketing's MMM, ``fit(..., nuts_sampler="numpyro")``
pmm-pymc       PyMC-Marketing's MMM, its default sampler (PyMC's NUTS)

The PyMC-Marketing runs need an interpreter with ``pymc-marketing`` and ``numpyro``
installed; its pins may clash with ours, so it is usually a separate virtual environment:
pass it with ``--pmm-python``, or let ``--setup-pmm-venv`` create ``benchmarks/.venv-pmm``.

Example::

    python benchmarks/bench_single.py --chains 2 --warmup 200 --draws 200   # quick check
    python benchmarks/bench_single.py --pmm-python /path/to/pmm-venv/bin/python

Results: a Markdown table on stdout, ``<out>/bench_single_<UTC timestamp>.json`` and
``<out>/bench_single_latest.{json,md}``.
"""

from __future__ import annotations

import os

# Snapshot the environment before anything imports mmm_jax (which sets XLA_FLAGS for its own
# process): the workers must start from the user's environment, not ours.
_CLEAN_ENV = dict(os.environ)

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from mmm_jax.bench.common import versions  # noqa: E402
from mmm_jax.bench.data import write_data  # noqa: E402
from mmm_jax.bench.pmm import PMM_WORKER, resolve_pmm_python  # noqa: E402
from mmm_jax.bench.report import finite, fmt, git_info, machine_info, redact_paths  # noqa: E402
from mmm_jax.bench.runner import log, raise_on_sigterm, run_one  # noqa: E402

HERE = Path(__file__).resolve().parent
ALL_RUNS = ("ours-numpyro", "ours-blackjax", "pymc-default", "pmm-numpyro", "pmm-pymc")
OURS = ("ours-numpyro", "ours-blackjax")
PMM_RUNS = ("pmm-numpyro", "pmm-pymc")


# --------------------------------------------------------------------------- CLI
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench_single.py",
        description=(
            "Fit the same single-brand MMM to the same simulated data with several samplers, each in "
            "a fresh subprocess, one at a time, and compare wall time, min bulk ESS, ESS/s, R-hat, "
            "divergences and ROAS."
        ),
        epilog=(
            "PyMC-Marketing runs (pmm-*) need an interpreter with pymc-marketing and numpyro. Point "
            "--pmm-python at one (e.g. <venv>/bin/python of a separate virtual environment), or pass "
            "--setup-pmm-venv to create benchmarks/.venv-pmm with `python -m venv` + `pip install "
            "pymc-marketing numpyro` (needs network access). Without either, pmm runs are skipped."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--weeks", type=int, default=156, help="number of weekly observations")
    p.add_argument("--channels", type=int, default=4, help="number of media channels")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1000, help="warmup / tune iterations per chain")
    p.add_argument("--draws", type=int, default=1000, help="kept draws per chain")
    p.add_argument("--target-accept", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated data and of every sampler")
    p.add_argument("--runs", default=",".join(ALL_RUNS), help=f"comma-separated subset of {','.join(ALL_RUNS)}")
    p.add_argument(
        "--pmm-python",
        default=None,
        help="Python interpreter with pymc-marketing + numpyro for the pmm runs "
        "(default: benchmarks/.venv-pmm/bin/python if it exists, else the pmm runs are skipped)",
    )
    p.add_argument(
        "--setup-pmm-venv",
        action="store_true",
        help="create benchmarks/.venv-pmm (python -m venv; pip install pymc-marketing numpyro) and use it",
    )
    p.add_argument(
        "--pmm-standardize-controls",
        action="store_true",
        help="standardise the PMM control columns (price_index, t) before fitting, as our model does "
        "internally; by default PyMC-Marketing gets them as they are, which is its documented usage",
    )
    p.add_argument(
        "--pytensor-cache",
        choices=("shared", "isolated"),
        default="shared",
        help="PyTensor's on-disk cache of compiled C code (used by the pymc-default and pmm runs): 'shared' = "
        "the user's usual cache, warm after any earlier PyMC use, as in everyday work; 'isolated' = an empty "
        "cache per run, so every run also pays PyTensor's C compilation (cold start, independent of run order)",
    )
    p.add_argument("--timeout", type=float, default=1800, help="seconds per run; a late run is recorded as a timeout")
    p.add_argument("--out", default=None, help="output directory (default: benchmarks/results/ next to this script)")
    p.add_argument("--progress", action="store_true", help="let the samplers draw progress bars (off: they cost time)")
    p.add_argument("--show-worker-output", action="store_true", help="pass the workers' stderr through to the terminal")
    args = p.parse_args(argv)
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    bad = [r for r in runs if r not in ALL_RUNS]
    if bad:
        p.error(f"--runs: unknown {bad}; choose from {list(ALL_RUNS)}")
    args.runs = runs
    if min(args.chains, args.draws, args.weeks, args.channels) < 1 or args.warmup < 0:
        p.error("--chains, --draws, --weeks, --channels must be >= 1 and --warmup >= 0")
    if not 0 < args.target_accept < 1:
        p.error("--target-accept must be in (0, 1)")
    return args


# --------------------------------------------------------------------------- report
def ratios(results: dict) -> dict:
    """Our best ESS/s divided by each reference's ESS/s."""
    ours = {r: results[r]["ess_per_s"] for r in OURS if results.get(r, {}).get("status") == "ok"}
    if not ours:
        return {}
    best = max(ours, key=ours.get)
    out = {}
    for ref in ("pmm-numpyro", "pmm-pymc", "pymc-default"):
        res = results.get(ref, {})
        if res.get("status") == "ok" and res.get("ess_per_s"):
            out[f"{best} / {ref}"] = {
                "ours": best,
                "reference": ref,
                "ess_per_s_ratio": ours[best] / res["ess_per_s"],
                "wall_ratio_ref_over_ours": res["wall_s"] / results[best]["wall_s"],
            }
    return out


def markdown(report: dict) -> str:
    cfg, data, results = report["config"], report["data"], report["runs"]
    ch = data["channels"]
    head = ["run", "wall s", "min bulk ESS", "ESS/s", "max R-hat", "divergences", "mean tree depth",
            "mean leapfrog steps"]
    head += [f"ROAS {c} (true {data['true_roas'][c]:.2f})" for c in ch]
    lines = [
        f"**bench_single** — {data['n_weeks']} weeks × {len(ch)} channels; {cfg['chains']} chains × "
        f"{cfg['warmup']} warmup × {cfg['draws']} draws; target_accept {cfg['target_accept']}; seed {cfg['seed']}; "
        f"PyTensor cache {cfg['pytensor_cache']}; "
        f"PMM controls {'standardised' if cfg.get('pmm_standardize_controls') else 'as given'}; "
        f"{report['machine']['cpu_count']} CPUs ({report['machine']['platform']}); {report['created_utc']}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    for run in cfg["runs"]:
        r = results.get(run, {})
        if r.get("status") != "ok":
            status = r.get("status", "not run")
            why = (r.get("error") or "").replace("|", "/").splitlines()[:1]
            lines.append(f"| {run} | {status}{': ' + why[0][:80] if why else ''} |" + " |" * (len(head) - 2))
            continue
        row = [
            run,
            fmt(r["wall_s"]),
            fmt(r["min_ess_bulk"], 0),
            fmt(r["ess_per_s"], 2),
            fmt(r["max_rhat"], 3),
            str(r["divergences"]),
            fmt(r.get("mean_tree_depth"), 2),
            fmt(r.get("mean_n_steps"), 1),
        ] + [fmt(r["roas_mean"].get(c), 2) for c in ch]
        lines.append("| " + " | ".join(row) + " |")
    for name, q in report["ratios"].items():
        row = [f"**ESS/s ratio {q['ours']} ÷ {q['reference']}**", "", "", f"**{q['ess_per_s_ratio']:.2f}×**"]
        lines.append("| " + " | ".join(row) + " |" + " |" * (len(head) - len(row)))
    lines += ["", "Wall-time breakdown (s):", "", "| run | breakdown | subprocess total (incl. imports) |",
              "|---|---|---:|"]
    for run in cfg["runs"]:
        r = results.get(run, {})
        if r.get("status") != "ok":
            continue
        parts = " · ".join(f"{k} {v:.2f}" for k, v in r.get("breakdown_s", {}).items() if v is not None)
        lines.append(f"| {run} | {parts} | {fmt(r.get('elapsed_s'))} |")
    noisy = {r: v["other_cpu_share"] for r, v in results.items() if (v.get("other_cpu_share") or 0) > 0.05}
    if noisy:
        lines += ["", "**Warning: other processes used the CPU during " + ", ".join(
            f"{r} ({share:.0%} of the machine)" for r, share in noisy.items()) + "; those timings are suspect.**"]
    if report.get("skipped"):
        lines += ["", *[f"- skipped {k}: {v}" for k, v in report["skipped"].items()]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_on_sigterm)
    now = dt.datetime.now(dt.UTC)
    git = git_info()  # before the runs: the code that is benchmarked
    out_dir = Path(args.out) if args.out else HERE / "results"
    out_dir.mkdir(parents=True, exist_ok=True)

    skipped = {}
    pmm_python = None
    if any(r in PMM_RUNS for r in args.runs):
        pmm_python, why = resolve_pmm_python(args.pmm_python, setup=args.setup_pmm_venv)
        if pmm_python is None:
            for r in PMM_RUNS:
                if r in args.runs:
                    skipped[r] = why
            log(f"NOTE: skipping {', '.join(skipped)}: {why}")

    with tempfile.TemporaryDirectory(prefix="bench_single_") as tmp_s:
        tmp = Path(tmp_s)
        shared = write_data(args.weeks, args.channels, args.seed, tmp)
        base = {
            **shared,
            "chains": args.chains,
            "warmup": args.warmup,
            "draws": args.draws,
            "target_accept": args.target_accept,
            "seed": args.seed,
            "progress": args.progress,
            "pmm_standardize_controls": args.pmm_standardize_controls,
        }
        results = {}
        todo = [r for r in args.runs if r not in skipped]
        for i, run in enumerate(todo, 1):
            if run in PMM_RUNS:
                command, env = [pmm_python, PMM_WORKER], _CLEAN_ENV
            else:
                command, env = [sys.executable, HERE / "_worker.py"], _CLEAN_ENV
            if args.pytensor_cache == "isolated":
                env = dict(env)
                flags = [f for f in env.get("PYTENSOR_FLAGS", "").split(",") if f and not f.startswith("compiledir=")]
                env["PYTENSOR_FLAGS"] = ",".join([*flags, f"compiledir={tmp / ('pytensor-' + run)}"])
            log(f"[{i}/{len(todo)}] {run} ...")
            res = run_one(run, command, {**base, "run": run}, args, tmp, env)
            results[run] = res
            if res.get("status") == "ok":
                log(
                    f"    wall {res['wall_s']:.1f} s, min bulk ESS {res['min_ess_bulk']:.0f}, "
                    f"ESS/s {res['ess_per_s']:.2f}, max R-hat {res['max_rhat']:.3f}, "
                    f"divergences {res['divergences']} (subprocess {res['elapsed_s']:.1f} s)"
                )
            else:
                log(f"    {res.get('status')}: {res.get('error')}")
                if res.get("traceback"):
                    log(res["traceback"])

    report = {
        "benchmark": "bench_single",
        "created_utc": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": {
            "weeks": args.weeks,
            "channels": args.channels,
            "chains": args.chains,
            "warmup": args.warmup,
            "draws": args.draws,
            "target_accept": args.target_accept,
            "seed": args.seed,
            "runs": args.runs,
            "timeout_s": args.timeout,
            "progress": args.progress,
            "pytensor_cache": args.pytensor_cache,
            "pmm_standardize_controls": args.pmm_standardize_controls,
        },
        "data": {
            "generator": f"mmm_jax.datasets.simulate({args.weeks}, {args.channels}, seed={args.seed})",
            "n_weeks": shared["n_weeks"],
            "channels": shared["channels"],
            "controls": shared["controls"],
            "true_roas": shared["true_roas"],
            "model": {"adstock": "geometric", "l_max": shared["l_max"], "saturation": "logistic",
                      "yearly_seasonality": shared["seasonality"], "trend": "linear"},
        },
        "machine": machine_info(),
        "parent_versions": versions(),
        "git": git,
        "pmm_python": pmm_python,
        "skipped": skipped,
        "runs": results,
    }
    report["ratios"] = ratios(results)
    report = finite(report)
    md = markdown(report)

    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(redact_paths(report), indent=2, default=str, allow_nan=False)
    (out_dir / f"bench_single_{stamp}.json").write_text(text)
    (out_dir / "bench_single_latest.json").write_text(text)
    (out_dir / "bench_single_latest.md").write_text(md)
    print(md)
    log(f"wrote {out_dir / f'bench_single_{stamp}.json'} (and bench_single_latest.json / .md)")
    return 0 if all(r.get("status") == "ok" for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
