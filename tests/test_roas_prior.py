"""Priors on business quantities: a channel's ROAS (or CAC) is the random variable.

* at any parameter values, the ROAS the model implies over the training weeks (computed by
  ``results.draw_quantities`` from the contributions, in original units) equals the
  ``roas_<channel>`` variable, and 1 / implied ROAS the ``cac_<channel>`` variable;
* ``beta`` is solved on the training window, so predicting on new data keeps it;
* a tight prior around the true ROAS pins the posterior there.

The compiled log-density against ``model.compile_logp()`` is in
``tests/test_compile.py::test_logp_equals_pymc_for_model_options``.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mmm_jax.data.features import model_arrays

from mmm_jax import MMM, ModelConfig, Prior
from mmm_jax.datasets import simulate
from mmm_jax.posterior.results import draw_quantities


def _config(channels, **kw):
    return ModelConfig(date="date", target="sales", channels=tuple(channels), controls=("price_index",),
                       seasonality=1, **kw)


@pytest.mark.parametrize("tv", [False, True], ids=["static", "time-varying-beta"])
def test_roas_and_cac_variables_are_the_implied_values(rng, tv):
    df, truth = simulate(60, 3, seed=2)
    ch = truth.channels
    extra = {"time_varying_media": {"m": 6, "c": 2.0, "hierarchical": True}} if tv else {}
    cfg = _config(ch, roas_prior={ch[0]: Prior("LogNormal", mu=0.0, sigma=0.5)},
                  cac_prior={ch[2]: Prior("LogNormal", mu=0.0, sigma=0.5)}, **extra)
    mmm = MMM(cfg)
    mmm.build(df)
    ld = mmm.logdensity
    free = {rv.name for rv in mmm.model.free_RVs}
    assert {f"roas_{ch[0]}", f"cac_{ch[2]}", "beta_free"} <= free and "beta" not in free
    assert mmm.model.named_vars_to_dims["beta"] == ("channel",)
    data = {k: jnp.asarray(v) for k, v in mmm._arrays.items()}
    spend = jnp.sum(jnp.asarray(mmm.data.spend) * data["mask"][:, None], axis=0)
    q = jax.jit(lambda p: draw_quantities(ld, p, data, target_scale=mmm.scaling.target_scale, total_spend=spend,
                                          likelihood="normal"))
    for _ in range(4):
        p = {n: rng.normal(size=s) for n, s in ld.param_shapes.items()}
        out = q(p)
        np.testing.assert_allclose(float(out["roas"][0]), float(out[f"roas_{ch[0]}"]), rtol=1e-10)
        np.testing.assert_allclose(1.0 / float(out["roas"][2]), float(out[f"cac_{ch[2]}"]), rtol=1e-10)
        np.testing.assert_allclose(float(out["beta"][1]), float(out["beta_free"][0]), rtol=1e-14)
        if tv:
            np.testing.assert_allclose(np.asarray(out["beta_t"]),
                                       np.asarray(out["beta"]) * np.asarray(out["media_multiplier"]), rtol=1e-12)
        # new data (other spend, a forecast tail): beta is still the training window's
        new = df.iloc[10:].reset_index(drop=True).copy()
        new[ch[0]] = new[ch[0]] * 3.0
        arr = model_arrays(cfg, mmm.validate(new), mmm.scaling, train=mmm._arrays)
        np.testing.assert_allclose(np.asarray(ld.constrain(p, arr)["beta"]), np.asarray(out["beta"]), rtol=1e-12)


def test_per_channel_beta_prior_is_subset_for_the_free_channels():
    df, truth = simulate(40, 3, seed=0)
    ch = truth.channels
    cfg = _config(ch, roas_prior={ch[1]: Prior("LogNormal", mu=0.0, sigma=0.5)},
                  priors={"beta": Prior("HalfNormal", sigma=[0.1, 0.2, 0.3])})
    mmm = MMM(cfg)
    mmm.build(df)
    free = mmm.model["beta_free"]
    assert mmm.model.named_vars_to_dims["beta_free"] == ("beta_free_channel",)
    assert list(mmm.model.coords["beta_free_channel"]) == [ch[0], ch[2]]
    sigma = free.owner.inputs[-1].eval()
    np.testing.assert_allclose(sigma, [0.1, 0.3])


@pytest.mark.slow
def test_tight_roas_prior_pins_the_posterior():
    """A finance / experiment ROAS (tight prior at the truth) for one channel: posterior ROAS within 10%."""
    df, truth = simulate(104, 3, seed=6)
    ch = truth.channels
    true = float(truth.roas[0])
    cfg = _config(ch, roas_prior={ch[0]: Prior("LogNormal", mu=float(np.log(true)), sigma=0.05)})
    mmm = MMM(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mmm.fit(df, chains=2, warmup=300, draws=200, progress=False, seed=0)
    roas = mmm.roas()
    assert abs(roas.loc[ch[0], "median"] / true - 1) < 0.1
    post = mmm.idata.posterior
    np.testing.assert_allclose(post["roas"].values[..., 0], post[f"roas_{ch[0]}"].values, rtol=1e-9)
