"""Time-slice CV of the bundled example as one batch vs the same folds as separate fits.

Contenders, each in a fresh interpreter, one at a time (``--repeats`` rounds, order alternated):

* ``batch``: :func:`mmm_jax.validation.time_slice_cv` (4 folds x 13 weeks, every fold a brand of
  one ``fit_many`` job: one compiled program);
* ``separate``: a loop of ``MMM.fit(fold_frame, holdout=13)`` over the same fold frames (what a
  user writes without the batch engine).

Both with 4 chains x (1,000 + 1,000) by default. Printed and written to
``results/bench_cv_<UTC>.json``: wall seconds, the folds' hold-out CRPS and coverage, the CPU
seconds other processes used during each run (machine busy time minus the run's own).

    python benchmarks/bench_cv.py [--folds 4] [--horizon 13] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from mmm_jax.bench.common import RESULT_MARKER, busy_cpu_seconds
from mmm_jax.bench.runner import clean_environ

RESULTS = Path(__file__).parent / "results"

WORKER = r'''
import json, sys, time, resource, warnings
warnings.simplefilter("ignore")
spec = json.loads(sys.argv[1])
t0 = time.perf_counter()
from mmm_jax import MMM, ModelConfig
from mmm_jax.datasets import load_example
from mmm_jax.validation import fold_frames, time_slice_cv
df, _ = load_example()
cfg = ModelConfig(date="date", target="sales", channels=["tv", "search", "social", "display"], controls=["price_index"])
kw = dict(chains=spec["chains"], warmup=spec["warmup"], draws=spec["draws"], seed=0, progress=False)
rows = []
if spec["mode"] == "batch":
    cv = time_slice_cv(df, cfg, folds=spec["folds"], horizon=spec["horizon"], out=spec["out"], **kw)
    rows = cv.metrics.to_dict(orient="records")
else:
    for name, frame in fold_frames(df, "date", spec["folds"], spec["horizon"]).items():
        m = MMM(cfg)
        m.fit(frame, holdout=spec["horizon"], **kw)
        rows.append({"fold": int(name.split("_")[1]), **m.holdout_metrics(), **m.diagnostics()})
ru = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
cpu = sum(r.ru_utime + r.ru_stime for r in ru)
result = {"wall_s": time.perf_counter() - t0, "cpu_s": cpu, "folds": rows}
print("@@BENCH_RESULT@@ " + json.dumps(result, default=float))
'''


def run(mode: str, a, out: Path) -> dict:
    spec = {"mode": mode, "folds": a.folds, "horizon": a.horizon, "chains": a.chains, "warmup": a.warmup,
            "draws": a.draws, "out": str(out)}
    busy0, t0 = busy_cpu_seconds(), time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", WORKER, json.dumps(spec)], capture_output=True, text=True,
                          env=clean_environ())
    wall, busy = time.perf_counter() - t0, busy_cpu_seconds() - busy0
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARKER)), None)
    if line is None:
        raise RuntimeError(f"{mode} failed:\n{proc.stderr[-3000:]}")
    res = json.loads(line[len(RESULT_MARKER):])
    res.update(mode=mode, process_wall_s=wall, other_cpu_s=max(0.0, busy - res["cpu_s"]))
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--horizon", type=int, default=13)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            for mode in (("batch", "separate") if r % 2 == 0 else ("separate", "batch")):
                res = run(mode, a, Path(tmp) / f"{mode}_{r}")
                runs.append(res)
                print(f"round {r} {mode:9s} wall {res['process_wall_s']:7.1f} s  other CPU {res['other_cpu_s']:5.1f} s",
                      flush=True)
    for mode in ("batch", "separate"):
        walls = [x["process_wall_s"] for x in runs if x["mode"] == mode]
        print(f"{mode:9s} median wall {sorted(walls)[len(walls) // 2]:.1f} s over {len(walls)} runs")
    first = next(x for x in runs if x["mode"] == "batch")
    print("\nfolds (batch run):")
    for f in first["folds"]:
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in f.items()})
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"bench_cv_{stamp}.json").write_text(json.dumps({"settings": vars(a), "runs": runs}, indent=2))
    print(f"wrote {RESULTS / f'bench_cv_{stamp}.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
