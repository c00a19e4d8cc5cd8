"""benchmarks/bench_meridian.py: data preparation, run specs and the report (no timing here)."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_meridian  # noqa: E402


def _meridian_like_csv(path: Path) -> None:
    """A small file with the columns of Meridian's geo_media.csv (and its unnamed index column)."""
    rng = np.random.default_rng(0)
    rows = []
    for g in range(3):
        for t in pd.date_range("2021-01-25", periods=10, freq="W-MON"):
            row = {"geo": f"Geo{g}", "time": t.strftime("%Y-%m-%d"), "population": 1e5 * (g + 1),
                   "conversions": rng.uniform(1e5, 2e5), "revenue_per_conversion": 0.035,
                   "competitor_activity_score_control": rng.normal(), "sentiment_score_control": rng.normal()}
            for c in range(4):
                row[f"Channel{c}_spend"] = rng.uniform(0, 1e4)
                row[f"Channel{c}_impression"] = 100 * row[f"Channel{c}_spend"]
            rows.append(row)
    pd.DataFrame(rows).to_csv(path)  # index written: an "Unnamed: 0" column, as in Meridian's files


def test_dataset_and_specs_give_both_tools_the_same_columns(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _meridian_like_csv(src / "geo_media.csv")
    a = bench_meridian.parse_args(["--datasets", "geo_media", "--data-dir", str(src)])
    csv, roles = bench_meridian.dataset_csv("geo_media", a, tmp_path)
    df = pd.read_csv(csv)
    assert not any(c.startswith("Unnamed") for c in df.columns)
    np.testing.assert_allclose(df["revenue"], df["conversions"] * df["revenue_per_conversion"])
    assert (roles["geos"], roles["weeks"]) == (3, 10)
    ours = bench_meridian.spec_for("ours-converged", csv, roles, a)
    mer = bench_meridian.spec_for("meridian", csv, roles, a)
    assert ours["model"]["channels"] == mer["media"] == mer["spend"] == [f"Channel{c}_spend" for c in range(4)]
    assert ours["model"]["controls"] == mer["controls"] and ours["model"]["population"] == mer["population"]
    assert ours["until"] == {"rhat": 1.01, "ess": 400}
    assert (mer["n_chains"], mer["n_adapt"], mer["n_burnin"], mer["n_keep"]) == (10, 2500, 500, 1000)
    imp = bench_meridian.parse_args(["--datasets", "geo_media", "--data-dir", str(src), "--drivers", "impression"])
    assert bench_meridian.spec_for("meridian", csv, bench_meridian.dataset_csv("geo_media", imp, tmp_path)[1],
                                   imp)["media"][0] == "Channel0_impression"


def test_report_ratio_and_an_unconverged_peer():
    ok = {"status": "ok", "wall_s": 50.0, "min_ess_bulk": 450.0, "min_ess_bulk_param": "beta", "max_rhat": 1.006,
          "divergences": 0, "roi_mean": {f"Channel{c}_spend": 1.0 + c for c in range(4)}}
    mer = {**ok, "wall_s": 600.0, "max_rhat": None, "min_ess_bulk": 12.0, "all_variables": {"max_rhat": None},
           "roi_mean": {f"Channel{c}": 2.0 for c in range(4)}}
    results = {"geo_media/ours-converged": ok, "geo_media/meridian": mer}
    ratios = bench_meridian.time_ratios(results, ["geo_media"])
    assert ratios == {"geo_media": {"ratio": 12.0, "meridian_converged": False}}
    assert not bench_meridian.converged(mer) and bench_meridian.converged(ok)
    a = bench_meridian.parse_args(["--datasets", "geo_media"])
    md = bench_meridian.markdown({"config": vars(a), "results": results, "ratios": ratios, "created_utc": "now",
                                 "ours_versions": {}, "meridian_versions": {}})
    assert "12.00× (Meridian not converged: a lower bound)" in md
    assert "| ours | 1.00 | 2.00 | 3.00 | 4.00 |" in md and "| Meridian 2.1 | 2.00 | 2.00 | 2.00 | 2.00 |" in md
    assert "| inf |" in md
