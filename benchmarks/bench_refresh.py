#!/usr/bin/env python
"""Refresh vs cold fit: the same model on the same data extended by new weeks, several seeds.

Per seed: simulate ``--weeks + --new-weeks`` weeks; fit the first ``--weeks`` and save it (not
timed). Then, each in a fresh process, one at a time, order alternating from seed to seed:

cold      ``MMM.fit(all weeks, warmup=--warmup, draws=--draws, until=TARGET)``
refresh   ``load(saved fit).refresh(all weeks, warmup=--refresh-warmup, draws=--draws, until=TARGET)``

Both sample until every free parameter has R-hat <= 1.01 and bulk ESS >= --ess (so they reach
the same ESS); wall = build + sampling + post-processing (``timings["wall"]``; the refresh's
``load`` of the saved fit is reported on its own). Both use the default persistent compilation
cache in a fresh folder primed by one uncounted run of each (as after a user's first fits).

Results: a Markdown table on stdout and ``<out>/bench_refresh_<UTC timestamp>.{json,md}``.
"""

from __future__ import annotations

import os

_CLEAN_ENV = dict(os.environ)

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from mmm_jax.bench.common import RESULT_MARKER, busy_cpu_seconds, versions  # noqa: E402

HERE = Path(__file__).resolve().parent


def config(channels: list[str], controls: list[str]) -> dict:
    return {"date": "date", "target": "sales", "channels": channels, "controls": controls,
            "adstock": {"type": "geometric", "l_max": 8}, "saturation": {"type": "logistic"}, "seasonality": 2}


def worker(spec: dict) -> dict:
    """Runs in a fresh process: one cold fit or one refresh; returns timings and diagnostics."""
    import warnings

    import pandas as pd

    import mmm_jax
    from mmm_jax import MMM

    warnings.simplefilter("ignore")
    df = pd.read_csv(spec["data"], parse_dates=["date"])
    kw = dict(draws=spec["draws"], until={"rhat": 1.01, "ess": spec["ess"]}, progress=False)
    load_s = None
    if spec["mode"] == "cold":
        m = MMM(spec["config"])
        m.fit(df, warmup=spec["warmup"], seed=spec["seed"], **kw)
    else:
        t = time.perf_counter()
        m = mmm_jax.load(spec["saved"])
        load_s = time.perf_counter() - t
        m.refresh(df, warmup=spec["refresh_warmup"], **kw)
    d = m.diagnostics()
    return {"mode": spec["mode"], "wall_s": m.timings["wall"], "timings": m.timings, "load_s": load_s,
            "stopped": m.fit_settings["stopped"], **d, "roas": m.roas()["mean"].to_dict()}


def run(spec: dict, env: dict, tmp: Path) -> dict:
    busy0, t0 = busy_cpu_seconds(), time.perf_counter()
    p = subprocess.run([sys.executable, __file__, "--worker"], input=json.dumps(spec), capture_output=True, text=True,
                       env=env, cwd=tmp)
    elapsed = time.perf_counter() - t0
    line = next((x for x in p.stdout.splitlines() if x.startswith(RESULT_MARKER)), None)
    if line is None:
        return {"mode": spec["mode"], "status": "error", "stderr_tail": p.stderr[-3000:]}
    res = json.loads(line[len(RESULT_MARKER):])
    busy1 = busy_cpu_seconds()
    if busy0 is not None and busy1 is not None:
        res["machine_busy_share"] = (busy1 - busy0) / (elapsed * (os.cpu_count() or 1))
    res["status"], res["elapsed_s"] = "ok", elapsed
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench_refresh.py", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--seeds", default="0,1,2,3")
    p.add_argument("--weeks", type=int, default=156)
    p.add_argument("--new-weeks", type=int, default=4)
    p.add_argument("--channels", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1000, help="cold fit's warm-up")
    p.add_argument("--refresh-warmup", type=int, default=200)
    p.add_argument("--draws", type=int, default=200, help="draws per chain before the first convergence check")
    p.add_argument("--ess", type=float, default=400)
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        spec = json.loads(sys.stdin.read())
        print(RESULT_MARKER + json.dumps(worker(spec), default=str))
        return 0

    import warnings

    from mmm_jax import MMM
    from mmm_jax.datasets import simulate

    seeds = [int(s) for s in a.seeds.split(",")]
    now = dt.datetime.now(dt.UTC)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_refresh_") as tmp_s:
        tmp = Path(tmp_s)
        env = dict(_CLEAN_ENV, MMM_JAX_CACHE_DIR=str(tmp / "xla"))
        specs = {}
        for s in [10_000, *seeds]:  # 10_000: the uncounted run that primes the cache
            df, truth = simulate(a.weeks + a.new_weeks, a.channels, seed=s)
            cfg = config(list(truth.channels), list(truth.controls))
            data = tmp / f"data{s}.csv"
            df.to_csv(data, index=False)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = MMM(cfg)
                m.fit(df.iloc[: a.weeks], seed=s, progress=False)
                m.save(tmp / f"fit{s}")
            base = {"config": cfg, "data": str(data), "saved": str(tmp / f"fit{s}"), "seed": s, "draws": a.draws,
                    "ess": a.ess, "warmup": a.warmup, "refresh_warmup": a.refresh_warmup}
            specs[s] = base
            print(f"seed {s}: first {a.weeks} weeks fitted and saved", file=sys.stderr)
        for mode in ("cold", "refresh"):
            run({**specs[10_000], "mode": mode}, env, tmp)
        for i, s in enumerate(seeds):
            for mode in (("cold", "refresh") if i % 2 == 0 else ("refresh", "cold")):
                r = run({**specs[s], "mode": mode}, env, tmp)
                r["seed"] = s
                rows.append(r)
                if r["status"] == "ok":
                    print(f"seed {s} {mode}: wall {r['wall_s']:.2f} s, ESS {r['min_ess_bulk']:.0f}, R-hat "
                          f"{r['max_rhat']:.4f}, draws {r['stopped']['draws']}, machine busy "
                          f"{r.get('machine_busy_share', 0):.0%}", file=sys.stderr)
                else:
                    print(f"seed {s} {mode}: ERROR {r['stderr_tail']}", file=sys.stderr)
    ok = {(r["seed"], r["mode"]): r for r in rows if r["status"] == "ok"}
    ratios = [ok[(s, "refresh")]["wall_s"] / ok[(s, "cold")]["wall_s"] for s in seeds
              if (s, "refresh") in ok and (s, "cold") in ok]
    lines = [f"**bench_refresh** — {a.weeks} + {a.new_weeks} weeks × {a.channels} channels, 4 chains; cold: warm-up "
             f"{a.warmup}; refresh: warm-up {a.refresh_warmup}; both until R-hat <= 1.01 and bulk ESS >= {a.ess:g} "
             f"(checked from {a.draws} draws); {now:%Y-%m-%dT%H:%M:%SZ}", "",
             "| seed | mode | wall s | draws per chain | min bulk ESS | max R-hat | divergences | stopped by | load s |",
             "|---:|---|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['seed']} | {r['mode']} | error |  |  |  |  |  |  |")
            continue
        lines.append(f"| {r['seed']} | {r['mode']} | {r['wall_s']:.2f} | {r['stopped']['draws']} | "
                     f"{r['min_ess_bulk']:.0f} | {r['max_rhat']:.4f} | {r['divergences']} | {r['stopped']['stopped_by']} "
                     f"| {'' if r['load_s'] is None else format(r['load_s'], '.2f')} |")
    if ratios:
        lines += ["", f"refresh wall / cold wall per seed: {', '.join(f'{x:.0%}' for x in ratios)}; median "
                      f"**{statistics.median(ratios):.0%}**"]
    md = "\n".join(lines) + "\n"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    report = {"benchmark": "bench_refresh", "created_utc": stamp, "args": {k: v for k, v in vars(a).items()
                                                                           if k not in ("worker", "out")},
              "versions": versions(), "rows": rows, "ratios": ratios}
    (out / f"bench_refresh_{stamp}.json").write_text(json.dumps(report, indent=2, default=str))
    (out / f"bench_refresh_{stamp}.md").write_text(md)
    print(md)
    return 0 if len(ratios) == len(seeds) else 1


if __name__ == "__main__":
    sys.exit(main())
