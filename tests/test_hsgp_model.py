"""HSGP time-varying effects in the single-brand model.

* deterministics: ``<p>_t = p * media_multiplier``, ``intercept_tv`` in the baseline;
* forecasts evaluate the basis on the training domain (stored in ``Scaling.hsgp``): history
  rows of a forecast equal the fit, dates past the boundary are refused, save/load keeps it;
* the budget carries the last weeks' average effectiveness into the plan;
* recovery: time-varying cac0[t] per channel (156 weeks, 3 channels, hierarchical HSGP).

The compiled log-density of every HSGP option against ``model.compile_logp()`` is in
``tests/test_compile.py::test_logp_equals_pymc_for_model_options``.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from mmm_jax.data.features import hsgp_arrays, model_arrays

from mmm_jax import MMM, HSGPSpec, ModelConfig, Prior, TimeVaryingMedia
from mmm_jax.budget.response import RECENT_MULTIPLIER_WEEKS, recent_parameter, response_params_from_mmm
from mmm_jax.datasets import simulate_time_varying


def _config(channels, **kw):
    return ModelConfig(date="date", target="sales", channels=tuple(channels), adstock={"type": "geometric", "l_max": 6},
                       saturation="tanh", seasonality=1, **kw)


@pytest.fixture(scope="module")
def tv_fit():
    df, truth = simulate_time_varying(80, 2, seed=5)
    cfg = _config(truth.channels, time_varying_intercept=HSGPSpec(m=8, c=2.0),
                  time_varying_media=TimeVaryingMedia(hsgp=HSGPSpec(m=8, c=2.0), hierarchical=True))
    mmm = MMM(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mmm.fit(df, chains=2, warmup=150, draws=60, progress=False, seed=2)
    return mmm, df, truth


def test_deterministics_and_dims(tv_fit):
    mmm, df, _ = tv_fit
    post = mmm.idata.posterior
    assert post["cac0_t"].dims == ("chain", "draw", "date", "channel")
    assert post["media_multiplier"].dims == ("chain", "draw", "date", "channel")
    assert post["intercept_tv"].dims == ("chain", "draw", "date")
    assert post["media_tv_global"].dims == ("chain", "draw", "date")
    assert post["media_tv_delta_z"].dims == ("chain", "draw", "media_tv_basis", "channel")
    np.testing.assert_allclose(post["cac0_t"].values, post["cac0"].values[:, :, None, :] * post["media_multiplier"].values,
                               rtol=1e-12)
    # exp link: the multiplier factorises into the global path times the channel's deviation
    glob = np.exp(post["media_tv_global"].values)[..., None]
    np.testing.assert_allclose(post["media_multiplier"].values, np.exp(post["media_tv"].values), rtol=1e-12)
    assert np.all(post["media_multiplier"].values > 0) and np.all(glob > 0)
    assert {"channel_contribution_original", "baseline_original", "mu_original", "roas"} <= set(post.data_vars)
    assert np.all(np.isfinite(mmm.roas()["mean"]))
    # the training domain is stored: time in [0, 1] -> centre 0.5, L = c / 2
    assert set(mmm.scaling.hsgp) == {"intercept_tv", "media_tv"}
    for d in mmm.scaling.hsgp.values():
        assert (d["centre"], d["L"]) == (0.5, 1.0) and len(d["shift"]) == 8
    # centred bases: every process averages exactly 0 over the training weeks, so the intercept
    # and cac0 are the window's average level (geometric mean for the exp-link multiplier)
    np.testing.assert_allclose(post["intercept_tv"].mean("date").values, 0.0, atol=1e-12)
    np.testing.assert_allclose(np.log(post["media_multiplier"].values).mean(axis=2), 0.0, atol=1e-12)


def test_forecast_uses_the_training_domain(tv_fit, tmp_path):
    mmm, df, _ = tv_fit
    future = pd.DataFrame({"date": pd.date_range(df["date"].iloc[-1] + pd.Timedelta(weeks=1), periods=12, freq="W-SUN")})
    for c in mmm.config.channels:
        future[c] = df[c].iloc[-12:].to_numpy()
    full = pd.concat([df, future], ignore_index=True)
    pred = mmm.predict(full, include_noise=False)
    T = len(df)
    # the history rows of a forecast are the fitted values (same basis rows, same draws)
    np.testing.assert_allclose(pred["mu"].values[:, :, :T], mmm.idata.posterior["mu_original"].values, rtol=1e-9)
    assert np.all(np.isfinite(pred["mu"].values[:, :, T:]))
    # the forecast basis rows are the training basis evaluated further along the same domain
    new = mmm.validate(full, require_target=False)
    arr = model_arrays(mmm.config, new, mmm.scaling, train=mmm._arrays)
    np.testing.assert_allclose(arr["media_tv_phi"][:T], mmm._arrays["media_tv_phi"], rtol=1e-12)
    assert arr["media_tv_phi"].shape == (T + 12, 8)
    # beyond the boundary (L = 1 on scaled time: one training window past the end) -> refused
    far = full.copy()
    far["date"] = pd.date_range(df["date"].iloc[0], periods=len(far), freq="8W-SUN")
    with pytest.raises(ValueError, match="beyond the HSGP domain fixed at fit time"):
        mmm.predict(far)
    mmm.save(tmp_path / "tv")
    loaded = MMM.load(tmp_path / "tv")
    assert loaded.config == mmm.config and loaded.scaling.hsgp == mmm.scaling.hsgp
    again = loaded.predict(full, include_noise=False)
    np.testing.assert_allclose(again["mu"].values, pred["mu"].values, rtol=1e-9)


def test_budget_uses_the_recent_effectiveness(tv_fit):
    mmm, df, _ = tv_fit
    post = mmm.idata.posterior
    S = post.sizes["chain"] * post.sizes["draw"]
    params, static = response_params_from_mmm(mmm)
    cac0_t = post["cac0_t"].values.reshape(S, len(df), -1)
    np.testing.assert_allclose(np.asarray(params.sat["cac0"]), cac0_t[:, -RECENT_MULTIPLIER_WEEKS:].mean(1), rtol=1e-12)
    assert static["recent_weeks"] == RECENT_MULTIPLIER_WEEKS and static["varying_param"] == "cac0"
    p1, _ = response_params_from_mmm(mmm, recent_weeks=1)
    np.testing.assert_allclose(np.asarray(p1.sat["cac0"]), cac0_t[:, -1], rtol=1e-12)
    # masked (unobserved) weeks are skipped
    mask = np.ones(len(df))
    mask[-3:] = 0
    np.testing.assert_allclose(recent_parameter(cac0_t, mask, 2), cac0_t[:, -5:-3].mean(1))
    total = float(df[list(mmm.config.channels)].iloc[-8:].to_numpy().sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = mmm.optimize_budget(total, 8)
    assert abs(plan.table["optimal_spend"].sum() - total) < 1e-6 * total
    assert plan.summary["expected_response"] >= plan.summary["current_expected_response"] * (1 - 1e-3)
    curves = mmm.response_curves(n_points=5, max_draws=50)
    for c in curves.values():
        assert np.all(np.diff(c["mean"].to_numpy()) >= -1e-9)


def test_missing_basis_is_computed_on_the_observed_window(rng):
    """build_pymc_model without precomputed bases (e.g. the batch engine's arrays) builds the same model."""
    from conftest import random_arrays
    from mmm_jax.data.features import hsgp_domains
    from mmm_jax.model.build import build_pymc_model

    from mmm_jax.compile import compile_logdensity

    cfg = ModelConfig(date="d", target="y", channels=("a", "b"), time_varying_intercept=HSGPSpec(m=6, c=2.0),
                      time_varying_media=dict(m=5, c=3.0, hierarchical=True))
    arrays = random_arrays(rng, T=30, C=2, K=0)
    full = {**arrays, **hsgp_arrays(cfg, arrays["time"], hsgp_domains(cfg, arrays["time"]))}
    ld_a = compile_logdensity(build_pymc_model(cfg, arrays))
    ld_b = compile_logdensity(build_pymc_model(cfg, full))
    for k in ld_b.data_names:
        np.testing.assert_allclose(ld_a.default_data[k], full[k], rtol=1e-12)
    p = {n: rng.normal(size=s) for n, s in ld_b.param_shapes.items()}
    np.testing.assert_allclose(float(ld_a.logp(p, ld_a.default_data)), float(ld_b.logp(p, ld_b.default_data)))
    with pytest.raises(ValueError, match="basis functions"):
        build_pymc_model(cfg, {**full, "intercept_tv_phi": full["intercept_tv_phi"][:, :3]})


@pytest.mark.slow
def test_recovery_of_time_varying_cac0_per_channel():
    """156 weeks, 3 channels, hierarchical HSGP on cac0: corr(posterior mean, truth) >= 0.8 per channel."""
    df, truth = simulate_time_varying(156, 3, seed=1)
    cfg = _config(truth.channels, time_varying_media=TimeVaryingMedia(
        hsgp=HSGPSpec(m=12, c=2.0), hierarchical=True, delta_eta_prior=Prior("HalfNormal", sigma=0.3)))
    mmm = MMM(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mmm.fit(df, chains=4, warmup=300, draws=300, progress=False, seed=1)
    est = mmm.idata.posterior["cac0_t"].mean(("chain", "draw")).values
    corr = [np.corrcoef(est[:, j], truth.cac0_t[:, j])[0, 1] for j in range(3)]
    assert min(corr) >= 0.8, corr
    assert mmm.diagnostics()["max_rhat"] < 1.05
    # and the level is right too: the model's cac0_t is the truth's in model scale
    rel = np.abs(est / truth.model_scale()["cac0_t"] - 1)
    assert np.median(rel) < 0.15, np.median(rel, axis=0)
