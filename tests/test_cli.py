"""The mmm-jax command line: demo and fit, end to end on small settings."""

import json

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


def test_cli_requires_command():
    with pytest.raises(SystemExit):
        main([])


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
    assert main(["optimize", str(run), "--total", "-1"]) == 2
    assert "total budget" in capsys.readouterr().err
