"""The compiled JAX log-density against PyMC's own, vmapping over datasets, no retracing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_arrays
from mmm_jax.config.model import ModelConfig, Prior
from mmm_jax.model.build import build_pymc_model

from mmm_jax.compile import compile_logdensity, initial_params

CONFIGS = {
    "full-normal": dict(controls=("z1", "z2"), trend=True, seasonality=2, likelihood="normal"),
    "full-studentt": dict(controls=("z1", "z2"), trend=True, seasonality=2, likelihood="studentt"),
    "bare": dict(controls=(), trend=False, seasonality=0, likelihood="normal"),
    "unnormalized-priors": dict(
        controls=("z1", "z2"),
        seasonality=1,
        priors={"beta": Prior("HalfNormal", sigma=[0.5, 1.0, 2.0]), "lam": Prior("Gamma", alpha=2.0, beta=2.0)},
    ),
}


def make(rng, name, T=60):
    kw = dict(CONFIGS[name])
    n_fourier = kw.get("seasonality", 2)
    cfg = ModelConfig(date="date", target="y", channels=("a", "b", "c"), **kw)
    if name == "unnormalized-priors":
        from mmm_jax.config.model import GeometricAdstock

        cfg = ModelConfig(**{**cfg.__dict__, "adstock": GeometricAdstock(l_max=4, normalize=False)})
    arrays = random_arrays(rng, T=T, C=3, K=len(cfg.controls), n_fourier=n_fourier)
    return cfg, arrays, build_pymc_model(cfg, arrays)


def random_point(rng, ld, scale=1.5):
    return {n: rng.normal(scale=scale, size=s) for n, s in ld.param_shapes.items()}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_logp_equals_pymc_at_random_points(rng, name):
    cfg, arrays, model = make(rng, name)
    ld = compile_logdensity(model)
    pymc_logp = model.compile_logp()
    pymc_dlogp = model.compile_dlogp()
    jlogp = jax.jit(ld.logp)
    jgrad = jax.jit(jax.grad(ld.logp))
    data = {k: jnp.asarray(v) for k, v in ld.default_data.items()}
    for _ in range(25):
        p = random_point(rng, ld)
        ref = pymc_logp(p)
        got = float(jlogp(p, data))
        assert np.isfinite(ref)
        np.testing.assert_allclose(got, ref, rtol=1e-6)
        # gradients too (PyMC's gradient is on the flattened value vars, in model order)
        g = jgrad(p, data)
        flat = np.concatenate([np.ravel(g[v.name]) for v in model.value_vars])
        np.testing.assert_allclose(flat, pymc_dlogp(p), rtol=1e-5, atol=1e-8)


def test_data_are_inputs_not_constants(rng):
    """Changing the data changes the log-density exactly as rebuilding the model would."""
    cfg, arrays, model = make(rng, "full-normal")
    ld = compile_logdensity(model)
    arrays2 = random_arrays(rng, T=60, C=3, K=2)
    model2 = build_pymc_model(cfg, arrays2)
    p = random_point(rng, ld)
    np.testing.assert_allclose(float(ld.logp(p, arrays2)), model2.compile_logp()(p), rtol=1e-6)


def test_vmap_over_datasets_equals_separate_calls(rng):
    cfg, arrays, model = make(rng, "full-studentt")
    ld = compile_logdensity(model)
    datasets = [random_arrays(rng, T=60, C=3, K=2) for _ in range(3)]
    batched = {k: jnp.stack([d[k] for d in datasets]) for k in ld.data_names}
    p = random_point(rng, ld)
    vm = jax.jit(jax.vmap(ld.logp, in_axes=(None, 0)))(p, batched)
    sep = [float(ld.logp(p, d)) for d in datasets]
    np.testing.assert_allclose(np.asarray(vm), sep, rtol=1e-12)
    # and over (params, data) pairs
    ps = [random_point(rng, ld) for _ in range(3)]
    pb = {k: jnp.stack([q[k] for q in ps]) for k in ld.param_names}
    vm2 = jax.vmap(ld.logp)(pb, batched)
    np.testing.assert_allclose(np.asarray(vm2), [float(ld.logp(q, d)) for q, d in zip(ps, datasets)], rtol=1e-12)


def test_masked_weeks_contribute_nothing(rng):
    """Weeks with mask 0 leave the log-density equal to the unpadded series'."""
    cfg, arrays, model = make(rng, "full-normal", T=50)
    ld = compile_logdensity(model)
    padded = {k: np.concatenate([v, np.zeros((7, *v.shape[1:])) + (0.37 if k != "mask" else 0.0)]) for k, v in arrays.items()}
    cfg2, _, _ = make(rng, "full-normal", T=57)
    p = random_point(rng, ld)
    np.testing.assert_allclose(float(ld.logp(p, padded)), float(ld.logp(p, arrays)), rtol=1e-10)


def test_constrain_matches_pymc_deterministics(rng):
    cfg, arrays, model = make(rng, "full-normal")
    ld = compile_logdensity(model)
    p = random_point(rng, ld, scale=0.5)
    out = jax.jit(ld.constrain)(p, ld.default_data)
    import pymc as pm

    outs = model.unobserved_value_vars  # PyMC's own constrained values + deterministics
    fn = model.compile_fn(outs=outs, inputs=model.value_vars, on_unused_input="ignore")
    ref = dict(zip([v.name for v in outs], fn(p), strict=True))
    cc, mu, alpha = ref["channel_contribution"], ref["mu"], ref["alpha"]
    np.testing.assert_allclose(np.asarray(out["channel_contribution"]), cc, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(out["mu"]), mu, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(out["alpha"]), alpha, rtol=1e-12)
    assert out["channel_contribution"].shape == (60, 3)
    assert ld.dims["channel_contribution"] == ("date", "channel")
    del pm


def test_logp_traced_once_for_new_data_of_same_shape(rng):
    cfg, arrays, model = make(rng, "bare")
    ld = compile_logdensity(model)
    traces = []

    def counted(p, d):
        traces.append(1)
        return ld.logp(p, d)

    f = jax.jit(counted)

    def data(a):
        return {k: a[k] for k in ld.data_names}

    p = random_point(rng, ld)
    f(p, data(arrays))
    f(p, data(random_arrays(rng, T=60, C=3, K=0)))
    f(random_point(rng, ld), data(random_arrays(rng, T=60, C=3, K=0)))
    assert len(traces) == 1


def test_initial_params_shapes_and_finite_logp(rng):
    cfg, arrays, model = make(rng, "full-normal")
    ld = compile_logdensity(model)
    init = initial_params(ld, jax.random.key(0), 4)
    assert all(init[n].shape == (4, *ld.param_shapes[n]) for n in ld.param_names)
    lps = jax.vmap(ld.logp, in_axes=(0, None))(init, ld.default_data)
    assert np.all(np.isfinite(np.asarray(lps)))


def test_model_runs_under_pymc_backend(rng):
    """The same pm.Model samples with PyMC's own NUTS (C/NumPy backend: Op.perform + L_op)."""
    import pymc as pm

    cfg, arrays, model = make(rng, "bare", T=40)
    with model:
        idata = pm.sample(draws=30, tune=30, chains=1, random_seed=1, progressbar=False,
                          compute_convergence_checks=False)
        prior = pm.sample_prior_predictive(5, random_seed=1)
    assert idata.posterior["beta"].shape == (1, 30, 3)
    assert np.all(idata.posterior["beta"].values >= 0)
    assert prior.prior_predictive["y"].shape == (1, 5, 40)


# --------------------------------------------------------------------------- model-library options
from mmm_jax.config.model import TimeVaryingMedia  # noqa: E402
from mmm_jax.data.features import hsgp_arrays, hsgp_domains  # noqa: E402
from mmm_jax.model.hsgp import HSGPSpec  # noqa: E402

_TV_SMALL = dict(m=8, c=2.0)
OPTIONS = {
    "tv-intercept": dict(time_varying_intercept=HSGPSpec(**_TV_SMALL)),
    "tv-intercept-matern-studentt": dict(time_varying_intercept=HSGPSpec(m=6, c=2.5, kernel="matern52"),
                                         likelihood="studentt"),
    "tv-media-shared": dict(time_varying_media=TimeVaryingMedia(hsgp=HSGPSpec(**_TV_SMALL))),
    "tv-media-shared-softplus-lam": dict(time_varying_media=dict(**_TV_SMALL, link="softplus", param="lam")),
    "tv-media-hierarchical": dict(time_varying_media=dict(**_TV_SMALL, hierarchical=True)),
    "tv-media-hierarchical-no-zero-sum": dict(time_varying_media=dict(**_TV_SMALL, hierarchical=True, zero_sum=False)),
    "tv-media-hierarchical-own-ell-tanh": dict(
        saturation="tanh", adstock_first=False,
        time_varying_media=dict(**_TV_SMALL, hierarchical=True, kernel="matern52",
                                delta_ell_prior=Prior("InverseGamma", alpha=5.0, beta=1.0))),
    "tv-both-hill": dict(saturation="hill", time_varying_intercept=HSGPSpec(**_TV_SMALL),
                         time_varying_media=dict(**_TV_SMALL, hierarchical=True)),
    "poisson": dict(likelihood="poisson"),
    "negbin": dict(likelihood="negative_binomial"),
    "negbin-tv-tanh": dict(likelihood="negative_binomial", saturation="tanh",
                           time_varying_intercept=HSGPSpec(**_TV_SMALL), time_varying_media=dict(**_TV_SMALL)),
    "roas-prior": dict(roas_prior={"a": Prior("LogNormal", mu=0.0, sigma=0.5)}),
    "roas-and-cac-every-channel-mm": dict(
        saturation="michaelis_menten", roas_prior={"a": Prior("LogNormal", mu=0.0, sigma=0.5),
                                                   "c": Prior("Gamma", alpha=3.0, beta=2.0)},
        cac_prior={"b": Prior("LogNormal", mu=1.0, sigma=0.3)}),
    "cac-prior-negbin-tv-hierarchical": dict(
        likelihood="negative_binomial", adstock_first=False, cac_prior={"b": Prior("LogNormal", mu=1.0, sigma=0.5)},
        time_varying_media=dict(**_TV_SMALL, hierarchical=True),
        priors={"beta": Prior("HalfNormal", sigma=[0.5, 1.0, 2.0])}),
}


def option_arrays(rng, cfg, T=40):
    """Scaled inputs plus every extra the options need (as features.model_arrays gives them)."""
    arrays = random_arrays(rng, T=T, C=3, K=len(cfg.controls), n_fourier=cfg.seasonality)
    arrays.update(hsgp_arrays(cfg, arrays["time"], hsgp_domains(cfg, arrays["time"])))
    if cfg.is_count:
        arrays["target_scale"] = np.asarray(317.0)
        arrays["target"] = rng.poisson(150.0, T) / 317.0
    if cfg.business_priors:
        arrays.setdefault("target_scale", np.asarray(2.5e5))
        arrays["spend_scale"] = np.array([4e4, 5e3, 8e3])
        arrays["spend_train"], arrays["mask_train"] = arrays["spend"], arrays["mask"]
        if cfg.time_varying_media is not None:
            arrays["media_tv_phi_train"] = arrays["media_tv_phi"]
    return arrays


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_logp_equals_pymc_for_model_options(rng, name):
    cfg = ModelConfig(date="date", target="y", channels=("a", "b", "c"), controls=("z1",), seasonality=1,
                      **OPTIONS[name])
    arrays = option_arrays(rng, cfg)
    model = build_pymc_model(cfg, arrays)
    assert {"channel_contribution", "baseline", "mu"} <= set(model.named_vars)
    assert model.named_vars_to_dims["channel_contribution"] == ("date", "channel")
    ld = compile_logdensity(model)
    # every pm.Data (HSGP bases, target_scale, training copies) is an input, none a constant
    assert set(ld.data_names) == {v.name for v in model.data_vars}
    # PyMC's own log-density and gradient (Python-mode ops: the same graph, compiled faster)
    pymc_logp, pymc_dlogp = model.compile_logp(mode="FAST_COMPILE"), model.compile_dlogp(mode="FAST_COMPILE")
    jlogp, jgrad = jax.jit(ld.logp), jax.jit(jax.grad(ld.logp))
    data = {k: jnp.asarray(v) for k, v in ld.default_data.items()}
    for i in range(8):
        p = random_point(rng, ld, scale=1.0)
        ref = pymc_logp(p)
        assert np.isfinite(ref)
        np.testing.assert_allclose(float(jlogp(p, data)), ref, rtol=1e-9)
        if i >= 3:
            continue
        g = jgrad(p, data)
        flat = np.concatenate([np.ravel(g[v.name]) for v in model.value_vars])
        np.testing.assert_allclose(flat, pymc_dlogp(p), rtol=1e-6, atol=1e-8)
