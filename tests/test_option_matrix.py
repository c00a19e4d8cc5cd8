"""Option x path matrix: every model-library option on every way to run the model.

Paths: one brand (``MMM``), markets nested (``region/market``) and crossed (``geo x product``)
(``HierarchicalMMM``), a batch of brands and a batch of nested market panels (both ``fit_many``). For each (option, path) a tiny fit runs and its outputs carry the
option's variables (every cell runs; the combinations the code refuses are tested at the end with
the ``ConfigError`` that names them). The compiled
log-density equals PyMC's ``model.compile_logp()`` for every option on every model path.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from mmm_jax.config.model import ConfigError

from mmm_jax import MMM, ModelConfig
from mmm_jax.batch import fit_many
from mmm_jax.compat import get_group
from mmm_jax.compile import compile_logdensity
from mmm_jax.datasets import simulate
from mmm_jax.hierarchical import (
    HierarchicalConfig,
    HierarchicalMMM,
    build_hierarchical_model,
    fit_panel_scaling,
    panel_arrays,
    simulate_panel,
    validate_panel,
)

CHANNELS = ("tv", "search", "social")
LOGNORMAL = {"dist": "LogNormal", "mu": 0.0, "sigma": 0.5}
#: two event names, each with a date in the brands' year (2021) and the panels' (2022)
EVENTS = [{"date": f"{y}-03-10", "holiday": "promo", "days_after": 10} for y in (2021, 2022)] + \
         [{"date": f"{y}-07-04", "holiday": "summer", "days_before": 3} for y in (2021, 2022)]
#: non-media treatments: a 0/1 promotion and a signed price change (added to the frames by ``_data``)
TREATMENTS = ["promo", "price_change"]

#: option -> (ModelConfig keywords, variables the posterior must carry)
OPTIONS = {
    "hsgp_intercept": (dict(time_varying_intercept={"m": 6}), ["intercept_tv", "intercept_tv_ell"]),
    "hsgp_media_shared": (dict(time_varying_media={"m": 6}), ["media_multiplier", "media_tv_eta"]),
    "hsgp_media_hierarchical": (dict(time_varying_media={"m": 6, "hierarchical": True}),
                                ["media_multiplier", "media_tv_delta_z"]),
    "poisson": (dict(likelihood="poisson"), []),
    "negative_binomial": (dict(likelihood="negative_binomial"), ["overdispersion"]),
    "studentt": (dict(likelihood="studentt"), ["nu"]),
    "roas_prior": (dict(roas_prior={"tv": LOGNORMAL}), ["roas_tv", "beta_free"]),
    "cac_prior": (dict(cac_prior={"search": LOGNORMAL}), ["cac_search", "beta_free"]),
    "tanh": (dict(saturation="tanh"), ["sat_level", "cac0"]),
    "hill": (dict(saturation="hill"), ["half_sat", "slope"]),
    "weibull": (dict(adstock={"type": "weibull", "l_max": 6}), ["weibull_shape", "weibull_scale"]),
    "delayed": (dict(adstock={"type": "delayed", "l_max": 6}), ["theta"]),
    "infinite_geometric": (dict(adstock={"type": "geometric", "infinite": True}), ["alpha"]),
    "saturation_first": (dict(adstock_first=False), ["alpha", "lam"]),
    "holidays": (dict(holidays=EVENTS), ["gamma_holiday"]),
    "treatments": (dict(treatments=TREATMENTS), ["gamma_treatment"]),
    "treatments_carryover": (dict(treatments=TREATMENTS, treatment_carryover=True),
                             ["gamma_treatment", "alpha_treatment"]),
}
#: variables a market path carries instead (the other channels' pooled beta location)
MARKET_VARS = {"roas_prior": ["roas_tv", "beta_mu"], "cac_prior": ["cac_search", "beta_mu"]}
PATHS = ("one_brand", "markets_nested", "markets_crossed", "batch_brands", "batch_panels")
FIT = dict(chains=2, warmup=40, draws=40, seed=1, progress=False)


def _config(option: str) -> ModelConfig:
    return ModelConfig(date="date", target="sales", channels=CHANNELS, controls=["price_index"], seasonality=1,
                       **OPTIONS[option][0])


def _counts(df: pd.DataFrame, option: str) -> pd.DataFrame:
    if option in ("poisson", "negative_binomial"):
        df = df.copy()
        df["sales"] = np.round(df["sales"] / df["sales"].max() * 300.0).astype(int)
    return df


def _data(df: pd.DataFrame, option: str) -> pd.DataFrame:
    """The frame for ``option``: counts (:func:`_counts`) and, for the treatment options, a 0/1
    ``promo`` and a signed ``price_change`` column (seeded by the frame's length; other options'
    frames are unchanged)."""
    df = _counts(df, option)
    if option.startswith("treatments"):
        rng = np.random.default_rng(len(df))
        df = df.assign(promo=(rng.random(len(df)) < 0.2).astype(float),
                       price_change=rng.choice([-10.0, -5.0, 0.0, 5.0], size=len(df)))
    return df


def _brand(seed: int, weeks: int = 56) -> pd.DataFrame:
    return simulate(weeks, 3, seed=seed)[0]


def _panel(seed: int, path: str, n_markets: int = 4, weeks: int = 40) -> pd.DataFrame:
    df, _ = simulate_panel(n_markets, weeks, 3, seed=seed, n_short=1, short_weeks=weeks // 2)
    idx = df["market"].map({m: i for i, m in enumerate(sorted(df["market"].unique()))})
    if path == "markets_nested":
        df["region"] = np.where(idx % 2 == 0, "east", "west")
    elif path == "markets_crossed":  # 2 geos x 2 products: every product in both geos
        df["geo"] = np.where(idx // 2 == 0, "g0", "g1")
        df["product"] = np.where(idx % 2 == 0, "p0", "p1")
    return df


def _market_config(option: str, path: str) -> HierarchicalConfig:
    levels = {"markets_nested": ("region", "market"), "markets_crossed": ("geo", "product")}.get(path, "market")
    return HierarchicalConfig(_config(option), market=levels, crossed=path == "markets_crossed")


def _fit(option: str, path: str, tmp_path):
    """Run the (option, path) cell; returns the fitted posterior's InferenceData."""
    if path == "one_brand":
        mmm = MMM(_config(option))
        mmm.fit(_data(_brand(0), option), **FIT)
        return mmm.idata
    if path in ("markets_nested", "markets_crossed"):
        h = HierarchicalMMM(_market_config(option, path))
        h.fit(_data(_panel(0, path), option), **FIT)
        return h.idata
    if path == "batch_brands":
        frames = {"b0": _data(_brand(0), option), "b1": _data(_brand(1, 48), option)}
        if option != "hsgp_media_hierarchical":  # zero-sum deviations: a brand needs every channel (tested below)
            frames["b1"]["social"] = 0.0
        res = fit_many(frames, config=_config(option), out=tmp_path / "batch", **FIT)
        m = res.manifest().set_index("brand")
        assert (m["status"] == "done").all(), m["error"].tolist()
        idata = res.load("b1").idata
        assert list(idata.posterior["channel"].values) == (list(CHANNELS) if option == "hsgp_media_hierarchical"
                                                           else ["tv", "search"])
        return idata
    # nested region/market panels of different sizes: padded in weeks, markets and groups; the same
    # front door as single-market brands (the config's market keys make each brand a panel)
    frames = {"b0": _data(_panel(0, "markets_nested", 3, 36), option),
              "b1": _data(_panel(1, "markets_nested", 2, 30), option)}
    res = fit_many(frames, config=_market_config(option, "markets_nested"), out=tmp_path / "panels", **FIT)
    m = res.manifest().set_index("brand")
    assert (m["status"] == "done").all(), m["error"].tolist()
    return res.load("b1").idata


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("option", list(OPTIONS))
def test_option_runs_on_every_path_or_is_refused(option, path, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny fits do not converge
        idata = _fit(option, path, tmp_path)
    post = idata.posterior
    want_vars = MARKET_VARS.get(option, OPTIONS[option][1]) if "market" in post.dims else OPTIONS[option][1]
    missing = [v for v in want_vars if v not in post]
    assert not missing, f"{option} on {path}: posterior lacks {missing}; has {sorted(post.data_vars)}"
    assert np.isfinite(post["roas"].values).any()
    if option.startswith("treatments"):  # weekly treatment contributions: per draw, or streamed for markets
        if "market" in post.dims:
            summ = get_group(idata, "contribution_summary")
            assert summ["treatment_contribution_mean"].dims == ("market", "date", "treatment")
        else:
            assert post["treatment_contribution_original"].dims[2:] == ("date", "treatment")
            np.testing.assert_allclose(
                post["mu_original"].values, post["baseline_original"].values
                + post["treatment_contribution_original"].values.sum(-1)
                + post["channel_contribution_original"].values.sum(-1), rtol=1e-9)
    if option in MARKET_VARS and "market" in post.dims:  # the prior's channel has no free beta location
        channel = MARKET_VARS[option][0].split("_", 1)[1]
        assert channel not in post["beta_mu"].coords["beta_free_channel"].values.tolist()
    cfg = json.loads(post.attrs["config"])
    cfg = cfg.get("base", cfg)
    want = ModelConfig.from_dict({k: v for k, v in _config(option).to_dict().items()})
    assert ModelConfig.from_dict(cfg).adstock == want.adstock and cfg["adstock_first"] == want.adstock_first
    assert cfg["likelihood"] == want.likelihood
    y = idata.posterior_predictive["y"].values
    if option in ("poisson", "negative_binomial"):
        assert "sigma" not in post
        assert np.allclose(y, np.round(y)) and (y >= 0).all()  # draws are counts
    else:
        assert "sigma" in post


# --------------------------------------------------------------------------- log-density identity
@pytest.mark.parametrize("path", ("one_brand", "markets_nested", "markets_crossed"))
@pytest.mark.parametrize("option", list(OPTIONS))
def test_compiled_logp_equals_pymc_for_every_option(option, path, rng):
    if path == "one_brand":
        mmm = MMM(_config(option))
        mmm.build(_data(_brand(2), option))
        model = mmm.model
    else:
        cfg = _market_config(option, path)
        panel = validate_panel(_data(_panel(2, path), option), cfg)
        model = build_hierarchical_model(cfg, panel_arrays(panel, fit_panel_scaling(panel, cfg), cfg), panel)
    ld = compile_logdensity(model)
    f = model.compile_logp()
    for _ in range(4):
        p = {k: rng.normal(scale=0.5, size=np.shape(v)) for k, v in model.initial_point().items()}
        np.testing.assert_allclose(float(ld.logp(p, ld.default_data)), float(f(p)), rtol=1e-9)


def test_crossed_levels_group_by_each_factor():
    cfg = _market_config("tanh", "markets_crossed")
    panel = validate_panel(_panel(0, "markets_crossed"), cfg)
    assert panel.group_labels == {"geo": ["g0", "g1"], "product": ["p0", "p1"]}
    assert panel.groups["product"].tolist() == [0, 1, 0, 1]
    model = build_hierarchical_model(cfg, panel_arrays(panel, fit_panel_scaling(panel, cfg), cfg), panel)
    assert model["cac0_z_product"].eval().shape == (2, 3)
    with pytest.raises(ConfigError, match="crossed"):
        HierarchicalConfig(_config("tanh"), market=("geo", "product"), crossed=True, centered=("cac0",))


def test_batch_brand_without_a_channel_under_zero_sum_deviations_is_named(tmp_path):
    frames = {"b0": _brand(0), "b1": _brand(1, 48)}
    frames["b1"]["social"] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit_many(frames, config=_config("hsgp_media_hierarchical"), out=tmp_path / "b", **FIT)
    m = res.manifest().set_index("brand")
    assert m.loc["b0", "status"] == "done" and m.loc["b1", "status"] == "failed"
    assert "zero_sum" in m.loc["b1", "error"] and "social" in m.loc["b1", "error"]


def test_flat_config_with_market_keys_is_a_market_model():
    from mmm_jax import load_config

    flat = {**_config("poisson").to_dict(), "market": ["geo", "product"], "crossed": True}
    cfg = load_config(flat)
    assert isinstance(cfg, HierarchicalConfig) and cfg.crossed and cfg.base.likelihood == "poisson"
    assert HierarchicalConfig.from_dict(cfg.to_dict()) == cfg
    assert isinstance(load_config(_config("poisson").to_dict()), ModelConfig)
    with pytest.raises(ConfigError, match="colour: unknown key"):
        load_config({**flat, "colour": 1})


@pytest.mark.parametrize("kind", ("roas", "cac"))
def test_market_roas_prior_is_the_national_roas_when_beta_is_shared(kind):
    """With one beta for all markets, the ROAS / CAC prior's variable IS the national ROAS / CAC
    computed afterwards from contributions and spend (per draw, to rounding)."""
    base = _config(f"{kind}_prior")
    cfg = HierarchicalConfig(base, market="market", pooling={"beta": "shared"})
    h = HierarchicalMMM(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h.fit(_panel(3, "markets"), **FIT)
    post = h.idata.posterior
    channel = "tv" if kind == "roas" else "search"
    national = post["roas_national"].sel(channel=channel).values
    want = post[f"{kind}_{channel}"].values
    np.testing.assert_allclose(national if kind == "roas" else 1.0 / national, want, rtol=1e-8)
    assert post["beta"].dims == ("chain", "draw", "channel")


def test_market_roas_prior_with_independent_betas_is_refused():
    with pytest.raises(ConfigError, match="roas_prior with pooling.beta: independent"):
        HierarchicalConfig(_config("roas_prior"), market="market", pooling={"beta": "independent"})
