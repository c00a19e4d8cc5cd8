"""Count likelihoods (Poisson, negative binomial) and acquisition metrics.

* the count log-probability is the count pmf at the original integer counts (SciPy), and
  masked weeks add nothing;
* posterior predictive draws are integers with the right mean and variance;
* a non-integer target is refused with a DataError naming the column and row;
* CAC, marginal ROAS / CAC (against finite differences) and response curves on a fit;
* recovery: negative-binomial counts, 90% CAC intervals cover the truth for >= 3 of 4 channels.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st
from conftest import random_arrays
from mmm_jax.model.build import build_pymc_model, likelihood_dist, masked_logp
from mmm_jax.model.likelihood import predictive_draw

from mmm_jax import MMM, DataError, ModelConfig
from mmm_jax.budget import plan_contributions
from mmm_jax.budget.response import response_params_from_mmm
from mmm_jax.compile import compile_logdensity
from mmm_jax.datasets import simulate_counts


@pytest.mark.parametrize("likelihood", ["poisson", "negative_binomial"])
def test_count_logp_is_the_pmf_at_integer_counts(rng, likelihood):
    cfg = ModelConfig(date="d", target="n", channels=("a", "b"), likelihood=likelihood, seasonality=1)
    T, ts = 30, 1237.0  # counts / 1237 are not exact binary fractions: the model must round back
    arrays = random_arrays(rng, T=T, C=2, K=0, n_fourier=1)
    counts = rng.poisson(600.0, T)
    arrays.update(target=counts / ts, target_scale=np.asarray(ts))
    arrays["mask"][-4:] = 0.0
    ld = compile_logdensity(build_pymc_model(cfg, arrays))
    for _ in range(3):
        p = {n: rng.normal(size=s) for n, s in ld.param_shapes.items()}
        out = ld.constrain(p, arrays)
        lam = np.asarray(out["mu"]) * ts
        assert np.all(lam > 0)
        np.testing.assert_allclose(np.asarray(out["mu"]), np.asarray(out["baseline"]) +
                                   np.asarray(out["channel_contribution"]).sum(1), rtol=1e-12)
        if likelihood == "poisson":
            ref = st.poisson.logpmf(counts, lam)
        else:
            a = 1.0 / float(out["overdispersion"]) ** 2
            ref = st.nbinom.logpmf(counts, a, a / (a + lam))
        ref = np.where(arrays["mask"] > 0, ref, 0.0)
        got = np.asarray(ld.pointwise_loglik(p, arrays)["y"])
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)
        assert np.all(got[-4:] == 0.0)


def test_count_predictive_draws(rng):
    key = jax.random.key(3)
    mu = jnp.array([3.0, 250.0, 4000.0])
    n = 200_000
    mus = jnp.broadcast_to(mu, (n, 3))
    y = np.asarray(predictive_draw(key, "poisson", mus))
    assert np.all(y == np.round(y)) and np.all(y >= 0)
    np.testing.assert_allclose(y.mean(0), mu, rtol=0.01)
    np.testing.assert_allclose(y.var(0), mu, rtol=0.03)
    alpha = jnp.full((n,), 4.0)
    y = np.asarray(predictive_draw(key, "negative_binomial", mus, alpha=alpha))
    assert np.all(y == np.round(y))
    np.testing.assert_allclose(y.mean(0), mu, rtol=0.01)
    np.testing.assert_allclose(y.var(0), mu + mu**2 / 4.0, rtol=0.03)


def test_non_count_target_and_count_helpers_are_refused():
    df, truth = simulate_counts(30, 2, seed=0)
    cfg = ModelConfig(date="date", target="new_customers", channels=truth.channels, likelihood="poisson")
    bad = df.copy()
    bad["new_customers"] = bad["new_customers"].astype(float)
    bad.loc[7, "new_customers"] += 0.5
    with pytest.raises(DataError, match="column 'new_customers', row 7: .* is not a count") as err:
        MMM(cfg).build(bad)
    assert err.value.column == "new_customers" and err.value.row == 7
    bad.loc[7, "new_customers"] = -3.0
    with pytest.raises(DataError, match="row 7"):
        MMM(cfg).build(bad)
    with pytest.raises(ValueError, match="count likelihood: use count_likelihood_dist"):
        likelihood_dist(cfg)
    with pytest.raises(ValueError, match="count likelihood"):
        masked_logp(cfg)


@pytest.fixture(scope="module")
def count_fit():
    df, truth = simulate_counts(80, 2, seed=1)
    cfg = ModelConfig(date="date", target="new_customers", channels=truth.channels, controls=("price_index",),
                      likelihood="negative_binomial", seasonality=1)
    mmm = MMM(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mmm.fit(df, chains=2, warmup=150, draws=60, progress=False, seed=1)
    return mmm, df, truth


def test_count_fit_results(count_fit):
    mmm, df, truth = count_fit
    post = mmm.idata.posterior
    y = mmm.idata.posterior_predictive["y"].values
    assert np.all(y == np.round(y)) and np.all(y >= 0)
    assert "overdispersion" in post and "sigma" not in post
    np.testing.assert_allclose(post["mu_original"].values,
                               post["baseline_original"].values + post["channel_contribution_original"].values.sum(-1),
                               rtol=1e-10)
    assert np.all(post["baseline"].values > 0) and np.all(post["channel_contribution"].values >= 0)
    pred = mmm.predict(df.iloc[-10:].reset_index(drop=True))
    assert np.all(pred["y"].values == np.round(pred["y"].values))
    # CAC = spend / incremental customers, per draw; ROAS its inverse
    spend = df[list(truth.channels)].to_numpy().sum(0)
    cac_draws = spend / post["total_contribution"].values
    table = mmm.cac()
    np.testing.assert_allclose(table["mean"].to_numpy(), cac_draws.reshape(-1, 2).mean(0), rtol=1e-10)
    np.testing.assert_allclose(cac_draws * post["roas"].values, 1.0, rtol=1e-10)
    assert list(table.columns) == ["mean", "median", "hdi_5%", "hdi_95%"]
    assert np.all(table["hdi_5%"] < table["median"]) and np.all(table["median"] < table["hdi_95%"])


def test_marginal_roas_and_cac_match_finite_differences(count_fit):
    mmm, df, truth = count_fit
    H, levels = 6, np.array([0.0, 2000.0, 20000.0])
    m = mmm.marginal_roas(levels, horizon=H, max_draws=41, seed=3)
    assert list(m.columns[:4]) == ["channel", "weekly_spend", "mean", "median"] and len(m) == 3 * 2
    params, static = response_params_from_mmm(mmm, max_draws=41, seed=3)
    h = 1e-3
    for i, lv in enumerate(levels):
        for j, ch in enumerate(truth.channels):
            def resp(s, j=j):
                plan = jnp.full((H, 2), lv).at[:, j].set(s)
                return np.asarray(plan_contributions(plan, params, static["spec"]).sum(1))[:, j]
            fd = (resp(lv + h) - resp(max(lv - h, 0.0))) / ((lv + h - max(lv - h, 0.0)) * H)
            row = m[(m["channel"] == ch) & (m["weekly_spend"] == lv)].iloc[0]
            np.testing.assert_allclose(row["mean"], fd.mean(), rtol=2e-4)
            assert row["hdi_5%"] <= row["median"] <= row["hdi_95%"]
    mc = mmm.marginal_cac(levels, horizon=H, max_draws=41, seed=3)
    # per draw the marginal CAC is 1 / marginal ROAS: the medians (odd number of draws) are reciprocal
    np.testing.assert_allclose(mc["median"].to_numpy(), 1.0 / m["median"].to_numpy(), rtol=1e-10)
    # diminishing returns: the marginal ROAS falls with spend
    for ch in truth.channels:
        v = m[m["channel"] == ch]["mean"].to_numpy()
        assert v[0] >= v[1] >= v[2]
    # default level: each channel's mean weekly spend over the last `horizon` weeks
    d = mmm.marginal_roas(horizon=H, max_draws=20)
    np.testing.assert_allclose(d["weekly_spend"].to_numpy(), df[list(truth.channels)].iloc[-H:].mean().to_numpy())
    with pytest.raises(ValueError, match="unknown channel"):
        mmm.marginal_roas({"radio": 1.0})


def test_response_curves_and_plot(count_fit, tmp_path):
    from mmm_jax.plots import plot_response_curves

    mmm, df, truth = count_fit
    curves = mmm.response_curves(n_points=8, horizon=5, max_draws=50, hdi_prob=0.9)
    assert list(curves) == list(truth.channels)
    for ch, c in curves.items():
        assert list(c.columns) == ["weekly_spend", "total_spend", "mean", "lower", "upper", "roas_mean", "mroas_mean"]
        assert abs(c["mean"].iloc[0]) < 1e-9 and np.all(np.diff(c["mean"]) > 0)
        assert np.all(c["lower"] <= c["mean"] + 1e-9) and np.all(c["mean"] <= c["upper"] + 1e-9)
        np.testing.assert_allclose(c["weekly_spend"].iloc[-1], 1.5 * df[ch].max())
        np.testing.assert_allclose(c["total_spend"], 5 * c["weekly_spend"])
        assert c.attrs["current_weekly_spend"] == pytest.approx(df[ch].iloc[-5:].mean())
    fig = plot_response_curves(mmm, tmp_path / "curves.png", curves=curves)
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert sum(ax.get_visible() for ax in fig.axes) == len(truth.channels)


@pytest.mark.slow
def test_negative_binomial_recovery_of_cac():
    """Counts from a negative binomial: the 90% CAC intervals cover the truth for >= 3 of 4 channels."""
    df, truth = simulate_counts(156, 4, seed=3)
    cfg = ModelConfig(date="date", target="new_customers", channels=truth.channels, controls=("price_index",),
                      likelihood="negative_binomial", seasonality=2)
    mmm = MMM(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mmm.fit(df, chains=4, warmup=400, draws=400, progress=False, seed=1)
    table = mmm.cac(hdi_prob=0.9)
    covered = (table["hdi_5%"].to_numpy() <= truth.cac) & (truth.cac <= table["hdi_95%"].to_numpy())
    assert covered.sum() >= 3, (table, truth.cac)
    od = mmm.idata.posterior["overdispersion"].values
    assert np.quantile(od, 0.05) <= truth.overdispersion <= np.quantile(od, 0.95)
