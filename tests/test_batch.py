"""Batch engine: masks, agreement with single fits, sharding, resume, failure isolation."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import warnings

import arviz as az
import jax
import numpy as np
import pandas as pd
import pytest
from mmm_jax.model.build import build_pymc_model

from mmm_jax import MMM, ModelConfig
from mmm_jax.batch import (
    ConfigChangedError,
    ResultStore,
    brand_mesh,
    brand_seed,
    fit_many,
    lockstep_waste,
    make_batch_sampler,
    prepare_brand,
    read_manifest,
    split_brands,
    stack_brands,
)
from mmm_jax.batch.engine import key_data_for, run_chunk
from mmm_jax.compat import idata_from_netcdf, new_idata
from mmm_jax.compile import compile_logdensity, initial_params
from mmm_jax.datasets import simulate
from mmm_jax.inference import SamplerConfig
from mmm_jax.posterior.results import diagnostics

CHANNELS = ["tv", "search", "social"]
CFG = ModelConfig(date="date", target="sales", channels=CHANNELS, controls=["price_index"])


def _long(n_brands: int, weeks=(80, 64, 72, 56, 68, 60), seed0: int = 0) -> pd.DataFrame:
    frames = []
    for i in range(n_brands):
        df, _ = simulate(weeks[i % len(weeks)], 3, seed=seed0 + i)
        df.insert(0, "brand", f"b{i}")
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _template(brands, T):
    st = stack_brands(brands, T, CFG.seasonality)
    model = build_pymc_model(CFG, {k: v[0] for k, v in st.arrays.items()})
    return compile_logdensity(model), st


# --------------------------------------------------------------------------- masks / padding
def test_padded_weeks_give_the_unpadded_logdensity(rng):
    df, _ = simulate(50, 3, seed=3)
    b = prepare_brand("x", df, CFG)
    ld_pad, st = _template([b], 64)
    ld_own = compile_logdensity(build_pymc_model(CFG, b.arrays))
    assert st.arrays["mask"][0, 50:].sum() == 0 and st.arrays["mask"][0, :50].all()
    pad = {k: v[0] for k, v in st.arrays.items()}
    for _ in range(10):
        p = {k: rng.normal(size=s) for k, s in ld_own.param_shapes.items()}
        np.testing.assert_allclose(ld_pad.logp(p, pad), ld_own.logp(p, b.arrays), rtol=1e-12)


def test_absent_channel_adds_only_its_prior(rng):
    """A brand without 'social' (all zero): the template's log-density minus the brand's own
    model (two channels) is the same constant (the absent channel's prior) at every point."""
    df, _ = simulate(60, 3, seed=4)
    df["social"] = 0.0
    b = prepare_brand("y", df, CFG)
    assert b.present.tolist() == [True, True, False] and b.config.channels == ("tv", "search")
    ld_t, st = _template([b], 60)
    ld_b = compile_logdensity(build_pymc_model(b.config, {**b.arrays, "spend": b.arrays["spend"][:, :2]}))
    data_t = {k: v[0] for k, v in st.arrays.items()}
    data_b = {**b.arrays, "spend": b.arrays["spend"][:, :2]}
    fixed_absent = {k: rng.normal(size=s)[..., 2] for k, s in ld_t.param_shapes.items() if s == (3,)}
    diffs = []
    for _ in range(8):
        p = {k: rng.normal(size=s) for k, s in ld_b.param_shapes.items()}
        pt_ = {k: (np.append(v, fixed_absent[k]) if k in fixed_absent else v) for k, v in p.items()}
        diffs.append(float(ld_t.logp(pt_, data_t) - ld_b.logp(p, data_b)))
    np.testing.assert_allclose(diffs, diffs[0], rtol=0, atol=1e-9)


def test_pad_inputs_one_rule_for_brands_and_panels():
    """The one padding rule: zeros (masked), ones for scales, integer group indices kept, the
    calendar continued; an input without a declared layout or larger than the template is refused."""
    from mmm_jax.data.features import pad_inputs

    cal = {"time": np.arange(5.0), "fourier": np.ones((5, 2))}
    out = pad_inputs({"mask": np.ones((2, 3)), "target_scale": np.array([3.0, 4.0]),
                      "group_index_geo": np.array([1, 0]), "group_parent_geo": np.array([0]),
                      "time": np.arange(3.0), "media_tv_sqrt_eig": np.ones(4)},
                     {"date": 5, "market": 4, "group:geo": 2}, cal, markets=True)
    np.testing.assert_array_equal(out["mask"], np.pad(np.ones((2, 3)), ((0, 2), (0, 2))))
    np.testing.assert_array_equal(out["target_scale"], [3.0, 4.0, 1.0, 1.0])
    assert out["group_index_geo"].dtype == np.int64 and out["group_index_geo"].tolist() == [1, 0, 0, 0]
    assert out["group_parent_geo"].tolist() == [0, 0] and out["media_tv_sqrt_eig"].shape == (4,)
    np.testing.assert_array_equal(out["time"], cal["time"])
    one = pad_inputs({"spend_train": np.ones((3, 2)), "target_scale": np.asarray(2.0)}, {"date": 5}, cal)
    assert one["spend_train"].shape == (5, 2) and one["spend_train"][3:].sum() == 0 and float(one["target_scale"]) == 2
    with pytest.raises(KeyError, match="unknown model input 'lift'"):
        pad_inputs({"lift": np.zeros(3)}, {"date": 5}, cal)
    with pytest.raises(KeyError, match="national_spend"):  # a panel input is not a brand input
        pad_inputs({"national_spend": np.zeros((3, 1))}, {"date": 5}, cal)
    with pytest.raises(ValueError, match="'mask': axis 'date' has 6 entries"):
        pad_inputs({"mask": np.ones(6)}, {"date": 5}, cal)


def test_split_and_prepare_report_bad_brands_by_name():
    long = _long(3)
    long.loc[(long.brand == "b1") & (long.index == long.index[long.brand == "b1"][5]), "tv"] = -1.0
    frames = split_brands(long, by="brand")
    assert sorted(frames) == ["b0", "b1", "b2"] and "brand" not in frames["b0"].columns
    out = {n: prepare_brand(n, f, CFG) for n, f in frames.items()}
    assert "negative spend" in out["b1"].reason and "row 5" in out["b1"].reason
    with pytest.raises(ValueError, match="by="):
        split_brands(long)
    with pytest.raises(Exception, match="missing brand column 'market'"):
        split_brands(long, by="market")


def test_lockstep_waste_measure():
    # two members: steps (3, 1) then (1, 1): paid 2*(3+1) = 8, useful 6 -> waste 0.25
    n = np.array([[[3, 1]], [[1, 1]]])
    assert lockstep_waste(n, [2]) == pytest.approx(0.25)
    assert lockstep_waste(n, [1, 1]) == 0.0
    # 2 brands x 2 chains: brand 0 chains (3, 1), brand 1 chains (1, 1)
    n = np.array([[[3], [1]], [[1], [1]]])
    assert lockstep_waste(n, [2]) == pytest.approx(0.5)  # all four in lock-step: paid 4*3, useful 6
    # chains one after another, brands vmapped: chain 0 pays 2*3 (useful 4), chain 1 pays 2 (useful 2)
    assert lockstep_waste(n, [2], chains_in_lockstep=False) == pytest.approx(0.25)
    assert lockstep_waste(n, [1, 1], chains_in_lockstep=False) == 0.0


# --------------------------------------------------------------------------- engine
def _engine_inputs(n_brands=4):
    frames = split_brands(_long(n_brands), by="brand")
    brands = [prepare_brand(n, f, CFG) for n, f in frames.items()]
    T = max(b.n_weeks for b in brands)
    ld, st = _template(brands, T)
    return ld, st, brands


def test_sharding_over_two_devices_agrees_with_one():
    assert jax.local_device_count() >= 2  # mmm_jax asks XLA for >= 4 host devices
    ld, st, _ = _engine_inputs(4)
    cfg = SamplerConfig(chains=2, warmup=10, draws=10, progress=False)
    keys = key_data_for([brand_seed(0, n) for n in st.names])
    one = run_chunk(make_batch_sampler(ld, cfg, 4, mesh=brand_mesh(jax.devices()[:1])), st.arrays, keys)
    two = run_chunk(make_batch_sampler(ld, cfg, 4, mesh=brand_mesh(jax.devices()[:2])), st.arrays, keys)
    assert sorted(one) == sorted(two) == [0, 1, 2, 3]
    for r in range(4):
        for k in ld.param_names:
            np.testing.assert_allclose(one[r][0][k], two[r][0][k], rtol=1e-8, atol=1e-8)
        np.testing.assert_array_equal(one[r][1]["n_steps"], two[r][1]["n_steps"])


def test_batch_start_is_the_single_fit_start():
    """Same per-brand key: the batch's first draws (no warm-up) equal a single fit's bit for bit
    up to float round-off (the vmapped program may fuse differently)."""
    from mmm_jax.inference import sample

    ld, st, _ = _engine_inputs(4)
    cfg = SamplerConfig(chains=2, warmup=0, draws=3, progress=False)
    seeds = [brand_seed(0, n) for n in st.names]
    rows = run_chunk(make_batch_sampler(ld, cfg, 4), st.arrays, key_data_for(seeds))
    for r in (0, 2):
        single = sample(ld, {k: v[r] for k, v in st.arrays.items()}, key=jax.random.key(seeds[r]),
                        sampler="blackjax", chains=2, warmup=0, draws=3, progress=False, chain_method="vectorized")
        init = initial_params(ld, jax.random.split(jax.random.key(seeds[r]))[0], 2)
        for k in ld.param_names:
            np.testing.assert_allclose(rows[r][0][k], single.samples[k], rtol=1e-10, atol=1e-12)
            assert np.all(np.isfinite(np.asarray(init[k])))


# --------------------------------------------------------------------------- fit_many end to end
@pytest.fixture(scope="module")
def batch_run(tmp_path_factory):
    """5 brands: b0..b3 fine (b2 without 'social'), b4 with a NaN spend."""
    long = _long(5)
    long.loc[long.brand == "b2", "social"] = 0.0
    row = long.index[long.brand == "b4"][7]
    long.loc[row, "search"] = np.nan
    out = tmp_path_factory.mktemp("batch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit_many(long, by="brand", config=CFG, out=out, chains=4, warmup=400, draws=400, seed=7,
                       chunk_size=4, progress=False)
    return long, out, res


@pytest.mark.slow
def test_fit_many_isolates_failures_and_records_everything(batch_run):
    long, out, res = batch_run
    m = read_manifest(out)
    assert m["brand"].tolist() == ["b0", "b1", "b2", "b3", "b4"]
    assert m.set_index("brand").loc["b4", "status"] == "failed"
    assert "missing value (NaN)" in m.set_index("brand").loc["b4", "error"]
    done = m[m.status == "done"]
    assert len(done) == 4 and done["max_rhat"].notna().all()
    # the recorded diagnostics are those of the stored draws (short series: one brand's chain may
    # still be stuck at 4 x 400, so not every brand must have converged)
    for rec in done.itertuples():
        d = diagnostics(res.idata(rec.brand))
        assert rec.max_rhat == pytest.approx(d["max_rhat"]) and rec.min_ess_bulk == pytest.approx(d["min_ess_bulk"])
        assert rec.divergences == d["divergences"]
    assert (done["min_ess_bulk"] > 50).sum() >= 3
    assert json.loads(m.set_index("brand").loc["b2", "channels"]) == ["tv", "search"]
    assert res.stats["fitted"] == 4 and res.stats["failed_data"] == 1
    assert 0.0 <= res.stats["lockstep_waste"] < 1.0
    idata = res.idata("b1")
    assert idata.posterior.sizes["date"] == 64 and idata.posterior.sizes["channel"] == 3
    assert json.loads(idata.posterior.attrs["versions"])["jax"] == jax.__version__
    b2 = res.idata("b2")
    assert list(b2.posterior["channel"].values) == ["tv", "search"]
    assert "1 failed" in res.summary() and "failed: b4: bad data" in res.summary()


@pytest.mark.slow
def test_export_tables_of_a_batch_with_a_failed_and_a_damaged_brand(batch_run, tmp_path):
    """roas / contributions / diagnostics as Parquet: the numbers are the loaded brands' own; a
    brand that failed, and one whose file is damaged, are rows with their error."""
    import shutil

    from mmm_jax.batch import load_brand
    from mmm_jax.export import export_runs
    from mmm_jax.persist import OutputDirError

    long, out, res = batch_run
    copy = tmp_path / "batch"
    shutil.copytree(out, copy)
    damaged = copy / read_manifest(copy).set_index("brand").loc["b3", "file"]
    damaged.write_bytes(damaged.read_bytes()[:1000])
    files = export_runs([copy], tmp_path / "export", progress=False)
    roas, contrib, diag = (pd.read_parquet(files[t]) for t in ("roas", "contributions", "diagnostics"))
    assert sorted(diag["brand"]) == ["b0", "b1", "b2", "b3", "b4"]
    d = diag.set_index("brand")
    assert d.loc["b4", "status"] == "failed" and "missing value (NaN)" in d.loc["b4", "error"]
    assert d.loc["b3", "status"] == "unreadable" and "b3" in d.loc["b3", "error"]
    b1 = load_brand(out, "b1")
    assert d.loc["b1", "max_rhat"] == pytest.approx(b1.diagnostics()["max_rhat"])
    r1 = roas[roas["brand"] == "b1"].set_index("channel")
    assert list(r1.index) == list(b1.roas().index)
    np.testing.assert_allclose(r1["mean"].to_numpy(), b1.roas()["mean"].to_numpy())
    assert (roas["level"] == "brand").all() and roas["market"].isna().all()
    assert sorted(roas.loc[roas["brand"] == "b2", "channel"]) == ["search", "tv"]  # its channels only
    c1 = contrib[contrib["brand"] == "b1"].pivot(index="date", columns="component", values="mean")
    np.testing.assert_allclose(c1[b1.contributions().columns].to_numpy(), b1.contributions().to_numpy())
    assert set(contrib["brand"]) == {"b0", "b1", "b2"} and (contrib["sd"] >= 0).all()
    mine = tmp_path / "mine"  # a folder of the user's: refused, nothing written into it
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(OutputDirError, match="not an mmm_jax export output"):
        export_runs([copy], mine, progress=False)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    assert export_runs([copy], tmp_path / "export", fmt="csv", progress=False)["roas"].exists()  # an export again


@pytest.mark.slow
def test_batch_brand_agrees_with_single_fit(batch_run):
    """Brand b1 of the batch vs MMM.fit of b1 alone with the same per-brand key (blackjax,
    chains vectorised): posterior means of ROAS and sigma within 3 Monte Carlo standard errors."""
    long, out, res = batch_run
    df = long[long.brand == "b1"].drop(columns="brand").reset_index(drop=True)
    single = MMM(CFG)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        single.fit(df, sampler="blackjax", chains=4, warmup=400, draws=400, seed=brand_seed(7, "b1"),
                   chain_method="vectorized", progress=False)
    batch = res.idata("b1")
    for var in ("roas", "sigma", "intercept"):
        a, b = batch.posterior[var], single.idata.posterior[var]
        diff = np.abs(a.mean(("chain", "draw")).values - b.mean(("chain", "draw")).values)
        se = np.sqrt(az.mcse(a.to_dataset())[var].values ** 2 + az.mcse(b.to_dataset())[var].values ** 2)
        assert np.all(diff <= 3 * se), (var, diff, se)


@pytest.mark.slow
def test_load_brand_and_resume_and_config_change(batch_run):
    long, out, res = batch_run
    mmm = res.load("b0")
    roas = mmm.roas()
    assert list(roas.index) == CHANNELS and np.all(np.isfinite(roas["mean"]))
    pred = mmm.predict(long[long.brand == "b0"].drop(columns="brand"))
    assert pred["y"].shape[-1] == 80
    before = read_manifest(out)
    again = fit_many(long, by="brand", config=CFG, out=out, chains=4, warmup=400, draws=400, seed=7,
                     chunk_size=4, progress=False)
    assert again.stats["fitted"] == 0 and again.stats["skipped"] == 4
    pd.testing.assert_frame_equal(read_manifest(out), before)
    with pytest.raises(ConfigChangedError, match="sampler.draws"):
        fit_many(long, by="brand", config=CFG, out=out, chains=4, warmup=400, draws=401, seed=7, progress=False)


def test_changed_brand_data_is_refitted_and_force_resets(tmp_path):
    long = _long(2, weeks=(40, 40))
    kw = dict(by="brand", config=CFG, out=tmp_path, chains=1, warmup=20, draws=10, chunk_size=4, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = fit_many(long, **kw)
        assert first.stats["fitted"] == 2
        long.loc[long.index[long.brand == "b1"][3], "tv"] += 1.0
        second = fit_many(long, **kw)
        assert second.stats["fitted"] == 1 and second.stats["skipped"] == 1
        forced = fit_many(long, **{**kw, "draws": 11}, force=True)
        assert forced.stats["fitted"] == 2
    assert len(read_manifest(tmp_path)) == 2


def test_store_writes_atomically_and_cleans_temp_files(tmp_path):
    store = ResultStore(tmp_path)
    store.open_job({"a": 1})
    dead = store.brand_dir / ".half.nc.999999999.abc.tmp"  # a killed writer's (no such pid), an hour old
    dead.write_bytes(b"partial")
    os.utime(dead, (time.time() - 3600, time.time() - 3600))
    live = store.brand_dir / f".other.nc.{os.getpid()}.abc.tmp"  # a live writer's: kept
    live.write_bytes(b"in progress")
    os.utime(live, (time.time() - 3600, time.time() - 3600))
    fresh = store.brand_dir / ".fresh.nc.999999999.xyz.tmp"  # too recent to call stale
    fresh.write_bytes(b"partial")
    store.close()
    store = ResultStore(tmp_path)  # a rerun removes leftovers of a killed write, and only those
    assert sorted(store.brand_dir.glob(".*.tmp")) == sorted([live, fresh])
    live.unlink()
    fresh.unlink()
    idata = new_idata({"posterior": az.convert_to_dataset({"x": np.zeros((1, 3))})})
    store.write_brand("a/b c", idata, {"config_hash": "h", "n_weeks": 3})
    store.write_failure("z", "bad data: column 'tv', row 2", {"config_hash": "h"})
    rows = store.finished()
    assert rows["a/b c"]["status"] == "done" and (tmp_path / rows["a/b c"]["file"]).exists()
    assert rows["z"]["status"] == "failed"
    store.close()
    (tmp_path / rows["a/b c"]["file"]).unlink()  # recorded but gone: pending again
    with ResultStore(tmp_path) as s:
        assert "a/b c" not in s.finished()


@pytest.mark.slow
def test_sigkill_mid_job_then_rerun_has_every_brand_exactly_once(tmp_path):
    long = _long(6, weeks=(40, 44, 36, 40, 48, 40))
    data = tmp_path / "long.csv"
    long.to_csv(data, index=False)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(CFG.to_json())
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mmm_jax.cli", "batch", str(data), "--by", "brand", "--config", str(cfg),
           "--out", str(out), "--chains", "2", "--warmup", "60", "--draws", "40", "--chunk-size", "1",
           "--devices", "1", "--no-progress"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    db = out / "manifest.sqlite"
    t0 = time.time()
    n_done = 0
    while time.time() - t0 < 300 and proc.poll() is None:
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=1) as con:
                    n_done = con.execute("SELECT COUNT(*) FROM brands WHERE status='done'").fetchone()[0]
            except sqlite3.Error:
                n_done = 0
        if n_done >= 2:
            break
        time.sleep(0.1)
    assert proc.poll() is None, f"job ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(read_manifest(out))
    assert 2 <= killed_at < 6
    rerun = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    m = read_manifest(out)
    assert sorted(m["brand"]) == [f"b{i}" for i in range(6)] and m["brand"].is_unique
    assert (m["status"] == "done").all()
    files = sorted(p.name for p in (out / "brands").iterdir())
    assert files == [f"b{i}.nc" for i in range(6)]  # no temp files, no duplicates
    for p in (out / "brands").iterdir():
        idata = idata_from_netcdf(str(p))
        assert idata.posterior.sizes["draw"] == 40
    assert f"{6 - killed_at} fitted" in rerun.stdout


@pytest.mark.slow
def test_cli_optimize_one_total_over_a_batch(batch_run, capsys):
    """`mmm-jax optimize OUT` on a batch directory: one total over every brand x channel."""
    from mmm_jax.cli import main

    long, out, res = batch_run
    rc = main(["optimize", str(out), "--total", "90000", "--horizon", "6", "--draws", "200",
               "--lock", "b0/tv=4000", "--out", str(out / "plan")])
    assert rc == 0
    err = capsys.readouterr().err  # the CLI prints warnings as one line each: never silently
    assert "mmm-jax: warning:" in err and "left out of the plan: b4" in err
    assert json.loads((out / "plan" / "plan.json").read_text())["settings"]["left_out"] == ["b4"]
    plan = pd.read_csv(out / "plan" / "plan.csv")
    assert len(plan) == 3 + 3 + 2 + 3  # b2 has no 'social'; b4 failed
    assert plan["optimal_spend"].sum() == pytest.approx(90000, rel=1e-6)
    assert plan.set_index(["market", "channel"]).loc[("b0", "tv"), "optimal_spend"] == pytest.approx(4000)


def test_write_brand_result_isolates_the_brand_and_stops_on_the_disk():
    """The one brand writer of both batch kinds: a bad brand is recorded failed (message kept), a
    full disk raises, a good brand is written with its convergence."""
    import errno

    from mmm_jax.batch.jobs import nonfinite_draws, write_brand_result

    class Store:
        def __init__(self):
            self.failed, self.written = {}, {}

        def write_failure(self, name, msg, rec):
            self.failed[name] = msg

        def write_brand(self, name, idata, rec):
            self.written[name] = dict(rec)

    draws = {"a": np.ones((2, 3)), "b": np.array([[1.0, np.nan]])}
    assert nonfinite_draws(draws, ["a", "b", "c"]) == "sampler produced non-finite draws for ['b'] (log-density NaN/inf?)"
    assert nonfinite_draws(draws, ["a"]) is None
    s = Store()
    assert not write_brand_result(s, "x", {}, lambda: nonfinite_draws(draws, ["b"]))
    assert s.failed["x"].startswith("sampler produced non-finite draws for ['b']")

    def broken():
        raise ValueError("shapes do not match")

    assert not write_brand_result(s, "y", {}, broken) and s.failed["y"] == "ValueError: shapes do not match"

    def full_disk():
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_brand_result(s, "z", {}, full_disk)
    assert "z" not in s.failed  # the disk's failure is not the brand's
    rng = np.random.default_rng(0)
    idata = new_idata({"posterior": az.convert_to_dataset({"a": rng.normal(size=(2, 200))}),
                       "sample_stats": az.convert_to_dataset({"diverging": np.zeros((2, 200), bool)})})
    assert write_brand_result(s, "w", {"wall_s": 1.0}, lambda: idata)
    rec = s.written["w"]
    assert rec["divergences"] == 0 and rec["converged"] == 1 and rec["wall_s"] == 1.0 and rec["max_rhat"] < 1.05
