"""Holidays and events: the indicator features against hand-made references, the table's checks
(errors name the row and column), the CLI with a table next to the config, and recovery of known
holiday effects from simulated data. The option on every path (one brand, markets, batches) and
the log-density identity are in tests/test_option_matrix.py."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import yaml

from mmm_jax import MMM, ModelConfig
from mmm_jax.cli import main
from mmm_jax.config.model import ConfigError
from mmm_jax.data.events import Event, event_features, event_names, read_events
from mmm_jax.datasets import simulate
from mmm_jax.datasets.synthetic import TARGET_SCALE


def test_weekly_features_flag_every_week_a_window_touches():
    dates = pd.date_range("2024-01-07", periods=4, freq="7D")  # weeks starting on Sundays
    events = read_events([
        {"date": "2024-01-20", "holiday": "sale", "days_after": 2},     # Sat 20 .. Mon 22: weeks 1 and 2
        {"date": "2024-01-07", "holiday": "new_year", "days_before": 3},  # Thu 4 .. Sun 7: week 0
        {"date": "2023-12-01", "holiday": "new_year"},                  # before the data: nothing
        {"date": "2024-02-03", "holiday": "late"},                      # the last week's last day (Jan 28..Feb 3)
        {"date": "2024-02-04", "holiday": "late"},                      # after the data: nothing
    ])
    assert event_names(events) == ("sale", "new_year", "late")
    want = np.array([[0, 1, 0], [1, 0, 0], [1, 0, 0], [0, 0, 1]], dtype=float)
    np.testing.assert_array_equal(event_features(dates, events), want)


def test_daily_features_flag_the_window_days():
    dates = pd.date_range("2024-01-01", periods=10, freq="D")
    events = (Event("2024-01-05", "promo", 1, 1), Event("2024-01-10", "promo"))
    want = np.zeros((10, 1))
    want[[3, 4, 5, 9], 0] = 1.0
    np.testing.assert_array_equal(event_features(dates, events), want)


@pytest.mark.parametrize("rows, message", [
    ([{"date": "2024-01-01", "holiday": "a"}, {"date": "soon", "holiday": "b"}], "holidays, row 1, column 'date'"),
    ([{"date": "2024-01-01", "holiday": ""}], "holidays, row 0, column 'holiday'"),
    ([{"date": "2024-01-01", "holiday": "a", "days_before": 1.5}], "holidays, row 0, column 'days_before'"),
    ([{"date": "2024-01-01", "holiday": "a", "days": 1}], "holidays, row 0: unknown key 'days'"),
    ([], "holidays: the table has no events"),
])
def test_bad_event_rows_are_named(rows, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        ModelConfig(date="date", target="sales", channels=["tv"], holidays=rows)


def test_config_keeps_the_events_and_round_trips(tmp_path):
    table = pd.DataFrame({"date": ["2024-11-29", "2023-11-24"], "holiday": ["black_friday"] * 2,
                          "days_after": [3, 3]})
    path = tmp_path / "events.csv"
    table.to_csv(path, index=False)
    cfg = ModelConfig(date="date", target="sales", channels=["tv"], holidays=str(path))
    assert cfg.holiday_names == ("black_friday",)
    assert cfg.holidays[1] == Event("2023-11-24", "black_friday", 0, 3)
    path.unlink()  # the config holds the events themselves: a saved model needs no table
    again = ModelConfig.from_dict(cfg.to_dict())
    assert again == cfg and again.holidays == cfg.holidays


def test_cli_reads_a_holiday_table_next_to_the_config_and_names_a_bad_row(tmp_path, capsys):
    df, truth = simulate(60, 2, seed=5)
    df.to_csv(tmp_path / "data.csv", index=False)
    pd.DataFrame({"date": ["2021-03-14", "2021-07-04"], "holiday": ["spring", "summer"]}).to_csv(
        tmp_path / "events.csv", index=False)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"date": "date", "target": "sales", "channels": list(truth.channels),
                                   "seasonality": 1, "holidays": "events.csv"}))
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["fit", str(tmp_path / "data.csv"), "--config", str(cfg), "--out", str(out), "--chains", "2",
                   "--warmup", "100", "--draws", "50", "--no-progress"])
    assert rc == 0
    assert "gamma_holiday" in pd.read_csv(out / "summary.csv", index_col=0).index.str.split("[").str[0]
    pd.DataFrame({"date": ["2021-03-14", "not a date"], "holiday": ["spring", "summer"]}).to_csv(
        tmp_path / "events.csv", index=False)
    capsys.readouterr()
    assert main(["fit", str(tmp_path / "data.csv"), "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "holidays, row 1, column 'date'" in err and len(err.splitlines()) == 1


def _week_of(dates: pd.DatetimeIndex, day: pd.Timestamp) -> int | None:
    i = int((day - dates[0]).days // 7)
    return i if 0 <= i < len(dates) else None


@pytest.mark.slow
def test_holiday_effects_are_recovered():
    """Two events with known effects (scaled units: +0.15 and -0.08 of the target scale, noise sd
    0.05) on three years of weekly data: each posterior mean within 30% of the truth and within
    3 posterior sd; the 90% interval covers it."""
    df, _ = simulate(156, 3, seed=3)
    dates = pd.DatetimeIndex(df["date"])
    events, truth = [], {"black_friday": 0.15, "summer_sale": -0.08}
    effect = np.zeros(len(df))
    for year in (2021, 2022, 2023):
        bf = pd.Timestamp(f"{year}-11-26")
        events.append({"date": str(bf.date()), "holiday": "black_friday"})
        effect[_week_of(dates, bf)] += truth["black_friday"]
        summer = pd.Timestamp(f"{year}-07-08")
        events.append({"date": str(summer.date()), "holiday": "summer_sale", "days_after": 9})
        weeks = {_week_of(dates, summer + pd.Timedelta(days=k)) for k in range(10)}
        assert len(weeks) >= 2  # the sale spans more than one week
        for w in weeks:
            effect[w] += truth["summer_sale"]
    df["sales"] = df["sales"] + np.round(effect * TARGET_SCALE, 2)
    mmm = MMM(ModelConfig(date="date", target="sales", channels=["tv", "search", "social"],
                          controls=["price_index"], holidays=events))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mmm.fit(df, chains=2, warmup=500, draws=500, seed=0, progress=False)
    g = mmm.idata.posterior["gamma_holiday"] * mmm.scaling.target_scale / TARGET_SCALE  # -> simulation's units
    mean, sd = g.mean(("chain", "draw")), g.std(("chain", "draw"))
    lo, hi = g.quantile(0.05, ("chain", "draw")), g.quantile(0.95, ("chain", "draw"))
    for name, true in truth.items():
        m, s = float(mean.sel(holiday=name)), float(sd.sel(holiday=name))
        assert abs(m - true) < 0.3 * abs(true) and abs(m - true) < 3 * s, (name, m, s, true)
        assert float(lo.sel(holiday=name)) < true < float(hi.sel(holiday=name)), name
