"""The sampler benchmark suite (``mmm-jax bench``): every sampler x a grid of problem sizes, plus
speed options.

Each configuration runs in its **own fresh interpreter** with a time limit, one after another
(:func:`mmm_jax.bench.runner.run_one`), on data from ``mmm_jax.datasets.simulate(T, C, seed)``.

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

    mmm-jax bench --pmm-python PATH/TO/pmm-venv/bin/python

Full grid (hours on CPU; the GPU script uses a variant of it)::

    mmm-jax bench --full --pmm-python ...

Our runs are ``python -m mmm_jax.bench.worker``; the PyMC-Marketing runs are
``PMM_PYTHON .../mmm_jax/bench/pmm_worker.py`` (that interpreter has no mmm_jax).

Output in ``--out`` (default ``benchmarks/results/`` in a source checkout, else ``./mmm_jax_bench/``):
``bench_suite[_TAG]_<UTC>.json``, ``bench_suite[_TAG]_latest.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from .common import versions
from .data import write_data
from .paths import default_out_dir
from .pmm import PMM_WORKER, resolve_pmm_python
from .report import device_name, finite, git_info, machine_info, redact_paths
from .runner import clean_environ, log, module_command, raise_on_sigterm, run_one
from .suite_report import cell_key, markdown, plot, ratios, speed_comparisons

__all__ = ["add_arguments", "finish_args", "main", "parse_args", "plan_runs", "run_suite"]

OURS = ("numpyro", "blackjax", "chees", "meads")
ALL_SAMPLERS = (*OURS, "pymc-default", "nutpie", "pmm-numpyro")
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
    p.add_argument("--setup-pmm-venv", action="store_true",
                   help="create a virtual environment with pymc-marketing + numpyro and use it (benchmarks/.venv-pmm "
                        "in a source checkout, else ./mmm_jax_bench/.venv-pmm; used without this flag when it exists)")
    p.add_argument("--pmm-controls-as-given", action="store_true",
                   help="give PyMC-Marketing the controls unscaled (its documented usage); by default they are "
                        "standardised like ours, so both fit the same geometry")
    p.add_argument("--timeout", type=float, default=600, help="seconds per run (default %(default)s)")
    p.add_argument("--budget", type=float, default=None,
                   help="stop starting new runs after this many seconds (the rest are recorded as skipped); "
                        f"default {DEFAULT_BUDGET_S} s for the default grid, none with --full; 0 = no limit")
    p.add_argument("--out", default=None,
                   help="output directory (default: benchmarks/results/ when run from a source checkout, else "
                        "./mmm_jax_bench/ in the current directory)")
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


def parse_args(argv=None, prog: str = "bench_suite.py") -> argparse.Namespace:
    """The suite's options from ``argv`` (default ``sys.argv[1:]``), finished (:func:`finish_args`)."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
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
                   "(HSGP) options in this version")


def nutpie_available() -> tuple[bool, str]:
    """Whether nutpie is installed (else the note of its skipped runs)."""
    import importlib.util

    if importlib.util.find_spec("nutpie") is None:
        return False, "not installed (optional: `pip install nutpie`; runs with its JAX backend)"
    return True, ""


# --------------------------------------------------------------------------- plan
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
    """Run the planned runs one after another, each in a fresh process, until ``a.budget`` is used
    up; returns (results by run id, runs skipped for the budget)."""
    clean_env = clean_environ()
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
            data_cache[key] = write_data(key[0], key[1], a.seed, d)
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
        env = dict(clean_env)
        env.update(r.get("env", {}))
        # every other run compiles from scratch: the cache (on by default) is off for it
        env["MMM_JAX_CACHE_DIR"] = str(cache_dir) if r.get("cache") else "0"
        if r["sampler"] == "pmm-numpyro":
            command = [pmm_python, str(PMM_WORKER)]  # by path: that interpreter has no mmm_jax
        else:
            command = module_command("mmm_jax.bench.worker")
        log(f"[{i}/{len(runs)}] {r['id']} ({time.perf_counter() - t_start:.0f} s elapsed) ...")
        res = run_one(r["id"].replace("/", "__"), command, spec, opts, tmp, env)
        res.update(id=r["id"], cell=cell, sampler=r["sampler"], variant=r["variant"])
        derive_metrics(res)
        results[r["id"]] = res
        if res.get("status") == "ok":
            log(f"    wall {res['wall_s']:.1f} s, min ESS {res['min_ess_bulk']:.0f}, ESS/s {res['ess_per_s']:.2f}, "
                   f"R-hat {res['max_rhat']:.3f}, div {res['divergences']} (subprocess {res['elapsed_s']:.1f} s)")
        else:
            log(f"    {res.get('status')}: {res.get('error')}")
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


# --------------------------------------------------------------------------- main
def run_suite(a: argparse.Namespace) -> int:
    """Plan, run and report the suite for finished options (:func:`finish_args`); 0 when every run
    succeeded. Writes ``bench_suite[_TAG]_<UTC>.json`` and ``bench_suite[_TAG]_latest.{json,md,png}``
    into ``a.out`` (default :func:`~mmm_jax.bench.paths.default_out_dir`)."""
    signal.signal(signal.SIGTERM, raise_on_sigterm)
    t_start = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    git = git_info()
    out_dir = Path(a.out) if a.out else default_out_dir()
    out_dir.mkdir(parents=True, exist_ok=True)

    skipped_samplers = {}
    ok, why = nutpie_available()
    if not ok:
        skipped_samplers["nutpie"] = why
    pmm_python = None
    if "pmm-numpyro" in a.samplers:
        pmm_python, why = resolve_pmm_python(a.pmm_python, setup=a.setup_pmm_venv)
        if pmm_python is None:
            skipped_samplers["pmm-numpyro"] = why
    hsgp_ok, hsgp_why = hsgp_available()
    runs, skipped = plan_runs(a, skipped_samplers, hsgp_ok, hsgp_why)
    for s, why in skipped_samplers.items():
        if s in a.samplers:
            log(f"NOTE: skipping {s}: {why}")
    if "on" in a.hsgp and not hsgp_ok:
        log(f"NOTE: HSGP axis {hsgp_why}")
    log(f"{len(runs)} runs planned, {len(skipped)} skipped")

    with tempfile.TemporaryDirectory(prefix="bench_suite_") as tmp_s:
        results, late = run_all(a, runs, Path(tmp_s), pmm_python, t_start)
    skipped.update(late)
    cfg = {k: v for k, v in vars(a).items() if k not in ("func", "command")}
    cfg["speed_cell"] = list(a.speed_cell)
    rep = {
        "benchmark": "bench_suite",
        "created_utc": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "device": device_name(),
        "config": cfg,
        "data": {"generator": "mmm_jax.datasets.simulate(T, C, seed)", "model": {
            "adstock": "geometric", "l_max": 8, "saturation": "logistic", "yearly_seasonality": 2,
            "trend": "linear"}},
        "machine": machine_info(),
        "parent_versions": versions(),
        "git": git,
        "pmm_python": pmm_python,
        "skipped": skipped,
        "runs": results,
        "total_s": time.perf_counter() - t_start,
    }
    rep["ratios"] = ratios(results)
    rep["speed"] = speed_comparisons(results, a)
    rep = finite(rep)
    md = markdown(rep) + f"\nTotal suite time {rep['total_s'] / 60:.1f} min.\n"
    stem = "bench_suite" + (f"_{a.tag}" if a.tag else "")
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(redact_paths(rep), indent=2, default=str, allow_nan=False)
    (out_dir / f"{stem}_{stamp}.json").write_text(text)
    (out_dir / f"{stem}_latest.json").write_text(text)
    (out_dir / f"{stem}_latest.md").write_text(md)
    if not a.no_plot and plot(rep, out_dir / f"{stem}_latest.png"):
        log(f"wrote {out_dir / f'{stem}_latest.png'}")
    print(md)
    log(f"wrote {out_dir / f'{stem}_{stamp}.json'} (+ {stem}_latest.json/.md); {rep['total_s'] / 60:.1f} min")
    return 0 if results and all(r.get("status") == "ok" for r in results.values()) else 1


def main(argv=None, prog: str = "bench_suite.py") -> int:
    """The suite as a program: options from ``argv`` (default ``sys.argv[1:]``), exit status."""
    return run_suite(parse_args(argv, prog=prog))


if __name__ == "__main__":
    sys.exit(main())
