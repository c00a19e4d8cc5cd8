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
import math  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _bench_common import RESULT_MARKER, busy_cpu_seconds, versions  # noqa: E402

ALL_RUNS = ("ours-numpyro", "ours-blackjax", "pymc-default", "pmm-numpyro", "pmm-pymc")
OURS = ("ours-numpyro", "ours-blackjax")
PMM_RUNS = ("pmm-numpyro", "pmm-pymc")
DEFAULT_PMM_VENV = HERE / ".venv-pmm"
PMM_PACKAGES = ("pymc-marketing", "numpyro")


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


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- PMM interpreter
def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def setup_pmm_venv(venv: Path = DEFAULT_PMM_VENV) -> Path:
    """Create ``venv`` (if needed) and pip install PyMC-Marketing + NumPyro into it."""
    py = venv_python(venv)
    if not py.exists():
        log(f"creating virtual environment {venv} ...")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    log(f"pip install {' '.join(PMM_PACKAGES)} into {venv} (this can take a few minutes) ...")
    subprocess.run([str(py), "-m", "pip", "install", "--upgrade", "pip"], check=True, env=_CLEAN_ENV)
    subprocess.run([str(py), "-m", "pip", "install", *PMM_PACKAGES], check=True, env=_CLEAN_ENV)
    return py


def check_pmm_python(py: str) -> str | None:
    """None if ``py`` can import pymc_marketing and numpyro, else the reason it cannot."""
    if not Path(py).exists() and shutil.which(py) is None:
        return f"{py} does not exist"
    code = (
        "import importlib.util as u, sys; "
        "missing = [m for m in ('pymc_marketing', 'numpyro') if u.find_spec(m) is None]; "
        "print(','.join(missing)); sys.exit(1 if missing else 0)"
    )
    r = subprocess.run([py, "-c", code], capture_output=True, text=True, env=_CLEAN_ENV)
    if r.returncode != 0:
        return f"{py} lacks {r.stdout.strip() or r.stderr.strip()[-300:]}"
    return None


def resolve_pmm_python(args) -> tuple[str | None, str | None]:
    """(interpreter, None) or (None, why the pmm runs are skipped)."""
    if args.setup_pmm_venv:
        py = str(setup_pmm_venv())
    elif args.pmm_python:
        py = args.pmm_python
    elif venv_python(DEFAULT_PMM_VENV).exists():
        py = str(venv_python(DEFAULT_PMM_VENV))
    else:
        return None, (
            "no PyMC-Marketing interpreter: pass --pmm-python PATH (a python with pymc-marketing and "
            "numpyro) or --setup-pmm-venv to create benchmarks/.venv-pmm"
        )
    why = check_pmm_python(py)
    return (None, why) if why else (py, None)


# --------------------------------------------------------------------------- data
def make_data(args, tmp: Path) -> dict:
    """Simulate once, write CSV + truth JSON; returns the shared part of every spec."""
    from mmm_jax.datasets import simulate

    df, truth = simulate(args.weeks, args.channels, seed=args.seed)
    channels = list(truth.channels)
    controls = list(truth.controls)
    data_csv = tmp / "data.csv"
    truth_json = tmp / "truth.json"
    df.to_csv(data_csv, index=False)
    truth_d = truth.to_dict()
    truth_json.write_text(json.dumps(truth_d))
    return {
        "data_csv": str(data_csv),
        "truth_json": str(truth_json),
        "date": "date",
        "target": "sales",
        "channels": channels,
        "controls": controls,
        "l_max": 8,
        "seasonality": 2,
        "true_roas": {c: float(truth_d["roas"][c]) for c in channels},
        "n_weeks": int(len(df)),
    }


# --------------------------------------------------------------------------- running
def run_one(run: str, python: str, worker: Path, spec: dict, args, tmp: Path, env: dict) -> dict:
    """Run one worker to completion (or timeout) and return its parsed result."""
    err_path = tmp / f"{run}.stderr.log"
    load_before = _loadavg()
    busy0 = busy_cpu_seconds()
    t0 = time.perf_counter()
    with open(err_path, "w") as err_fh:
        proc = subprocess.Popen(
            [python, str(worker)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None if args.show_worker_output else err_fh,
            cwd=str(tmp),
            env=env,
            text=True,
            start_new_session=True,  # own process group: a timeout kills PyMC's chain processes too
        )
        try:
            stdout, _ = proc.communicate(json.dumps(spec), timeout=args.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            stdout, _ = proc.communicate()
            return {
                "load_avg_before": load_before,
                "run": run,
                "status": "timeout",
                "error": f"no result within --timeout {args.timeout:g} s",
                "elapsed_s": time.perf_counter() - t0,
                "stderr_tail": _tail(err_path),
            }
        except BaseException:  # Ctrl-C / SIGTERM: take the worker (and PyMC's chain processes) down too
            _kill_group(proc)
            raise
    elapsed = time.perf_counter() - t0
    busy1 = busy_cpu_seconds()
    result = None
    for line in stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            result = json.loads(line[len(RESULT_MARKER):])
    if result is None:
        result = {
            "run": run,
            "status": "error",
            "error": f"worker exited with code {proc.returncode} and no result line",
            "stdout_tail": stdout[-3000:],
            "stderr_tail": _tail(err_path),
        }
    elif result.get("status") != "ok":
        result["stderr_tail"] = _tail(err_path)
    result["elapsed_s"] = elapsed  # subprocess wall, interpreter start-up and imports included
    result["returncode"] = proc.returncode
    # 1-minute load averages around the run: well above the run's own parallelism means
    # something else competed for the CPU and the timings are suspect
    result["load_avg_before"], result["load_avg_after"] = load_before, _loadavg()
    # CPU time the rest of the machine used while this run ran (Linux: /proc/stat minus the
    # worker's own CPU time); more than a few percent of the machine means the timings are suspect
    if busy0 is not None and busy1 is not None and result.get("cpu_seconds") is not None:
        other = max(0.0, busy1 - busy0 - result["cpu_seconds"])
        result["other_cpu_s"] = other
        result["other_cpu_share"] = other / (elapsed * (os.cpu_count() or 1))
    if result.get("status") == "ok" and result.get("wall_s"):
        result["ess_per_s"] = result["min_ess_bulk"] / result["wall_s"]
    return result


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


# --------------------------------------------------------------------------- report
def _fmt(x, nd=1):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:,.{nd}f}"


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
            _fmt(r["wall_s"]),
            _fmt(r["min_ess_bulk"], 0),
            _fmt(r["ess_per_s"], 2),
            _fmt(r["max_rhat"], 3),
            str(r["divergences"]),
            _fmt(r.get("mean_tree_depth"), 2),
            _fmt(r.get("mean_n_steps"), 1),
        ] + [_fmt(r["roas_mean"].get(c), 2) for c in ch]
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
        lines.append(f"| {run} | {parts} | {_fmt(r.get('elapsed_s'))} |")
    noisy = {r: v["other_cpu_share"] for r, v in results.items() if (v.get("other_cpu_share") or 0) > 0.05}
    if noisy:
        lines += ["", "**Warning: other processes used the CPU during " + ", ".join(
            f"{r} ({share:.0%} of the machine)" for r, share in noisy.items()) + "; those timings are suspect.**"]
    if report.get("skipped"):
        lines += ["", *[f"- skipped {k}: {v}" for k, v in report["skipped"].items()]]
    return "\n".join(lines) + "\n"


def git_info() -> dict | None:
    """Commit and dirty state of the repository holding this script (None outside git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "mmm_jax"], cwd=HERE.parent,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": head.stdout.strip(), "mmm_jax_dirty": bool(dirty.stdout.strip())}


def machine_info() -> dict:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "python": platform.python_version(),
    }


# --------------------------------------------------------------------------- main
def _raise_on_sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _finite(o):
    """JSON-safe copy: NaN / inf become null."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_finite(v) for v in o]
    return o


def _redact_paths(obj):
    """Results are committed: keep only the last parts of absolute paths (no machine paths)."""
    if isinstance(obj, dict):
        return {k: _redact_paths(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_redact_paths(v) for v in obj]
    if isinstance(obj, str) and obj.startswith("/") and obj.count("/") >= 2:
        return "<local>/" + "/".join(Path(obj).parts[-3:])
    return obj


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    now = dt.datetime.now(dt.UTC)
    git = git_info()  # before the runs: the code that is benchmarked
    out_dir = Path(args.out) if args.out else HERE / "results"
    out_dir.mkdir(parents=True, exist_ok=True)

    skipped = {}
    pmm_python = None
    if any(r in PMM_RUNS for r in args.runs):
        pmm_python, why = resolve_pmm_python(args)
        if pmm_python is None:
            for r in PMM_RUNS:
                if r in args.runs:
                    skipped[r] = why
            log(f"NOTE: skipping {', '.join(skipped)}: {why}")

    with tempfile.TemporaryDirectory(prefix="bench_single_") as tmp_s:
        tmp = Path(tmp_s)
        shared = make_data(args, tmp)
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
                python, worker, env = pmm_python, HERE / "_pmm_worker.py", _CLEAN_ENV
            else:
                python, worker, env = sys.executable, HERE / "_worker.py", _CLEAN_ENV
            if args.pytensor_cache == "isolated":
                env = dict(env)
                flags = [f for f in env.get("PYTENSOR_FLAGS", "").split(",") if f and not f.startswith("compiledir=")]
                env["PYTENSOR_FLAGS"] = ",".join([*flags, f"compiledir={tmp / ('pytensor-' + run)}"])
            log(f"[{i}/{len(todo)}] {run} ...")
            res = run_one(run, python, worker, {**base, "run": run}, args, tmp, env)
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
    report = _finite(report)
    md = markdown(report)

    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(_redact_paths(report), indent=2, default=str, allow_nan=False)
    (out_dir / f"bench_single_{stamp}.json").write_text(text)
    (out_dir / "bench_single_latest.json").write_text(text)
    (out_dir / "bench_single_latest.md").write_text(md)
    print(md)
    log(f"wrote {out_dir / f'bench_single_{stamp}.json'} (and bench_single_latest.json / .md)")
    return 0 if all(r.get("status") == "ok" for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
