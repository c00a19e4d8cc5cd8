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


# --------------------------------------------------------------------------- day of week (daily data)
def _daily(df: pd.DataFrame, date: str = "date") -> pd.DataFrame:
    """Simulated weekly rows re-dated to consecutive days (each market keeps its own rows)."""
    df = df.copy()
    weeks = sorted(df[date].unique())
    df[date] = df[date].map({w: pd.Timestamp("2024-01-01") + pd.Timedelta(days=i) for i, w in enumerate(weeks)})
    return df


def test_weekday_features_are_effect_coded():
    from mmm_jax.data.features import WEEKDAYS, weekday_features

    dates = pd.date_range("2024-01-01", periods=14, freq="D")  # Monday, two weeks
    f = weekday_features(dates)
    assert f.shape == (14, 6) and WEEKDAYS[0] == "Mon"
    want = np.zeros((14, 6))
    for i in range(14):
        if i % 7 < 6:
            want[i, i % 7] = 1.0
        else:  # Sunday
            want[i] = -1.0
    np.testing.assert_allclose(f, want)
    np.testing.assert_allclose(f.sum(axis=0), 0.0, atol=1e-12)  # a whole number of weeks averages to zero


def test_day_of_week_on_weekly_data_is_refused_naming_the_date_column(tmp_path, capsys):
    df, truth = simulate(60, 2, seed=5)
    with pytest.raises(ValueError, match="column 'date': day_of_week needs daily data .* 7 days apart"):
        MMM(ModelConfig(date="date", target="sales", channels=list(truth.channels), day_of_week=True)).build(df)
    df.to_csv(tmp_path / "data.csv", index=False)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"date": "date", "target": "sales", "channels": list(truth.channels),
                                   "day_of_week": True}))
    assert main(["fit", str(tmp_path / "data.csv"), "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "day_of_week needs daily data" in capsys.readouterr().err


def test_day_of_week_on_markets_and_batches(tmp_path, rng):
    """Daily market panels: the compiled log-density equals PyMC's, and a batch of two daily
    brands fits with gamma_weekday in each posterior."""
    from mmm_jax.batch import fit_many
    from mmm_jax.compile import compile_logdensity
    from mmm_jax.hierarchical import (HierarchicalConfig, build_hierarchical_model, fit_panel_scaling,
                                      panel_arrays, simulate_panel, validate_panel)

    base = ModelConfig(date="date", target="sales", channels=["tv", "search", "social"], seasonality=1,
                       day_of_week=True)
    cfg = HierarchicalConfig(base, market="market")
    panel = validate_panel(_daily(simulate_panel(3, 40, 3, seed=0)[0]), cfg)
    model = build_hierarchical_model(cfg, panel_arrays(panel, fit_panel_scaling(panel, cfg), cfg), panel)
    assert list(model.coords["weekday"]) == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    ld, f = compile_logdensity(model), model.compile_logp()
    for _ in range(3):
        p = {k: rng.normal(scale=0.5, size=np.shape(v)) for k, v in model.initial_point().items()}
        np.testing.assert_allclose(float(ld.logp(p, ld.default_data)), float(f(p)), rtol=1e-9)
    frames = {"b0": _daily(simulate(56, 3, seed=0)[0]), "b1": _daily(simulate(48, 3, seed=1)[0])}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit_many(frames, config=base, out=tmp_path / "batch", chains=2, warmup=40, draws=40, seed=1,
                       progress=False)
    m = res.manifest().set_index("brand")
    assert (m["status"] == "done").all(), m["error"].tolist()
    assert res.load("b1").idata.posterior["gamma_weekday"].shape[-1] == 6


@pytest.mark.slow
def test_day_of_week_effects_are_recovered():
    """Daily data (280 days) with known weekday effects (scaled: Sat +0.12, Sun +0.08, Mon -0.05,
    the rest -0.0375 each, summing to zero; noise sd 0.05): each effect within 0.03 of the truth."""
    from mmm_jax.data.features import WEEKDAYS

    df = _daily(simulate(280, 3, seed=4)[0])
    true = {"Mon": -0.05, "Tue": -0.0375, "Wed": -0.0375, "Thu": -0.0375, "Fri": -0.0375, "Sat": 0.12}
    sunday = -sum(true.values())
    dow = pd.DatetimeIndex(df["date"]).day_of_week
    effect = np.where(dow == 6, sunday, np.array([true[d] for d in WEEKDAYS] + [0.0])[dow])
    df["sales"] = df["sales"] + np.round(effect * TARGET_SCALE, 2)
    mmm = MMM(ModelConfig(date="date", target="sales", channels=["tv", "search", "social"], controls=["price_index"],
                          seasonality=0, trend=True, day_of_week=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mmm.fit(df, chains=2, warmup=300, draws=300, seed=0, progress=False)
    g = (mmm.idata.posterior["gamma_weekday"] * mmm.scaling.target_scale / TARGET_SCALE).mean(("chain", "draw"))
    for d in WEEKDAYS:
        assert abs(float(g.sel(weekday=d)) - true[d]) < 0.03, (d, float(g.sel(weekday=d)), true[d])
    assert abs(-float(g.sum()) - sunday) < 0.03
