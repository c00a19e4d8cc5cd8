"""Sampling until converged, refreshing a fit on extended data, and the persistent compilation cache."""

import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from mmm_jax import MMM, ConvergenceWarning, ModelConfig
from mmm_jax.datasets import simulate
from mmm_jax.inference import sample, warm_start
from mmm_jax.inference.until import StopRule, check_until, convergence
from mmm_jax.inference.warmstart import flat_variance

UNTIL = {"rhat": 1.05, "ess": 60}


@pytest.fixture(scope="module")
def problem():
    df, truth = simulate(84, 2, seed=5)
    cfg = ModelConfig(date="date", target="sales", channels=tuple(truth.channels), controls=("price_index",))
    mmm = MMM(cfg)
    mmm.build(df.iloc[:80])
    return df, cfg, mmm


@pytest.mark.parametrize("sampler", ["numpyro", "blackjax"])
def test_until_stops_when_targets_are_met_with_the_draws_of_a_fixed_run(problem, sampler):
    _, _, mmm = problem
    kw = dict(key=3, sampler=sampler, chains=2, warmup=150, progress=False)
    r = sample(mmm.logdensity, None, draws=40, until=UNTIL, max_draws=1000, **kw)
    s = r.stopped
    assert s["stopped_by"] == "converged" and s["until"] == UNTIL and s["max_draws"] == 1000
    n = s["draws"]
    assert 40 <= n < 1000 and (n - 40) % 100 == 0  # the first check at `draws`, then every chunk of 100
    for v in r.samples.values():
        assert v.shape[:2] == (2, n)
    assert r.stats["diverging"].shape == (2, n)
    d = convergence(r.samples)
    assert d["max_rhat"] <= UNTIL["rhat"] and d["min_ess_bulk"] >= UNTIL["ess"]
    assert s["max_rhat"] == pytest.approx(d["max_rhat"]) and s["min_ess_bulk"] == pytest.approx(d["min_ess_bulk"])
    # the draws are those of a run asked for exactly that many: stopping changes nothing before it
    fixed = sample(mmm.logdensity, None, draws=n, **kw)
    for k, v in fixed.samples.items():
        np.testing.assert_array_equal(r.samples[k], v, err_msg=k)
    assert fixed.stopped is None


@pytest.mark.parametrize("sampler", ["numpyro", "blackjax"])
def test_until_stops_at_max_draws_when_targets_are_out_of_reach(problem, sampler):
    _, _, mmm = problem
    r = sample(mmm.logdensity, None, key=1, sampler=sampler, chains=2, warmup=100, draws=30,
               until={"ess": 1e9, "ess_tail": 1e9}, max_draws=130, progress=False)
    assert r.stopped["stopped_by"] == "max_draws" and r.stopped["draws"] == 130
    assert r.stopped["checks"] == 1  # after 30 draws; the last chunk ends the run without a check
    assert "min_ess_tail" in r.stopped
    assert next(iter(r.samples.values())).shape[1] == 130


def test_until_settings_are_checked(problem):
    _, _, mmm = problem
    ld = mmm.logdensity
    with pytest.raises(ValueError, match="unknown target"):
        sample(ld, until={"rhat": 1.01, "esss": 400})
    with pytest.raises(ValueError, match="must be > 1"):
        sample(ld, until={"rhat": 1.0})
    with pytest.raises(ValueError, match="must be > 0"):
        sample(ld, until={"ess": 0})
    with pytest.raises(ValueError, match="give until too"):
        sample(ld, max_draws=500)
    with pytest.raises(ValueError, match=r"max_draws \(50\) must be >= draws \(100\)"):
        sample(ld, draws=100, until={"ess": 10}, max_draws=50)
    with pytest.raises(ValueError, match="does not support until"):
        sample(ld, sampler="chees", until={"ess": 10})
    with pytest.raises(ValueError, match="sequential"):
        sample(ld, chain_method="sequential", until={"ess": 10}, chains=2, warmup=10, draws=10, progress=False)
    assert check_until(None) is None
    assert check_until({"ess": 400}) == {"ess": 400.0}


def test_stop_rule_waits_for_min_draws():
    rule = StopRule({"ess": 1.0}, min_draws=50, max_draws=500, positions_of=lambda d: d)
    rng = np.random.default_rng(0)
    assert rule({"a": rng.normal(size=(2, 40))}) is False and rule.checks == 0
    assert rule({"a": rng.normal(size=(2, 60))}) is True and rule.checks == 1
    assert rule.summary({"a": rng.normal(size=(2, 60))})["stopped_by"] == "converged"


def test_fit_until_records_what_stopped_it(problem):
    df, cfg, _ = problem
    m = MMM(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m.fit(df.iloc[:80], chains=2, warmup=150, draws=40, until=UNTIL, max_draws=340, progress=False, seed=2)
    s = m.fit_settings["stopped"]
    met = s["max_rhat"] <= UNTIL["rhat"] and s["min_ess_bulk"] >= UNTIL["ess"]
    assert s["stopped_by"] == ("converged" if met else "max_draws")
    assert met or s["draws"] == 340
    assert json.loads(m.idata.posterior.attrs["until"]) == s
    assert m.idata.posterior.sizes["draw"] == s["draws"]
    diag = m.diagnostics()  # constrained free parameters: the same rank-based numbers
    assert diag["max_rhat"] == pytest.approx(s["max_rhat"], abs=1e-6)
    assert diag["min_ess_bulk"] == pytest.approx(s["min_ess_bulk"], rel=1e-6)
    assert m.fit_settings["until"] == UNTIL and m.fit_settings["max_draws"] == 340


def test_warm_start_takes_last_draws_and_flattens_like_the_samplers():
    rng = np.random.default_rng(1)
    samples = {"b": rng.normal(size=(3, 50, 2)), "a": rng.normal(size=(3, 50)) * 4}
    ws = warm_start(samples)
    np.testing.assert_array_equal(ws.positions["b"], samples["b"][:, -1])
    np.testing.assert_array_equal(ws.positions["a"], samples["a"][:, -1])
    # the order NumPyro and BlackJAX flatten a dict of parameters in
    flat = np.stack([ravel_pytree({k: v[c] for k, v in samples.items()})[0] for c in range(3)])  # (3, 3 draws...)
    assert flat.shape == (3, 50 * 3)
    var = flat_variance(samples)
    np.testing.assert_allclose(var[:, 0], samples["a"].var(axis=1))
    np.testing.assert_allclose(var[:, 1:], samples["b"].var(axis=1))
    assert np.all(ws.step_size == 0.5) and ws.inverse_mass_matrix.shape == (3, 3)
    more = warm_start(samples, step_size=[0.1, 0.2, 0.3], inverse_mass_matrix=var, chains=4)
    np.testing.assert_array_equal(more.step_size, [0.1, 0.2, 0.3, 0.1])
    np.testing.assert_array_equal(more.positions["a"][3], samples["a"][0, -1])


def test_refresh_starts_from_the_fit_and_targets_the_cold_posterior(problem, tmp_path):
    df, cfg, _ = problem
    kw = dict(chains=2, warmup=300, draws=300, progress=False)
    m = MMM(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m.fit(df.iloc[:80], seed=1, **kw)
        tuned = m.fit_settings["tuned"]
        assert np.asarray(tuned["inverse_mass_matrix"]).shape[0] == 2
        last = {k: np.asarray(v) for k, v in tuned["last_positions"].items()}
        path = m.save(tmp_path / "fit")
        calls = []
        import mmm_jax.api.fitted as fitted_mod

        real = fitted_mod.sample

        def spy(*a, **k):
            calls.append(k)
            return real(*a, **k)

        fitted_mod.sample = spy
        try:
            m.refresh(df, progress=False)
        finally:
            fitted_mod.sample = real
        cold = MMM(cfg)
        cold.fit(df, seed=7, **kw)
    start = calls[0]["start"]
    for k, v in last.items():
        np.testing.assert_array_equal(start.positions[k], v)
    np.testing.assert_array_equal(start.step_size, tuned["step_size"])
    assert calls[0]["warmup"] == 200 and calls[0]["draws"] == 300 and calls[0]["chains"] == 2
    assert m.fit_settings["refreshed"] is True and m.fit_settings["seed"] == 2
    assert m.data.n_periods == 84 and m.idata.posterior.sizes["date"] == 84
    d, dc = m.diagnostics(), cold.diagnostics()
    assert d["max_rhat"] < 1.05 and d["min_ess_bulk"] > 0.5 * dc["min_ess_bulk"], (d, dc)  # 200 warm-up, not 300
    r_ref, r_cold = m.roas()["mean"], cold.roas()["mean"]
    sd = cold.idata.posterior["roas"].std(("chain", "draw")).values
    assert np.all(np.abs(r_ref.values - r_cold.values) < 0.5 * sd), (r_ref, r_cold, sd)
    # a loaded fit refreshes from what was saved with it
    loaded = MMM.load(path)
    assert loaded.fit_settings["tuned"]["last_positions"].keys() == last.keys()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        loaded.refresh(df, draws=100, progress=False)
    assert loaded.idata.posterior.sizes["draw"] == 100


def test_refresh_refuses_what_it_cannot_honour(problem):
    df, cfg, _ = problem
    m = MMM(cfg)
    with pytest.raises(Exception, match="fit the model"):
        m.refresh(df)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m.fit(df.iloc[:80], chains=2, warmup=50, draws=20, progress=False)
    with pytest.raises(TypeError, match=r"keeps this fit's \['chains'\]"):
        m.refresh(df, chains=4)
    bad = dict(m.fit_settings)
    bad["tuned"] = {**bad["tuned"], "last_positions": {**bad["tuned"]["last_positions"], "beta_log__": [[0.0], [0.0]]}}
    m.fit_settings = bad
    with pytest.raises(ValueError, match=r"\['beta_log__'\] changed shape"):
        m.refresh(df)
    m.fit_settings = {**bad, "sampler": "chees"}
    with pytest.raises(ValueError, match="chees"):
        m.refresh(df)


_CACHE_PROBE = textwrap.dedent("""
    import sys
    import jax
    hits = []
    jax.monitoring.register_event_listener(lambda e, **k: hits.append(e) if e.endswith("cache_hits") else None)
    import mmm_jax
    from mmm_jax import MMM, ModelConfig
    from mmm_jax.datasets import simulate
    from mmm_jax.inference import sample
    print("DIR", jax.config.jax_compilation_cache_dir)
    if len(sys.argv) > 1:
        df, truth = simulate(60, 2, seed=int(sys.argv[1]))
        m = MMM(ModelConfig(date="date", target="sales", channels=tuple(truth.channels)))
        m.build(df)
        r = sample(m.logdensity, m.model_inputs(), key=0, chains=2, warmup=20, draws=10, progress=False)
        print("HITS", len(hits))
""")


def _probe(tmp_path, env_extra, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMM_JAX_CACHE")}
    env.update(env_extra)
    script = tmp_path / "probe.py"
    script.write_text(_CACHE_PROBE)
    return subprocess.Popen([sys.executable, str(script), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _out(proc):
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    lines = dict(line.split(" ", 1) for line in out.splitlines() if line[:4] in ("DIR ", "HITS"))
    return lines, err


def test_compilation_cache_default_location_and_opt_out(tmp_path):
    lines, _ = _out(_probe(tmp_path, {"XDG_CACHE_HOME": str(tmp_path / "xdg")}))
    assert lines["DIR"] == str(tmp_path / "xdg" / "mmm_jax" / "xla")
    lines, _ = _out(_probe(tmp_path, {"MMM_JAX_CACHE_DIR": "0", "XDG_CACHE_HOME": str(tmp_path / "xdg")}))
    assert lines["DIR"] == "None"


def test_compilation_cache_is_shared_safely_and_serves_other_data(tmp_path):
    """Two processes fill one empty cache at the same time; a third, fitting OTHER data of the
    same shapes, loads the sampler's programs from it (the data are inputs, not constants)."""
    env = {"MMM_JAX_CACHE_DIR": str(tmp_path / "cache")}
    first = [_probe(tmp_path, env, "0"), _probe(tmp_path, env, "0")]
    for p in first:
        _, err = _out(p)
        assert "Error reading persistent compilation cache" not in err
    assert any((tmp_path / "cache").iterdir())
    lines, err = _out(_probe(tmp_path, env, "1"))
    assert int(lines["HITS"]) >= 2, err[-2000:]  # at least the chains' init and chunk programs
    assert "Error reading persistent compilation cache" not in err


def test_markets_fit_until_and_refresh(tmp_path):
    """The market model takes the same until / refresh (one FittedModel path); a new market is refused."""
    from mmm_jax.hierarchical import HierarchicalConfig, HierarchicalMMM, simulate_panel

    df, truth = simulate_panel(3, 44, 2, seed=2)
    base = ModelConfig(date="date", target="sales", channels=tuple(truth.channels))
    cfg = HierarchicalConfig(base, market="market")
    dates = sorted(df["date"].unique())
    first = df[df["date"] < dates[40]]
    h = HierarchicalMMM(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        h.fit(first, chains=2, warmup=100, draws=30, until={"ess": 1e9}, max_draws=130, progress=False)
        assert h.fit_settings["stopped"]["stopped_by"] == "max_draws"
        assert h.idata.posterior.sizes["draw"] == 130
        h.refresh(df, warmup=60, draws=40, progress=False)
    assert h.fit_settings["refreshed"] is True and h.idata.posterior.sizes["draw"] == 40
    assert h.idata.posterior_predictive["y"].sizes["date"] == 44
    more, _ = simulate_panel(4, 44, 2, seed=2)
    with pytest.raises(ValueError, match="changed shape"):
        h.refresh(more, progress=False)


def test_batch_job_fields_leave_out_until():
    """A batch runs fixed draws: until / max_draws stay out of its job hash, so batch folders
    written before they existed resume instead of refitting."""
    from mmm_jax.batch.run import sampler_job_fields
    from mmm_jax.inference import SamplerConfig

    assert sorted(sampler_job_fields(SamplerConfig())) == ["chains", "dense_mass", "draws", "jitter",
                                                           "max_tree_depth", "target_accept", "warmup"]


def test_compilation_cache_scans_for_eviction_once_per_sixteenth_written(tmp_path):
    """JAX's LRU scans every entry on every write (O(entries) per compiled program); ours scans
    on the first write, then after max_size/16 bytes, and still keeps the folder near its bound."""
    from mmm_jax._runtime import throttled_lru_class

    folder = tmp_path / "xla"
    folder.mkdir()
    for i in range(200):  # an old cache of 200 x 1 KiB entries, oldest first
        (folder / f"old{i:03d}-cache").write_bytes(b"x" * 1024)
        (folder / f"old{i:03d}-atime").write_bytes(int(i).to_bytes(8, "little"))

    def size():
        return sum(f.stat().st_size for f in folder.glob("*-cache"))

    cache = throttled_lru_class()(str(folder), max_size=160 * 1024)  # scan every 10 KiB written
    cache.put("new000", b"y" * 1024)
    assert cache.scans == 1 and size() <= 160 * 1024
    assert not (folder / "old000-cache").exists() and (folder / "old199-cache").exists()  # oldest went
    for i in range(1, 10):  # 9 KiB more: below the 10 KiB step, no scan, the folder may grow
        cache.put(f"new{i:03d}", b"y" * 1024)
    assert cache.scans == 1 and size() == 169 * 1024
    assert cache.get("new005") == b"y" * 1024
    cache.put("new010", b"y" * 1024)  # 10 KiB since the last scan: scan, back within bound
    assert cache.scans == 2 and size() <= 160 * 1024 and (folder / "new010-cache").exists()
