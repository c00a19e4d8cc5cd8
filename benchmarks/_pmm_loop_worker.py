"""Benchmark worker: a Python loop of PyMC-Marketing fits (numpyro sampler), one per brand,
in ONE interpreter (as a user's loop would run). Runs in the PyMC-Marketing interpreter.

Each brand is fitted with :func:`_pmm_worker.run_pmm` (same model and settings as the
single-brand benchmark). Prints one ``@@BENCH_RESULT@@ {...}`` line.
"""

from __future__ import annotations

import time
from pathlib import Path

from _bench_common import run_main
from _pmm_worker import run_pmm


def run_loop(spec: dict) -> dict:
    import numpy as np

    files = sorted(Path(spec["data_dir"]).glob("*.csv"))[: spec["brands"]]
    t0 = time.perf_counter()
    rows = []
    for p in files:
        one = {**spec, "run": "pmm-numpyro", "data_csv": str(p), "truth_json": str(p.with_suffix(".json"))}
        tb = time.perf_counter()
        r = run_pmm(one)
        rows.append({"min_ess_bulk": r["min_ess_bulk"], "max_rhat": r["max_rhat"],
                     "divergences": r["divergences"], "wall_s": time.perf_counter() - tb})
    wall = time.perf_counter() - t0
    ess_s = np.asarray([r["min_ess_bulk"] for r in rows]) / (wall / len(rows))
    return {
        "wall_s": wall,
        "brands": len(rows),
        "fitted": len(rows),
        "brands_per_min": 60.0 * len(rows) / wall,
        "min_ess_per_s_per_brand": float(ess_s.min()),
        "median_ess_per_s_per_brand": float(np.median(ess_s)),
        "median_min_ess_bulk": float(np.median([r["min_ess_bulk"] for r in rows])),
        "min_ess_bulk": float(min(r["min_ess_bulk"] for r in rows)),
        "share_rhat_ok": float(np.mean([r["max_rhat"] < 1.01 for r in rows])),
        "max_rhat": float(max(r["max_rhat"] for r in rows)),
        "divergences": int(sum(r["divergences"] for r in rows)),
        "first_brand_s": rows[0]["wall_s"],
    }


if __name__ == "__main__":
    run_main(run_loop)
