"""Hierarchical multi-market model: log-density vs PyMC, validation, recovery, shrinkage, CRPS."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from mmm_jax.config.model import ConfigError, DelayedAdstock, HillSaturation

from mmm_jax import DataError, ModelConfig
from mmm_jax.compile import compile_logdensity
from mmm_jax.hierarchical import (
    HierarchicalConfig,
    HierarchicalMMM,
    build_hierarchical_model,
    fit_panel_scaling,
    panel_arrays,
    simulate_panel,
    validate_panel,
)
from mmm_jax.posterior.metrics import crps_samples


def _panel_df(n=6, weeks=40, channels=3, seed=0, **kw):
    df, truth = simulate_panel(n, weeks, channels, seed=seed, n_short=2, short_weeks=16, **kw)
    return df, truth


def _build(cfg, df):
    panel = validate_panel(df, cfg)
    arrays = panel_arrays(panel, fit_panel_scaling(panel, cfg), cfg)
    return build_hierarchical_model(cfg, arrays, panel), panel, arrays


def _nested(df):
    df = df.copy()
    df["region"] = np.where(df["market"].str[-1].astype(int) % 2 == 0, "east", "west")
    return df


VARIANTS = {
    "default": dict(),
    "nested+national": dict(market=("region", "market"), national_channels=("social",)),
    "shared+independent": dict(pooling={"beta": "independent", "alpha": "shared", "intercept": "independent",
                                        "sigma": "pooled"}),
    "studentt+families": dict(base_kw=dict(likelihood="studentt", adstock=DelayedAdstock(l_max=6),
                                           saturation=HillSaturation())),
    "population": dict(population="pop"),
    "centered+nested": dict(market=("region", "market"), centered=("intercept", "beta", "gamma_fourier")),
    "hsgp_intercept_pooled": dict(base_kw=dict(time_varying_intercept={"m": 6}), pooling={"intercept_tv": "pooled"}),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_compiled_logp_equals_pymc(variant, rng):
    opts = dict(VARIANTS[variant])
    df, truth = _panel_df()
    df = _nested(df)
    df["pop"] = df["market"].map({m: 1e5 * (i + 1) for i, m in enumerate(sorted(df.market.unique()))})
    if "national_channels" in opts:  # make 'social' a national channel: same spend everywhere on a date
        nat = df.groupby("date")["social"].transform("first")
        df["social"] = nat
    base = ModelConfig(date="date", target="sales", channels=truth.channels, controls=["price_index"],
                       **opts.pop("base_kw", {}))
    cfg = HierarchicalConfig(base, market=opts.pop("market", "market"), **opts)
    model, panel, arrays = _build(cfg, df)
    ld = compile_logdensity(model)
    f = model.compile_logp()
    ip = model.initial_point()
    for _ in range(6):
        p = {k: rng.normal(scale=0.7, size=np.shape(v)) for k, v in ip.items()}
        np.testing.assert_allclose(float(ld.logp(p, ld.default_data)), float(f(p)), rtol=1e-9)
    if variant == "nested+national":
        assert ld.default_data["national_spend"].shape == (panel.dates.size, 1)
        assert "beta_z_region" in ld.param_names and "beta_z_market" in ld.param_names
    if variant == "hsgp_intercept_pooled":  # a shared path plus one deviation process per market
        assert {"intercept_tv_global_z", "intercept_tv_delta_z", "intercept_tv_delta_eta_log__"} <= set(ld.param_names)
        assert ld.param_shapes["intercept_tv_delta_z"] == (6, panel.n_markets)
        assert ld.dims["intercept_tv"] == ("date", "market")
    if variant == "centered+nested":
        assert {"beta_region", "beta_market", "intercept_market"} <= set(ld.param_names)
        assert "beta_z_market" not in ld.param_names and "alpha_z_market" in ld.param_names


def test_per_channel_priors_follow_the_model_channel_order():
    """The model orders channels local first, then national: a per-channel prior list given in
    the config's channel order must follow its channels."""
    import pymc as pm

    df, truth = _panel_df()
    df[truth.channels[0]] = df.groupby("date")[truth.channels[0]].transform("first")  # national
    sds = [0.01, 1.0, 3.0][: len(truth.channels)]
    base = ModelConfig(date="date", target="sales", channels=truth.channels,
                       priors={"beta": {"dist": "HalfNormal", "sigma": sds}})
    cfg = HierarchicalConfig(base, market="market", national_channels=(truth.channels[0],),
                             pooling={"beta": "shared"})
    model, _, _ = _build(cfg, df)
    assert list(model.coords["channel"]) == [*truth.channels[1:], truth.channels[0]]
    draws = pm.draw(model["beta"], draws=4000, random_seed=1)
    want = np.array([*sds[1:], sds[0]]) * np.sqrt(1 - 2 / np.pi)  # HalfNormal sd
    np.testing.assert_allclose(draws.std(axis=0), want, rtol=0.1)


def test_centered_only_for_pooled_parameters():
    base = ModelConfig(date="date", target="sales", channels=("tv", "search"))
    with pytest.raises(ConfigError, match="centered: 'sigma' is 'independent'"):
        HierarchicalConfig(base, market="market", centered=("sigma",))
    with pytest.raises(ConfigError, match="centered: 'bogus' is not a parameter"):
        HierarchicalConfig(base, market="market", centered=("bogus",))
    tvi = base.__class__.from_dict({**base.to_dict(), "time_varying_intercept": {"m": 6}})
    with pytest.raises(ConfigError, match="pooling.intercept_tv: 'independent' is not available"):
        HierarchicalConfig(tvi, market="market", pooling={"intercept_tv": "independent"})
    with pytest.raises(ConfigError, match="centered: 'intercept_tv' is an HSGP"):
        HierarchicalConfig(tvi, market="market", pooling={"intercept_tv": "pooled"}, centered=("intercept_tv",))
    with pytest.raises(ConfigError, match="pooling.intercept_tv: not a parameter"):
        HierarchicalConfig(base, market="market", pooling={"intercept_tv": "pooled"})
    cfg = HierarchicalConfig(base, market="market", centered="beta")
    assert cfg.centered == ("beta",) and HierarchicalConfig.from_dict(cfg.to_dict()).centered == ("beta",)


def test_pooled_hsgp_intercept_fits_and_forecasts():
    """pooling.intercept_tv: pooled gives each market its own path (date, market) around a shared
    one; the fit carries it and a forecast evaluates the same processes on new weeks."""
    df, truth = _panel_df(n=4, weeks=40)
    base = ModelConfig(date="date", target="sales", channels=truth.channels, controls=["price_index"],
                       time_varying_intercept={"m": 6})
    h = HierarchicalMMM(HierarchicalConfig(base, market="market", pooling={"intercept_tv": "pooled"}))
    cut = sorted(df["date"].unique())[-6]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a tiny fit
        h.fit(df[df["date"] < cut], chains=2, warmup=40, draws=30, seed=1, progress=False)
    tv = h.idata.posterior["intercept_tv"]
    assert tv.dims == ("chain", "draw", "date", "market") and tv.sizes["market"] == 4
    assert float(tv.std("market").mean()) > 0  # the markets' paths differ
    future = df.copy()
    future.loc[future["date"] >= cut, "sales"] = np.nan
    pred = h.predict(future)
    assert pred["mu"].sizes["date"] == df["date"].nunique() and np.isfinite(pred["mu"].values).all()


def test_data_are_inputs_and_masks_hide_missing_weeks(rng):
    df, truth = _panel_df()
    cfg = HierarchicalConfig(ModelConfig(date="date", target="sales", channels=truth.channels,
                                         controls=["price_index"]), market="market")
    model, panel, arrays = _build(cfg, df)
    ld = compile_logdensity(model)
    # the short (new) markets have no rows before their launch: masked
    assert arrays["mask"][-1, :24].sum() == 0 and arrays["mask"][-1, 24:].all()
    p = {k: rng.normal(scale=0.5, size=np.shape(v)) for k, v in model.initial_point().items()}
    data2 = dict(ld.default_data)
    t2 = data2["target"].copy()
    t2[-1, :24] = 123.0  # a value in masked weeks changes nothing
    assert float(ld.logp(p, {**data2, "target": t2})) == pytest.approx(float(ld.logp(p, ld.default_data)), rel=1e-12)
    t2[-1, 30] += 0.5
    assert float(ld.logp(p, {**data2, "target": t2})) != pytest.approx(float(ld.logp(p, ld.default_data)), rel=1e-9)


def test_validation_names_market_column_and_date():
    df, truth = _panel_df()
    base = ModelConfig(date="date", target="sales", channels=truth.channels, controls=["price_index"])
    bad = df.copy()
    bad.loc[bad.index[bad.market == "m01"][3], "tv"] = -5.0
    with pytest.raises(DataError, match=r"market 'm01': column 'tv', row 3 .*negative spend"):
        validate_panel(bad, HierarchicalConfig(base, market="market"))
    with pytest.raises(DataError, match="national channel 'tv'.*same spend in every market"):
        validate_panel(df, HierarchicalConfig(base, market="market", national_channels=("tv",)))
    with pytest.raises(DataError, match="missing market column"):
        validate_panel(df, HierarchicalConfig(base, market="geo"))
    with pytest.raises(ConfigError, match="pooling.beta: 'partial' is not allowed"):
        HierarchicalConfig(base, market="market", pooling={"beta": "partial"})
    with pytest.raises(ConfigError, match="national_channels"):
        HierarchicalConfig(base, market="market", national_channels=("radio",))
    cfg = HierarchicalConfig(base, market=("region", "market"), pooling={"sigma": "shared"})
    assert HierarchicalConfig.from_dict(cfg.to_dict()) == cfg


def test_crps_matches_closed_form_normal():
    from scipy.stats import norm

    x = norm.ppf((np.arange(20_000) + 0.5) / 20_000)[:, None]  # evenly spread N(0, 1) quantiles
    from math import erf, exp, pi, sqrt

    for y in (-1.3, 0.0, 0.7):
        ref = y * erf(y / sqrt(2)) + 2 * exp(-y * y / 2) / sqrt(2 * pi) - 1 / sqrt(pi)
        assert crps_samples(x, np.array([y]))[0] == pytest.approx(ref, abs=1e-3)
    assert crps_samples(np.zeros((10, 2)), np.array([0.0, 2.0])).tolist() == [0.0, 2.0]


# --------------------------------------------------------------------------- recovery (slow)
HOLDOUT = 8


@pytest.fixture(scope="module")
def pooled_vs_independent(tmp_path_factory):
    """20 markets x 104 weeks x 4 channels (4 new markets with 26 weeks); the last 8 weeks held out.
    Pooled: one joint fit. Independent: one fit per market with the batch engine."""
    from mmm_jax.batch import fit_many, load_brand

    df, truth = simulate_panel(20, 104, 4, seed=3, n_short=4, short_weeks=26)
    cut = truth.dates[-HOLDOUT]
    train = df[df.date < cut]
    base = ModelConfig(date="date", target="sales", channels=truth.channels, controls=["price_index"])
    h = HierarchicalMMM(HierarchicalConfig(base, market="market"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h.fit(train, chains=4, warmup=500, draws=500, seed=1, progress=False)
        out = tmp_path_factory.mktemp("indep")
        fit_many(train, by="market", config=base, out=out, chains=4, warmup=500, draws=500, seed=1, progress=False)
    indep = {m: load_brand(out, m) for m in truth.markets}
    return df, truth, cut, h, indep


@pytest.mark.slow
def test_hyper_means_inside_90pct_intervals(pooled_vs_independent):
    df, truth, cut, h, _ = pooled_vs_independent
    post = h.idata.posterior
    # truth in model units: beta / (max |y_scaled| of the market); its population mean on the log scale
    train_tmax = np.array([np.abs(df[(df.market == m) & (df.date < cut)].sales).max() / s
                           for m, s in zip(truth.markets, truth.size, strict=True)])
    true_beta_mu = truth.hyper["beta_mu"] - np.mean(np.log(train_tmax))
    checks = {"beta_mu": true_beta_mu, "alpha_mu": truth.hyper["alpha_mu"], "lam_mu": truth.hyper["lam_mu"]}
    covered = {}
    for name, true in checks.items():
        lo, hi = np.quantile(post[name].values.reshape(-1, len(true)), [0.05, 0.95], axis=0)
        covered[name] = (lo <= true) & (true <= hi)
    assert covered["beta_mu"].all(), (checks["beta_mu"], covered)
    assert sum(c.sum() for c in covered.values()) >= 11, covered  # of 12 hyper-means
    d = h.diagnostics()
    print("pooled fit diagnostics", d)
    assert d["max_rhat"] < 1.05 and d["divergences"] <= 10


@pytest.mark.slow
def test_pooling_shrinks_roas_error_for_markets_with_least_data(pooled_vs_independent):
    df, truth, cut, h, indep = pooled_vs_independent
    true = truth.roas_between(end=cut)
    pooled = h.idata.posterior["roas"].mean(("chain", "draw")).sel(channel=truth.channels).values
    alone = np.stack([indep[m].idata.posterior["roas"].mean(("chain", "draw")).sel(channel=truth.channels).values
                      for m in truth.markets])
    short = truth.n_weeks < 104
    err_pooled = np.abs(pooled[short] - true[short]) / true[short]
    err_alone = np.abs(alone[short] - true[short]) / true[short]
    print(f"short markets: mean relative ROAS error pooled {err_pooled.mean():.3f} vs independent {err_alone.mean():.3f}")
    assert err_pooled.mean() < err_alone.mean()


@pytest.mark.slow
def test_out_of_sample_crps_pooled_not_worse(pooled_vs_independent):
    df, truth, cut, h, indep = pooled_vs_independent
    pooled = h.crps(df, cut, seed=2)
    rows = []
    for m in truth.markets:
        dm = df[df.market == m].drop(columns="market").reset_index(drop=True)
        hold = dm.date >= cut
        fc = dm.copy()
        fc.loc[hold, "sales"] = np.nan
        pred = indep[m].predict(fc, seed=2)["y"].values  # (chain, draw, date)
        s = pred.reshape(-1, pred.shape[-1])[:, hold.to_numpy()]
        rows.append(crps_samples(s, dm.loc[hold, "sales"].to_numpy()).mean())
    c_pooled, c_alone = pooled["crps"].mean(), float(np.mean(rows))
    print(f"hold-out CRPS: pooled {c_pooled:.1f} vs independent {c_alone:.1f}")
    assert c_pooled <= c_alone
