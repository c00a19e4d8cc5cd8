"""The mmm-jax command line: demo and fit, end to end on small settings."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from mmm_jax.cli import main
from mmm_jax.datasets import simulate

FAST = ["--chains", "2", "--warmup", "150", "--draws", "100", "--no-progress"]
# short runs do not converge, and the CLI says so; that is expected here
pytestmark = pytest.mark.filterwarnings("ignore::mmm_jax.ConvergenceWarning")


def test_demo_writes_outputs(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), *FAST]) == 0
    out = capsys.readouterr().out
    assert "ROAS per channel: estimated (posterior) vs true" in out
    assert "max R-hat" in out and "divergences" in out
    for name in ("idata.nc", "decomposition.png", "roas.png", "roas.csv"):
        assert (tmp_path / name).stat().st_size > 0
    table = pd.read_csv(tmp_path / "roas.csv", index_col=0)
    assert list(table.index) == ["tv", "search", "social", "display"]
    assert {"true_roas", "mean", "covered"} <= set(table.columns)


def write_inputs(tmp_path, df, config: dict):
    """Write ``df`` as data.csv and ``config`` as cfg.yaml; returns both paths."""
    data = tmp_path / "data.csv"
    df.to_csv(data, index=False)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"date": "date", "target": "sales", **config}))
    return data, cfg


def test_fit_with_yaml_config(tmp_path, capsys):
    df, truth = simulate(60, 2, seed=5)
    data, cfg = write_inputs(tmp_path, df, {"channels": list(truth.channels), "controls": ["price_index"],
                                            "seasonality": 1,
                                            "priors": {"beta": {"dist": "HalfNormal", "sigma": 0.5}}})
    out = tmp_path / "run"
    assert main(["fit", str(data), "--config", str(cfg), "--out", str(out), *FAST]) == 0
    for name in ("config.json", "idata.nc", "summary.csv", "roas.csv", "contributions.csv", "decomposition.png",
                 "diagnostics.json"):
        assert (out / name).exists(), name
    d = json.loads((out / "diagnostics.json").read_text())
    assert {"max_rhat", "min_ess_bulk", "divergences", "timings"} <= set(d)


def test_fit_reports_bad_input_clearly(tmp_path, capsys):
    df, truth = simulate(60, 2, seed=5)
    df.loc[7, truth.channels[0]] = -5.0
    data, cfg = write_inputs(tmp_path, df, {"channels": list(truth.channels)})
    assert main(["fit", str(data), "--config", str(cfg), "--out", str(tmp_path / "o"), *FAST]) == 2
    err = capsys.readouterr().err
    assert f"column '{truth.channels[0]}', row 7" in err and "negative spend" in err
    cfg.write_text(yaml.safe_dump({"date": "date", "target": "sales", "channels": ["tv"], "likelihood": "t"}))
    assert main(["fit", str(data), "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "likelihood" in capsys.readouterr().err


def test_cli_requires_command(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mmm-jax: error:") and len(err.splitlines()) == 1


def test_optimize_on_a_fitted_run(tmp_path, capsys):
    df, truth = simulate(60, 3, seed=8)
    data, cfg = write_inputs(tmp_path, df, {"channels": list(truth.channels), "seasonality": 1})
    run = tmp_path / "run"
    assert main(["fit", str(data), "--config", str(cfg), "--out", str(run), *FAST]) == 0
    ch = truth.channels
    assert main(["optimize", str(run), "--total", "100000", "--horizon", "8", "--objective", "cvar",
                 "--alpha", "0.1", "--lock", f"{ch[0]}=20000", "--draws", "200"]) == 0
    plan = pd.read_csv(run / "budget" / "plan.csv", index_col=0)
    assert abs(plan["optimal_spend"].sum() - 100000) < 1e-3
    assert plan.loc[ch[0], "optimal_spend"] == pytest.approx(20000)
    assert json.loads((run / "budget" / "plan.json").read_text())["summary"]["objective"] == "cvar"
    flight = tmp_path / "flight"
    assert main(["optimize", str(run), "--total", "50000", "--horizon", "4", "--flighting", "--draws", "100",
                 "--out", str(flight)]) == 0
    weekly = pd.read_csv(flight / "flighting.csv", index_col=0)
    assert weekly.shape == (4, len(ch)) and abs(weekly.to_numpy().sum() - 50000) < 1.0
    assert (flight / "flighting.json").is_file() and not (flight / "plan.csv").exists()
    assert main(["optimize", str(run), "--total", "-1"]) == 2
    assert "argument --total: must be in [0, inf)" in capsys.readouterr().err


def _market_inputs(tmp_path):
    """Two brands of nested (region / market) panels with a count target, and a flat config with
    market keys, an HSGP intercept, a Poisson likelihood and a ROAS prior."""
    from mmm_jax.hierarchical import simulate_panel

    frames = []
    for i in range(2):
        df, _ = simulate_panel(3, 40, 3, seed=i, n_short=1, short_weeks=20)
        df["sales"] = (df["sales"] / df["sales"].max() * 400).round().astype(int)
        df["region"] = np.where(df["market"] == sorted(df["market"].unique())[0], "north", "south")
        frames.append(df.assign(brand=f"b{i}"))
    long = pd.concat(frames, ignore_index=True)
    config = {"channels": ["tv", "search", "social"], "controls": ["price_index"], "seasonality": 1,
              "market": ["region", "market"], "likelihood": "poisson", "time_varying_intercept": {"m": 6},
              "roas_prior": {"tv": {"dist": "LogNormal", "mu": 0.0, "sigma": 0.5}}}
    data, cfg = write_inputs(tmp_path, long[long["brand"] == "b0"].drop(columns="brand"), config)
    both = tmp_path / "brands.csv"
    long.to_csv(both, index=False)
    return data, both, cfg


def test_fit_and_batch_with_market_keys_hsgp_counts_and_a_roas_prior(tmp_path, capsys):
    data, both, cfg = _market_inputs(tmp_path)
    small = ["--chains", "2", "--warmup", "60", "--draws", "40", "--no-progress"]
    out = tmp_path / "fit"
    assert main(["fit", str(data), "--config", str(cfg), "--out", str(out), *small]) == 0
    roas = pd.read_csv(out / "roas_national.csv", index_col=0)
    assert list(roas.index) == ["tv", "search", "social"] and roas["mean"].gt(0).all()
    assert len(pd.read_csv(out / "roas_market.csv")) == 3 * 3
    import mmm_jax
    from mmm_jax.hierarchical import HierarchicalMMM

    h = mmm_jax.load(out)  # the saved kind picks the facade
    assert isinstance(h, HierarchicalMMM) and isinstance(h, mmm_jax.FittedModel)
    rows = h.summary().index
    assert any(r.startswith("roas_national[") for r in rows) and any(r.startswith("roas_tv") for r in rows)
    assert {"roas_tv", "intercept_tv"} <= set(h.idata.posterior.data_vars)
    y = h.idata.posterior_predictive["y"].values
    assert (y == y.round()).all()
    market = pd.read_csv(out / "roas_market.csv")["market"].iloc[0]  # "north/<market>": nested labels
    assert main(["optimize", str(out), "--total", "30000", "--horizon", "4", "--lock", f"{market}/tv=5000",
                 "--draws", "40"]) == 0
    plan = pd.read_csv(out / "budget" / "plan.csv", index_col=[0, 1])
    assert abs(plan["optimal_spend"].sum() - 30000) < 1e-3 and len(plan) == 3 * 3
    assert plan.loc[(market, "tv"), "optimal_spend"] == pytest.approx(5000)
    assert main(["optimize", str(out), "--total", "1", "--lock", "tv=1", "--out", str(tmp_path / "b2")]) == 2
    assert "name units as MARKET/CHANNEL" in capsys.readouterr().err and not (tmp_path / "b2").exists()
    assert main(["optimize", str(out), "--total", "1", "--flighting", "--out", str(tmp_path / "b3")]) == 2
    assert "--flighting plans one single-market model" in capsys.readouterr().err and not (tmp_path / "b3").exists()
    batch = tmp_path / "batch"
    assert main(["batch", str(both), "--by", "brand", "--config", str(cfg), "--out", str(batch), *small,
                 "--export", str(tmp_path / "bexp")]) == 0
    assert sorted(pd.read_parquet(tmp_path / "bexp" / "diagnostics.parquet")["brand"]) == ["b0", "b1"]
    m = pd.read_csv(batch / "manifest.csv")
    assert sorted(m["brand"]) == ["b0", "b1"] and (m["status"] == "done").all(), m.to_dict("records")
    assert "done" in capsys.readouterr().out
    # one table each for the fitted market model and the batch, as CSV
    exp = tmp_path / "export"
    assert main(["export", str(out), str(batch), "--out", str(exp), "--format", "csv", "--no-progress"]) == 0
    roas = pd.read_csv(exp / "roas.csv")
    nat = roas[(roas["run"] == str(out)) & (roas["level"] == "national")].set_index("channel")
    np.testing.assert_allclose(nat.loc[["tv", "search", "social"], "mean"], h.roas("national")["mean"], rtol=1e-9)
    assert len(roas[(roas["run"] == str(batch)) & (roas["level"] == "market")]) == 2 * 3 * 3
    diag = pd.read_csv(exp / "diagnostics.csv")
    assert sorted(diag["brand"]) == ["b0", "b1", "fit"] and (diag["status"] == "done").all()
    contrib = pd.read_csv(exp / "contributions.csv")
    assert contrib["market"].notna().all() and set(contrib["component"]) == {"tv", "search", "social"}
    assert main(["export", str(data), "--out", str(tmp_path / "e2")]) == 2  # a CSV, not a run
    assert "not an mmm_jax output" in capsys.readouterr().err and not (tmp_path / "e2").exists()


def test_fit_until_and_refresh_from_the_command_line(tmp_path, capsys):
    df, truth = simulate(64, 2, seed=5)
    data, cfg = write_inputs(tmp_path, df.iloc[:60], {"channels": list(truth.channels)})
    run, new = tmp_path / "run", tmp_path / "more.csv"
    df.to_csv(new, index=False)
    assert main(["fit", str(data), "--config", str(cfg), "--out", str(run), "--chains", "2", "--warmup", "100",
                 "--draws", "30", "--until", "rhat=1.5,ess=20", "--max-draws", "230", "--no-progress"]) == 0
    d = json.loads((run / "diagnostics.json").read_text())
    assert d["until"]["until"] == {"rhat": 1.5, "ess": 20.0} and d["until"]["draws"] in (30, 130, 230)
    err = capsys.readouterr().err  # progress messages: mmm_jax's logger, one line each
    assert "mmm-jax: fitted brand: numpyro, 2 chains x" in err and "mmm-jax: until: " in err
    out = tmp_path / "refreshed"
    assert main(["--quiet", "refresh", str(run), str(new), "--out", str(out), "--warmup", "50", "--draws", "40"]) == 0
    err = capsys.readouterr().err  # --quiet: no progress messages, no progress bars
    assert "mmm-jax: refreshed" not in err and "%|" not in err
    meta = json.loads((out / "meta.json").read_text())
    assert meta["fit_settings"]["refreshed"] is True and meta["fit_settings"]["warmup"] == 50
    assert len(pd.read_csv(out / "data.csv")) == 64 and (run / "idata.nc").exists()  # the fit it started from stays
    capsys.readouterr()
    # argument errors: one line, exit 2
    assert main(["fit", str(data), "--config", str(cfg), "--out", str(tmp_path / "x"), "--until", "rhat=0.9"]) == 2
    assert "must be > 1" in capsys.readouterr().err
    assert main(["fit", str(data), "--config", str(cfg), "--out", str(tmp_path / "x"), "--max-draws", "9"]) == 2
    assert "--max-draws needs --until" in capsys.readouterr().err
    assert main(["refresh", str(tmp_path / "nope"), str(new), "--out", str(tmp_path / "y")]) == 2
    assert "mmm-jax refresh: error:" in capsys.readouterr().err
