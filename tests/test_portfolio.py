"""One budget over many markets x channels; weekly flighting."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize

from mmm_jax import MMM, ModelConfig
from mmm_jax.budget import BudgetError, optimize_budget, plan_contributions
from mmm_jax.budget.portfolio import optimize_flighting, optimize_portfolio, portfolio_units, rescale_saturation
from mmm_jax.budget.response import response_params_from_mmm
from mmm_jax.datasets import simulate

CFG = ModelConfig(date="date", target="sales", channels=["tv", "search", "social"], controls=["price_index"])


@pytest.fixture(scope="module")
def fits():
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, weeks in enumerate((70, 60)):
            df, _ = simulate(weeks, 3, seed=20 + i)
            m = MMM(CFG)
            m.fit(df, chains=2, warmup=200, draws=200, seed=i, progress=False)
            out[f"b{i}"] = m
    return out


def test_rescale_saturation_scales_every_family():
    from mmm_jax.media.saturation import media_response_np

    x = np.linspace(0, 3, 7)[:, None]
    cases = {"logistic": {"beta": 0.4, "lam": 2.0}, "tanh": {"sat_level": 0.5, "cac0": 1.3},
             "hill": {"beta": 0.4, "half_sat": 0.7, "slope": 2.0}, "michaelis_menten": {"beta": 0.4, "half_sat": 0.7}}
    for kind, p in cases.items():
        p = {k: np.array([v]) for k, v in p.items()}
        np.testing.assert_allclose(media_response_np(kind, x, rescale_saturation(kind, p, 3.5)),
                                   3.5 * media_response_np(kind, x, p), rtol=1e-12)


def test_single_brand_portfolio_equals_optimize_budget(fits):
    m = fits["b0"]
    ref = optimize_budget(m, 50_000, 8, max_draws=None)
    plan = optimize_portfolio({"b0": m}, 50_000, 8, max_draws=None)
    np.testing.assert_allclose(plan.table["optimal_spend"].to_numpy(), ref.table["optimal_spend"].to_numpy(),
                               rtol=2e-3, atol=50)
    assert plan.summary["expected_response"] == pytest.approx(ref.summary["expected_response"], rel=1e-4)


def test_portfolio_constraints_and_joint_beats_separate(fits):
    total = 120_000.0
    locked = {("b1", "social"): 5_000.0}
    plan = optimize_portfolio(fits, total, 8, locked=locked, bounds_pct=None, max_draws=400)
    t = plan.table
    assert list(t.index.names) == ["market", "channel"] and len(t) == 6
    assert t["optimal_spend"].sum() == pytest.approx(total, rel=1e-6)
    assert t.loc[("b1", "social"), "optimal_spend"] == pytest.approx(5_000.0, rel=1e-9)
    assert (t["optimal_spend"] >= -1e-9).all()
    # the joint optimum is at least as good as splitting the total between the brands as now
    # and optimising each brand separately with the same draws
    per_brand = t.groupby(level="market")["current_spend"].sum()
    separate = 0.0
    units, labels, _, spec = portfolio_units(fits, max_draws=400)
    for b in ("b0", "b1"):
        sub = {("b1", "social"): 5_000.0} if b == "b1" else {}
        p = optimize_portfolio({b: fits[b]}, float(per_brand[b]), 8, max_draws=400,
                               locked={k: v for k, v in sub.items()})
        separate += p.summary["expected_response"]
    assert plan.summary["expected_response"] >= separate * (1 - 1e-3)
    with pytest.raises(BudgetError, match="unknown"):
        optimize_portfolio(fits, total, 8, locked={("b9", "tv"): 1.0})


def test_flighting_total_caps_and_matches_slsqp(fits):
    m = fits["b0"]
    H, total = 4, 30_000.0
    cap = {"tv": 9_000.0}
    fp = optimize_flighting(m, total, H, max_weekly=cap, max_draws=200, steps=600)
    X = fp.plan.to_numpy()
    assert X.sum() == pytest.approx(total, rel=1e-6)
    assert X[:, 0].max() <= 9_000.0 * (1 + 1e-9) and X.min() >= -1e-9
    assert fp.summary["expected_response"] >= fp.summary["flat_expected_response"] * (1 - 1e-9)
    # SLSQP with exact gradients on the same draws and constraints
    params, static = response_params_from_mmm(m, max_draws=200, seed=0)
    spec = static["spec"]
    f = jax.jit(lambda v: -jnp.mean(jnp.sum(plan_contributions(v.reshape(H, 3), params, spec), axis=(1, 2))))
    g = jax.jit(jax.grad(lambda v: -jnp.mean(jnp.sum(plan_contributions(v.reshape(H, 3), params, spec), axis=(1, 2)))))
    bounds = [(0, 9_000.0 if c == 0 else total) for _ in range(H) for c in range(3)]
    res = minimize(lambda v: float(f(jnp.asarray(v))) / 1e3, np.full(H * 3, total / (H * 3)),
                   jac=lambda v: np.asarray(g(jnp.asarray(v))) / 1e3, method="SLSQP", bounds=bounds,
                   constraints=[{"type": "eq", "fun": lambda v: v.sum() / total - 1.0}], options={"maxiter": 500})
    ours = fp.summary["expected_response"]
    assert ours >= -res.fun * 1e3 * (1 - 1e-3), (ours, -res.fun * 1e3)


@pytest.mark.slow
def test_portfolio_over_a_hierarchical_fit():
    from mmm_jax.hierarchical import HierarchicalConfig, HierarchicalMMM, simulate_panel

    df, truth = simulate_panel(5, 52, 3, seed=4, n_short=1, short_weeks=20)
    base = ModelConfig(date="date", target="sales", channels=truth.channels, controls=["price_index"])
    h = HierarchicalMMM(HierarchicalConfig(base, market="market"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        h.fit(df, chains=2, warmup=200, draws=200, progress=False)
    total = float(df[truth.channels].to_numpy().sum() / 52 * 8)
    plan = optimize_portfolio(h, total, 8, max_history_multiple=1.5, max_draws=200)
    t = plan.table
    assert len(t) == 15 and t["optimal_spend"].sum() == pytest.approx(total, rel=1e-6)
    assert plan.summary["expected_response"] >= plan.summary["current_expected_response"] * (1 - 1e-6)
