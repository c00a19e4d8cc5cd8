"""Samplers behind one interface: shapes, stats, reproducibility, InferenceData, save/load."""

import json
import warnings

import jax
import numpy as np
import pytest
from mmm_jax.model.build import build_pymc_model

from mmm_jax import MMM, ConvergenceWarning, ModelConfig, NotFittedError
from mmm_jax.compat import group_names
from mmm_jax.compile import compile_logdensity
from mmm_jax.datasets import simulate
from mmm_jax.inference import sample
from mmm_jax.posterior.results import check_convergence

SMALL = dict(chains=2, warmup=150, draws=100, progress=False)


@pytest.fixture(scope="module")
def small_problem():
    df, truth = simulate(80, 2, seed=3)
    cfg = ModelConfig(date="date", target="sales", channels=tuple(truth.channels), controls=("price_index",))
    return df, truth, cfg


@pytest.fixture(scope="module")
def fitted(small_problem):
    df, truth, cfg = small_problem
    mmm = MMM(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mmm.fit(df, seed=11, **SMALL)
    return mmm


@pytest.mark.parametrize("sampler", ["numpyro", "blackjax"])
def test_sampler_outputs_and_reproducibility(small_problem, sampler):
    df, truth, cfg = small_problem
    mmm = MMM(cfg)
    mmm.build(df)
    ld = mmm.logdensity
    r1 = sample(ld, mmm._arrays, key=5, sampler=sampler, **SMALL)
    r2 = sample(ld, mmm._arrays, key=5, sampler=sampler, **SMALL)
    r3 = sample(ld, mmm._arrays, key=6, sampler=sampler, **SMALL)
    for name, shape in ld.param_shapes.items():
        assert r1.samples[name].shape == (2, 100, *shape)
        np.testing.assert_array_equal(r1.samples[name], r2.samples[name])  # same seed, same draws
    assert not np.array_equal(r1.samples["beta_log__"], r3.samples["beta_log__"])
    for k in ("diverging", "energy", "tree_depth", "n_steps", "step_size", "acceptance_rate", "lp"):
        assert r1.stats[k].shape == (2, 100), k
    assert r1.stats["diverging"].dtype == bool
    assert np.all(r1.stats["step_size"] > 0)
    assert np.all((r1.stats["acceptance_rate"] >= 0) & (r1.stats["acceptance_rate"] <= 1))
    assert np.all(r1.stats["tree_depth"] >= 1)
    assert r1.timings["total"] > 0
    assert 0 < r1.timings["warmup"] < r1.timings["total"]  # both samplers time warm-up on its own
    # draws should be near the posterior: lp at draws comparable to lp at init
    assert np.all(np.isfinite(r1.stats["lp"]))


def test_samplers_agree_on_posterior_mean(small_problem):
    """NumPyro and BlackJAX target the same density: posterior means within MC error."""
    df, truth, cfg = small_problem
    mmm = MMM(cfg)
    mmm.build(df)
    s = dict(chains=2, warmup=300, draws=400, progress=False)
    a = sample(mmm.logdensity, mmm._arrays, key=1, sampler="numpyro", **s).samples
    b = sample(mmm.logdensity, mmm._arrays, key=2, sampler="blackjax", **s).samples
    for name in ("intercept", "beta_log__"):
        ma, mb = a[name].mean((0, 1)), b[name].mean((0, 1))
        sd = np.sqrt(a[name].var((0, 1)) + b[name].var((0, 1)))
        # generous: 4 pooled sd / sqrt(effective draws ~ 100)
        assert np.all(np.abs(ma - mb) < 4 * sd / np.sqrt(100)), name


def test_inference_data_groups_dims_and_units(fitted, small_problem):
    df, truth, cfg = small_problem
    idata = fitted.idata
    for g in ("posterior", "posterior_predictive", "sample_stats", "observed_data", "constant_data"):
        assert g in group_names(idata)
    post = idata.posterior
    assert post["channel_contribution_original"].dims == ("chain", "draw", "date", "channel")
    assert post["roas"].dims == ("chain", "draw", "channel")
    assert list(post["channel"].values) == list(cfg.channels)
    assert idata.posterior_predictive["y"].dims == ("chain", "draw", "date")
    for k in ("diverging", "energy", "tree_depth", "step_size", "acceptance_rate"):
        assert k in idata.sample_stats
    # original units: contributions are target-scale, roas = total / spend
    scale = fitted.scaling.target_scale
    np.testing.assert_allclose(post["channel_contribution_original"].values, post["channel_contribution"].values * scale)
    spend = df[list(cfg.channels)].to_numpy().sum(0)
    np.testing.assert_allclose(
        post["roas"].values, post["channel_contribution_original"].values.sum(2) / spend, rtol=1e-10
    )
    np.testing.assert_allclose(idata.observed_data["y"].values, df["sales"].to_numpy())
    # mu = baseline + contributions
    np.testing.assert_allclose(
        post["mu_original"].values,
        post["baseline_original"].values + post["channel_contribution_original"].values.sum(-1),
        rtol=1e-10,
    )
    # the posterior predictive scatters around the observed target
    pp = idata.posterior_predictive["y"].values.reshape(-1, len(df))
    inside = np.mean((df["sales"].values > np.quantile(pp, 0.05, 0)) & (df["sales"].values < np.quantile(pp, 0.95, 0)))
    assert inside > 0.75
    versions = json.loads(post.attrs["versions"])
    assert versions["jax"] and versions["pymc"]
    assert json.loads(post.attrs["config"])["channels"] == list(cfg.channels)


def test_summary_roas_contributions(fitted):
    s = fitted.summary()
    assert {"r_hat", "ess_bulk", "ess_tail", "mean"} <= set(s.columns)
    assert any(i.startswith("roas[") for i in s.index)
    r = fitted.roas()
    assert list(r.index) == list(fitted.config.channels)
    assert np.all(r.iloc[:, 2] <= r["mean"]) and np.all(r["mean"] <= r.iloc[:, 3])
    c = fitted.contributions()
    assert list(c.columns) == ["baseline", *fitted.config.channels]
    assert len(c) == fitted.data.n_periods


def test_save_load_same_predictions(fitted, small_problem, tmp_path):
    df, truth, cfg = small_problem
    path = fitted.save(tmp_path / "model")
    assert sorted(p.name for p in path.iterdir()) == [".mmm_jax", "config.json", "data.csv", "idata.nc", "meta.json", "scaling.json"]
    loaded = MMM.load(path)
    assert loaded.config == fitted.config
    p1 = fitted.predict(df, seed=4)
    p2 = loaded.predict(df, seed=4)
    np.testing.assert_allclose(p1["y"].values, p2["y"].values, rtol=1e-12)
    np.testing.assert_allclose(p1["mu"].values, fitted.idata.posterior["mu_original"].values, rtol=1e-9)
    # forecast: future rows without a target
    future = df.copy()
    future.loc[future.index[-10:], "sales"] = np.nan
    f = loaded.predict(future, seed=4, include_noise=False)
    np.testing.assert_allclose(f["mu"].values, p1["mu"].values, rtol=1e-9)
    # saving again over an existing directory is atomic and leaves no temp dirs
    fitted.save(tmp_path / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_unfitted_model_raises():
    mmm = MMM(ModelConfig(date="d", target="y", channels=("a",)))
    with pytest.raises(NotFittedError):
        mmm.roas()


def test_convergence_warnings():
    with pytest.warns(ConvergenceWarning, match="R-hat"):
        check_convergence({"max_rhat": 1.2, "divergences": 0, "draws": 100})
    with pytest.warns(ConvergenceWarning, match="divergent"):
        check_convergence({"max_rhat": 1.0, "divergences": 3, "draws": 100})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_convergence({"max_rhat": 1.005, "divergences": 0, "draws": 100}) == []


def test_bad_sampler_settings(small_problem):
    df, truth, cfg = small_problem
    ld = compile_logdensity(build_pymc_model(cfg, _arrays(cfg, df)))
    with pytest.raises(ValueError, match="sampler"):
        sample(ld, sampler="stan")
    with pytest.raises(TypeError, match="unknown sampler settings"):
        sample(ld, chainz=3)
    with pytest.raises(ValueError, match="target_accept"):
        sample(ld, target_accept=1.5)


def _arrays(cfg, df):
    m = MMM(cfg)
    m.build(df)
    return m._arrays


def test_jax_key_types(small_problem):
    df, truth, cfg = small_problem
    m = MMM(cfg)
    m.build(df)
    r1 = sample(m.logdensity, m._arrays, key=jax.random.key(9), sampler="blackjax", chains=1, warmup=20, draws=10,
                progress=False)
    assert r1.samples["intercept"].shape == (1, 10)
    r2 = sample(m.logdensity, m._arrays, key=jax.random.key(9), sampler="numpyro", chains=1, warmup=20, draws=10,
                progress=False)
    assert r2.samples["intercept"].shape == (1, 10)
    assert r2.stats["diverging"].shape == (1, 10)


def test_numpyro_chunks_are_one_run(small_problem, monkeypatch):
    """NumPyro's kernel runs in chunks of compiled iterations (bounded memory, see
    mmm_jax.inference.numpyro): the chunk length does not change the draws, for warm-up and
    draws that are not multiples of it, in every chain layout."""
    import mmm_jax.inference.numpyro as npy

    df, truth, cfg = small_problem
    mmm = MMM(cfg)
    mmm.build(df)
    kw = dict(key=4, sampler="numpyro", chains=2, warmup=70, draws=45, progress=False)
    for method in ("vectorized", "sequential"):
        monkeypatch.setattr(npy, "CHUNK_ITERATIONS", 100)
        ref = sample(mmm.logdensity, None, chain_method=method, **kw)
        monkeypatch.setattr(npy, "CHUNK_ITERATIONS", 16)
        res = sample(mmm.logdensity, None, chain_method=method, **kw)
        assert res.config.chain_method == method
        for k, v in ref.samples.items():
            assert v.shape[:2] == (2, 45)
            np.testing.assert_allclose(res.samples[k], v, rtol=1e-9, atol=1e-12, err_msg=f"{method} {k}")
        for k in ("n_steps", "diverging", "step_size"):
            np.testing.assert_array_equal(res.stats[k], ref.stats[k])
        assert np.all(ref.stats["step_size"] == ref.stats["step_size"][:, :1])  # adaptation over after warm-up
        assert not np.allclose(ref.samples["alpha_logodds__"][0], ref.samples["alpha_logodds__"][1])  # 2 chains


def test_blackjax_chunks_are_one_run(small_problem, monkeypatch):
    """BlackJAX NUTS runs in chunks of compiled iterations (bounded memory, see
    mmm_jax.inference.chunked): chunks of 16 or 100 iterations give the draws, stats and tuned
    step sizes of one uninterrupted program over warm-up and draws, with warm-up and draw counts
    that are not multiples of the chunk length. (The chains start from the same jitted
    nuts_init: an init fused into a bigger program rounds its first gradient differently, and
    NUTS amplifies a 1e-14 difference into different trajectories.)"""
    import mmm_jax.inference.blackjax as bjx
    from mmm_jax.inference.base import bind_data

    df, truth, cfg = small_problem
    mmm = MMM(cfg)
    mmm.build(df)
    ld = mmm.logdensity
    kw = dict(key=4, sampler="blackjax", chains=2, warmup=70, draws=45, chain_method="vectorized", progress=False)
    runs = []
    for size in (16, 100):
        monkeypatch.setattr(bjx, "CHUNK_ITERATIONS", size)
        runs.append(sample(ld, None, **kw))
    res = runs[0]
    scfg = res.config
    init, keys = bjx.chain_inputs(ld, jax.random.key(4), scfg)
    logdensity = bind_data(ld, None)
    start = jax.jit(jax.vmap(lambda p, k: bjx.nuts_init(logdensity, p, k, scfg)))(init, keys)
    end, (pos, stats) = jax.jit(jax.vmap(lambda c: bjx.nuts_steps(logdensity, c, 0, 115, scfg, size=115)))(start)
    for r in runs:
        for k, v in pos.items():
            assert r.samples[k].shape[:2] == (2, 45)
            np.testing.assert_array_equal(r.samples[k], np.asarray(v)[:, 70:], err_msg=k)
        for k in ("n_steps", "diverging", "step_size"):
            np.testing.assert_array_equal(r.stats[k], np.asarray(stats[k])[:, 70:])
    np.testing.assert_array_equal(res.stats["step_size"][:, -1], np.asarray(bjx.tuned_of(end)[0]))
    assert np.all(res.stats["step_size"] == res.stats["step_size"][:, :1])  # adaptation over after warm-up
    assert not np.allclose(res.samples["intercept"][0], res.samples["intercept"][1])  # 2 chains
    assert res.timings["warmup"] > 0 and res.timings["sampling"] > 0


def test_chain_layout_spreads_chains_over_devices_and_cores():
    """(devices, chains per device): least time on the cores, then least padding, then more devices."""
    from mmm_jax.inference.chunked import chain_layout

    assert chain_layout(4, 4, 2) == (4, 1)  # one chain per device
    assert chain_layout(8, 4, 2) == (4, 2)
    assert chain_layout(10, 4, 2) == (2, 5)  # 2 cores: 3 or 4 devices would pad to 12 chains
    assert chain_layout(5, 4, 2) == (3, 2)  # uneven: one padded chain; before, 1 device ran all 5
    assert chain_layout(7, 1, 2) == (1, 7)
    assert chain_layout(5, 8, 8) == (5, 1)
    assert chain_layout(5, 4, 4) == (3, 2)  # accelerators: 2 per device either way, 3 devices pad less
    assert chain_layout(9, 4, 16) == (3, 3)


@pytest.mark.parametrize("sampler", ["numpyro", "blackjax"])
def test_more_chains_than_devices_run_in_parallel_groups(sampler):
    """On CPU, chains beyond the device count still run over the devices (each device runs its
    share one after another), not in vmapped lock-step; an uneven split is padded and the padding
    dropped; draws come back in chain order.

    Run in a fresh process: XLA's CPU compiler has crashed (SIGSEGV) compiling this pmap inside a
    long-lived test worker that had compiled hundreds of programs before; alone it never has.
    """
    import os
    import subprocess
    import sys

    code = (f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); import test_sampling as t; "
            f"[t.check_parallel_groups({sampler!r}, e) for e in ('double', 'uneven')]")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900,
                         env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert run.returncode == 0, run.stderr[-3000:]


def check_parallel_groups(sampler: str, extra: str) -> None:
    """The body of :func:`test_more_chains_than_devices_run_in_parallel_groups` for one case."""
    from mmm_jax.inference.base import SamplerConfig, resolve_chain_method
    from mmm_jax.inference.chunked import chain_layout

    n_dev = jax.local_device_count()
    n_chains = 2 * n_dev if extra == "double" else n_dev + 1
    assert resolve_chain_method(SamplerConfig(chains=n_chains)) == "parallel"
    d, per = chain_layout(n_chains)
    assert d > 1 and d * per >= n_chains
    df, truth = simulate(80, 2, seed=3)
    cfg = ModelConfig(date="date", target="sales", channels=tuple(truth.channels), controls=("price_index",))
    mmm = MMM(cfg)
    mmm.build(df)
    kw = dict(key=2, sampler=sampler, chains=n_chains, warmup=60, draws=30, progress=False)
    a = sample(mmm.logdensity, None, **kw)
    b = sample(mmm.logdensity, None, **kw)
    assert a.config.chain_method == "parallel"
    assert a.samples["intercept"].shape == (n_chains, 30) and a.stats["n_steps"].shape == (n_chains, 30)
    np.testing.assert_array_equal(a.samples["intercept"], b.samples["intercept"])  # same seed, same draws
    firsts = a.samples["intercept"][:, 0]
    assert len(np.unique(firsts)) == n_chains  # every chain its own
    assert np.all(a.stats["step_size"] == a.stats["step_size"][:, :1])
