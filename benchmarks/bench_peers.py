#!/usr/bin/env python
"""Speed against the current peers, several seeds, interleaved: mmm_jax vs PyMC-Marketing 1.3.

The single-brand setting of ``bench_single.py`` (156 weeks x 4 channels, geometric adstock
l_max 8 + logistic saturation, linear trend, yearly seasonality 2, one control; controls
standardised for PyMC-Marketing as our model does internally), every run in a fresh process,
one at a time, the order rotated from seed to seed, the CPU time other processes used recorded.

Runs
----
ours-numpyro     ``MMM.fit(sampler="numpyro")``, equal chains / warm-up / draws
ours-blackjax    ``MMM.fit(sampler="blackjax")``, equal chains / warm-up / draws
ours-converged   ``MMM.fit(until={"rhat": 1.01, "ess": 400}, warmup=--converged-warmup,
                 draws=--converged-draws)``: stops when every free parameter is converged
pmm-numpyro      PyMC-Marketing ``fit(nuts_sampler="numpyro")``, equal settings
pmm-default      PyMC-Marketing ``fit()`` with its default sampler (nutpie where installed)

``--ours-python`` runs our workers in another interpreter (e.g. a Python 3.12 venv with
``pip install -e .``), so that both tools run on the same Python / jax line. PyMC-Marketing 1.3
needs Python >= 3.12: ``--pmm-python`` points at an interpreter that has it, or
``--setup-pmm-venv`` creates ``benchmarks/.venv-pmm13`` with the first Python >= 3.12 found.

Compilation cache: ``--xla-cache warm`` (default) gives our runs a fresh cache folder primed by
one uncounted fit per sampler (what every fit after a user's first one sees: the cache is on by
default); ``cold`` turns it off, so every run compiles.

Results: a Markdown table (medians over seeds, per-seed ratios) on stdout and
``<out>/bench_peers_<UTC timestamp>.{json,md}``.
"""

from __future__ import annotations

import os

_CLEAN_ENV = dict(os.environ)

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

from mmm_jax.bench.common import versions  # noqa: E402
from mmm_jax.bench.data import write_data  # noqa: E402
from mmm_jax.bench.pmm import PMM_WORKER, check_pmm_python, venv_python  # noqa: E402
from mmm_jax.bench.report import finite, git_info, machine_info, redact_paths  # noqa: E402
from mmm_jax.bench.runner import log, run_one  # noqa: E402

HERE = Path(__file__).resolve().parent

RUNS = ("ours-numpyro", "ours-blackjax", "ours-converged", "pmm-numpyro", "pmm-default")
PMM_VENV = HERE / ".venv-pmm13"
PMM_PACKAGES = ("pymc-marketing==1.3.0", "numpyro", "nutpie")
CONVERGED = {"rhat": 1.01, "ess": 400}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="bench_peers.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--seeds", default="0,1,2,3", help="comma-separated data/sampler seeds")
    p.add_argument("--weeks", type=int, default=156)
    p.add_argument("--channels", type=int, default=4)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--target-accept", type=float, default=0.9)
    p.add_argument("--converged-warmup", type=int, default=400, help="ours-converged: warm-up iterations")
    p.add_argument("--converged-draws", type=int, default=200,
                   help="ours-converged: draws per chain before the first convergence check")
    p.add_argument("--runs", default=",".join(RUNS), help=f"subset of {','.join(RUNS)}")
    p.add_argument("--ours-python", default=sys.executable, help="interpreter with mmm_jax for our runs")
    p.add_argument("--pmm-python", default=None, help="interpreter with pymc-marketing 1.3 + numpyro (+ nutpie)")
    p.add_argument("--setup-pmm-venv", action="store_true", help=f"create {PMM_VENV.name} with Python >= 3.12")
    p.add_argument("--xla-cache", choices=("warm", "cold"), default="warm")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--show-worker-output", action="store_true")
    a = p.parse_args(argv)
    a.seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    a.runs = [r.strip() for r in a.runs.split(",") if r.strip()]
    bad = [r for r in a.runs if r not in RUNS]
    if bad:
        p.error(f"--runs: unknown {bad}; choose from {list(RUNS)}")
    return a


def find_python312() -> str | None:
    """The first interpreter >= 3.12 on PATH or under pyenv, else None."""
    cands = [shutil.which(n) for n in ("python3.13", "python3.12")]
    cands += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[2-9]*/bin/python3")), reverse=True)
    for c in filter(None, cands):
        r = subprocess.run([c, "-c", "import sys; print(sys.version_info >= (3, 12))"], capture_output=True,
                           text=True)
        if r.returncode == 0 and r.stdout.strip() == "True":
            return c
    return None


def setup_venv312(venv: Path, packages, needs: str) -> tuple[str | None, str | None]:
    """Create ``venv`` with the first Python >= 3.12 (if missing) and pip install ``packages``
    into it: (its python, None), or (None, why not) where no such Python exists."""
    base = find_python312()
    if base is None:
        return None, f"no Python >= 3.12 found ({needs} needs one)"
    py = venv_python(venv)
    if not py.exists():
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", *packages], check=True, env=_CLEAN_ENV)
    return str(py), None


def pmm_interpreter(a) -> tuple[str | None, str | None]:
    """(python, None) or (None, why the pmm runs are skipped)."""
    if a.setup_pmm_venv:
        py, why = setup_venv312(PMM_VENV, PMM_PACKAGES, "PyMC-Marketing 1.3")
        if py is None:
            return None, why
        a.pmm_python = py
    if not a.pmm_python:
        return None, "no PyMC-Marketing interpreter: pass --pmm-python PATH or --setup-pmm-venv"
    why = check_pmm_python(a.pmm_python)
    return (None, why) if why else (a.pmm_python, None)


def spec_for(run: str, shared: dict, a, seed: int) -> dict:
    spec = {**shared, "run": run, "chains": a.chains, "warmup": a.warmup, "draws": a.draws,
            "target_accept": a.target_accept, "seed": seed, "progress": False, "pmm_standardize_controls": True}
    if run == "ours-converged":
        spec.update(run="ours-numpyro", warmup=a.converged_warmup, draws=a.converged_draws, until=CONVERGED)
    if run == "pmm-default":
        spec["run"] = "pmm-default"
    return spec


def converged(r: dict) -> bool:
    return r.get("status") == "ok" and r["max_rhat"] < CONVERGED["rhat"] and r["min_ess_bulk"] >= CONVERGED["ess"]


def summarise(results: dict, a) -> dict:
    """Medians over seeds per run, and per-seed ratios."""
    out = {}
    for run in a.runs:
        ok = [results[(run, s)] for s in a.seeds if results.get((run, s), {}).get("status") == "ok"]
        if not ok:
            continue
        out[run] = {
            "seeds_ok": len(ok),
            "median_ess_per_s": statistics.median(r["ess_per_s"] for r in ok),
            "median_wall_s": statistics.median(r["wall_s"] for r in ok),
            "median_min_ess_bulk": statistics.median(r["min_ess_bulk"] for r in ok),
            "max_rhat": max(r["max_rhat"] for r in ok),
            "divergences": [r["divergences"] for r in ok],
            "converged_all": all(converged(r) for r in ok),
            "max_other_cpu_share": max((r.get("other_cpu_share") or 0.0) for r in ok),
        }
    ratios = {}
    for ours, ref, what in (("ours-numpyro", "pmm-numpyro", "ess_per_s"), ("ours-blackjax", "pmm-numpyro", "ess_per_s"),
                            ("ours-converged", "pmm-default", "time_to_converged"),
                            ("ours-converged", "pmm-numpyro", "time_to_converged")):
        per = []
        for s in a.seeds:
            x, y = results.get((ours, s), {}), results.get((ref, s), {})
            if x.get("status") != "ok" or y.get("status") != "ok":
                continue
            if what == "ess_per_s":
                per.append(x["ess_per_s"] / y["ess_per_s"])
            elif converged(x) and converged(y):
                per.append(y["wall_s"] / x["wall_s"])
        if per:
            ratios[f"{ours} / {ref} ({what})"] = {"per_seed": per, "median": statistics.median(per)}
    return {"runs": out, "ratios": ratios}


def markdown(report: dict) -> str:
    cfg, summ = report["config"], report["summary"]
    lines = [f"**bench_peers** — {cfg['weeks']} weeks × {cfg['channels']} channels; {cfg['chains']} chains × "
             f"({cfg['warmup']} + {cfg['draws']}), target_accept {cfg['target_accept']}; ours-converged: warm-up "
             f"{cfg['converged_warmup']}, until {CONVERGED} checked from {cfg['converged_draws']} draws; seeds "
             f"{cfg['seeds']}; XLA cache {cfg['xla_cache']}; ours on Python {report['ours_versions'].get('python')} / jax "
             f"{report['ours_versions'].get('jax')}; PyMC-Marketing {report['pmm_versions'].get('pymc-marketing', '–')} "
             f"on Python {report['pmm_versions'].get('python', '–')} / jax {report['pmm_versions'].get('jax', '–')}; "
             f"{report['created_utc']}", "",
             "| run | median min-bulk-ESS/s | median wall s | median min bulk ESS | max R-hat | divergences per seed "
             "| all converged | max other-CPU share |", "|---|---:|---:|---:|---:|---|---|---:|"]
    for run, r in summ["runs"].items():
        lines.append(f"| {run} | {r['median_ess_per_s']:.1f} | {r['median_wall_s']:.1f} | {r['median_min_ess_bulk']:.0f} | "
                     f"{r['max_rhat']:.4f} | {r['divergences']} | {'yes' if r['converged_all'] else 'no'} | "
                     f"{r['max_other_cpu_share']:.1%} |")
    lines += ["", "| ratio | per seed | median |", "|---|---|---:|"]
    for name, q in summ["ratios"].items():
        lines.append(f"| {name} | {', '.join(f'{v:.2f}×' for v in q['per_seed'])} | **{q['median']:.2f}×** |")
    if report.get("skipped"):
        lines += ["", *[f"- skipped {k}: {v}" for k, v in report["skipped"].items()]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    a = parse_args(argv)
    now = dt.datetime.now(dt.UTC)
    git = git_info()
    skipped, pmm_python = {}, None
    if any(r.startswith("pmm") for r in a.runs):
        pmm_python, why = pmm_interpreter(a)
        if pmm_python is None:
            skipped = {r: why for r in a.runs if r.startswith("pmm")}
            a.runs = [r for r in a.runs if not r.startswith("pmm")]
            log(f"NOTE: {why}")
    if not a.runs:
        log("nothing left to run")
        return 1
    opts = SimpleNamespace(timeout=a.timeout, show_worker_output=a.show_worker_output)
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench_peers_") as tmp_s:
        tmp = Path(tmp_s)
        ours_env = dict(_CLEAN_ENV, MMM_JAX_CACHE_DIR=str(tmp / "xla") if a.xla_cache == "warm" else "0")
        data = {}
        for s in a.seeds:
            d = tmp / f"seed{s}"
            d.mkdir()
            data[s] = write_data(a.weeks, a.channels, s, d)
        if a.xla_cache == "warm":  # one uncounted fit per sampler on other data of the same shapes
            d = tmp / "prime"
            d.mkdir()
            prime = write_data(a.weeks, a.channels, 10_000, d)
            for run in sorted({r for r in a.runs if r.startswith("ours")}):
                log(f"priming the compilation cache: {run} ...")
                run_one("prime", [a.ours_python, HERE / "_worker.py"], spec_for(run, prime, a, 10_000), opts, tmp,
                        ours_env)
        for i, s in enumerate(a.seeds):
            order = a.runs[i % len(a.runs):] + a.runs[:i % len(a.runs)]  # rotate: no run always goes first
            for run in order:
                spec = spec_for(run, data[s], a, s)
                if run.startswith("pmm"):
                    python, worker, env = pmm_python, PMM_WORKER, _CLEAN_ENV
                else:
                    python, worker, env = a.ours_python, HERE / "_worker.py", ours_env
                log(f"seed {s}: {run} ...")
                res = run_one(run, [python, worker], spec, opts, tmp, env)
                results[(run, s)] = res
                if res.get("status") == "ok":
                    log(f"    wall {res['wall_s']:.1f} s, min bulk ESS {res['min_ess_bulk']:.0f}, ESS/s "
                           f"{res['ess_per_s']:.1f}, R-hat {res['max_rhat']:.4f}, div {res['divergences']}, other CPU "
                           f"{(res.get('other_cpu_share') or 0):.1%}")
                else:
                    log(f"    {res.get('status')}: {res.get('error')}\n{res.get('traceback', '')[-2000:]}")

    def first(prefix):
        return next((r["versions"] for (run, _), r in results.items() if run.startswith(prefix) and "versions" in r), {})

    report = {
        "benchmark": "bench_peers",
        "created_utc": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": {k: getattr(a, k) for k in ("seeds", "weeks", "channels", "chains", "warmup", "draws",
                                              "target_accept", "converged_warmup", "converged_draws", "runs",
                                              "xla_cache")},
        "machine": machine_info(),
        "git": git,
        "ours_versions": first("ours"),
        "pmm_versions": first("pmm"),
        "parent_versions": versions(),
        "skipped": skipped,
        "results": {f"{run}/seed{s}": r for (run, s), r in results.items()},
    }
    report["summary"] = summarise(results, a)
    write_report(report, markdown, a.out, "bench_peers", now)
    return 0 if all(r.get("status") == "ok" for r in results.values()) else 1


def write_report(report: dict, render, out_dir, name: str, now) -> dict:
    """Make ``report`` JSON-safe, write ``<out_dir>/<name>_<UTC stamp>.json`` (machine paths
    redacted) and ``.md`` (``render(report)``), print the Markdown; returns the safe report."""
    report = finite(report)
    md = render(report)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{name}_{now.strftime('%Y%m%dT%H%M%SZ')}"
    stem.with_suffix(".json").write_text(json.dumps(redact_paths(report), indent=2, default=str))
    stem.with_suffix(".md").write_text(md)
    print(md)
    log(f"wrote {stem}.json (and .md)")
    return report


if __name__ == "__main__":
    sys.exit(main())
