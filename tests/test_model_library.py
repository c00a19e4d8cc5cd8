"""Model library: every adstock x saturation x order combination, end to end.

* the compiled JAX log-density (and its gradient) equals PyMC's ``model.compile_logp()``;
* the budget response of every family equals a NumPy reference, and the optimiser's
  precomputed form equals the direct one;
* the facade (fit / predict / ROAS / budget / save-load) runs for non-default families;
* recovery: tanh saturation on simulated data with known ``sat_level`` (S) and ``cac0``.
"""

import itertools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_arrays
from mmm_jax.config.model import (
    DelayedAdstock,
    GeometricAdstock,
    HillSaturation,
    LogisticSaturation,
    MichaelisMentenSaturation,
    ModelConfig,
    TanhSaturation,
    WeibullAdstock,
)
from mmm_jax.model.build import build_pymc_model

from mmm_jax.budget import ResponseParams, ResponseSpec, net_response_fn, plan_contributions, plan_response
from mmm_jax.budget.response import response_window
from mmm_jax.compile import compile_logdensity
from mmm_jax.media.adstock import adstock_weights_jax, apply_adstock_np
from mmm_jax.media.saturation import media_response_np

ADSTOCKS = {
    "geometric": GeometricAdstock(l_max=4, normalize=True),
    "geometric-inf": GeometricAdstock(infinite=True, normalize=False),
    "delayed": DelayedAdstock(l_max=5, normalize=False),
    "weibull-cdf": WeibullAdstock(l_max=6, kind="cdf", normalize=True),
    "weibull-pdf": WeibullAdstock(l_max=6, kind="pdf", normalize=False),
}
SATURATIONS = {
    "logistic": LogisticSaturation(),
    "tanh": TanhSaturation(),
    "hill": HillSaturation(),
    "mm": MichaelisMentenSaturation(),
}
COMBOS = list(itertools.product(ADSTOCKS, SATURATIONS, ["adstock-first", "saturation-first"]))
COMBO_IDS = ["-".join(c) for c in COMBOS]
# Gradients are compared on a covering subset (every adstock with both orders, every saturation),
# which keeps the suite fast; the kernels' own gradients are tested one by one in test_kernels.
_IDX = {name: i for names in (ADSTOCKS, SATURATIONS) for i, name in enumerate(names)}
GRAD_COMBOS = {c for c in COMBOS if (_IDX[c[0]] + _IDX[c[1]] + (c[2] == "saturation-first")) % 4 == 0}


def small_model(rng, ad, sat, order, T=30):
    cfg = ModelConfig(date="date", target="y", channels=("a", "b"), adstock=ADSTOCKS[ad],
                      saturation=SATURATIONS[sat], adstock_first=order == "adstock-first",
                      trend=False, seasonality=0)
    arrays = random_arrays(rng, T=T, C=2, K=0, n_fourier=0)
    arrays["spend"][:2] = 0.0  # exact zeros reach the saturation (Hill at x = 0)
    return cfg, build_pymc_model(cfg, arrays)


@pytest.mark.parametrize("ad,sat,order", COMBOS, ids=COMBO_IDS)
def test_logp_equals_pymc_for_every_combination(rng, ad, sat, order):
    cfg, model = small_model(rng, ad, sat, order)
    free = {rv.name for rv in model.free_RVs}
    assert set(cfg.media_params) <= free
    assert {"channel_contribution", "baseline", "mu"} <= set(model.named_vars)
    assert model.named_vars_to_dims["channel_contribution"] == ("date", "channel")
    assert {v.name for v in model.data_vars} == {"spend", "target", "mask"}
    ld = compile_logdensity(model)
    pymc_logp = model.compile_logp()
    data = {k: jnp.asarray(v) for k, v in ld.default_data.items()}
    logp = jax.jit(ld.logp)
    points = [{n: rng.normal(scale=1.2, size=s) for n, s in ld.param_shapes.items()} for _ in range(6)]
    for p in points:
        ref = pymc_logp(p)
        assert np.isfinite(ref)
        np.testing.assert_allclose(float(logp(p, data)), ref, rtol=1e-9)
    if (ad, sat, order) in GRAD_COMBOS:
        pymc_dlogp = model.compile_dlogp()
        grad = jax.jit(jax.grad(ld.logp))
        for p in points[:3]:
            g = grad(p, data)
            flat = np.concatenate([np.ravel(g[v.name]) for v in model.value_vars])
            np.testing.assert_allclose(flat, pymc_dlogp(p), rtol=1e-7, atol=1e-9)


DRAW_VALUES = {  # per-draw ranges of each media parameter (scaled units)
    "alpha": (0.1, 0.9), "theta": (0.0, 3.0), "weibull_shape": (0.5, 3.0), "weibull_scale": (0.5, 5.0),
    "beta": (0.1, 0.6), "lam": (0.5, 4.0), "sat_level": (0.1, 0.6), "cac0": (0.3, 3.0),
    "half_sat": (0.2, 1.5), "slope": (0.5, 3.0),
}


@pytest.mark.parametrize("ad,sat,order", COMBOS, ids=COMBO_IDS)
def test_budget_response_every_family(rng, ad, sat, order):
    """Plan contributions against a NumPy reference of the fitted model's own equations.

    The reference runs the model's adstock over history + plan + carry-over weeks (for the
    infinite geometric form: the exact recursion, which the budget truncates after 157 lags).
    """
    S, C, H, T_train = 3, 2, 4, 156
    cfg_ad, cfg_sat = ADSTOCKS[ad], SATURATIONS[sat]
    draws = {n: rng.uniform(*DRAW_VALUES[n], size=(S, C)) for n in cfg_ad.param_names + cfg_sat.param_names}
    L = response_window(cfg_ad, T_train)
    spend_scale, target_scale = np.array([1e3, 5e3]), 2e4
    history = rng.uniform(0, 1, (max(L - 1, 1), C)) * spend_scale
    params = ResponseParams(
        weights=adstock_weights_jax(cfg_ad, {n: draws[n] for n in cfg_ad.param_names}, n_lags=L),
        sat={n: jnp.asarray(draws[n]) for n in cfg_sat.param_names},
        spend_scale=jnp.asarray(spend_scale), target_scale=jnp.asarray(target_scale), history=jnp.asarray(history),
    )
    spec = ResponseSpec(saturation=cfg_sat.type, adstock_first=order == "adstock-first")
    plan = rng.uniform(0, 1.5, (H, C)) * spend_scale
    got = np.asarray(plan_contributions(plan, params, spec))
    n_hist = history.shape[0]
    for s in range(S):
        ad_p = {n: draws[n][s] for n in cfg_ad.param_names}
        sat_p = {n: draws[n][s] for n in cfg_sat.param_names}

        def contrib(spend):
            x = spend / spend_scale
            if spec.adstock_first:
                return media_response_np(cfg_sat.type, apply_adstock_np(x, cfg_ad, ad_p), sat_p)
            return apply_adstock_np(media_response_np(cfg_sat.type, x, sat_p), cfg_ad, ad_p)

        tail = np.zeros((L - 1, C))
        ref = (contrib(np.vstack([history, plan, tail])) - contrib(np.vstack([history, 0 * plan, tail])))[n_hist:]
        ref = ref * target_scale
        # infinite: the truncation drops weights alpha**157 < 1e-7 of the history
        rtol, atol = (1e-6, 1e-6 * np.abs(ref).max()) if ad == "geometric-inf" else (1e-9, 1e-9)
        np.testing.assert_allclose(got[s], ref, rtol=rtol, atol=atol)
    # the optimiser's precomputed response (A + xB, or weight sums) equals the direct one
    pattern = jnp.asarray(rng.dirichlet(np.ones(H), size=C).T)  # (H, C), columns sum to 1
    r = net_response_fn(pattern, params, spec)
    x = jnp.asarray(rng.uniform(0.5, 4, C) * spend_scale)
    np.testing.assert_allclose(np.asarray(r(x)), np.asarray(plan_response(pattern * x, params, spec)), rtol=1e-9)
    g1 = jax.grad(lambda z: jnp.mean(r(z)))(x)
    g2 = jax.grad(lambda z: jnp.mean(plan_response(pattern * z, params, spec)))(x)
    np.testing.assert_allclose(np.asarray(g1), np.asarray(g2), rtol=1e-8)
    assert np.all(np.asarray(g1) > 0)  # more spend, more response


FACADE_CONFIGS = {
    "weibull-pdf+tanh, saturation first": dict(adstock=WeibullAdstock(l_max=6, kind="pdf"),
                                               saturation=TanhSaturation(), adstock_first=False),
    "infinite geometric+hill": dict(adstock=GeometricAdstock(infinite=True), saturation=HillSaturation()),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FACADE_CONFIGS))
def test_facade_runs_for_other_families(tmp_path, name):
    from mmm_jax import MMM
    from mmm_jax.datasets import simulate

    df, truth = simulate(70, 2, seed=4)
    cfg = ModelConfig(date="date", target="sales", channels=tuple(truth.channels), controls=("price_index",),
                      seasonality=1, **FACADE_CONFIGS[name])
    mmm = MMM(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mmm.fit(df, chains=2, warmup=100, draws=50, progress=False, seed=3)
        plan = mmm.optimize_budget(float(df[list(truth.channels)].iloc[-8:].to_numpy().sum()), 8)
    post = mmm.idata.posterior
    for p in cfg.media_params:
        assert post[p].dims == ("chain", "draw", "channel")
    assert post["channel_contribution_original"].dims == ("chain", "draw", "date", "channel")
    assert np.all(np.isfinite(mmm.roas()["mean"]))
    pred = mmm.predict(df.iloc[-30:].reset_index(drop=True), include_noise=False)
    assert pred["channel_contribution"].shape == (2, 50, 30, 2)
    assert abs(plan.table["optimal_spend"].sum() - plan.summary["total"]) < 1e-6 * plan.summary["total"]
    assert plan.summary["expected_response"] >= plan.summary["current_expected_response"] * (1 - 1e-3)
    curves = plan.response_curves(n_points=6)
    for df_c in curves.values():
        assert np.all(np.diff(df_c["mean"].to_numpy()) >= -1e-9)
    mmm.save(tmp_path / "m")
    loaded = MMM.load(tmp_path / "m")
    assert loaded.config == cfg
    again = loaded.predict(df.iloc[-30:].reset_index(drop=True), include_noise=False)
    np.testing.assert_allclose(again["mu"].values, pred["mu"].values, rtol=1e-9)


# --------------------------------------------------------------------------- recovery (tanh)
TRUE_S = np.array([0.30, 0.20, 0.40])
TRUE_CAC0 = np.array([1.0, 1.5, 2.5])
TRUE_ALPHA = np.array([0.5, 0.3, 0.6])


def simulate_tanh(seed, T=156, noise=0.03):
    """Scaled model inputs and target from geometric adstock + tanh saturation with known truth.

    Spend: flighted, per-channel gamma noise scaled to max 1. Target: intercept 0.5 + media +
    Normal(0, noise). Returns the :func:`mmm_jax.data.features.design_arrays`-style dict.
    """
    rng = np.random.default_rng(seed)
    C = len(TRUE_S)
    on = rng.random((T, C)) < 0.75
    spend = rng.gamma(2.0, 1.0, (T, C)) * on
    spend /= spend.max(0)
    ad = GeometricAdstock(l_max=8, normalize=True)
    xa = apply_adstock_np(spend, ad, {"alpha": TRUE_ALPHA})
    media = media_response_np("tanh", xa, {"sat_level": TRUE_S, "cac0": TRUE_CAC0})
    y = 0.5 + media.sum(1) + rng.normal(0, noise, T)
    arrays = {"spend": spend, "target": y, "mask": np.ones(T), "time": np.linspace(0, 1, T),
              "controls": np.zeros((T, 0)), "fourier": np.zeros((T, 0))}
    return arrays, media


@pytest.mark.slow
def test_tanh_recovery_of_saturation_level_and_cac0():
    from mmm_jax.inference import sample

    arrays, media = simulate_tanh(seed=7)
    cfg = ModelConfig(date="date", target="y", channels=("a", "b", "c"), adstock=GeometricAdstock(l_max=8),
                      saturation=TanhSaturation(), trend=False, seasonality=0)
    model = build_pymc_model(cfg, arrays)
    ld = compile_logdensity(model)
    res = sample(ld, arrays, key=11, sampler="numpyro", chains=4, warmup=500, draws=500, progress=False)
    flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in res.samples.items()}
    post = jax.jit(jax.vmap(ld.constrain, in_axes=(0, None)))(flat, arrays)
    assert int(np.sum(res.stats["diverging"])) <= 5
    for name, truth in (("sat_level", TRUE_S), ("cac0", TRUE_CAC0)):
        draws = np.asarray(post[name])
        lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
        assert np.all((lo <= truth) & (truth <= hi)), (name, lo, hi, truth)
    # and the weekly contributions are recovered closely
    cc = np.asarray(post["channel_contribution"]).mean(0)
    assert np.max(np.abs(cc - media)) < 0.05
