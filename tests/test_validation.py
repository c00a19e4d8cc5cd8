"""Hold-out, time-slice CV and model comparison on every path."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mmm_jax
from mmm_jax import MMM, ModelConfig
from mmm_jax.batch import fit_many
from mmm_jax.compat import group_names
from mmm_jax.data.features import fit_model_scaling
from mmm_jax.data.holdout import holdout_split
from mmm_jax.datasets import simulate, simulate_counts
from mmm_jax.datasets.panels import simulate_panel
from mmm_jax.hierarchical import HierarchicalConfig, HierarchicalMMM
from mmm_jax.posterior.metrics import forecast_metrics
from mmm_jax.validation import fold_frames, time_slice_cv

CH = ["tv", "search", "social"]
CFG = ModelConfig(date="date", target="sales", channels=CH, controls=["price_index"])
SMALL = {"chains": 1, "warmup": 100, "draws": 100, "progress": False}


def _quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


def test_holdout_split_rules():
    dates = pd.date_range("2022-01-02", periods=20, freq="7D")
    assert holdout_split(dates, None) == 20
    assert holdout_split(dates, 5) == 15
    assert holdout_split(dates, dates[12]) == 12
    assert holdout_split(dates, "2022-03-01") == 9  # a date between weeks: the weeks on or after it
    with pytest.raises(ValueError, match="leaves 0 training weeks"):
        holdout_split(dates, 20)
    with pytest.raises(ValueError, match="no week held out"):
        holdout_split(dates, "2030-01-01")
    with pytest.raises(ValueError, match="at least 1"):
        holdout_split(dates, 0)
    with pytest.raises(ValueError, match="neither a number of weeks nor a date"):
        holdout_split(dates, "soon")


def test_forecast_metrics_against_hand_computation():
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(4000, 3))
    obs = np.array([0.0, 1.0, 3.0])
    m = forecast_metrics(draws, obs)
    assert m["n"] == 3
    assert m["coverage_50"] == pytest.approx(1 / 3) and m["coverage_90"] == pytest.approx(2 / 3)
    # CRPS of N(0, 1) at y: y (2 Phi(y) - 1) + 2 phi(y) - 1 / sqrt(pi)
    ref = obs * (2 * stats.norm.cdf(obs) - 1) + 2 * stats.norm.pdf(obs) - 1 / np.sqrt(np.pi)
    assert m["crps"] == pytest.approx(ref.mean(), rel=0.03)
    assert m["mape"] == pytest.approx(np.mean(np.abs(draws.mean(0)[1:] - obs[1:]) / obs[1:]))
    assert forecast_metrics(draws, np.array([np.nan, 1.0, np.nan]))["n"] == 1


def test_one_brand_holdout_masks_scales_on_training_and_scores(tmp_path):
    df, _ = simulate(70, 3, seed=2)
    m = MMM(CFG)
    _quiet(m.fit, df, holdout=10, **SMALL)
    mask = m.model_inputs()["mask"]
    assert mask[:60].all() and not mask[60:].any()
    train_scaling = fit_model_scaling(CFG, MMM(CFG).validate(df.iloc[:60]))
    assert m.scaling.target_scale == train_scaling.target_scale
    np.testing.assert_array_equal(m.scaling.spend_scale, train_scaling.spend_scale)
    spend_train = df[CH].to_numpy()[:60].sum(axis=0)
    tot = m.idata.posterior["total_contribution"].values
    np.testing.assert_allclose(m.idata.posterior["roas"].values, tot / spend_train, rtol=1e-10)
    hm = m.holdout_metrics()
    assert hm["n"] == 10 and hm["holdout_start"] == str(df.date.iloc[60].date())
    assert 0 <= hm["coverage_50"] <= hm["coverage_90"] <= 1 and hm["crps"] > 0
    assert json_attr(m.idata, "holdout_metrics") == hm
    scored = m.crps(df)
    assert len(scored) == 10 and (scored["crps"] > 0).all()
    m.save(tmp_path / "run")
    back = MMM.load(tmp_path / "run")
    np.testing.assert_array_equal(back.model_inputs()["mask"], mask)
    assert back.holdout_metrics() == hm


def json_attr(idata, key):
    import json

    return json.loads(idata.posterior.attrs[key])


def test_markets_and_batch_holdout(tmp_path):
    dfp, _ = simulate_panel(n_markets=3, n_weeks=50, n_channels=2, seed=1, n_short=0)
    hc = HierarchicalConfig(ModelConfig(date="date", target="sales", channels=["tv", "search"], seasonality=1),
                            market=("market",))
    h = HierarchicalMMM(hc)
    _quiet(h.fit, dfp, holdout=6, **SMALL)
    assert not h.arrays["mask"][:, 44:].any() and h.arrays["mask"][:, :44].all()
    hm = h.holdout_metrics()
    assert hm["n"] == 18 and len(h.crps(dfp)) == 18
    frames = {f"b{i}": simulate(w, 3, seed=i)[0] for i, w in enumerate([60, 52])}
    res = _quiet(fit_many, frames, config=CFG, out=tmp_path / "batch", holdout=8, **SMALL)
    assert (res.manifest()["status"] == "done").all()
    b1 = res.load("b1")
    single = MMM(CFG)
    single.build(frames["b1"], holdout=8)
    np.testing.assert_array_equal(b1.model_inputs()["mask"], single.model_inputs()["mask"])
    assert b1.scaling.target_scale == single.scaling.target_scale
    assert b1.holdout_metrics()["n"] == 8
    spend = frames["b1"][CH].to_numpy()[:44].sum(axis=0)
    np.testing.assert_allclose(b1.idata.posterior["roas"].values,
                               b1.idata.posterior["total_contribution"].values / spend, rtol=1e-10)


def test_time_slice_cv_is_one_batch_of_folds(tmp_path):
    df, _ = simulate(72, 3, seed=3)
    frames = fold_frames(df, "date", 3, 8)
    assert [len(f) for f in frames.values()] == [56, 64, 72]
    with pytest.raises(mmm_jax.DataError, match="leave 0 training weeks"):
        fold_frames(df, "date", 9, 8)
    cv = _quiet(time_slice_cv, df, CFG, folds=3, horizon=8, out=tmp_path / "cv", **SMALL)
    assert list(cv.metrics["fold"]) == [0, 1, 2]
    assert list(cv.metrics["origin"]) == [str(df.date.iloc[i].date()) for i in (48, 56, 64)]
    assert list(cv.metrics["train_weeks"]) == [48, 56, 64] and (cv.metrics["n"] == 8).all()
    assert set(cv.roas["channel"]) == set(CH) and len(cv.roas) == 9
    assert cv.stats["fitted"] == 3 and len(cv.batch.manifest()) == 3
    assert (tmp_path / "cv" / "cv_metrics.csv").exists()
    cv.plot(tmp_path / "cv.png")
    assert (tmp_path / "cv.png").stat().st_size > 10_000
    st = cv.stability()
    assert list(st.columns) == ["mean_over_folds", "sd_across_folds", "cv"] and len(st) == 3


def test_log_likelihood_group_and_compare():
    df, _ = simulate(60, 3, seed=4)
    a, b = MMM(CFG), MMM(dataclasses.replace(CFG, seasonality=0))
    _quiet(a.fit, df, log_likelihood=True, holdout=6, **SMALL)
    _quiet(b.fit, df, log_likelihood=True, holdout=6, **SMALL)
    ll = a.idata.log_likelihood["y"]
    assert ll.dims == ("chain", "draw", "date") and ll.sizes["date"] == 54
    post = a.idata.posterior
    mu = post["mu_original"].values[0, 3, :54]
    sd = float(post["sigma"].values[0, 3]) * a.scaling.target_scale
    np.testing.assert_allclose(ll.values[0, 3], stats.norm.logpdf(df["sales"].to_numpy()[:54], mu, sd), rtol=1e-9)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = mmm_jax.compare({"full": a, "no_seasonality": b})
    flagged = {str(w.message).split("'")[1] for w in caught if "Pareto k" in str(w.message)}
    assert flagged == set(table.index[table["pareto_k_bad"] > 0])  # one warning per model with bad k
    assert set(table.index) == {"full", "no_seasonality"} and (table["n_obs"] == 54).all()
    assert {"elpd_loo", "se", "pareto_k_bad"} <= set(table.columns)
    c = MMM(CFG)
    _quiet(c.fit, df, **SMALL)
    with pytest.raises(ValueError, match="'plain' has no log_likelihood group"):
        mmm_jax.compare({"full": a, "plain": c})
    c.add_log_likelihood()
    with pytest.raises(ValueError, match="different numbers of observations"):
        mmm_jax.compare({"full": a, "all_weeks": c})


def test_count_log_likelihood_is_the_count_pmf():
    df, _ = simulate_counts(60, 2, seed=1)
    target = "new_customers"
    cfg = ModelConfig(date="date", target=target, channels=["tv", "search"], controls=["price_index"],
                      likelihood="poisson")
    m = MMM(cfg)
    _quiet(m.fit, df, log_likelihood=True, **SMALL)
    mu = m.idata.posterior["mu_original"].values[0, 5]
    np.testing.assert_allclose(m.idata.log_likelihood["y"].values[0, 5],
                               stats.poisson.logpmf(df[target].to_numpy(), mu), rtol=1e-9)


def test_prior_predictive_and_plots(tmp_path):
    from mmm_jax.plots import plot_adstock_weights, plot_predictive_check

    df, _ = simulate(60, 3, seed=5)
    m = MMM(CFG)
    prior = m.prior_predictive(df, draws=200, seed=1)
    assert m.idata is None  # the model itself is untouched
    y = prior.prior_predictive["y"]
    assert y.dims == ("chain", "draw", "date") and y.shape == (1, 200, 60)
    ts = df["sales"].abs().max()
    np.testing.assert_allclose(prior.prior["mu_original"].values, prior.prior["mu"].values * ts)
    spend = df[CH].to_numpy().sum(axis=0)
    tot = (prior.prior["channel_contribution"].values * ts).sum(axis=2)
    np.testing.assert_allclose(prior.prior["roas"].values, tot / spend)
    np.testing.assert_allclose(prior.observed_data["y"].values, df["sales"].to_numpy())
    again = MMM(CFG).prior_predictive(df, draws=200, seed=1)
    np.testing.assert_array_equal(again.prior_predictive["y"].values, y.values)  # same seed, same draws
    dfp, _ = simulate_panel(n_markets=3, n_weeks=40, n_channels=2, seed=3, n_short=1, short_weeks=20)
    hc = HierarchicalConfig(ModelConfig(date="date", target="sales", channels=["tv", "search"], seasonality=1),
                            market=("market",))
    hp = HierarchicalMMM(hc).prior_predictive(dfp, draws=50)
    assert hp.prior["roas"].dims == ("chain", "draw", "market", "channel")
    absent = np.isnan(hp.observed_data["y"].values)  # the short market's missing weeks
    assert absent.sum() == 20 and np.isnan(hp.prior_predictive["y"].values[0, 0][absent]).all()
    _quiet(m.fit, df, holdout=6, **SMALL)
    plot_predictive_check(m, tmp_path / "ppc.png", prior=prior)
    plot_adstock_weights(m, tmp_path / "adstock.png")
    assert (tmp_path / "ppc.png").stat().st_size > 20_000 and (tmp_path / "adstock.png").stat().st_size > 10_000


def test_sbc_runs_through_the_batch_sampler_and_ranks_are_consistent(tmp_path):
    from mmm_jax.validation import sbc

    df, _ = simulate(40, 2, seed=6)
    cfg = ModelConfig(date="date", target="sales", channels=["tv", "search"], seasonality=0, trend=False)
    res = _quiet(sbc, cfg, df, n=6, chains=2, warmup=60, draws=50, thin=5, out=tmp_path / "sbc", progress=False)
    names = ["intercept", "beta[0]", "beta[1]", "alpha[0]", "alpha[1]", "lam[0]", "lam[1]", "sigma"]
    assert sorted(res.ranks.columns) == sorted(names) and len(res.ranks) == 6
    assert res.n_ranks == 2 * 10 + 1
    assert res.ranks.to_numpy().min() >= 0 and res.ranks.to_numpy().max() <= res.n_ranks - 1
    cov = res.coverage
    assert ((cov[["coverage_50", "coverage_90"]] >= 0) & (cov[["coverage_50", "coverage_90"]] <= 1)).all().all()
    assert (cov["coverage_90"] >= cov["coverage_50"] - 1e-12).all()  # the 90% interval holds the 50% one
    assert res.stats["n"] == 6 and len(res.diagnostics) == 6
    for f in ("sbc_ranks.csv", "sbc_coverage.csv", "sbc_diagnostics.csv", "sbc.json", "sbc_ranks.png", "sbc_ecdf.png"):
        assert (tmp_path / "sbc" / f).exists(), f
    again = _quiet(sbc, cfg, df, n=6, chains=2, warmup=60, draws=50, thin=5, progress=False)
    pd.testing.assert_frame_equal(again.ranks, res.ranks)  # same seed, same ranks


def test_cli_cv_and_sbc(tmp_path, capsys):
    from mmm_jax.cli import main

    df, _ = simulate(56, 2, seed=7)
    data = tmp_path / "d.csv"
    df.to_csv(data, index=False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("date: date\ntarget: sales\nchannels: [tv, search]\ncontrols: [price_index]\nseasonality: 1\n")
    fast = ["--chains", "1", "--warmup", "60", "--draws", "60", "--no-progress"]
    assert main(["cv", str(data), "--config", str(cfg), "--folds", "2", "--horizon", "6", "--out",
                 str(tmp_path / "cv"), *fast]) == 0
    assert (tmp_path / "cv" / "cv.png").exists() and len(pd.read_csv(tmp_path / "cv" / "cv_metrics.csv")) == 2
    assert main(["cv", str(data), "--config", str(cfg), "--folds", "20", "--horizon", "6", "--out",
                 str(tmp_path / "cv2"), *fast]) == 2
    assert "training weeks" in capsys.readouterr().err
    assert main(["sbc", "--config", str(cfg), "--data", str(data), "--n", "4", "--out", str(tmp_path / "sbc"),
                 *fast]) == 0
    assert "4 simulations" in capsys.readouterr().out
    assert main(["fit", str(data), "--config", str(cfg), "--out", str(tmp_path / "fit"), "--holdout", "6",
                 "--log-likelihood", *fast]) == 0
    import json

    report = json.loads((tmp_path / "fit" / "diagnostics.json").read_text())
    assert report["holdout"]["n"] == 6 and "hold-out from" in capsys.readouterr().out
    assert "log_likelihood" in group_names(mmm_jax.load(tmp_path / "fit").idata)


def test_batch_log_likelihood_equals_the_single_fit_formula(tmp_path):
    frames = {f"b{i}": simulate(w, 3, seed=20 + i)[0] for i, w in enumerate([50, 44])}
    res = _quiet(fit_many, frames, config=CFG, out=tmp_path / "b", holdout=4, log_likelihood=True, **SMALL)
    m = res.load("b1")
    ll = m.idata.log_likelihood["y"]
    assert ll.dims == ("chain", "draw", "date") and ll.sizes["date"] == 40
    post = m.idata.posterior
    mu = post["mu_original"].values[0, 7, :40]
    sd = float(post["sigma"].values[0, 7]) * m.scaling.target_scale
    np.testing.assert_allclose(ll.values[0, 7], stats.norm.logpdf(frames["b1"]["sales"].to_numpy()[:40], mu, sd),
                               rtol=1e-9)
    dfp, _ = simulate_panel(n_markets=2, n_weeks=40, n_channels=2, seed=2, n_short=0)
    hc = HierarchicalConfig(ModelConfig(date="date", target="sales", channels=["tv", "search"], seasonality=1),
                            market=("market",))
    res = _quiet(fit_many, {"p": dfp}, config=hc, out=tmp_path / "p", log_likelihood=True, **SMALL)
    assert res.load("p").idata.log_likelihood["y"].sizes["obs"] == 80
