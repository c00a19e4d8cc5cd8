#!/usr/bin/env python
"""Sampler benchmark suite: every sampler x a grid of problem sizes, plus speed options.

Each configuration runs in its **own fresh interpreter** with a time limit, one after
another (``bench_single.run_one``), on data from ``mmm_jax.datasets.simulate(T, C, seed)``.

Samplers
--------
numpyro, blackjax   ours: NUTS with window adaptation (``MMM.fit(sampler=...)``)
chees, meads        ours: BlackJAX many-chain adaptation (meads only with >= 16 chains)
pymc-default        ``pm.sample`` (PyMC's NUTS) on the very ``pm.Model`` that ``MMM.build`` makes
nutpie              nutpie (JAX backend) on the same ``pm.Model``; skipped when not installed
pmm-numpyro         PyMC-Marketing's MMM with ``nuts_sampler="numpyro"`` (needs ``--pmm-python``)

Grid: weeks x channels x chains x HSGP. Speed options (one cell, numpyro unless said):
float32 vs float64, XLA persistent compilation cache cold vs warm, dense vs diagonal mass
matrix, chains vectorised vs parallel.

Default grid (fits a 2-core CPU in < 20 minutes)::

    python benchmarks/bench_suite.py --pmm-python PATH/TO/pmm-venv/bin/python

Full grid (hours on CPU; the GPU script uses a variant of it)::

    python benchmarks/bench_suite.py --full --pmm-python ...

Output in ``--out`` (default ``benchmarks/results/``): ``bench_suite[_TAG]_<UTC>.json``,
``bench_suite[_TAG]_latest.{json,md,png}``.
"""

from __future__ import annotations

import os

_CLEAN_ENV = dict(os.environ)  # before mmm_jax (imported for the data) touches XLA_FLAGS

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bench_single as bs  # noqa: E402
from _bench_common import versions  # noqa: E402

OURS = ("numpyro", "blackjax", "chees", "meads")
ALL_SAMPLERS = (*OURS, "pymc-default", "nutpie", "pmm-numpyro")
REFERENCES = ("pymc-default", "pmm-numpyro")
DEFAULTS = {
    "samplers": "numpyro,blackjax,chees,meads,pymc-default,nutpie,pmm-numpyro",
    "weeks": "104,156",
    "channels": "3,10",
    "chains": "4",
    "hsgp": "off",
    "warmup": 300,
    "draws": 300,
}
DEFAULT_BUDGET_S = 19 * 60  # the default grid must finish within 20 minutes on a 2-core CPU
FULL = {"weeks": "104,156,520", "channels": "3,10,30", "chains": "4,64", "hsgp": "off,on"}
SPEED_OPTIONS = ("float32", "cache", "dense", "vectorized")
F32_AGREE_Z = 4.0  # |mean32 - mean64| / combined MCSE below this for every free scalar = "agree"


# --------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    """The suite's options (also used by ``mmm-jax bench``)."""
    p.add_argument("--samplers", default=DEFAULTS["samplers"],
                   help=f"comma list from {', '.join(ALL_SAMPLERS)} (default: %(default)s; missing ones are skipped "
                        "with a note)")
    p.add_argument("--weeks", default=DEFAULTS["weeks"], help="comma list of T (default %(default)s)")
    p.add_argument("--channels", default=DEFAULTS["channels"], help="comma list of C (default %(default)s)")
    p.add_argument("--chains", default=DEFAULTS["chains"], help="comma list of chain counts (default %(default)s)")
    p.add_argument("--hsgp", default=DEFAULTS["hsgp"], help="comma list of off,on (default %(default)s)")
    p.add_argument("--full", action="store_true",
                   help="the full grid: weeks 104,156,520 x channels 3,10,30 x chains 4,64 x hsgp off,on")
    p.add_argument("--warmup", type=int, default=DEFAULTS["warmup"])
    p.add_argument("--draws", type=int, default=DEFAULTS["draws"])
    p.add_argument("--target-accept", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--speed-options", default=",".join(SPEED_OPTIONS),
                   help=f"comma list from {', '.join(SPEED_OPTIONS)}, or 'none' (default: all)")
    p.add_argument("--speed-cell", default=None, metavar="T,C",
                   help="grid cell for the speed options (default: largest default weeks, smallest channels)")
    p.add_argument("--speed-sampler", default="numpyro", choices=("numpyro", "blackjax", "chees"),
                   help="sampler of the speed-option rows (default numpyro)")
    p.add_argument("--pmm-python", default=None, help="interpreter with pymc-marketing + numpyro for pmm-numpyro")
    p.add_argument("--setup-pmm-venv", action="store_true", help="create benchmarks/.venv-pmm and use it")
    p.add_argument("--pmm-controls-as-given", action="store_true",
                   help="give PyMC-Marketing the controls unscaled (its documented usage); by default they are "
                        "standardised like ours, so both fit the same geometry")
    p.add_argument("--timeout", type=float, default=600, help="seconds per run (default %(default)s)")
    p.add_argument("--budget", type=float, default=None,
                   help="stop starting new runs after this many seconds (the rest are recorded as skipped); "
                        f"default {DEFAULT_BUDGET_S} s for the default grid, none with --full; 0 = no limit")
    p.add_argument("--out", default=None, help="output directory (default benchmarks/results/)")
    p.add_argument("--tag", default="", help="name part of the output files, e.g. gpu-h100")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--show-worker-output", action="store_true")


def _ints(text: str, name: str) -> list[int]:
    try:
        vals = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError as err:
        raise SystemExit(f"bench_suite: --{name} must be a comma list of integers, got {text!r}") from err
    if not vals or min(vals) < 1:
        raise SystemExit(f"bench_suite: --{name} needs positive integers, got {text!r}")
    return vals


def finish_args(a: argparse.Namespace) -> argparse.Namespace:
    """Parse the comma lists; apply --full."""
    if a.full:
        for k, v in FULL.items():
            if getattr(a, k) == DEFAULTS[k]:
                setattr(a, k, v)
    if a.budget is None:
        a.budget = None if a.full else DEFAULT_BUDGET_S
    elif a.budget <= 0:
        a.budget = None
    a.samplers = [s.strip() for s in a.samplers.split(",") if s.strip()]
    bad = [s for s in a.samplers if s not in ALL_SAMPLERS]
    if bad:
        raise SystemExit(f"bench_suite: unknown samplers {bad}; choose from {list(ALL_SAMPLERS)}")
    a.weeks, a.channels, a.chains = _ints(a.weeks, "weeks"), _ints(a.channels, "channels"), _ints(a.chains, "chains")
    a.hsgp = [h.strip() for h in str(a.hsgp).split(",") if h.strip()]
    if not set(a.hsgp) <= {"off", "on"}:
        raise SystemExit(f"bench_suite: --hsgp takes off,on; got {a.hsgp}")
    so = str(a.speed_options).strip()
    a.speed_options = [] if so in ("", "none") else [s.strip() for s in so.split(",") if s.strip()]
    if not set(a.speed_options) <= set(SPEED_OPTIONS):
        raise SystemExit(f"bench_suite: --speed-options from {SPEED_OPTIONS} or none; got {a.speed_options}")
    if a.speed_cell:
        t, c = _ints(a.speed_cell, "speed-cell")
        a.speed_cell = (t, c)
    else:
        a.speed_cell = (max(a.weeks), min(a.channels))
    if a.warmup < 0 or a.draws < 1 or not 0 < a.target_accept < 1:
        raise SystemExit("bench_suite: need --warmup >= 0, --draws >= 1, 0 < --target-accept < 1")
    return a


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench_suite.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return finish_args(p.parse_args(argv))


# --------------------------------------------------------------------------- availability
def hsgp_available() -> tuple[bool, str]:
    """Whether ``ModelConfig`` has the HSGP options the suite switches on (``hsgp=on``:
    ``time_varying_intercept=True, time_varying_media=True``; PMM gets its flags of the same names)."""
    import dataclasses

    from mmm_jax.config.model import ModelConfig

    if {"time_varying_intercept", "time_varying_media"} <= {f.name for f in dataclasses.fields(ModelConfig)}:
        return True, ""
    return False, ("not available: mmm_jax.config.model.ModelConfig has no time_varying_intercept / time_varying_media "
                   "(HSGP) options in this checkout")


def nutpie_available() -> tuple[bool, str]:
    import importlib.util

    if importlib.util.find_spec("nutpie") is None:
        return False, "not installed (optional: `pip install nutpie`; runs with its JAX backend)"
    return True, ""


def device_name() -> str:
    """GPU name(s) from nvidia-smi, else the CPU model."""
    try:
        r = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                           text=True, timeout=20)
        names = [x.strip() for x in r.stdout.splitlines() if x.strip()]
        if r.returncode == 0 and names:
            return f"{len(names)} x {names[0]}"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"CPU: {line.split(':', 1)[1].strip()} ({os.cpu_count()} logical cores)"
    except OSError:
        pass
    return f"CPU: {platform.processor() or platform.machine()} ({os.cpu_count()} logical cores)"


# --------------------------------------------------------------------------- plan
def cell_key(weeks, channels, chains, hsgp) -> str:
    return f"T{weeks}_C{channels}_ch{chains}_{hsgp}"


def plan_runs(a, skipped_samplers: dict, hsgp_ok: bool, hsgp_why: str = "not available") -> tuple[list[dict], dict]:
    """Runs in order: the grid, then the speed options. Returns (runs, skipped {id: why})."""
    runs, skipped = [], {}
    for t in a.weeks:
        for c in a.channels:
            for chains in a.chains:
                for h in a.hsgp:
                    cell = {"weeks": t, "channels": c, "chains": chains, "hsgp": h}
                    for s in a.samplers:
                        rid = f"{cell_key(t, c, chains, h)}/{s}"
                        if h == "on" and not hsgp_ok:
                            skipped[rid] = "HSGP " + hsgp_why
                        elif s in skipped_samplers:
                            skipped[rid] = skipped_samplers[s]
                        elif s == "meads" and (chains < 16 or chains % 4):
                            skipped[rid] = "meads needs >= 16 chains (a multiple of 4)"
                        else:
                            runs.append({"id": rid, "cell": cell, "sampler": s, "variant": "default"})
    if a.speed_options:
        t, c = a.speed_cell
        chains, s = min(a.chains), a.speed_sampler
        cell = {"weeks": t, "channels": c, "chains": chains, "hsgp": "off"}
        base = f"{cell_key(t, c, chains, 'off')}/{s}"
        variants = []
        if "float32" in a.speed_options:
            variants.append(("float32", {"env": {"MMM_JAX_X64": "0"}}))
        if "cache" in a.speed_options:
            variants += [("cache-cold", {"cache": True}), ("cache-warm", {"cache": True})]
        if "dense" in a.speed_options:
            if s == "chees":
                skipped[f"{base}+dense"] = "chees adapts a diagonal mass matrix only"
            else:
                variants.append(("dense", {"dense_mass": True}))
        if "vectorized" in a.speed_options:
            variants.append(("vectorized", {"chain_method": "vectorized"}))
            if s == "chees":  # chees is vectorised by default: compare with the sharded layout
                variants[-1] = ("parallel", {"chain_method": "parallel"})
        extra = [{"id": f"{base}+{name}", "cell": cell, "sampler": s, "variant": name, **opts}
                 for name, opts in variants]
        if not any(r["id"] == base for r in runs):
            extra.insert(0, {"id": base, "cell": cell, "sampler": s, "variant": "default"})
        # right after the speed cell's grid runs, so a --budget cut drops the larger cells first
        prefix = cell_key(**cell) + "/"
        at = max((i + 1 for i, r in enumerate(runs) if r["id"].startswith(prefix)), default=len(runs))
        runs[at:at] = extra
    return runs, skipped


# --------------------------------------------------------------------------- run
def run_all(a, runs: list[dict], tmp: Path, pmm_python: str | None, t_start: float) -> tuple[dict, dict]:
    data_cache: dict[tuple, dict] = {}
    cache_dir = tmp / "xla-cache"
    results, skipped = {}, {}
    opts = SimpleNamespace(timeout=a.timeout, show_worker_output=a.show_worker_output)
    for i, r in enumerate(runs, 1):
        if a.budget is not None and time.perf_counter() - t_start > a.budget:
            skipped[r["id"]] = f"time budget --budget {a.budget:g} s used up"
            continue
        cell = r["cell"]
        key = (cell["weeks"], cell["channels"])
        if key not in data_cache:
            d = tmp / f"data_T{key[0]}_C{key[1]}"
            d.mkdir(exist_ok=True)
            data_cache[key] = bs.make_data(SimpleNamespace(weeks=key[0], channels=key[1], seed=a.seed), d)
        spec = {
            **data_cache[key],
            "run": r["sampler"] if r["sampler"] == "pmm-numpyro" else f"suite-{r['sampler']}",
            "sampler": r["sampler"],
            "chains": cell["chains"],
            "warmup": a.warmup,
            "draws": a.draws,
            "target_accept": a.target_accept,
            "seed": a.seed,
            "progress": a.progress,
            "hsgp": cell["hsgp"] == "on",
            "chain_method": r.get("chain_method", "auto"),
            "dense_mass": bool(r.get("dense_mass", False)),
            "pmm_standardize_controls": not a.pmm_controls_as_given,
        }
        env = dict(_CLEAN_ENV)
        env.update(r.get("env", {}))
        # every other run compiles from scratch: the cache (on by default) is off for it
        env["MMM_JAX_CACHE_DIR"] = str(cache_dir) if r.get("cache") else "0"
        if r["sampler"] == "pmm-numpyro":
            python, worker = pmm_python, HERE / "_pmm_worker.py"
        else:
            python, worker = sys.executable, HERE / "_suite_worker.py"
        bs.log(f"[{i}/{len(runs)}] {r['id']} ({time.perf_counter() - t_start:.0f} s elapsed) ...")
        res = bs.run_one(r["id"].replace("/", "__"), python, worker, spec, opts, tmp, env)
        res.update(id=r["id"], cell=cell, sampler=r["sampler"], variant=r["variant"])
        derive_metrics(res)
        results[r["id"]] = res
        if res.get("status") == "ok":
            bs.log(f"    wall {res['wall_s']:.1f} s, min ESS {res['min_ess_bulk']:.0f}, ESS/s {res['ess_per_s']:.2f}, "
                   f"R-hat {res['max_rhat']:.3f}, div {res['divergences']} (subprocess {res['elapsed_s']:.1f} s)")
        else:
            bs.log(f"    {res.get('status')}: {res.get('error')}")
    return results, skipped


def derive_metrics(res: dict) -> None:
    """ESS/s, ESS per gradient, peak memory from the worker's raw numbers."""
    if res.get("status") != "ok":
        return
    res["ess_per_s"] = res["min_ess_bulk"] / res["wall_s"] if res.get("wall_s") else None
    steps = res.get("total_leapfrog_steps")
    res["ess_per_grad"] = res["min_ess_bulk"] / steps if steps else None
    rss = res.get("peak_rss_mb") or {}
    res["peak_mem_mb"] = max([v for v in rss.values() if v is not None], default=None)
    if res.get("sampler") == "pmm-numpyro":
        b = res.get("breakdown_s", {})
        res.setdefault("build_s", b.get("build"))
        res.setdefault("compile_s", None)  # inside numpyro's MCMC.run, not separable from outside
        res.setdefault("run_s", b.get("jit_warmup_sampling"))


# --------------------------------------------------------------------------- analysis
def ratios(results: dict) -> dict:
    """Per cell: ESS/s of each of our samplers / ESS/s of each reference (same cell, same run)."""
    out = {}
    cells = {}
    for r in results.values():
        if r.get("status") == "ok" and r["variant"] == "default":
            cells.setdefault(cell_key(**r["cell"]), {})[r["sampler"]] = r
    for ck, by in cells.items():
        for s, r in by.items():
            if s in REFERENCES:
                continue
            for ref in REFERENCES:
                if ref in by and by[ref].get("ess_per_s") and r.get("ess_per_s"):
                    out.setdefault(ck, {}).setdefault(s, {})[ref] = r["ess_per_s"] / by[ref]["ess_per_s"]
    return out


def speed_comparisons(results: dict, a) -> dict:
    """Speed-option rows against their baseline run."""
    if not a.speed_options:
        return {}
    t, c = a.speed_cell
    base_id = f"{cell_key(t, c, min(a.chains), 'off')}/{a.speed_sampler}"
    base = results.get(base_id, {})
    out = {"baseline": base_id}
    if base.get("status") != "ok":
        out["note"] = "baseline run missing or failed"
        return out
    for rid, r in results.items():
        if not rid.startswith(base_id + "+") or r.get("status") != "ok":
            continue
        v = r["variant"]
        row = {
            "wall_ratio": r["wall_s"] / base["wall_s"],
            "ess_per_s_ratio": (r["ess_per_s"] or 0) / base["ess_per_s"] if base.get("ess_per_s") else None,
            "compile_s": r.get("compile_s"),
            "baseline_compile_s": base.get("compile_s"),
        }
        if v == "float32":
            row.update(posterior_agreement(base.get("posterior"), r.get("posterior")))
        out[v] = row
    return out


def posterior_agreement(p64: dict | None, p32: dict | None) -> dict:
    """Largest |mean32 - mean64| in units of the combined Monte Carlo standard error and of the sd."""
    if not p64 or not p32:
        return {"agree": None}
    z_max, d_sd_max, worst = 0.0, 0.0, None
    for v, m in p64.items():
        if v not in p32:
            continue
        for i, (a_, b_) in enumerate(zip(m["mean"], p32[v]["mean"])):
            sd = m["sd"][i]
            mcse2 = (sd**2) / max(m["ess_bulk"][i], 1.0) + (p32[v]["sd"][i] ** 2) / max(p32[v]["ess_bulk"][i], 1.0)
            z = abs(a_ - b_) / math.sqrt(mcse2) if mcse2 > 0 else 0.0
            if z > z_max:
                z_max, worst = z, f"{v}[{i}]"
            if sd > 0:
                d_sd_max = max(d_sd_max, abs(a_ - b_) / sd)
    return {"max_z": z_max, "max_z_param": worst, "max_diff_in_sd": d_sd_max, "agree": z_max < F32_AGREE_Z}


# --------------------------------------------------------------------------- report
def _f(x, nd=1):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:,.{nd}f}"


def markdown(rep: dict) -> str:
    cfg, results = rep["config"], rep["runs"]
    rat = rep["ratios"]
    lines = [
        f"**bench_suite** — {rep['device']}; {cfg['warmup']} warm-up + {cfg['draws']} draws per chain; "
        f"target_accept {cfg['target_accept']}; seed {cfg['seed']}; PMM controls "
        f"{'as given' if cfg['pmm_controls_as_given'] else 'standardised (like ours)'}; {rep['created_utc']}",
        "",
        "ESS = min bulk ESS over all free parameters; ESS/s = that ÷ wall s (data frame → posterior, "
        "compile included); ESS/grad = that ÷ leapfrog steps of the sampling phase (all chains); "
        "× pymc / × pmm = ESS/s ratio against pymc-default / pmm-numpyro in the same cell.",
        "",
    ]
    head = ["cell (T×C, chains, hsgp)", "sampler", "wall s", "compile s", "warm-up s", "sampling s", "min ESS",
            "median ESS", "ESS/s", "ESS/1k grad", "max R-hat", "div", "peak MB", "× pymc", "× pmm"]
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join(["---", "---"] + ["---:"] * (len(head) - 2)) + "|"]
    for rid, r in results.items():
        if r.get("variant") != "default":
            continue
        cell = r["cell"]
        ck = cell_key(**cell)
        label = f"{cell['weeks']}×{cell['channels']}, {cell['chains']}, {cell['hsgp']}"
        if r.get("status") != "ok":
            why = (r.get("error") or "").replace("|", "/").splitlines()[:1]
            lines.append(f"| {label} | {r['sampler']} | {r.get('status')}: {why[0][:80] if why else ''} |"
                         + " |" * (len(head) - 3))
            continue
        rr = rat.get(ck, {}).get(r["sampler"], {})
        epg = r.get("ess_per_grad")
        row = [label, r["sampler"], _f(r["wall_s"]), _f(r.get("compile_s")), _f(r.get("warmup_s")),
               _f(r.get("sampling_s")), _f(r["min_ess_bulk"], 0), _f(r.get("median_ess_bulk"), 0),
               _f(r["ess_per_s"], 2), _f(epg * 1000 if epg else None, 2), _f(r["max_rhat"], 3),
               str(r.get("divergences")), _f(r.get("peak_mem_mb"), 0),
               _f(rr.get("pymc-default"), 2) + ("×" if "pymc-default" in rr else ""),
               _f(rr.get("pmm-numpyro"), 2) + ("×" if "pmm-numpyro" in rr else "")]
        lines.append("| " + " | ".join(row) + " |")
    sp = rep.get("speed", {})
    if sp:
        lines += ["", f"Speed options (baseline `{sp.get('baseline')}`: float64, no persistent cache, diagonal mass "
                      f"matrix, default chain layout):", ""]
        lines += ["| option | wall s | compile s | ESS/s | ESS/s ÷ baseline | note |", "|---|---:|---:|---:|---:|---|"]
        base = results.get(sp.get("baseline"), {})
        if base.get("status") == "ok":
            lines.append(f"| baseline | {_f(base['wall_s'])} | {_f(base.get('compile_s'))} | "
                         f"{_f(base['ess_per_s'], 2)} | 1.00 | |")
        for rid, r in results.items():
            if r.get("variant") in (None, "default") or not rid.startswith(str(sp.get("baseline")) + "+"):
                continue
            if r.get("status") != "ok":
                lines.append(f"| {r['variant']} | {r.get('status')} | | | | {(r.get('error') or '')[:80]} |")
                continue
            row = sp.get(r["variant"], {})
            note = ""
            if r["variant"] == "float32":
                if row.get("agree") is None:
                    note = "no posterior to compare"
                else:
                    note = (f"posterior means {'agree' if row['agree'] else 'DIFFER'}: max |Δmean| = "
                            f"{row['max_z']:.1f} MCSE ({row['max_diff_in_sd']:.2f} sd) at {row['max_z_param']}")
            if r["variant"].startswith("cache"):
                cd = r.get("compile_detail") or {}
                note = (f"XLA compile {_f(cd.get('backend_compile_s'), 2)} s; cache loads "
                        f"{_f(cd.get('cache_retrieval_s'), 2)} s")
            lines.append(f"| {r['variant']} | {_f(r['wall_s'])} | {_f(r.get('compile_s'))} | "
                         f"{_f(r['ess_per_s'], 2)} | {_f(row.get('ess_per_s_ratio'), 2)} | {note} |")
    noisy = {k: v["other_cpu_share"] for k, v in results.items() if (v.get("other_cpu_share") or 0) > 0.05}
    if noisy:
        lines += ["", f"**Other processes used more than 5 % of the machine during {len(noisy)} of {len(results)} "
                      f"runs (worst {max(noisy.values()):.0%}); those timings are pessimistic.**"]
    if rep.get("skipped"):
        lines += ["", "Skipped:", ""] + [f"- `{k}`: {v}" for k, v in rep["skipped"].items()]
    return "\n".join(lines) + "\n"


def plot(rep: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    series: dict[tuple, list] = {}
    for r in rep["runs"].values():
        if r.get("status") != "ok" or r.get("variant") != "default":
            continue
        c = r["cell"]
        series.setdefault((r["sampler"], c["chains"], c["hsgp"]), []).append(
            (c["weeks"] * c["channels"], f"{c['weeks']}×{c['channels']}", r["ess_per_s"], r.get("ess_per_grad")))
    if not series:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for (s, chains, h), pts in sorted(series.items()):
        pts.sort()
        x = [p[0] for p in pts]
        lab = f"{s} ({chains} ch{', hsgp' if h == 'on' else ''})"
        axes[0].plot(x, [p[2] for p in pts], "o-", label=lab)
        axes[1].plot(x, [(p[3] or float("nan")) * 1000 for p in pts], "o-", label=lab)
    for ax, yl in zip(axes, ("min bulk ESS per second (wall, compile included)", "min bulk ESS per 1,000 gradients")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("problem size: weeks × channels")
        ax.set_ylabel(yl)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"bench_suite — {rep['device']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------- main
def run_suite(a: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, bs._raise_on_sigterm)
    t_start = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    git = bs.git_info()
    out_dir = Path(a.out) if a.out else HERE / "results"
    out_dir.mkdir(parents=True, exist_ok=True)

    skipped_samplers = {}
    ok, why = nutpie_available()
    if not ok:
        skipped_samplers["nutpie"] = why
    pmm_python = None
    if "pmm-numpyro" in a.samplers:
        pmm_python, why = bs.resolve_pmm_python(SimpleNamespace(pmm_python=a.pmm_python,
                                                                setup_pmm_venv=a.setup_pmm_venv))
        if pmm_python is None:
            skipped_samplers["pmm-numpyro"] = why
    hsgp_ok, hsgp_why = hsgp_available()
    runs, skipped = plan_runs(a, skipped_samplers, hsgp_ok, hsgp_why)
    for s, why in skipped_samplers.items():
        if s in a.samplers:
            bs.log(f"NOTE: skipping {s}: {why}")
    if "on" in a.hsgp and not hsgp_ok:
        bs.log(f"NOTE: HSGP axis {hsgp_why}")
    bs.log(f"{len(runs)} runs planned, {len(skipped)} skipped")

    with tempfile.TemporaryDirectory(prefix="bench_suite_") as tmp_s:
        results, late = run_all(a, runs, Path(tmp_s), pmm_python, t_start)
    skipped.update(late)
    cfg = {k: v for k, v in vars(a).items() if k not in ("func", "command", "bench_suite")}
    cfg["speed_cell"] = list(a.speed_cell)
    rep = {
        "benchmark": "bench_suite",
        "created_utc": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "device": device_name(),
        "config": cfg,
        "data": {"generator": "mmm_jax.datasets.simulate(T, C, seed)", "model": {
            "adstock": "geometric", "l_max": 8, "saturation": "logistic", "yearly_seasonality": 2,
            "trend": "linear"}},
        "machine": bs.machine_info(),
        "parent_versions": versions(),
        "git": git,
        "pmm_python": pmm_python,
        "skipped": skipped,
        "runs": results,
        "total_s": time.perf_counter() - t_start,
    }
    rep["ratios"] = ratios(results)
    rep["speed"] = speed_comparisons(results, a)
    rep = bs._finite(rep)
    md = markdown(rep) + f"\nTotal suite time {rep['total_s'] / 60:.1f} min.\n"
    stem = "bench_suite" + (f"_{a.tag}" if a.tag else "")
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(bs._redact_paths(rep), indent=2, default=str, allow_nan=False)
    (out_dir / f"{stem}_{stamp}.json").write_text(text)
    (out_dir / f"{stem}_latest.json").write_text(text)
    (out_dir / f"{stem}_latest.md").write_text(md)
    if not a.no_plot and plot(rep, out_dir / f"{stem}_latest.png"):
        bs.log(f"wrote {out_dir / f'{stem}_latest.png'}")
    print(md)
    bs.log(f"wrote {out_dir / f'{stem}_{stamp}.json'} (+ {stem}_latest.json/.md); {rep['total_s'] / 60:.1f} min")
    return 0 if results and all(r.get("status") == "ok" for r in results.values()) else 1


def main(argv=None) -> int:
    return run_suite(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
