"""benchmarks/bench_peers.py: the summary of seeds and the ratios it reports (no timing here)."""

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_peers  # noqa: E402


def _r(wall, ess, rhat=1.002, div=0):
    return {"status": "ok", "wall_s": wall, "min_ess_bulk": ess, "ess_per_s": ess / wall, "max_rhat": rhat,
            "divergences": div, "other_cpu_share": 0.01}


def test_summary_medians_and_per_seed_ratios():
    a = bench_peers.parse_args(["--seeds", "0,1,2", "--runs", "ours-numpyro,ours-converged,pmm-numpyro,pmm-default"])
    res = {}
    for s, (w_ours, w_pmm) in enumerate([(5.0, 15.0), (6.0, 12.0), (4.0, 16.0)]):
        res[("ours-numpyro", s)] = _r(w_ours, 1500)
        res[("pmm-numpyro", s)] = _r(w_pmm, 1500)
        res[("ours-converged", s)] = _r(w_ours / 2, 450)
        res[("pmm-default", s)] = _r(25.0, 900, rhat=1.02 if s == 2 else 1.003)  # seed 2 not converged
    summ = bench_peers.summarise(res, a)
    assert summ["runs"]["ours-numpyro"]["median_wall_s"] == 5.0
    q = summ["ratios"]["ours-numpyro / pmm-numpyro (ess_per_s)"]
    assert q["per_seed"] == [3.0, 2.0, 4.0] and q["median"] == 3.0
    conv = summ["ratios"]["ours-converged / pmm-default (time_to_converged)"]
    assert conv["per_seed"] == [10.0, 25.0 / 3.0]  # seed 2: the peer did not converge, no ratio
    assert summ["runs"]["pmm-default"]["converged_all"] is False
    md = bench_peers.markdown({"config": vars(a), "summary": summ, "ours_versions": {"python": "3.12.1"},
                               "pmm_versions": {}, "created_utc": "now"})
    assert "**3.00×**" in md and "| pmm-default |" in md


def test_converged_needs_both_targets():
    assert bench_peers.converged(_r(1, 400, 1.009))
    assert not bench_peers.converged(_r(1, 399, 1.001))
    assert not bench_peers.converged(_r(1, 900, 1.011))
    assert not bench_peers.converged({"status": "error"})
