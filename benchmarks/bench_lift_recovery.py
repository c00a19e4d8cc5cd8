"""Lift-test recovery: two collinear channels, fitted with and without one lift test each.

Data: ``simulate(156, 4, seed=s, collinear=("tv", "search"))`` (tv and search spend move
together, correlation 0.94-0.97), the model the data came from (geometric adstock, logistic
saturation, trend, seasonality 2, price control). Per seed, two brands go through ONE batch
(:func:`mmm_jax.batch.fit_many`): ``s<seed>_none`` without experiments and ``s<seed>_lift``
with one lift test per collinear channel — a 6-week test raising the channel's spend by half its
mean weekly spend, measured as the true lift (:func:`mmm_jax.datasets.synthetic.true_lift`) plus
Normal noise with a standard error of 20% of the true lift (``--test-se``), as geo tests report.

Printed and written (``results/lift_recovery_<UTC>.json`` and ``_latest.md``): per seed and
channel the true ROAS, the posterior mean ROAS and its absolute relative error without and with
the tests, 90% HDI coverage, and the misallocation between the two channels (estimated minus true
share of tv in tv + search contribution).

    python benchmarks/bench_lift_recovery.py --seeds 0,1,2,3
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from mmm_jax import ModelConfig
from mmm_jax.batch import fit_many
from mmm_jax.datasets.synthetic import simulate, true_lift
from mmm_jax.posterior.results import package_versions

PAIR = ("tv", "search")
RESULTS = Path(__file__).parent / "results"


def lift_table(df, truth, seed: int, test_se: float) -> pd.DataFrame:
    rng = np.random.default_rng([seed, 2026])
    rows = []
    for ch, start in zip(PAIR, (100, 60), strict=True):
        delta = 0.5 * float(df[ch].mean())
        true = true_lift(truth, df, ch, start, 6, delta)
        sd = test_se * abs(true)
        rows.append({"channel": ch, "start": df.date.iloc[start], "end": df.date.iloc[start + 5],
                     "delta_spend": delta, "delta_response": true + rng.normal(0.0, sd), "sigma": sd,
                     "true_lift": true})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2,3")
    ap.add_argument("--weeks", type=int, default=156)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--test-se", type=float, default=0.2, help="lift-test standard error / true lift")
    a = ap.parse_args(argv)
    seeds = [int(s) for s in a.seeds.split(",")]
    channels = ["tv", "search", "social", "display"]
    cfg = ModelConfig(date="date", target="sales", channels=channels, controls=["price_index"])
    frames, tests, truths, corr = [], [], {}, {}
    for s in seeds:
        df, truth = simulate(a.weeks, 4, seed=s, collinear=PAIR)
        truths[s], corr[s] = truth, float(np.corrcoef(df["tv"], df["search"])[0, 1])
        frames += [df.assign(brand=f"s{s}_none"), df.assign(brand=f"s{s}_lift")]
        tests.append(lift_table(df, truth, s, a.test_se).assign(brand=f"s{s}_lift"))
    lt = pd.concat(tests, ignore_index=True)
    out = Path(tempfile.mkdtemp(prefix="lift_recovery_"))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit_many(pd.concat(frames, ignore_index=True), by="brand", config=cfg, out=out / "batch",
                       lift_tests=lt.drop(columns="true_lift"), chains=a.chains, warmup=a.warmup, draws=a.draws,
                       seed=0, progress=True)
    wall = time.perf_counter() - t0
    man = res.manifest().set_index("brand")
    rows = []
    for s in seeds:
        t = truths[s]
        true_roas = dict(zip(t.channels, t.roas, strict=True))
        true_contrib = dict(zip(t.channels, t.contributions.sum(axis=0), strict=True))
        true_share = true_contrib["tv"] / (true_contrib["tv"] + true_contrib["search"])
        for variant in ("none", "lift"):
            m = res.load(f"s{s}_{variant}")
            roas = m.roas(hdi_prob=0.9)
            tot = m.total_contribution()["mean"]
            share = tot["tv"] / (tot["tv"] + tot["search"])
            for ch in PAIR:
                est = float(roas.loc[ch, "mean"])
                rows.append({"seed": s, "corr": corr[s], "variant": variant, "channel": ch,
                             "true_roas": true_roas[ch], "est_roas": est,
                             "abs_rel_err": abs(est - true_roas[ch]) / true_roas[ch],
                             "covered_90": bool(roas.loc[ch, "hdi_5%"] <= true_roas[ch] <= roas.loc[ch, "hdi_95%"]),
                             "tv_share_err": share - true_share,
                             "max_rhat": float(man.loc[f"s{s}_{variant}", "max_rhat"]),
                             "divergences": int(man.loc[f"s{s}_{variant}", "divergences"])})
    table = pd.DataFrame(rows)
    summary = table.groupby(["variant", "channel"])["abs_rel_err"].agg(["mean", "median", "max"])
    per_seed = table.pivot_table(index=["seed", "channel"], columns="variant", values="abs_rel_err")
    print(table.to_string(index=False, float_format="{:.3f}".format))
    print("\nabsolute relative ROAS error by variant and channel\n", summary.to_string(float_format="{:.3f}".format))
    print(f"\nbatch of {len(frames)} brands: {wall:.1f} s ({60 * len(frames) / wall:.1f} brands/min)")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(exist_ok=True)
    payload = {"settings": vars(a), "rows": rows, "wall_s": wall, "versions": package_versions(),
               "lift_tests": json.loads(lt.to_json(orient="records", date_format="iso"))}
    (RESULTS / f"lift_recovery_{stamp}.json").write_text(json.dumps(payload, indent=2, default=float))
    md = ["# Lift-test recovery (collinear tv / search)", "", f"`python benchmarks/bench_lift_recovery.py "
          f"--seeds {a.seeds}` ({a.chains} x ({a.warmup} + {a.draws}), test SE {a.test_se:.0%} of the true lift, "
          f"{stamp})", "", "| seed | corr | channel | true ROAS | error without tests | error with tests |",
          "|---:|---:|---|---:|---:|---:|"]
    for (s, ch), r in per_seed.iterrows():
        tr = table[(table.seed == s) & (table.channel == ch)].iloc[0]
        md.append(f"| {s} | {tr['corr']:.3f} | {ch} | {tr['true_roas']:.3f} | {r['none']:.1%} | {r['lift']:.1%} |")
    for ch in PAIR:
        none, lift = summary.loc[("none", ch), "mean"], summary.loc[("lift", ch), "mean"]
        md.append(f"| mean | | {ch} | | {none:.1%} | {lift:.1%} |")
    (RESULTS / "lift_recovery_latest.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
