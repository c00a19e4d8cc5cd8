"""Marginal ROAS / CAC, response curves and budgets of a fitted multi-market model."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mmm_jax import ModelConfig
from mmm_jax.api.market_analysis import market_units, unit_levels
from mmm_jax.budget.portfolio import hierarchical_units
from mmm_jax.hierarchical import HierarchicalConfig, HierarchicalMMM, simulate_panel

CHANNELS = ["tv", "search", "social"]


def _panel(seed=0):
    df, _ = simulate_panel(3, 52, 3, seed=seed, n_short=0)
    df["social"] = df.groupby("date")["social"].transform("mean")  # one national series
    return df


def _fit(**base):
    cfg = HierarchicalConfig(ModelConfig(date="date", target="sales", channels=CHANNELS, controls=["price_index"],
                                         seasonality=1, **base), market="market", national_channels=["social"])
    h = HierarchicalMMM(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h.fit(_panel(), chains=2, warmup=60, draws=60, seed=2, progress=False)
    return h


@pytest.fixture(scope="module")
def fitted():
    return _fit()


def test_national_marginal_roas_is_the_derivative_of_the_national_curve(fitted):
    h = fitted
    units = market_units(h, 8, None, 0)
    levels = units.current[None, :] * np.array([[1.0], [1.001]])
    from mmm_jax.budget.curves import level_responses

    r = np.asarray(level_responses(unit_levels(units, levels), units.params, units.spec, 8))  # (2, S, U)
    R = np.zeros((2, r.shape[1], len(units.channels)))
    np.add.at(R, (slice(None), slice(None), units.channel_of), r)
    fd = (R[1] - R[0]) / ((levels[1] - levels[0]) * 8)  # (S, C)
    tab = h.marginal_roas(None, horizon=8, max_draws=None).set_index("channel")
    np.testing.assert_allclose(tab.loc[units.channels, "mean"].to_numpy(), fd.mean(axis=0), rtol=2e-3)
    # the national value is the share-weighted sum of the markets' own marginal ROAS
    mk = h.marginal_roas(None, level="market", horizon=8, max_draws=None)
    local = mk[mk["channel"] == "tv"]
    w = units.share[units.channel_of == units.channels.index("tv")]
    assert np.isclose((local["mean"].to_numpy() * w).sum(), tab.loc["tv", "mean"], rtol=1e-9)
    nat = mk[mk["channel"] == "social"]
    assert len(nat) == 3 and np.isclose(nat["mean"].sum(), tab.loc["social", "mean"], rtol=1e-9)
    assert np.isclose(local["weekly_spend"].sum(), units.current[units.channels.index("tv")])
    cac = h.marginal_cac(None, horizon=8, max_draws=None).set_index("channel")
    assert (cac["median"] > 0).all() and (cac["median"] >= 1 / tab["mean"] * 0.2).all()


def test_total_contribution_and_summary_per_market_and_national(fitted):
    h = fitted
    post = h.idata.posterior
    market, national = h.total_contribution("market"), h.total_contribution("national")
    assert list(market.index.names) == ["market", "channel"] and len(market) == 3 * len(CHANNELS)
    assert set(national.index) == set(CHANNELS)
    per_draw = post["total_contribution"].sum("market")  # national = the markets' sum, draw by draw
    np.testing.assert_allclose(national["mean"].to_numpy(), per_draw.mean(("chain", "draw")).values)
    assert (national["hdi_5%"] <= national["mean"]).all() and (national["mean"] <= national["hdi_95%"]).all()
    with pytest.raises(ValueError, match="level must be 'market' or 'national'"):
        h.total_contribution("region")
    rows = h.summary().index
    assert any(r.startswith("roas_national[") for r in rows) and any(r.startswith("beta") for r in rows)


def test_response_curves_national_and_per_market(fitted):
    h = fitted
    nat = h.response_curves(6, horizon=8, max_draws=50)
    assert sorted(nat) == sorted(CHANNELS)
    tv = nat["tv"]
    assert abs(tv["mean"].iloc[0]) < 1e-9 * tv["mean"].iloc[-1] and np.all(np.diff(tv["mean"]) > 0)
    assert (tv["lower"] <= tv["mean"]).all() and (tv["mean"] <= tv["upper"]).all()
    per = h.response_curves(6, level="market", horizon=8, max_draws=50)
    assert len(per) == 3 * 3 and all(isinstance(k, tuple) for k in per)
    tot = sum(per[(m, "tv")]["mean"].to_numpy() for m in h.panel.markets)
    np.testing.assert_allclose(tot, tv["mean"].to_numpy(), rtol=1e-9)
    with pytest.raises(ValueError, match="level must be one of"):
        h.response_curves(6, level="region")


def test_market_optimize_budget_spends_the_total(fitted):
    h = fitted
    total = float(h.panel.spend[:, -8:, :2].sum())
    plan = h.optimize_budget(total, 8, max_draws=100, steps=100)
    assert plan.table.index.names == ["market", "channel"]
    assert np.isclose(plan.table["optimal_spend"].sum(), total, rtol=1e-6)
    assert set(plan.table.index.get_level_values("channel")) == {"tv", "search"}  # national social keeps its spend


def test_time_varying_media_uses_the_recent_multiplier():
    h = _fit(time_varying_media={"m": 6})
    params, labels, _, _ = hierarchical_units(h, None, 0, recent_weeks=4)
    post = h.idata.posterior
    S = post.sizes["chain"] * post.sizes["draw"]
    mult = post["media_multiplier"].transpose("chain", "draw", "date", "channel").values.reshape(S, -1, 3)
    recent = mult[:, -4:, :2].mean(axis=1)
    beta = post["beta"].transpose("chain", "draw", "market", "channel").values.reshape(S, 3, 3)
    np.testing.assert_allclose(np.asarray(params[1].sat["beta"]), beta[:, 1, :2] * recent, rtol=1e-12)
    assert labels[:2] == [(h.panel.markets[0], "tv"), (h.panel.markets[0], "search")]
