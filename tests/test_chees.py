"""BlackJAX many-chain adaptation (ChEES-HMC, MEADS) behind ``mmm_jax.inference.sample``."""

import warnings

import arviz as az
import numpy as np
import pymc as pm
import pytest

from mmm_jax.compile import compile_logdensity
from mmm_jax.inference import SAMPLERS, sample

MU = np.array([1.0, -2.0])
COV = np.array([[1.0, 1.8], [1.8, 4.0]])  # sd 1 and 2, correlation 0.9
STAT_KEYS = ("diverging", "energy", "tree_depth", "n_steps", "step_size", "acceptance_rate", "lp")


@pytest.fixture(scope="module")
def gaussian():
    """Correlated 2-D Gaussian + a HalfNormal(1) (log-transformed) scale: known moments."""
    with pm.Model() as m:
        pm.MvNormal("x", mu=MU, cov=COV)
        pm.HalfNormal("s", 1.0)
    return compile_logdensity(m)


def _check_moments(res, chains, draws):
    x = res.samples["x"]
    assert x.shape == (chains, draws, 2)
    ds = az.convert_to_dataset({"x": x, "s": np.exp(res.samples["s_log__"])})
    ess = az.ess(ds)
    rhat = az.rhat(ds)
    assert float(rhat["x"].max()) < 1.02 and float(rhat["s"]) < 1.02
    assert float(ess["x"].min()) > 0.2 * chains * draws  # HMC on a Gaussian mixes well
    flat = x.reshape(-1, 2)
    # means within 4 Monte Carlo standard errors
    mcse = np.sqrt(np.diag(COV) / ess["x"].values)
    np.testing.assert_array_less(np.abs(flat.mean(0) - MU), 4 * mcse)
    np.testing.assert_allclose(np.cov(flat.T), COV, rtol=0.1)
    # HalfNormal(1): E[s] = sqrt(2/pi)
    s = np.exp(res.samples["s_log__"]).ravel()
    assert abs(s.mean() - np.sqrt(2 / np.pi)) < 4 * np.sqrt(1 - 2 / np.pi) / np.sqrt(float(ess["s"]))


def _check_contract(res, name, chains, draws):
    assert res.sampler == name
    for k in STAT_KEYS:
        assert res.stats[k].shape == (chains, draws), k
        assert np.all(np.isfinite(res.stats[k])), k
    assert res.stats["diverging"].dtype == bool
    assert np.all(res.stats["tree_depth"] == 0)  # HMC without trees: documented as 0
    assert np.all(res.stats["n_steps"] >= 1)
    assert np.all(res.stats["warmup_n_steps"] > 0)
    for k in ("warmup", "sampling", "total"):
        assert np.isfinite(res.timings[k]) and res.timings[k] > 0, k
    assert res.timings["warmup"] < res.timings["total"]


def test_samplers_registered():
    assert "chees" in SAMPLERS and "meads" in SAMPLERS


@pytest.mark.parametrize("chain_method", ["vectorized", "parallel"])
def test_chees_correlated_gaussian(gaussian, chain_method):
    chains, draws = 8, 600
    res = sample(gaussian, key=3, sampler="chees", chains=chains, warmup=400, draws=draws, progress=False,
                 chain_method=chain_method)
    _check_contract(res, "chees", chains, draws)
    _check_moments(res, chains, draws)
    # one step size per run, shared by all chains; the jittered trajectory varies per draw
    assert np.ptp(res.stats["step_size"]) == 0
    assert np.ptp(res.stats["n_steps"]) > 0
    assert res.stats["diverging"].sum() == 0


@pytest.mark.parametrize("chain_method", ["vectorized", "parallel"])
def test_chees_with_sequential_gradients(gaussian, chain_method):
    """gradient_batching="map": the chains' gradients run one after another (per device); the
    sampler is the same, so the moments come out as with vmapped gradients."""
    chains, draws = 8, 600
    res = sample(gaussian, key=3, sampler="chees", chains=chains, warmup=400, draws=draws, progress=False,
                 chain_method=chain_method, gradient_batching="map")
    assert res.config.gradient_batching == "map"
    _check_contract(res, "chees", chains, draws)
    _check_moments(res, chains, draws)
    auto = sample(gaussian, key=3, sampler="chees", chains=4, warmup=20, draws=10, progress=False)
    assert auto.config.gradient_batching == "vmap"  # a 2-parameter model: vmap
    for sampler in ("chees", "numpyro"):  # checked up front, whichever sampler
        with pytest.raises(ValueError, match="gradient_batching"):
            sample(gaussian, sampler=sampler, chains=4, warmup=10, draws=10, progress=False, gradient_batching="no")


@pytest.mark.parametrize("groups", [1, 2, 3])
def test_sequential_gradients_equal_vmapped_ones(groups):
    """Same values and gradients as plain vmap, for any number of groups (3 does not divide 4:
    one group), nested in jit, and unbatched."""
    import jax
    import jax.numpy as jnp

    from mmm_jax.inference.batching import sequential_gradients

    a = jnp.asarray(np.random.default_rng(0).normal(size=(5, 5)))

    def f(x):
        return -0.5 * jnp.sum(jnp.tanh(a @ x) ** 2) + jnp.sum(jnp.sin(x))

    g = sequential_gradients(f, groups)
    xs = jnp.asarray(np.random.default_rng(1).normal(size=(4, 5)))
    ref_v, ref_g = jax.vmap(jax.value_and_grad(f))(xs)
    v, gr = jax.jit(jax.vmap(jax.value_and_grad(g)))(xs)
    np.testing.assert_allclose(np.asarray(v), np.asarray(ref_v), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(gr), np.asarray(ref_g), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(jax.vmap(g)(xs)), np.asarray(ref_v), rtol=1e-12)
    v1, g1 = jax.value_and_grad(g)(xs[0])
    np.testing.assert_allclose(np.asarray(g1), np.asarray(ref_g[0]), rtol=1e-12)


def test_chees_same_seed_same_draws(gaussian):
    kw = dict(key=5, sampler="chees", chains=4, warmup=100, draws=50, progress=False)
    a, b = sample(gaussian, **kw), sample(gaussian, **kw)
    np.testing.assert_array_equal(a.samples["x"], b.samples["x"])


def test_meads_correlated_gaussian(gaussian):
    chains, draws = 32, 300
    res = sample(gaussian, key=4, sampler="meads", chains=chains, warmup=200, draws=draws, progress=False)
    _check_contract(res, "meads", chains, draws)
    _check_moments(res, chains, draws)
    assert np.all(res.stats["n_steps"] == 10)  # MEADS_THINNING GHMC steps per stored draw


@pytest.mark.parametrize("sampler", ["chees", "meads"])
def test_matrix_parameter(sampler):
    """A (3, 2) parameter (like a hierarchical model's market x channel z): BlackJAX's ensemble
    statistics handle (chains, dim) leaves only, so the chains run on flat vectors and come back
    in the parameter's own shape."""
    loc = np.arange(6.0).reshape(3, 2)
    scale = np.array([[0.5, 1.0], [2.0, 0.5], [1.0, 3.0]])
    with pm.Model() as m:
        pm.Normal("w", loc, scale, shape=(3, 2))
        pm.Normal("v", 0.0, 1.0, shape=(4,))
    chains, draws = 16, 400
    res = sample(compile_logdensity(m), key=7, sampler=sampler, chains=chains, warmup=300, draws=draws, progress=False)
    assert res.samples["w"].shape == (chains, draws, 3, 2) and res.samples["v"].shape == (chains, draws, 4)
    w = res.samples["w"].reshape(-1, 3, 2)
    ess = az.ess(az.convert_to_dataset({"w": res.samples["w"]}))["w"].values
    assert ess.min() > 0.1 * chains * draws
    np.testing.assert_array_less(np.abs(w.mean(0) - loc), 4 * scale / np.sqrt(ess))  # each entry where it belongs
    np.testing.assert_allclose(w.std(0), scale, rtol=0.15)


def test_errors(gaussian):
    with pytest.raises(ValueError, match="diagonal"):
        sample(gaussian, sampler="chees", chains=4, warmup=10, draws=10, dense_mass=True, progress=False)
    with pytest.raises(ValueError, match="at least 16"):
        sample(gaussian, sampler="meads", chains=4, warmup=10, draws=10, progress=False)
    with pytest.raises(ValueError, match="not available"):
        sample(gaussian, sampler="nope")


def test_cli_accepts_chees():
    from mmm_jax.cli import main

    assert main(["demo", "--sampler", "nope"]) == 2  # argument errors: one line, exit 2 (no SystemExit)
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["fit", "--help"]) == 0
    assert "chees" in buf.getvalue() and "meads" in buf.getvalue()


@pytest.mark.slow
def test_chees_example_mmm(example):
    """The bundled example: ChEES through MMM.fit agrees with the truth and mixes."""
    from mmm_jax import MMM, ModelConfig
    from mmm_jax.datasets import EXAMPLE_CHANNELS, EXAMPLE_CONTROLS, EXAMPLE_DATE, EXAMPLE_TARGET

    df, truth = example
    mmm = MMM(ModelConfig(date=EXAMPLE_DATE, target=EXAMPLE_TARGET, channels=EXAMPLE_CHANNELS,
                          controls=EXAMPLE_CONTROLS, seasonality=2, trend=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mmm.fit(df, sampler="chees", chains=4, warmup=400, draws=400, seed=1, progress=False)
    d = mmm.diagnostics()
    assert d["max_rhat"] < 1.05
    assert d["min_ess_bulk"] > 100
    assert d["divergences"] <= 0.01 * d["draws"]
    assert mmm.fit_settings["sampler"] == "chees"
    ss = mmm.idata.sample_stats
    assert set(STAT_KEYS) <= set(ss.data_vars)
    roas = mmm.idata.posterior["roas"]
    mean, sd = roas.mean(("chain", "draw")), roas.std(("chain", "draw"))
    for ch in EXAMPLE_CHANNELS:
        z = abs(float(mean.sel(channel=ch)) - truth["roas"][ch]) / float(sd.sel(channel=ch))
        assert z < 3, (ch, z)
