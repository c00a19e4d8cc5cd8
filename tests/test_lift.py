"""Lift tests as likelihood terms: the model's lift against a perturbed-spend reference, the
likelihood term against scipy, bad rows named, and every path (one brand, markets, batches of
brands and of market panels, save / load, CLI)."""

from __future__ import annotations

import warnings

import jax
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mmm_jax import MMM, DataError, ModelConfig
from mmm_jax.batch import fit_many, prepare_brand, stack_brands
from mmm_jax.cli import main
from mmm_jax.compile import compile_logdensity
from mmm_jax.data.lift import lift_sizes, validate_lift_tests
from mmm_jax.datasets import simulate
from mmm_jax.datasets.panels import simulate_panel
from mmm_jax.hierarchical import HierarchicalConfig, HierarchicalMMM
from mmm_jax.model.build import build_pymc_model

CH = ["tv", "search", "social"]
SMALL = {"chains": 1, "warmup": 100, "draws": 100, "progress": False}


def _tests(dates, rows):
    """rows: (channel, first week, n weeks, delta_spend, delta_response, sigma[, market])."""
    out = []
    for r in rows:
        d = {"channel": r[0], "start": dates[r[1]], "end": dates[r[1] + r[2] - 1], "delta_spend": r[3],
             "delta_response": r[4], "sigma": r[5]}
        if len(r) > 6:
            d["market"] = r[6]
        out.append(d)
    return pd.DataFrame(out)


def _random_point(ld, rng, scale=0.3):
    return {k: np.asarray(v) + scale * rng.normal(size=np.shape(v)) for k, v in ld.initial_point.items()}


@pytest.mark.parametrize("variant", ["plain", "roas_prior_hsgp_media", "saturation_first_hill"])
def test_one_brand_lift_is_the_perturbed_contribution_and_logp_matches_pymc(variant, rng):
    df, _ = simulate(90, 3, seed=4)
    kw = {}
    if variant == "roas_prior_hsgp_media":
        kw = {"roas_prior": {"search": {"dist": "LogNormal", "mu": 0.0, "sigma": 0.5}}, "time_varying_media": True}
    elif variant == "saturation_first_hill":
        kw = {"saturation": "hill", "adstock_first": False}
    cfg = ModelConfig(date="date", target="sales", channels=CH, controls=["price_index"], **kw)
    lt = _tests(df.date, [("tv", 40, 4, 800.0, 900.0, 200.0), ("search", 60, 3, -30.0, -40.0, 20.0),
                          ("tv", 70, 2, 300.0, 200.0, 150.0)])
    m = MMM(cfg)
    m.build(df, lift_tests=lt)
    ld, arrays = m.logdensity, m.model_inputs()
    logp = m.model.compile_logp()
    for _ in range(3):
        p = _random_point(ld, rng)
        np.testing.assert_allclose(float(jax.jit(ld.logp)(p, arrays)), float(logp(p)), rtol=1e-10)
    p = _random_point(ld, rng)
    base = ld.constrain(p, arrays)
    for i, r in m.lift_tests.iterrows():
        c = CH.index(r.channel)
        w = ((m.data.dates >= r.start) & (m.data.dates <= r.end)).astype(float)
        a = dict(arrays)
        a["spend"] = arrays["spend"].copy()
        a["spend"][:, c] += w * r.delta_spend / m.scaling.spend_scale[c]
        moved = ld.constrain(p, a)
        ref = ((moved["channel_contribution"] - base["channel_contribution"])[:, c] * w).sum() * m.scaling.target_scale
        np.testing.assert_allclose(float(base["lift_prediction"][i]), ref, rtol=1e-9)


@pytest.mark.parametrize("likelihood", ["normal", "gamma"])
def test_lift_term_is_the_stated_likelihood(likelihood, rng):
    """log p(with tests) - log p(without) == sum of Normal / Gamma log-densities of the measurements
    at the model's lift (scipy), in the units the model uses (lift_ref)."""
    df, _ = simulate(80, 3, seed=5)
    cfg = ModelConfig(date="date", target="sales", channels=CH, controls=["price_index"], lift_likelihood=likelihood)
    lt = _tests(df.date, [("tv", 30, 4, 800.0, 900.0, 200.0), ("social", 50, 3, 100.0, 60.0, 40.0)])
    with_tests, without = MMM(cfg), MMM(cfg)
    with_tests.build(df, lift_tests=lt)
    without.build(df, lift_tests=False)
    ld1, ld0 = with_tests.logdensity, without.logdensity
    a = with_tests.model_inputs()
    for _ in range(3):
        p = _random_point(ld0, rng, 0.1)
        diff = float(ld1.logp(p, a)) - float(ld0.logp(p, without.model_inputs()))
        pred = np.asarray(ld1.constrain(p, a)["lift_prediction"]) / a["lift_ref"]
        obs, sd = a["lift_observed"], a["lift_sigma"]
        if likelihood == "normal":
            ref = stats.norm.logpdf(obs, pred, sd).sum()
        else:
            mu = np.abs(pred)
            ref = stats.gamma.logpdf(np.abs(obs), a=mu**2 / sd**2, scale=sd**2 / mu).sum()
        np.testing.assert_allclose(diff, ref, rtol=1e-8)


def test_bad_rows_are_named():
    df, _ = simulate(60, 3, seed=1)
    good = _tests(df.date, [("tv", 10, 3, 100.0, 50.0, 10.0)])

    def check(table, match, **kw):
        with pytest.raises(DataError, match=match):
            validate_lift_tests(table, channels=CH, dates=pd.DatetimeIndex(df.date), freq_days=7,
                                spend=df[CH].to_numpy(float), **kw)

    check(good.assign(channel="radio"), r"row 0, column 'channel': unknown channel 'radio'")
    late = good.copy()
    late.loc[0, "end"] = df.date.iloc[-1] + pd.Timedelta(days=30)
    check(late, r"row 0, column 'end'.*outside the data")
    check(pd.concat([good, good.assign(sigma=-1.0)], ignore_index=True), r"row 1, column 'sigma': -1")
    check(good.assign(delta_spend=-1e9), r"row 0, column 'delta_spend'.*below 0")
    check(good.assign(delta_response=-5.0), r"row 0, column 'delta_response'.*gamma", likelihood="gamma")
    check(good.drop(columns="sigma"), r"missing column 'sigma'")
    check(good.assign(start="not a date"), r"row 0, column 'start': not a date")
    check(good.assign(market="m1"), r"row 0, column 'market'.*no markets")
    spend3 = np.stack([df[CH].to_numpy(float)] * 2)
    with pytest.raises(DataError, match=r"row 0, column 'market': missing"):
        validate_lift_tests(good, channels=CH, dates=pd.DatetimeIndex(df.date), freq_days=7, spend=spend3,
                            markets=["a", "b"])
    with pytest.raises(DataError, match=r"row 0, column 'market': unknown market 'c'"):
        validate_lift_tests(good.assign(market="c"), channels=CH, dates=pd.DatetimeIndex(df.date), freq_days=7,
                            spend=spend3, markets=["a", "b"])


@pytest.fixture(scope="module")
def national_panel():
    df, _ = simulate_panel(n_markets=4, n_weeks=70, n_channels=3, seed=2, n_short=1, short_weeks=40)
    df["tv"] = df.groupby("date")["tv"].transform("first")  # tv bought nationally
    base = ModelConfig(date="date", target="sales", channels=CH, controls=["price_index"], seasonality=1,
                       roas_prior={"search": {"dist": "LogNormal", "mu": 0.0, "sigma": 0.5}})
    return df, HierarchicalConfig(base, market=("market",), national_channels=("tv",))


def test_markets_lift_national_and_local_tests(national_panel, rng):
    df, cfg = national_panel
    dates = sorted(df.date.unique())
    lt = _tests(dates, [("tv", 50, 4, 3000.0, 2000.0, 500.0, None), ("search", 45, 4, 400.0, 300.0, 100.0, "m00"),
                        ("social", 52, 3, 40.0, 50.0, 30.0, "m01")])
    h = HierarchicalMMM(cfg)
    h.build(df, lift_tests=lt)
    ld, arrays = h.logdensity, h.arrays
    logp = h.model.compile_logp()
    for _ in range(2):
        p = _random_point(ld, rng, 0.2)
        np.testing.assert_allclose(float(jax.jit(ld.logp)(p, arrays)), float(logp(p)), rtol=1e-10)
    p = _random_point(ld, rng, 0.2)
    base = ld.constrain(p, arrays)
    order = [*cfg.local_channels, *cfg.national_channels]
    P, ts = h.panel, h.scaling.target_scale
    for i, r in h.lift_tests.iterrows():
        w = ((P.dates >= r.start) & (P.dates <= r.end)).astype(float)
        a, ci = dict(arrays), cfg.base.channels.index(r.channel)
        if r.channel in cfg.national_channels:
            a["national_spend"] = arrays["national_spend"].copy()
            j = cfg.national_channels.index(r.channel)
            a["national_spend"][:, j] += w * r.delta_spend / h.scaling.spend_scale[0, ci]
            gs = range(len(P.markets))
        else:
            g = P.markets.index(r.market)
            a["spend"] = arrays["spend"].copy()
            a["spend"][g, :, cfg.local_channels.index(r.channel)] += w * r.delta_spend / h.scaling.spend_scale[g, ci]
            gs = [g]
        moved = ld.constrain(p, a)
        d = (moved["channel_contribution"] - base["channel_contribution"])[:, :, order.index(r.channel)]
        ref = sum(float((d[g] * w * arrays["mask"][g]).sum() * ts[g]) for g in gs)
        np.testing.assert_allclose(float(base["lift_prediction"][i]), ref, rtol=1e-9)


def test_markets_fit_save_load_keeps_the_tests(national_panel, tmp_path):
    df, cfg = national_panel
    dates = sorted(df.date.unique())
    lt = _tests(dates, [("search", 45, 4, 400.0, 300.0, 100.0, "m00")])
    h = HierarchicalMMM(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h.fit(df, lift_tests=lt, **SMALL)
    table = h.lift_test_fit()
    assert list(table["measured"]) == [300.0] and np.isfinite(table["mean"]).all()
    h.save(tmp_path / "run")
    back = HierarchicalMMM.load(tmp_path / "run")
    pd.testing.assert_frame_equal(back.lift_tests, h.lift_tests)
    assert "lift_column" in back.logdensity.data_names
    assert back.predict(df).y.shape[2:] == (4, 70)


def test_one_brand_fit_save_load_predict(tmp_path):
    df, _ = simulate(80, 3, seed=6)
    cfg = ModelConfig(date="date", target="sales", channels=CH, controls=["price_index"])
    lt = _tests(df.date, [("tv", 30, 4, 800.0, 900.0, 200.0)])
    m = MMM(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(df, lift_tests=lt, **SMALL)
    t = m.lift_test_fit()
    assert t.loc[0, "hdi_5%"] <= t.loc[0, "median"] <= t.loc[0, "hdi_95%"]
    m.save(tmp_path / "r")
    back = MMM.load(tmp_path / "r")
    pd.testing.assert_frame_equal(back.lift_test_fit(), t)
    pred = back.predict(df.iloc[:50])
    assert pred.y.shape == (1, 100, 50)
    with pytest.raises(ValueError, match="no lift tests"):
        no = MMM(cfg)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            no.fit(df, lift_tests=False, **SMALL)
        no.lift_test_fit()


def test_batch_padding_adds_nothing_and_each_brand_gets_its_tests(tmp_path, rng):
    cfg = ModelConfig(date="date", target="sales", channels=CH, controls=["price_index"])
    frames = {}
    for i, w in enumerate([70, 56, 62]):
        frames[f"b{i}"], _ = simulate(w, 3, seed=10 + i)
    d0, d1 = frames["b0"].date, frames["b1"].date
    lt = pd.concat([_tests(d0, [("tv", 30, 4, 800.0, 700.0, 200.0),
                                ("search", 50, 3, 50.0, 40.0, 20.0)]).assign(brand="b0"),
                    _tests(d1, [("tv", 20, 5, 500.0, 400.0, 100.0)]).assign(brand="b1")], ignore_index=True)
    prepared = {b: prepare_brand(b, f, cfg, lt[lt.brand == b].drop(columns="brand")) for b, f in frames.items()}
    sizes = lift_sizes([b.arrays for b in prepared.values()])
    assert sizes == {"lift_test": 2, "lift_col": 2}
    for name in ("b1", "b2"):  # fewer tests than the template / none at all
        b = prepared[name]
        pad = {k: v[0] for k, v in stack_brands([b], 70, cfg.seasonality, sizes).arrays.items()}
        ld_pad = compile_logdensity(build_pymc_model(cfg, pad))
        ld_own = compile_logdensity(build_pymc_model(cfg, b.arrays))
        for _ in range(3):
            p = {k: rng.normal(size=s) for k, s in ld_own.param_shapes.items()}
            np.testing.assert_allclose(float(ld_pad.logp(p, pad)), float(ld_own.logp(p, b.arrays)), rtol=1e-12)
    long = pd.concat([f.assign(brand=b) for b, f in frames.items()], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit_many(long, by="brand", config=cfg, out=tmp_path / "batch", lift_tests=lt, chains=1, warmup=100,
                       draws=100, progress=False)
    assert (res.manifest()["status"] == "done").all()
    t0 = res.load("b0").lift_test_fit()
    assert list(t0["measured"]) == [700.0, 40.0] and list(t0["channel"]) == ["tv", "search"]
    assert res.load("b1").lift_test_fit()["measured"].tolist() == [400.0]
    assert "lift_prediction" not in res.load("b2").idata.posterior
    with pytest.raises(DataError, match=r"row 0, column 'brand': unknown brand 'zz'"):
        fit_many(long, by="brand", config=cfg, out=tmp_path / "b2", lift_tests=lt.assign(brand="zz"), **SMALL)


def test_batch_of_market_panels_with_tests(tmp_path):
    frames = []
    for i, (G, T) in enumerate([(3, 50), (2, 44)]):
        df, _ = simulate_panel(n_markets=G, n_weeks=T, n_channels=2, seed=i, n_short=0)
        frames.append(df.assign(brand=f"p{i}"))
    long = pd.concat(frames, ignore_index=True)
    cfg = HierarchicalConfig(ModelConfig(date="date", target="sales", channels=["tv", "search"], seasonality=1),
                             market=("market",))
    lt = _tests(sorted(frames[0].date.unique()), [("tv", 30, 4, 500.0, 300.0, 80.0, "m01")]).assign(brand="p0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit_many(long, by="brand", config=cfg, out=tmp_path / "pb", lift_tests=lt, **SMALL)
    assert (res.manifest()["status"] == "done").all()
    assert res.load("p0").lift_test_fit()["market"].tolist() == ["m01"]
    assert "lift_prediction" not in res.load("p1").idata.posterior


def test_cli_reads_the_config_path_next_to_it_and_refuses_bad_rows(tmp_path, capsys):
    df, _ = simulate(70, 3, seed=7)
    data = tmp_path / "data.csv"
    df.to_csv(data, index=False)
    (tmp_path / "cfg").mkdir()
    _tests(df.date, [("tv", 30, 4, 800.0, 900.0, 200.0)]).to_csv(tmp_path / "cfg" / "lift.csv", index=False)
    cfg = tmp_path / "cfg" / "model.yaml"
    cfg.write_text("date: date\ntarget: sales\nchannels: [tv, search, social]\ncontrols: [price_index]\n"
                   "lift_tests: lift.csv\n")
    fast = ["--chains", "1", "--warmup", "100", "--draws", "100", "--no-progress"]
    assert main(["fit", str(data), "--config", str(cfg), "--out", str(tmp_path / "run"), *fast]) == 0
    written = pd.read_csv(tmp_path / "run" / "lift_tests.csv")
    assert written["measured"].tolist() == [900.0] and "z" in written
    bad = tmp_path / "bad.csv"
    _tests(df.date, [("tv", 30, 4, 800.0, 900.0, 200.0), ("radio", 30, 4, 1.0, 1.0, 1.0)]).to_csv(bad, index=False)
    capsys.readouterr()
    assert main(["fit", str(data), "--config", str(cfg), "--out", str(tmp_path / "r2"), "--lift-tests", str(bad),
                 *fast]) == 2
    err = capsys.readouterr().err
    assert "row 1, column 'channel': unknown channel 'radio'" in err and "Traceback" not in err
