"""Benchmark worker: a Python loop of PyMC-Marketing fits (numpyro sampler), one per brand,
in ONE interpreter (as a user's loop would run). Runs in the PyMC-Marketing interpreter.

Each brand is fitted with :func:`mmm_jax.bench.pmm_worker.run_pmm` (same model and settings as
the single-brand benchmark), loaded by its path like the module ``common`` next to it: this
interpreter has no mmm_jax. Prints one ``@@BENCH_RESULT@@ {...}`` line.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mmm_jax" / "bench"))  # by path, without mmm_jax

from common import loop_summary, run_main  # noqa: E402
from pmm_worker import run_pmm  # noqa: E402


def run_loop(spec: dict) -> dict:
    files = sorted(Path(spec["data_dir"]).glob("*.csv"))[: spec["brands"]]
    t0 = time.perf_counter()
    rows = []
    for p in files:
        one = {**spec, "run": "pmm-numpyro", "data_csv": str(p), "truth_json": str(p.with_suffix(".json"))}
        tb = time.perf_counter()
        r = run_pmm(one)
        rows.append({"min_ess_bulk": r["min_ess_bulk"], "max_rhat": r["max_rhat"],
                     "divergences": r["divergences"], "wall_s": time.perf_counter() - tb})
    return loop_summary(rows, time.perf_counter() - t0)


if __name__ == "__main__":
    run_main(run_loop)
