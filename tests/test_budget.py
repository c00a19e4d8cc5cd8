"""Budget optimizer: exact constraints, agreement with SLSQP, risk-aware objectives, batching."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize as so

from mmm_jax.budget import (
    BudgetError,
    BudgetProblem,
    geometric_logistic_params,
    gross_response,
    optimize_allocation,
    plan_contributions,
    plan_response,
    project_budget,
    project_budget_capped,
)
from mmm_jax.datasets.synthetic import geometric_adstock_np

L_MAX = 6
opt = jax.jit(optimize_allocation, static_argnames=("objective", "spec", "steps", "learning_rate"))


def random_draws(rng, S, C, spread=0.3):
    """Posterior-like draws of (beta, alpha, lam) around channel-specific means: (S, C) each."""
    beta = rng.uniform(0.05, 0.4, C) * np.exp(spread * rng.normal(size=(S, C)))
    alpha = np.clip(rng.uniform(0.1, 0.7, C) + 0.05 * rng.normal(size=(S, C)), 0.01, 0.95)
    lam = rng.uniform(0.5, 4, C) * np.exp(0.2 * rng.normal(size=(S, C)))
    return beta, alpha, lam


def random_problem(rng, S=400, C=5, H=8, spread=0.3, total=None, draws=None):
    """A problem from posterior-like draws; spend history in currency units."""
    beta, alpha, lam = random_draws(rng, S, C, spread) if draws is None else draws
    spend_scale = rng.uniform(1e3, 5e4, C)
    params = geometric_logistic_params(
        beta, alpha, lam, l_max=L_MAX, spend_scale=spend_scale, target_scale=2.5e5,
        history=rng.uniform(0.2, 0.8, (L_MAX - 1, C)) * spend_scale,
    )
    total = float(total or 0.5 * H * spend_scale.sum())
    return BudgetProblem(
        params=params, lo=jnp.zeros(C), hi=jnp.full(C, total), total=jnp.asarray(total),
        pattern=jnp.full((H, C), 1.0 / H), risk_aversion=jnp.asarray(1.0), alpha=jnp.asarray(0.1),
        min_mroas=jnp.asarray(0.0),
    )


def test_plan_response_matches_numpy_reference(rng):
    beta, alpha, lam = random_draws(rng, 3, 3)
    prob = random_problem(rng, S=3, C=3, H=4, draws=(beta, alpha, lam))
    p = prob.params
    plan = rng.uniform(0, 1, (4, 3)) * np.asarray(p.spend_scale)
    got = np.asarray(plan_contributions(plan, p))
    hist = np.asarray(p.history)
    tail = np.zeros((L_MAX - 1, 3))
    for s in range(3):
        def contrib(x):
            xa = geometric_adstock_np(x / np.asarray(p.spend_scale), alpha[s], L_MAX, True)
            return beta[s] * np.tanh(lam[s] * xa / 2) * 2.5e5
        with_plan = contrib(np.vstack([hist, plan, tail]))[L_MAX - 1:]
        without = contrib(np.vstack([hist, 0 * plan, tail]))[L_MAX - 1:]
        np.testing.assert_allclose(got[s], with_plan - without, rtol=1e-10, atol=1e-8)
    # gross response differs from the net one by a constant
    d1 = np.asarray(gross_response(plan, p) - plan_response(plan, p))
    d2 = np.asarray(gross_response(2 * plan, p) - plan_response(2 * plan, p))
    np.testing.assert_allclose(d1, d2, rtol=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_projection_is_exact(seed):
    rng = np.random.default_rng(seed)
    C = 7
    v = rng.normal(size=C) * 10
    lo = rng.uniform(0, 1, C)
    hi = lo + rng.uniform(0, 3, C)
    hi[0] = lo[0]  # a locked channel
    total = rng.uniform(lo.sum(), hi.sum())
    x = np.asarray(project_budget(v, lo, hi, total))
    assert abs(x.sum() - total) <= 1e-9 * max(1, total)
    assert np.all(x >= lo - 1e-12) and np.all(x <= hi + 1e-12)
    # it is the Euclidean projection: compare with a QP solved by SLSQP
    r = so.minimize(lambda y: np.sum((y - v) ** 2), np.clip(v, lo, hi), method="SLSQP", bounds=list(zip(lo, hi)),
                    constraints=[{"type": "eq", "fun": lambda y: y.sum() - total}], options={"ftol": 1e-14})
    np.testing.assert_allclose(x, r.x, atol=1e-5)
    xc = np.asarray(project_budget_capped(v, lo, hi, total))
    assert xc.sum() <= total + 1e-9 and np.all(xc >= lo - 1e-12) and np.all(xc <= hi + 1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_mean_objective_matches_slsqp(seed):
    rng = np.random.default_rng(100 + seed)
    prob = random_problem(rng, C=5)
    C, H = 5, 8
    if seed % 2:  # some problems with binding bounds
        prob = prob._replace(hi=jnp.full(C, float(prob.total) * 0.35), lo=jnp.full(C, float(prob.total) * 0.02))
    res = opt(prob, objective="mean", steps=300)
    x = np.asarray(res.x)
    total, lo, hi = float(prob.total), np.asarray(prob.lo), np.asarray(prob.hi)
    assert abs(x.sum() - total) <= 1e-6 * total
    assert np.all(x >= lo - 1e-9 * total) and np.all(x <= hi + 1e-9 * total)

    f = jax.jit(lambda x: jnp.mean(gross_response(prob.pattern * x[None, :], prob.params)))
    g = jax.jit(jax.grad(lambda x: jnp.mean(gross_response(prob.pattern * x[None, :], prob.params))))
    best = None
    for x0 in (np.full(C, total / C), x):
        r = so.minimize(lambda z: -float(f(z)), x0, jac=lambda z: -np.asarray(g(z)), method="SLSQP",
                        bounds=list(zip(lo, hi)), options={"maxiter": 500, "ftol": 1e-12},
                        constraints=[{"type": "eq", "fun": lambda z: z.sum() - total, "jac": lambda z: np.ones(C)}])
        best = r if best is None or r.fun < best.fun else best
    offset = float(f(jnp.zeros(C)))
    ours = float(res.value)
    theirs = -best.fun - offset
    assert ours >= theirs * (1 - 1e-3), (ours, theirs)


def test_cvar_protects_the_downside():
    """Channel A: higher mean, very uncertain. Channel B: a bit lower mean, certain."""
    rng = np.random.default_rng(7)
    S, C, H = 2000, 2, 6
    beta = np.column_stack([0.30 * np.exp(0.9 * rng.normal(size=S) - 0.405), np.full(S, 0.22)])
    params = geometric_logistic_params(
        beta, np.full((S, C), 0.3), np.full((S, C), 2.0), l_max=L_MAX,
        spend_scale=[1e4, 1e4], target_scale=1e5, history=np.zeros((L_MAX - 1, C)),
    )
    total = 1e4 * H * 1.2
    prob = BudgetProblem(params=params, lo=jnp.zeros(C), hi=jnp.full(C, total), total=jnp.asarray(total),
                         pattern=jnp.full((H, C), 1.0 / H), risk_aversion=jnp.asarray(1.0),
                         alpha=jnp.asarray(0.1), min_mroas=jnp.asarray(0.0))
    mean_res = opt(prob, objective="mean")
    cvar_res = opt(prob, objective="cvar")
    q_mean = np.quantile(np.asarray(mean_res.responses), 0.1)
    q_cvar = np.quantile(np.asarray(cvar_res.responses), 0.1)
    assert q_cvar > q_mean
    assert float(cvar_res.x[1]) > float(mean_res.x[1])  # moves money to the certain channel
    assert np.mean(np.asarray(mean_res.responses)) >= np.mean(np.asarray(cvar_res.responses)) - 1e-6


def test_batched_brands_equal_single():
    rng = np.random.default_rng(3)
    probs = [random_problem(rng, S=300, C=4, H=5) for _ in range(3)]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *probs)
    batched = jax.jit(jax.vmap(lambda p: optimize_allocation(p, objective="mean", steps=200)))(stacked)
    for k, p in enumerate(probs):
        single = opt(p, objective="mean", steps=200)
        np.testing.assert_allclose(np.asarray(batched.x[k]), np.asarray(single.x), rtol=1e-7, atol=1e-6)


def test_degenerate_problems_do_not_break():
    rng = np.random.default_rng(11)
    prob = random_problem(rng, S=200, C=4, H=5)
    C = 4
    # a channel with a flat response (beta = 0), a locked channel, a bound equal to current
    params = prob.params._replace(sat={**prob.params.sat, "beta": prob.params.sat["beta"].at[:, 2].set(0.0)})
    total = float(prob.total)
    lo = jnp.asarray([0.1 * total, 0.0, 0.0, 0.2 * total])
    hi = jnp.asarray([0.1 * total, total, total, 0.2 * total])
    p = prob._replace(params=params, lo=lo, hi=hi)
    res = opt(p, objective="mean")
    x = np.asarray(res.x)
    assert np.all(np.isfinite(x))
    assert abs(x.sum() - total) <= 1e-6 * total
    np.testing.assert_allclose(x[[0, 3]], [0.1 * total, 0.2 * total], rtol=1e-9)
    assert x[2] < 1e-3 * total  # no money to the flat channel
    assert np.asarray(res.trace)[-1] >= np.asarray(res.trace)[0]  # it moved (no 'stops after one iteration')
    del C


@pytest.fixture(scope="module")
def small_fit(example):
    """A quick fit of the bundled example (the budget facade needs a fitted model)."""
    import warnings

    from mmm_jax import MMM, ModelConfig

    df, truth = example
    m = MMM(ModelConfig(date="date", target="sales", channels=["tv", "search", "social", "display"],
                        controls=["price_index"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(df, chains=2, warmup=150, draws=100, progress=False)
    return m


def test_facade_errors_and_plan(small_fit):
    m = small_fit
    with pytest.raises(BudgetError, match="total budget must be"):
        m.optimize_budget(-5, 13)
    with pytest.raises(BudgetError, match="unknown channel"):
        m.optimize_budget(1e5, 13, locked={"radio": 10})
    with pytest.raises(BudgetError, match="lower bounds sum to"):
        m.optimize_budget(1e5, 13, bounds={"tv": (9e4, 1e5), "search": (5e4, 6e4)})
    with pytest.raises(BudgetError, match="upper bounds sum to"):
        m.optimize_budget(1e6, 13, bounds_pct=0.0, max_history_multiple=0.01)
    with pytest.raises(BudgetError, match="objective"):
        m.optimize_budget(1e5, 13, objective="max")
    plan = m.optimize_budget(5e5, 13, max_history_multiple=1.0, locked={"tv": 1e5})
    t = plan.table
    assert abs(t["optimal_spend"].sum() - 5e5) < 1e-6 * 5e5
    assert t.loc["tv", "optimal_spend"] == pytest.approx(1e5)
    assert not t["extrapolated"].any()
    assert plan.summary["p_uplift_positive"] >= 0.5
    assert plan.summary["response_hdi_94"][0] < plan.summary["expected_response"] < plan.summary["response_hdi_94"][1]
    assert '"objective": "mean"' in plan.to_json()
    curves = plan.response_curves(n_points=12)
    assert set(curves) == {"tv", "search", "social", "display"}
    for ch, df in curves.items():
        assert np.all(np.diff(df["mean"].to_numpy()) >= -1e-6)  # more spend, more response
        assert np.all(df["lower"] <= df["mean"]) and np.all(df["mean"] <= df["upper"])
        assert df["mean"].iloc[0] == pytest.approx(0.0, abs=1e-6)  # no spend on the channel, no response from it


def test_minimum_budget_reaches_target_and_is_minimal():
    from mmm_jax.budget import minimum_budget

    rng = np.random.default_rng(21)
    prob = random_problem(rng, S=300, C=3, H=5)
    full = opt(prob, objective="mean", steps=200)
    target = 0.6 * float(np.mean(np.asarray(full.responses)))
    f = jax.jit(minimum_budget, static_argnames=("spec", "steps", "learning_rate", "n_bisect"))
    total, res, ok = f(prob, target, steps=200)
    assert bool(ok)
    assert float(np.mean(np.asarray(res.responses))) >= target * (1 - 1e-9)
    assert abs(float(res.x.sum()) - float(total)) <= 1e-6 * float(total)
    # 2% less budget cannot reach it
    less = opt(prob._replace(total=total * 0.98), objective="mean", steps=200)
    assert float(np.mean(np.asarray(less.responses))) < target
    # an unreachable target is reported as such
    _, _, ok2 = f(prob, 10 * float(np.mean(np.asarray(full.responses))), steps=200)
    assert not bool(ok2)


def test_minimum_budget_plan_facade(small_fit):
    import warnings

    from mmm_jax.budget import minimum_budget_plan

    m = small_fit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = m.optimize_budget(4e5, 13)
        target = 0.7 * full.summary["expected_response"]
        plan = minimum_budget_plan(m, target, 13, max_total=4e5)
    assert plan.summary["expected_response"] >= target * (1 - 1e-6)
    assert plan.summary["spent"] < 4e5
    with pytest.raises(BudgetError, match="even the maximum budget"):
        minimum_budget_plan(m, 100 * target, 13, max_total=4e5)
