#!/usr/bin/env python
"""HSGP model benchmark: our samplers vs PyMC's default NUTS on the same ``pm.Model``.

The model: 156 weeks x 6 channels (``mmm_jax.datasets.simulate_time_varying``: cac0 drifts
per channel), geometric adstock + tanh saturation, trend + yearly seasonality and a
hierarchical time-varying cac0 per channel (global + per-channel HSGP deviations, m = 20) —
168 free scalars, the model that generated the data. ``--intercept-tv`` adds an HSGP baseline
(m = 20; not in the data, and confounded with the global media multiplier). Every run starts a fresh interpreter (imports, graph building and compilation
are counted) and the runs go one after another.

Runs
----
ours-numpyro   ``mmm_jax.MMM(cfg).fit(df, sampler="numpyro")``
ours-blackjax  ``mmm_jax.MMM(cfg).fit(df, sampler="blackjax")``
pymc-default   ``pm.sample`` (PyMC's own NUTS, C backend) on the ``pm.Model`` that ``MMM.build`` creates

ESS/s = min bulk ESS over every element of every free parameter / wall seconds (data frame to
InferenceData). The ratio rows divide our best ESS/s by PyMC's.

Example::

    flock /tmp/mmm_bench.lock python benchmarks/bench_hsgp.py                   # default: 4 x 1000 + 1000
    python benchmarks/bench_hsgp.py --warmup 300 --draws 300 --runs ours-numpyro   # quick

Results: a Markdown table on stdout, ``<out>/bench_hsgp_<UTC timestamp>.json`` and
``<out>/bench_hsgp_latest.{json,md}``.
"""

from __future__ import annotations

import os

# the workers start from the user's environment, not from one that imported mmm_jax
_CLEAN_ENV = dict(os.environ)

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from mmm_jax.bench.common import (  # noqa: E402
    RESULT_MARKER,
    Timer,
    busy_cpu_seconds,
    convergence,
    run_main,
    wrap_timed,
)
from mmm_jax.bench.report import fmt  # noqa: E402

HERE = Path(__file__).resolve().parent

ALL_RUNS = ("ours-numpyro", "ours-blackjax", "pymc-default")
OURS = ("ours-numpyro", "ours-blackjax")


# --------------------------------------------------------------------------- worker (fresh interpreter)
def _config(spec: dict):
    from mmm_jax import HSGPSpec, ModelConfig, Prior, TimeVaryingMedia

    m = int(spec["m"])
    return ModelConfig(
        date="date",
        target="sales",
        channels=tuple(spec["channels"]),
        adstock={"type": "geometric", "l_max": 6},
        saturation="tanh",
        seasonality=1,
        trend=True,
        time_varying_intercept=HSGPSpec(m=m, c=2.0) if spec.get("intercept_tv") else None,
        time_varying_media=TimeVaryingMedia(hsgp=HSGPSpec(m=m, c=2.0), hierarchical=True,
                                            delta_eta_prior=Prior("HalfNormal", sigma=0.3)),
    )


def _load(spec: dict):
    import pandas as pd

    return pd.read_csv(spec["data_csv"], parse_dates=["date"])


def _cac0_corr(est, spec) -> dict:
    import numpy as np

    truth = np.asarray(spec["true_cac0_t"])
    return {c: float(np.corrcoef(est[:, j], truth[:, j])[0, 1]) for j, c in enumerate(spec["channels"])}


def worker_ours(spec: dict) -> dict:
    import jax

    from mmm_jax import MMM

    mmm = MMM(_config(spec))
    mmm.fit(_load(spec), sampler=spec["run"].split("-", 1)[1], chains=spec["chains"], warmup=spec["warmup"],
            draws=spec["draws"], target_accept=spec["target_accept"], seed=spec["seed"], progress=False)
    t = {k: float(v) for k, v in mmm.timings.items()}
    free = [rv.name for rv in mmm.model.free_RVs]
    out = {
        "wall_s": t["wall"],
        "breakdown_s": {"build_compile": t.get("build_compile"), "jit_warmup_sampling": t.get("total"),
                        "postprocess": t.get("postprocess")},
        "jax_device_count": jax.local_device_count(),
        "cac0_t_corr": _cac0_corr(mmm.idata.posterior["cac0_t"].mean(("chain", "draw")).values, spec),
    }
    out.update(convergence(mmm.idata.posterior, mmm.idata.sample_stats, free))
    return out


def worker_pymc(spec: dict) -> dict:
    import pymc as pm

    import mmm_jax.api.mmm as facade
    from mmm_jax import MMM

    timer = Timer()
    # MMM.build also converts the model to JAX, which PyMC's sampler does not need: left out
    wrap_timed(facade, "compile_logdensity", timer, "jax_conversion")
    mmm = MMM(_config(spec))
    df = _load(spec)
    with timer("build"):
        mmm.build(df)
    cores = min(spec["chains"], os.cpu_count() or 1)
    with timer("pm_sample"):
        idata = pm.sample(model=mmm.model, draws=spec["draws"], tune=spec["warmup"], chains=spec["chains"],
                          cores=cores, target_accept=spec["target_accept"], random_seed=spec["seed"],
                          progressbar=False)
    t = timer.times
    sampling = float(idata.posterior.attrs.get("sampling_time", float("nan")))
    build = t["build"] - t.get("jax_conversion", 0.0)
    free = [rv.name for rv in mmm.model.free_RVs]
    out = {
        "wall_s": build + t["pm_sample"],
        "breakdown_s": {"build": build, "compile_init_postprocess": t["pm_sample"] - sampling,
                        "warmup_plus_sampling": sampling, "excluded_jax_conversion": t.get("jax_conversion", 0.0)},
        "cores": cores,
        "cac0_t_corr": _cac0_corr(
            idata.posterior["cac0_t"].transpose("chain", "draw", "date", "channel").mean(("chain", "draw")).values,
            spec),
    }
    out.update(convergence(idata.posterior, idata.sample_stats, free))
    return out


def worker_main(spec: dict) -> dict:
    if spec["run"] in OURS:
        return worker_ours(spec)
    if spec["run"] == "pymc-default":
        return worker_pymc(spec)
    raise ValueError(f"unknown run {spec['run']!r}")


# --------------------------------------------------------------------------- parent
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench_hsgp.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--weeks", type=int, default=156)
    p.add_argument("--channels", type=int, default=6)
    p.add_argument("--m", type=int, default=20, help="HSGP basis size of every HSGP term")
    p.add_argument("--intercept-tv", action="store_true", help="add a time-varying baseline (HSGP, same m)")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--target-accept", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", default=",".join(ALL_RUNS), help=f"comma-separated subset of {','.join(ALL_RUNS)}")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    p.add_argument("--out", default=None, help="output directory (default: benchmarks/results/)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.runs = [r.strip() for r in a.runs.split(",") if r.strip()]
    bad = [r for r in a.runs if r not in ALL_RUNS]
    if bad:
        p.error(f"--runs: unknown {bad}; choose from {list(ALL_RUNS)}")
    return a


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _run(run: str, spec: dict, timeout: float, tmp: Path) -> dict:
    err = tmp / f"{run}.stderr.log"
    busy0 = busy_cpu_seconds()
    t0 = time.perf_counter()
    with open(err, "w") as fh:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=fh, cwd=str(tmp), env=_CLEAN_ENV, text=True,
                                start_new_session=True)
        try:
            stdout, _ = proc.communicate(json.dumps({**spec, "run": run}), timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return {"run": run, "status": "timeout", "elapsed_s": time.perf_counter() - t0}
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    res = None
    for line in stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            res = json.loads(line[len(RESULT_MARKER):])
    if res is None:
        res = {"run": run, "status": "error", "error": f"exit code {proc.returncode}, no result",
               "stderr_tail": err.read_text(errors="replace")[-3000:]}
    res["elapsed_s"] = time.perf_counter() - t0
    busy1 = busy_cpu_seconds()
    if busy0 is not None and busy1 is not None and res.get("cpu_seconds") is not None:
        # CPU time the rest of the machine used meanwhile: more than a few % makes timings suspect
        res["other_cpu_share"] = max(0.0, busy1 - busy0 - res["cpu_seconds"]) / (res["elapsed_s"] * (os.cpu_count() or 1))
    if res.get("status") == "ok":
        res["ess_per_s"] = res["min_ess_bulk"] / res["wall_s"]
    return res


def markdown(report: dict) -> str:
    cfg, runs = report["config"], report["runs"]
    head = ["run", "wall s", "min bulk ESS", "ESS/s", "max R-hat", "divergences", "mean leapfrog steps",
            "free scalars", "min corr(cac0_t)"]
    lines = [
        f"**bench_hsgp** — {cfg['weeks']} weeks × {cfg['channels']} channels, tanh saturation, hierarchical HSGP on "
        f"cac0 (m = {cfg['m']})" + (f" + HSGP baseline (m = {cfg['m']})" if cfg["intercept_tv"] else "")
        + f"; {cfg['chains']} chains × {cfg['warmup']} warmup × {cfg['draws']} draws; target_accept "
        f"{cfg['target_accept']}; seed {cfg['seed']}; {report['machine']['cpu_count']} CPUs; {report['created_utc']}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    for run in cfg["runs"]:
        r = runs.get(run, {})
        if r.get("status") != "ok":
            lines.append(f"| {run} | {r.get('status', 'not run')}: {(r.get('error') or '')[:80]} |"
                         + " |" * (len(head) - 2))
            continue
        corr = min(r["cac0_t_corr"].values()) if r.get("cac0_t_corr") else None
        lines.append("| " + " | ".join([
            run, fmt(r["wall_s"]), fmt(r["min_ess_bulk"], 0), fmt(r["ess_per_s"], 2), fmt(r["max_rhat"], 3),
            str(r["divergences"]), fmt(r.get("mean_n_steps"), 1), str(r.get("n_free_scalars")), fmt(corr, 3),
        ]) + " |")
    for name, q in report["ratios"].items():
        lines.append(f"| **ESS/s ratio {name}** | | | **{q:.1f}×** |" + " |" * (len(head) - 4))
    noisy = {k: v["other_cpu_share"] for k, v in runs.items() if (v.get("other_cpu_share") or 0) > 0.05}
    if noisy:
        lines += ["", "**Warning: other processes used the CPU during " + ", ".join(
            f"{k} ({v:.0%} of the machine)" for k, v in noisy.items()) + "; those timings are suspect.**"]
    lines += ["", "Wall-time breakdown (s):", "", "| run | breakdown | subprocess total |", "|---|---|---:|"]
    for run in cfg["runs"]:
        r = runs.get(run, {})
        if r.get("status") == "ok":
            parts = " · ".join(f"{k} {v:.1f}" for k, v in r["breakdown_s"].items() if v is not None)
            lines.append(f"| {run} | {parts} | {fmt(r.get('elapsed_s'))} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.worker:
        sys.argv = sys.argv[:1]  # run_main reads the spec from stdin
        run_main(worker_main)
        return 0
    from mmm_jax.datasets import simulate_time_varying

    now = dt.datetime.now(dt.UTC)
    out_dir = Path(a.out) if a.out else HERE / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = None
    with tempfile.TemporaryDirectory(prefix="bench_hsgp_") as tmp_s:
        tmp = Path(tmp_s)
        df, truth = simulate_time_varying(a.weeks, a.channels, seed=a.seed)
        df.to_csv(tmp / "data.csv", index=False)
        spec = {"data_csv": str(tmp / "data.csv"), "channels": list(truth.channels), "m": a.m,
                "intercept_tv": a.intercept_tv, "chains": a.chains, "warmup": a.warmup, "draws": a.draws,
                "target_accept": a.target_accept, "seed": a.seed, "true_cac0_t": truth.cac0_t.tolist()}
        runs = {}
        for i, run in enumerate(a.runs, 1):
            _log(f"[{i}/{len(a.runs)}] {run} ...")
            runs[run] = r = _run(run, spec, a.timeout, tmp)
            if r.get("status") == "ok":
                _log(f"    wall {r['wall_s']:.1f} s, min ESS {r['min_ess_bulk']:.0f}, ESS/s {r['ess_per_s']:.2f}, "
                     f"R-hat {r['max_rhat']:.3f}, divergences {r['divergences']}")
            else:
                _log(f"    {r.get('status')}: {r.get('error')}\n{r.get('traceback', '')}{r.get('stderr_tail', '')}")
    ours = {k: runs[k]["ess_per_s"] for k in OURS if runs.get(k, {}).get("status") == "ok"}
    ratios = {}
    if ours and runs.get("pymc-default", {}).get("status") == "ok":
        best = max(ours, key=ours.get)
        for k, v in ours.items():
            ratios[f"{k} ÷ pymc-default"] = v / runs["pymc-default"]["ess_per_s"]
        ratios = {k: ratios[k] for k in sorted(ratios, key=lambda k: k != f"{best} ÷ pymc-default")}
    for r in runs.values():  # results are committed: no machine paths
        r.pop("python_executable", None)
    report = {
        "benchmark": "bench_hsgp",
        "created_utc": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "git_commit": commit,
        "config": {**{k: v for k, v in vars(a).items() if k not in ("out", "worker")}},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "runs": runs,
        "ratios": ratios,
    }
    md = markdown(report)
    print(md)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(report, indent=2, default=str)
    (out_dir / f"bench_hsgp_{stamp}.json").write_text(text)
    (out_dir / "bench_hsgp_latest.json").write_text(text)
    (out_dir / "bench_hsgp_latest.md").write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
