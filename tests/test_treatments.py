"""Non-media treatments (promotions, price changes): the [0, 1] scaling against hand-computed
references (one brand, markets), data errors naming the column and row, the config's refusals,
the CLI with the YAML keys, save -> load -> predict, reports (contributions summing to mu, the
export, the decomposition plot, the budget optimiser untouched), markets, a batch brand without a
treatment column, runs saved before treatments existed, and recovery of known effects from
simulated data. The option on every path and the log-density identity are in
tests/test_option_matrix.py (options ``treatments`` and ``treatments_carryover``)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

import mmm_jax
from mmm_jax import MMM, DataError, ModelConfig
from mmm_jax.batch import load_brand
from mmm_jax.cli import main
from mmm_jax.compat import get_group
from mmm_jax.config.model import ConfigError
from mmm_jax.data.features import Scaling, fit_scaling, model_arrays
from mmm_jax.data.panel import PanelScaling
from mmm_jax.datasets import simulate
from mmm_jax.datasets.synthetic import TARGET_SCALE, geometric_adstock_np
from mmm_jax.export import model_tables
from mmm_jax.hierarchical import (
    HierarchicalConfig,
    HierarchicalMMM,
    fit_panel_scaling,
    panel_arrays,
    simulate_panel,
    validate_panel,
)

CHANNELS = ["tv", "search", "social"]
TREATMENTS = ["promo", "price_change"]
TINY = dict(chains=2, warmup=60, draws=40, seed=1, progress=False)


def _config(**kw) -> ModelConfig:
    kw.setdefault("treatments", TREATMENTS)
    return ModelConfig(date="date", target="sales", channels=CHANNELS, controls=["price_index"], seasonality=1, **kw)


def _with_treatments(df: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """``df`` with a 0/1 ``promo`` (about one week in five) and a signed ``price_change`` (percent)."""
    rng = np.random.default_rng(seed)
    return df.assign(promo=(rng.random(len(df)) < 0.2).astype(float),
                     price_change=rng.choice([-10.0, -5.0, 0.0, 5.0, 10.0], size=len(df)))


# --------------------------------------------------------------------------- scaling
def test_scaling_reference_is_the_training_minimum_and_range():
    df = simulate(12, 3, seed=0)[0]
    df["promo"] = [0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1.0]
    df["price_change"] = [-10, 5, 0, 2.5, -10, 0, 5, 5, 0, 0, 20, -20.0]  # weeks 10, 11 are held out below
    df["flat"] = 3.0
    cfg = _config(treatments=["promo", "price_change", "flat"])
    mmm = MMM(cfg)
    data = mmm.validate(df)
    assert data.treatments == ("promo", "price_change", "flat") and data.treatment_values.shape == (12, 3)
    s = fit_scaling(data)
    np.testing.assert_array_equal(s.treatment_ref, [0.0, -20.0, 3.0])  # the minimum
    np.testing.assert_array_equal(s.treatment_scale, [1.0, 40.0, 1.0])  # max - min; 1 for a constant column
    z = model_arrays(cfg, data, s)["treatments"]
    np.testing.assert_allclose(z[:, 0], df["promo"])
    np.testing.assert_allclose(z[:4, 1], [10 / 40, 25 / 40, 20 / 40, 22.5 / 40])
    np.testing.assert_allclose(z[:, 2], 0.0)
    assert z.min() == 0.0 and z.max() == 1.0
    # with a hold-out the reference is fitted on the training weeks only (new data may leave [0, 1])
    mmm.build(df, holdout=2)
    np.testing.assert_array_equal(mmm.scaling.treatment_ref, [0.0, -10.0, 3.0])
    np.testing.assert_array_equal(mmm.scaling.treatment_scale, [1.0, 15.0, 1.0])
    np.testing.assert_allclose(mmm.model_inputs()["treatments"][10:, 1], [30 / 15, -10 / 15])
    assert list(mmm.model.coords["treatment"]) == ["promo", "price_change", "flat"]
    # the scaling round-trips; the new fields are written only when used
    again = Scaling.from_dict(json.loads(json.dumps(mmm.scaling.to_dict())))
    np.testing.assert_array_equal(again.treatment_scale, mmm.scaling.treatment_scale)
    assert "treatment_ref" not in fit_scaling(MMM(_config(treatments=())).validate(df)).to_dict()


def test_panel_scaling_has_one_reference_per_column_over_all_markets():
    df = simulate_panel(3, 20, 3, seed=0, n_short=1, short_weeks=10)[0]
    markets = sorted(df["market"].unique())
    g = df["market"].map({m: i for i, m in enumerate(markets)}).to_numpy()
    df["promo"] = (np.arange(len(df)) % 4 == 0).astype(float)
    df["price_change"] = np.where(g == 0, -5.0, 0.0) + np.where(g == 2, 15.0, 0.0) + (np.arange(len(df)) % 2)
    cfg = HierarchicalConfig(_config(), market="market")
    panel = validate_panel(df, cfg)
    s = fit_panel_scaling(panel, cfg)
    np.testing.assert_array_equal(s.treatment_ref, [0.0, -5.0])  # market 0's lowest price change
    np.testing.assert_array_equal(s.treatment_scale, [1.0, 21.0])  # up to market 2's 15 + 1
    z = panel_arrays(panel, s, cfg)["treatments"]
    assert z.shape == (3, 20, 2)
    for k in range(3):  # every market's own weeks, scaled with the shared reference; 0 elsewhere
        rows = df[df["market"] == markets[k]]
        obs = panel.observed[k]
        np.testing.assert_allclose(z[k, obs, 1], (rows["price_change"].to_numpy() + 5.0) / 21.0)
        np.testing.assert_allclose(z[k, ~obs], 0.0)
    again = PanelScaling.from_dict(json.loads(json.dumps(s.to_dict())))
    np.testing.assert_array_equal(again.treatment_ref, s.treatment_ref)


def test_scalings_saved_before_treatments_existed_still_load():
    df = simulate(12, 3, seed=0)[0]
    old = fit_scaling(MMM(_config(treatments=())).validate(df)).to_dict()
    assert set(old) == {"spend_scale", "target_scale", "control_loc", "control_scale", "t0", "t_unit_days"}
    s = Scaling.from_dict(old)
    assert s.treatment_ref.shape == (0,) and s.treatment_scale.shape == (0,)
    p = PanelScaling.from_dict({"spend_scale": [[1.0]], "target_scale": [2.0], "control_loc": [[0.0]],
                                "control_scale": [[1.0]], "t0": "2024-01-07", "t_unit_days": 100.0})
    assert p.treatment_ref.shape == (0,)
    # a scaling without treatment references cannot scale treatments: an error that says so
    with pytest.raises(ValueError, match="0 treatment references, the config has 2 treatments"):
        model_arrays(_config(), MMM(_config()).validate(_with_treatments(df)), s)


# --------------------------------------------------------------------------- data and config checks
@pytest.mark.parametrize("column, row, value, message", [
    ("promo", 4, np.nan, r"column 'promo', row 4 \(date 2021-01-31\): missing value \(NaN\)"),
    ("price_change", 2, np.inf, r"column 'price_change', row 2 \(date 2021-01-17\): non-finite value inf"),
    ("price_change", 3, "n/a", r"column 'price_change', row 3 \(date 2021-01-24\): non-numeric value 'n/a'"),
])
def test_bad_treatment_values_are_named(column, row, value, message):
    df = _with_treatments(simulate(20, 3, seed=0)[0])
    df[column] = df[column].astype(object)
    df.loc[row, column] = value
    with pytest.raises(DataError, match=message) as err:
        MMM(_config()).validate(df)
    assert err.value.column == column and err.value.row == row


def test_missing_treatment_columns_are_named_on_every_path():
    df = _with_treatments(simulate(20, 3, seed=0)[0]).drop(columns="promo")
    with pytest.raises(DataError, match=r"missing column 'promo'.*\('promo' was given as a treatment\)"):
        MMM(_config()).validate(df)
    panel = _with_treatments(simulate_panel(2, 20, 3, seed=0, n_short=0)[0])
    market = sorted(panel["market"].unique())[1]
    panel.loc[panel["market"] == market, "price_change"] = np.nan
    with pytest.raises(DataError, match=f"market '{market}': column 'price_change', row 0 .*missing value"):
        validate_panel(panel, HierarchicalConfig(_config(), market="market"))
    # a batch brand: prepared into a failure naming the column (the batch names the brand)
    from mmm_jax.batch.panels import prepare_panel_brand
    from mmm_jax.batch.stack import BrandFailure, prepare_brand

    failed = prepare_brand("b1", df, _config())
    assert isinstance(failed, BrandFailure) and "missing column 'promo'" in failed.reason
    failed = prepare_panel_brand("p1", panel.drop(columns="promo"), HierarchicalConfig(_config(), market="market"))
    assert isinstance(failed, BrandFailure) and "missing column 'promo'" in failed.reason


def test_config_checks_and_round_trip():
    for column, role in (("tv", "a channel"), ("price_index", "a control"), ("sales", "the target")):
        with pytest.raises(ConfigError, match=f"treatments: '{column}' is already {role}; a column has one role"):
            _config(treatments=["promo", column])
    with pytest.raises(ConfigError, match="treatments: 'promo' is listed twice"):
        _config(treatments=["promo", "promo"])
    with pytest.raises(ConfigError, match="treatments: must be a list of column names"):
        _config(treatments="promo")
    for lik in ("poisson", "negative_binomial"):
        with pytest.raises(ConfigError, match=f"treatments: not available with the {lik} likelihood: .*log link"):
            _config(likelihood=lik)
    with pytest.raises(ConfigError, match="treatment_carryover: needs treatments"):
        _config(treatments=(), treatment_carryover=True)
    with pytest.raises(ConfigError, match="treatment_carryover: must be true or false"):
        _config(treatment_carryover="yes")
    cfg = _config(treatment_carryover=True, priors={"gamma_treatment": {"dist": "Normal", "mu": 0, "sigma": 0.2},
                                                    "alpha_treatment": {"dist": "Beta", "alpha": 2, "beta": 2}})
    d = cfg.to_dict()
    assert d["treatments"] == TREATMENTS and d["treatment_carryover"] is True
    assert ModelConfig.from_dict(yaml.safe_load(yaml.safe_dump(d))) == cfg
    plain = _config(treatments=()).to_dict()
    assert "treatments" not in plain and "treatment_carryover" not in plain  # only when used
    # markets: gamma_treatment and alpha_treatment shared by default, poolable; no pooling without them
    h = HierarchicalConfig(cfg, market="market", pooling={"gamma_treatment": "pooled"})
    assert {"gamma_treatment", "alpha_treatment"} <= set(h.parameter_names)
    assert h.pooling_of("gamma_treatment") == "pooled" and h.pooling_of("alpha_treatment") == "shared"
    with pytest.raises(ConfigError, match="pooling.alpha_treatment: not a parameter of this model"):
        HierarchicalConfig(_config(), market="market", pooling={"alpha_treatment": "pooled"})


# --------------------------------------------------------------------------- one brand: CLI, reports, save / load
def test_cli_fit_with_treatments_then_load_predict_report_and_optimise(tmp_path, capsys):
    df = _with_treatments(simulate(60, 3, seed=5)[0])
    df.to_csv(tmp_path / "data.csv", index=False)
    cfg = tmp_path / "cfg.yaml"
    base = {"date": "date", "target": "sales", "channels": CHANNELS, "controls": ["price_index"], "seasonality": 1}
    cfg.write_text(yaml.safe_dump({**base, "treatments": TREATMENTS, "treatment_carryover": True}))
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["fit", str(tmp_path / "data.csv"), "--config", str(cfg), "--out", str(out), "--chains", "2",
                     "--warmup", "100", "--draws", "50", "--no-progress"]) == 0
    assert (out / "decomposition.png").stat().st_size > 0
    scaling = json.loads((out / "scaling.json").read_text())
    assert scaling["treatment_ref"] == [0.0, -10.0] and scaling["treatment_scale"] == [1.0, 20.0]
    saved = pd.read_csv(out / "contributions.csv", index_col=0)
    assert list(saved.columns) == ["baseline", *TREATMENTS, *CHANNELS]

    mmm = mmm_jax.load(out)
    assert isinstance(mmm, MMM) and mmm.config.treatment_carryover
    post = mmm.idata.posterior
    assert post["gamma_treatment"].dims == ("chain", "draw", "treatment")
    assert post["alpha_treatment"].dims == ("chain", "draw", "treatment")
    assert post["treatment_contribution_original"].dims == ("chain", "draw", "date", "treatment")
    # baseline + treatments + channels == mu, draw by draw and in the posterior-mean table
    np.testing.assert_allclose(post["mu_original"].values, post["baseline_original"].values
                               + post["treatment_contribution_original"].values.sum(-1)
                               + post["channel_contribution_original"].values.sum(-1), rtol=1e-9)
    c = mmm.contributions()
    assert list(c.columns) == ["baseline", *TREATMENTS, *CHANNELS] and len(c) == len(df)
    np.testing.assert_allclose(c.sum(axis=1).to_numpy(), post["mu_original"].mean(("chain", "draw")).values,
                               rtol=1e-9)
    np.testing.assert_allclose(c.to_numpy(), saved.to_numpy(), rtol=1e-9)
    # the treatment's contribution is gamma times its carried-over [0, 1] series, in target units
    np.testing.assert_allclose(post["treatment_contribution_original"].values,
                               post["treatment_contribution"].values * mmm.scaling.target_scale, rtol=1e-12)
    # save -> load -> predict: the loaded model reproduces the fit's mean; forecasts use the fit's scaling
    p = mmm.predict(df, seed=3, include_noise=False)
    np.testing.assert_allclose(p["mu"].values, post["mu_original"].values, rtol=1e-9)
    np.testing.assert_allclose(p["treatment_contribution"].values, post["treatment_contribution_original"].values,
                               rtol=1e-9)
    future = df.copy()
    future.loc[future.index[-8:], "sales"] = np.nan
    future.loc[future.index[-1], "promo"] = 2.0  # beyond the training range: extrapolates linearly
    f = mmm.predict(future, seed=3, include_noise=False)["treatment_contribution"]
    np.testing.assert_allclose(f.values[..., :-1, :], p["treatment_contribution"].values[..., :-1, :], rtol=1e-9)
    with pytest.raises(DataError, match="missing column 'price_change'"):
        mmm.predict(df.drop(columns="price_change"))
    # ROAS, curves and the budget are about paid channels only
    assert list(mmm.roas().index) == CHANNELS
    assert set(mmm.response_curves(n_points=5, max_draws=20)) == set(CHANNELS)
    total = float(mmm.data.spend[-4:].sum())
    with warnings.catch_warnings():  # a tiny fit: the plan may leave the spend seen so far
        warnings.simplefilter("ignore")
        plan = mmm.optimize_budget(total, horizon=4, max_draws=20)
    assert list(plan.table.index) == CHANNELS and abs(plan.table["optimal_spend"].sum() - total) < 1e-3 * total
    # the export's contributions table has a component per treatment
    tables = model_tables(mmm, run="r", brand="b")
    comp = tables["contributions"]
    assert set(comp["component"]) == {"baseline", *TREATMENTS, *CHANNELS}
    promo = comp[comp["component"] == "promo"].set_index("date")["mean"]
    np.testing.assert_allclose(promo.to_numpy(), c["promo"].to_numpy(), rtol=1e-9)
    # the same config file with a treatment that is also a channel: exit 2, naming it
    cfg.write_text(yaml.safe_dump({**base, "treatments": ["promo", "tv"]}))
    capsys.readouterr()
    assert main(["fit", str(tmp_path / "data.csv"), "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "treatments: 'tv' is already a channel" in capsys.readouterr().err


def test_batch_names_the_brand_without_a_treatment_column(tmp_path, capsys):
    folder = tmp_path / "brands"
    folder.mkdir()
    _with_treatments(simulate(56, 3, seed=0)[0]).to_csv(folder / "b0.csv", index=False)
    _with_treatments(simulate(48, 3, seed=1)[0], seed=1).drop(columns="promo").to_csv(folder / "b1.csv", index=False)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"date": "date", "target": "sales", "channels": CHANNELS,
                                   "controls": ["price_index"], "seasonality": 1, "treatments": TREATMENTS}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["batch", str(folder), "--config", str(cfg), "--out", str(tmp_path / "out"), "--chains", "2",
                     "--warmup", "60", "--draws", "40", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "b1: bad data: missing column 'promo'" in printed
    m = pd.read_csv(tmp_path / "out" / "manifest.csv").set_index("brand")
    assert m.loc["b0", "status"] == "done" and m.loc["b1", "status"] == "failed"
    b0 = load_brand(tmp_path / "out", "b0")  # rebuilt from the stored data, treatments included
    assert list(b0.contributions().columns) == ["baseline", *TREATMENTS, *CHANNELS]
    assert b0.idata.constant_data["treatments"].dims == ("date", "treatment")


# --------------------------------------------------------------------------- markets
def test_markets_report_treatments_as_components_and_round_trip(tmp_path):
    df = _with_treatments(simulate_panel(3, 40, 3, seed=0, n_short=1, short_weeks=20)[0])
    h = HierarchicalMMM(HierarchicalConfig(_config(), market="market", pooling={"gamma_treatment": "pooled"}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h.fit(df, **TINY)
    post = h.idata.posterior
    assert post["gamma_treatment"].dims == ("chain", "draw", "market", "treatment")
    c = h.contributions()
    assert c.index.names == ["market", "date", "component"]
    assert list(dict.fromkeys(c.index.get_level_values("component"))) == [*CHANNELS, *TREATMENTS]
    assert c.loc[(slice(None), slice(None), "promo"), "contribution_mean"].abs().sum() > 0
    summ = get_group(h.idata, "contribution_summary")
    assert summ["treatment_contribution_mean"].dims == ("market", "date", "treatment")
    comp = model_tables(h, run="r", brand="b")["contributions"]
    assert set(comp["component"]) == {*CHANNELS, *TREATMENTS}
    # save -> load -> predict
    loaded = HierarchicalMMM.load(h.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.scaling.treatment_ref, h.scaling.treatment_ref)
    p1, p2 = h.predict(df, seed=2), loaded.predict(df, seed=2)
    np.testing.assert_allclose(p1["mu"].values, p2["mu"].values, rtol=1e-10)
    assert set(loaded.roas("national").index) == set(CHANNELS)


# --------------------------------------------------------------------------- recovery
def _blocks(rng, n: int, levels, lo: int = 3, hi: int = 9) -> np.ndarray:
    """A piecewise-constant series of ``n`` weeks: blocks of ``lo..hi-1`` weeks at random ``levels``."""
    out = []
    while len(out) < n:
        out += [float(rng.choice(levels))] * int(rng.integers(lo, hi))
    return np.asarray(out[:n])


def _fit_recovery(carryover: bool):
    """Three years weekly (``simulate(156, 3, seed=3)``, noise sd 0.05 of the target scale) plus a
    0/1 promo on 24 random weeks and, without carry-over, a price change in percent (blocks of 3-8
    weeks at -10, -5, 0, +5 or +10); the sales get their known effects (see the tests)."""
    df, _ = simulate(156, 3, seed=3)
    rng = np.random.default_rng([3, 11])
    promo = np.zeros(len(df))
    promo[rng.choice(len(df), 24, replace=False)] = 1.0
    df["promo"] = promo
    if carryover:  # +0.15 of the target scale in total per promo week, decaying at 0.5 over 8 weeks
        effect = 0.15 * geometric_adstock_np(promo, 0.5, 8, normalize=True)
        treatments = ["promo"]
    else:  # +0.10 per promo week; -0.005 per percentage point of price change
        df["price_change"] = _blocks(rng, len(df), [-10, -5, 0, 0, 5, 10])
        effect = 0.10 * promo - 0.005 * df["price_change"].to_numpy()
        treatments = ["promo", "price_change"]
    df["sales"] = df["sales"] + np.round(effect * TARGET_SCALE, 2)
    mmm = MMM(ModelConfig(date="date", target="sales", channels=CHANNELS, controls=["price_index"],
                          treatments=treatments, treatment_carryover=carryover))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mmm.fit(df, chains=2, warmup=500, draws=500, seed=0, progress=False)
    post = mmm.idata.posterior
    scale = xr.DataArray(mmm.scaling.treatment_scale, dims="treatment", coords={"treatment": treatments})
    # the effect per unit of each treatment column, as a share of the simulation's target scale
    per_unit = post["gamma_treatment"] * mmm.scaling.target_scale / scale / TARGET_SCALE
    return mmm, per_unit


def _check(draws: xr.DataArray, true: float, rel: float | None, name: str):
    m, s = float(draws.mean()), float(draws.std())
    lo, hi = float(draws.quantile(0.05)), float(draws.quantile(0.95))
    assert abs(m - true) < 3 * s, (name, m, s, true)
    if rel is not None:
        assert abs(m - true) < rel * abs(true), (name, m, true)
    assert lo < true < hi, (name, lo, hi, true)


@pytest.mark.slow
def test_treatment_effects_are_recovered():
    """Promo +0.10 of the target scale per promo week and price change -0.005 per percentage point:
    each posterior mean (original units) within 30% and 3 posterior sd of the truth, its 90% interval
    covering it; the contributions against the lowest level sum with baseline and channels to mu."""
    mmm, per_unit = _fit_recovery(carryover=False)
    _check(per_unit.sel(treatment="promo"), 0.10, 0.3, "promo")
    _check(per_unit.sel(treatment="price_change"), -0.005, 0.3, "price_change")
    assert mmm.diagnostics()["divergences"] == 0
    c = mmm.contributions()
    np.testing.assert_allclose(c.sum(axis=1).to_numpy(),
                               mmm.idata.posterior["mu_original"].mean(("chain", "draw")).values, rtol=1e-9)
    assert (c["promo"] >= 0).all() and (c["price_change"] <= 1e-9).all()  # against the lowest price change (-10)


@pytest.mark.slow
def test_treatment_carryover_is_recovered():
    """Promo with carry-over: +0.15 of the target scale in total per promo week, geometric decay 0.5
    over 8 weeks (weights summing to 1). The total effect within 30% and 3 sd, the decay within 3 sd;
    both 90% intervals cover the truth."""
    mmm, per_unit = _fit_recovery(carryover=True)
    _check(per_unit.sel(treatment="promo"), 0.15, 0.3, "promo total")
    _check(mmm.idata.posterior["alpha_treatment"].sel(treatment="promo"), 0.5, None, "alpha_treatment")
