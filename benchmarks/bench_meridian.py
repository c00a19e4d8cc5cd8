#!/usr/bin/env python
"""Time to a converged posterior on Meridian's own simulated geo data: mmm_jax vs Google Meridian 2.1.

Data: Meridian's ``meridian/data/simulated_data/csv/`` (``--data-dir`` with the CSVs, else they are
downloaded from Meridian's repository into ``benchmarks/.meridian-data``):

geo_media          20 geos x 156 weeks x 4 channels (impressions and spend), 2 controls
geo_all_channels   40 geos x 156 weeks x 5 paid channels (+ an organic channel and a promotion,
                   left out here: both tools see the paid channels and the controls only)

Both tools fit the same target (revenue = conversions x revenue_per_conversion, Meridian's
``kpi_type="revenue"``), the same drivers (``--drivers spend``: each channel's spend, the default,
which our model takes today; ``impression``: Meridian's exposure columns for Meridian, spend for
ours), the same controls and per-geo population scaling.

Runs (each a fresh process, one at a time, the CPU share of other processes recorded)
----
meridian         ``Meridian.sample_posterior`` with its getting-started settings: ROI prior
                 LogNormal(0.2, 0.9), ``ModelSpec(enable_aks=True)``, 10 chains x (2500 adapt +
                 500 burn-in + 1000 kept), ``unrolled_leapfrog_steps=5`` (``--meridian-*`` to change)
ours-converged   ``HierarchicalMMM.fit(until={"rhat": 1.01, "ess": 400})`` with our default model
                 (geometric adstock + logistic saturation, trend, yearly seasonality 2, pooled
                 per-geo parameters), 4 chains, ``--ours-warmup`` warm-up, checked from
                 ``--ours-draws`` draws on

Time to converged: a run's wall time when every sampled parameter has R-hat < 1.01 and bulk ESS
>= 400 (ours: stops there; Meridian: its documented run, which has no such stop; where it is not
converged, its wall time is a lower bound of its time to converged). National ROI per channel
(incremental revenue over all geos and weeks / spend) side by side.

Example::

    python benchmarks/bench_meridian.py --setup-meridian-venv --ours-python .venv312/bin/python
    python benchmarks/bench_meridian.py --datasets geo_media --meridian-python PATH --data-dir DIR
"""

from __future__ import annotations

import os

_CLEAN_ENV = dict(os.environ)

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import urllib.request  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_peers import setup_venv312, write_report  # noqa: E402

from mmm_jax.bench.common import versions  # noqa: E402
from mmm_jax.bench.report import git_info, machine_info  # noqa: E402
from mmm_jax.bench.runner import log, run_one  # noqa: E402

RUNS = ("ours-converged", "meridian")
CONVERGED = {"rhat": 1.01, "ess": 400}
MERIDIAN_VENV = HERE / ".venv-meridian"
MERIDIAN_PACKAGES = ("google-meridian[jax]==2.1.0",)
RAW = "https://raw.githubusercontent.com/google/meridian/main/meridian/data/simulated_data/csv/{}.csv"
DATASETS = {
    "geo_media": dict(channels=[f"Channel{i}" for i in range(4)],
                      controls=["competitor_activity_score_control", "sentiment_score_control"]),
    "geo_all_channels": dict(channels=[f"Channel{i}" for i in range(5)],
                             controls=["competitor_sales_control", "sentiment_score_control"]),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="bench_meridian.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--datasets", default="geo_media,geo_all_channels", help=f"comma-separated: {list(DATASETS)}")
    p.add_argument("--data-dir", default=None, help="folder with Meridian's simulated CSVs (else downloaded)")
    p.add_argument("--drivers", choices=("spend", "impression"), default="spend",
                   help="Meridian's media columns (ours always take spend)")
    p.add_argument("--runs", default=",".join(RUNS), help=f"subset of {','.join(RUNS)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ours-python", default=sys.executable, help="interpreter with mmm_jax")
    p.add_argument("--ours-chains", type=int, default=4)
    p.add_argument("--ours-warmup", type=int, default=500)
    p.add_argument("--ours-draws", type=int, default=500, help="draws per chain before the first convergence check")
    p.add_argument("--ours-target-accept", type=float, default=0.9)
    p.add_argument("--meridian-python", default=None, help="interpreter with google-meridian 2.1")
    p.add_argument("--setup-meridian-venv", action="store_true",
                   help=f"create {MERIDIAN_VENV.name} (Python >= 3.12) with {MERIDIAN_PACKAGES[0]}")
    p.add_argument("--meridian-chains", type=int, default=10)
    p.add_argument("--meridian-adapt", type=int, default=2500)
    p.add_argument("--meridian-burnin", type=int, default=500)
    p.add_argument("--meridian-keep", type=int, default=1000)
    p.add_argument("--meridian-unrolled", type=int, default=5, help="unrolled_leapfrog_steps")
    p.add_argument("--xla-cache", choices=("cold", "warm"), default="cold",
                   help="ours: cold = no compilation cache (every run compiles, as Meridian does); warm = "
                        "a cache primed by one uncounted fit")
    p.add_argument("--timeout", type=float, default=7200)
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--show-worker-output", action="store_true")
    a = p.parse_args(argv)
    a.datasets = [d.strip() for d in a.datasets.split(",") if d.strip()]
    a.runs = [r.strip() for r in a.runs.split(",") if r.strip()]
    for name, vals, allowed in (("--datasets", a.datasets, DATASETS), ("--runs", a.runs, RUNS)):
        bad = [v for v in vals if v not in allowed]
        if bad:
            p.error(f"{name}: unknown {bad}; choose from {list(allowed)}")
    return a


def meridian_interpreter(a) -> tuple[str | None, str | None]:
    """(python, None) or (None, why the Meridian run is skipped)."""
    if a.setup_meridian_venv:
        py, why = setup_venv312(MERIDIAN_VENV, MERIDIAN_PACKAGES, "google-meridian 2.1 with jax")
        if py is None:
            return None, why
        a.meridian_python = py
    if not a.meridian_python:
        return None, "no Meridian interpreter: pass --meridian-python PATH or --setup-meridian-venv"
    r = subprocess.run([a.meridian_python, "-c", "import meridian, sys; print(meridian.__version__)"],
                       capture_output=True, text=True, env=dict(_CLEAN_ENV, MERIDIAN_BACKEND="jax"))
    if r.returncode != 0:
        return None, f"{a.meridian_python} cannot import meridian: {r.stderr.strip().splitlines()[-1:]}"
    return a.meridian_python, None


def dataset_csv(name: str, a, tmp: Path) -> tuple[Path, dict]:
    """Meridian's CSV with a ``revenue`` column added, written to ``tmp``; and the column roles."""
    import pandas as pd

    src = Path(a.data_dir) / f"{name}.csv" if a.data_dir else HERE / ".meridian-data" / f"{name}.csv"
    if not src.exists():
        if a.data_dir:
            raise SystemExit(f"--data-dir: {src} not found")
        src.parent.mkdir(parents=True, exist_ok=True)
        log(f"downloading {RAW.format(name)} ...")
        part = src.with_suffix(".part")
        urllib.request.urlretrieve(RAW.format(name), part)
        part.replace(src)
    df = pd.read_csv(src)
    df = df.loc[:, [c for c in df.columns if not c.startswith("Unnamed")]]
    df["revenue"] = df["conversions"] * df["revenue_per_conversion"]
    d = DATASETS[name]
    spend = [f"{c}_spend" for c in d["channels"]]
    missing = [c for c in ("geo", "time", "population", *d["controls"], *spend) if c not in df.columns]
    if missing:
        raise SystemExit(f"{src}: missing columns {missing}")
    out = tmp / f"{name}.csv"
    df.to_csv(out, index=False)
    roles = {"channels": d["channels"], "spend": spend, "controls": d["controls"],
             "media": [f"{c}_{a.drivers}" for c in d["channels"]],
             "geos": int(df["geo"].nunique()), "weeks": int(df["time"].nunique())}
    return out, roles


def spec_for(run: str, csv: Path, roles: dict, a) -> dict:
    if run == "meridian":
        return {"run": run, "csv": str(csv), "target": "revenue", "geo": "geo", "time": "time",
                "population": "population", "media": roles["media"], "spend": roles["spend"],
                "channels": roles["channels"], "controls": roles["controls"], "n_chains": a.meridian_chains,
                "n_adapt": a.meridian_adapt, "n_burnin": a.meridian_burnin, "n_keep": a.meridian_keep,
                "unrolled_leapfrog_steps": a.meridian_unrolled, "seed": a.seed, "roi_prior": [0.2, 0.9],
                "enable_aks": True}
    return {"run": "ours-numpyro", "data_csv": str(csv), "roi": True, "until": CONVERGED,
            "model": {"date": "time", "target": "revenue", "channels": roles["spend"], "controls": roles["controls"],
                      "market": "geo", "population": "population"},
            "chains": a.ours_chains, "warmup": a.ours_warmup, "draws": a.ours_draws,
            "target_accept": a.ours_target_accept, "seed": a.seed}


def converged(r: dict) -> bool:
    """Every sampled parameter at R-hat < 1.01 and bulk ESS >= 400 (a non-finite R-hat is not)."""
    rhat, ess = r.get("max_rhat"), r.get("min_ess_bulk")
    return r.get("status") == "ok" and rhat is not None and ess is not None and rhat < CONVERGED["rhat"] \
        and ess >= CONVERGED["ess"]


def time_ratios(results: dict, datasets) -> dict:
    """Per data set: Meridian's wall time / ours to converged (ours must have converged; where
    Meridian did not, the ratio is a lower bound and says so)."""
    out = {}
    for name in datasets:
        o, m = results.get(f"{name}/ours-converged", {}), results.get(f"{name}/meridian", {})
        if converged(o) and m.get("status") == "ok":
            out[name] = {"ratio": m["wall_s"] / o["wall_s"], "meridian_converged": converged(m)}
    return out


def _num(x, nd: int) -> str:
    """``x`` with ``nd`` decimals; ``inf`` where a statistic was not finite (stored as null)."""
    return "inf" if x is None else f"{x:.{nd}f}"


def markdown(report: dict) -> str:
    cfg = report["config"]
    lines = [f"**bench_meridian** — ours: {cfg['ours_chains']} chains, warm-up {cfg['ours_warmup']}, until "
             f"{CONVERGED} from {cfg['ours_draws']} draws, XLA cache {cfg['xla_cache']}, Python "
             f"{report['ours_versions'].get('python')} / jax {report['ours_versions'].get('jax')}; Meridian "
             f"{report['meridian_versions'].get('google-meridian', '–')}: {cfg['meridian_chains']} chains × "
             f"({cfg['meridian_adapt']} + {cfg['meridian_burnin']} + {cfg['meridian_keep']}), unrolled leapfrog "
             f"{cfg['meridian_unrolled']}, Python {report['meridian_versions'].get('python', '–')} / jax "
             f"{report['meridian_versions'].get('jax', '–')}; Meridian's media columns: {cfg['drivers']}; "
             f"{report['created_utc']}", "",
             "| data | run | wall s | min bulk ESS (parameter) | max R-hat | divergences | converged | "
             "max R-hat, every posterior variable | other-CPU share |", "|---|---|---:|---|---:|---:|---|---:|---:|"]
    for key, r in report["results"].items():
        if r.get("status") != "ok":
            lines.append(f"| {key.split('/')[0]} | {key.split('/')[1]} | {r.get('status')}: {r.get('error', '')[:80]} "
                         "| | | | | | |")
            continue
        every = _num(r["all_variables"]["max_rhat"], 4) if "all_variables" in r else "–"  # ours: free ones only
        lines.append(f"| {key.split('/')[0]} | {key.split('/')[1]} | {r['wall_s']:.1f} | {_num(r['min_ess_bulk'], 0)} "
                     f"({r['min_ess_bulk_param']}) | {_num(r['max_rhat'], 4)} | {r['divergences']} | "
                     f"{'yes' if converged(r) else 'no'} | {every} | {(r.get('other_cpu_share') or 0):.1%} |")
    lines += ["", "| data | Meridian wall ÷ ours (time to converged) |", "|---|---:|"]
    for name, q in report["ratios"].items():
        note = "" if q["meridian_converged"] else " (Meridian not converged: a lower bound)"
        lines.append(f"| {name} | {q['ratio']:.2f}×{note} |")
    lines += ["", "National ROI (posterior mean, revenue per unit of spend):", ""]
    for name in cfg["datasets"]:
        o, m = report["results"].get(f"{name}/ours-converged", {}), report["results"].get(f"{name}/meridian", {})
        chans = DATASETS[name]["channels"]
        lines += [f"| {name} | " + " | ".join(chans) + " |", "|---|" + "---:|" * len(chans)]
        for label, r, key in (("ours", o, lambda c: f"{c}_spend"), ("Meridian 2.1", m, lambda c: c)):
            roi = r.get("roi_mean") or {}
            cells = [f"{roi[key(c)]:.2f}" if key(c) in roi else "–" for c in chans]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    if report.get("skipped"):
        lines += [*[f"- skipped {k}: {v}" for k, v in report["skipped"].items()]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    a = parse_args(argv)
    now = dt.datetime.now(dt.UTC)
    git = git_info()
    skipped, mer_python = {}, None
    if "meridian" in a.runs:
        mer_python, why = meridian_interpreter(a)
        if mer_python is None:
            skipped["meridian"] = why
            a.runs = [r for r in a.runs if r != "meridian"]
            log(f"NOTE: {why}")
    if not a.runs:
        log("nothing left to run")
        return 1
    opts = SimpleNamespace(timeout=a.timeout, show_worker_output=a.show_worker_output)
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench_meridian_") as tmp_s:
        tmp = Path(tmp_s)
        ours_env = dict(_CLEAN_ENV, MMM_JAX_CACHE_DIR=str(tmp / "xla") if a.xla_cache == "warm" else "0")
        mer_env = dict(_CLEAN_ENV, MERIDIAN_BACKEND="jax")
        for name in a.datasets:
            csv, roles = dataset_csv(name, a, tmp)
            log(f"{name}: {roles['geos']} geos x {roles['weeks']} weeks x {len(roles['channels'])} channels")
            if a.xla_cache == "warm" and "ours-converged" in a.runs:
                log("priming the compilation cache (uncounted) ...")
                run_one("prime", [a.ours_python, HERE / "_hier_worker.py"], spec_for("ours-converged", csv, roles, a),
                        opts, tmp, ours_env)
            for run in a.runs:
                python, worker, env = ((mer_python, HERE / "_meridian_worker.py", mer_env) if run == "meridian"
                                       else (a.ours_python, HERE / "_hier_worker.py", ours_env))
                log(f"{name}: {run} ...")
                res = run_one(run, [python, worker], spec_for(run, csv, roles, a), opts, tmp, env)
                results[f"{name}/{run}"] = res
                if res.get("status") == "ok":
                    log(f"    wall {res['wall_s']:.1f} s, min bulk ESS {res['min_ess_bulk']:.0f}, R-hat "
                           f"{res['max_rhat']:.4f}, div {res['divergences']}, ROI {res.get('roi_mean')}, other CPU "
                           f"{(res.get('other_cpu_share') or 0):.1%}")
                else:
                    log(f"    {res.get('status')}: {res.get('error')}\n{res.get('traceback', '')[-2000:]}")
    ratios = time_ratios(results, a.datasets)

    def first(prefix):
        return next((r["versions"] for k, r in results.items() if k.split("/")[1].startswith(prefix)
                     and "versions" in r), {})

    meridian_versions = first("meridian")
    report = {
        "benchmark": "bench_meridian",
        "created_utc": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": {k: getattr(a, k) for k in ("datasets", "drivers", "runs", "seed", "ours_chains", "ours_warmup",
                                              "ours_draws", "ours_target_accept", "meridian_chains", "meridian_adapt",
                                              "meridian_burnin", "meridian_keep", "meridian_unrolled", "xla_cache")},
        "machine": machine_info(),
        "git": git,
        "ours_versions": first("ours"),
        "meridian_versions": meridian_versions,
        "parent_versions": versions(),
        "skipped": skipped,
        "results": results,
        "ratios": ratios,
    }
    write_report(report, markdown, a.out, "bench_meridian", now)
    return 0 if all(r.get("status") == "ok" for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
