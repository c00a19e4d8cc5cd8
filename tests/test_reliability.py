"""Nothing lost, nothing corrupted: output folders, concurrent writers, damaged files, full disks,
absurd inputs, one-line errors. Every case asserts that the user's files are byte-identical and
that every finished result still loads with all its groups."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mmm_jax.config.model import ConfigError, Prior
from mmm_jax.data.validate import DataError

from mmm_jax import MMM, ModelConfig
from mmm_jax.batch import BatchResult, ResultStore, fit_many, read_manifest
from mmm_jax.batch.store import StoreLockedError
from mmm_jax.compat import group_names
from mmm_jax.budget import BudgetError
from mmm_jax.cli import main
from mmm_jax.datasets import simulate
from mmm_jax.persist import OutputDirError, RunFormatError, check_output_dir

CHANNELS = ["tv", "search", "social"]
CFG = ModelConfig(date="date", target="sales", channels=CHANNELS, controls=["price_index"])
TINY = dict(chains=2, warmup=40, draws=30, seed=1)
GROUPS = ("posterior", "sample_stats", "observed_data", "constant_data")
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def _digest(folder: Path) -> dict:
    """{relative path: sha256} of every file under ``folder``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line_error(capsys, rc, expect_rc=2) -> str:
    err = capsys.readouterr().err.strip()
    assert rc == expect_rc, err
    lines = [ln for ln in err.splitlines() if not ln.startswith("mmm-jax: warning:")]
    assert len(lines) == 1 and "error" in lines[0] and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One tiny fitted model, its data, and a folder of the user's own files."""
    root = tmp_path_factory.mktemp("rel")
    df, _ = simulate(60, 3, seed=2)
    data = root / "mine" / "sales.csv"
    data.parent.mkdir()
    df.to_csv(data, index=False)
    (root / "mine" / "notes.txt").write_text("my notes")
    cfg = root / "mine" / "cfg.json"
    cfg.write_text(CFG.to_json())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mmm = MMM(CFG)
        mmm.fit(df, progress=False, **TINY)
    return root, mmm, data, cfg


# --------------------------------------------------------------------------- output folders
def test_save_never_deletes_what_the_user_made(fitted, monkeypatch):
    root, mmm, data, cfg = fitted
    mine = root / "mine"
    before = _digest(mine)
    with pytest.raises(OutputDirError, match="not an mmm_jax brand output.*--overwrite"):
        mmm.save(mine)
    a_file = root / "a_file.txt"
    a_file.write_text("keep me")
    with pytest.raises(OutputDirError, match="is a file"):
        mmm.save(a_file)
    monkeypatch.chdir(mine)
    with pytest.raises(OutputDirError, match="current directory"):
        mmm.save(".")
    with pytest.raises(OutputDirError, match="above the current directory"):
        mmm.save("..")
    assert _digest(mine) == before and a_file.read_text() == "keep me"

    run = root / "run"
    mmm.save(run)
    (run / "my_extra.txt").write_text("added by the user")
    mmm.save(run)  # an earlier run: replaced file by file, the user's extra file kept
    assert (run / "my_extra.txt").read_text() == "added by the user"
    assert MMM.load(run).roas().shape[0] == 3

    target = root / "shared"
    target.mkdir()
    (target / "keep.csv").write_text("a,b\n1,2\n")
    mmm.save(target, overwrite=True)  # --overwrite: our files written in, the others kept
    assert (target / "keep.csv").read_text() == "a,b\n1,2\n"
    assert MMM.load(target).roas().shape[0] == 3
    monkeypatch.undo()
    # a folder holding the data being read is refused even with overwrite
    with pytest.raises(OutputDirError, match="holds the input"):
        check_output_dir(mine, "brand", overwrite=True, inputs=[data])


def test_a_folder_whose_marker_is_being_written_is_ours(tmp_path):
    """Two processes of one batch job share --out: the second may look while the first is
    writing the marker (only its temporary file is there); that folder is not someone else's."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "..mmm_jax.10042.utvucw5b.tmp")  # atomic_write_bytes(out / ".mmm_jax").write_text("{")
    assert check_output_dir(out, "batch") == out
    (out / "notes.txt").write_text("the user's")
    with pytest.raises(OutputDirError, match=r"it holds notes\.txt\)"):
        check_output_dir(out, "batch")


def test_cli_refuses_bad_out_before_fitting(fitted, capsys, monkeypatch):
    root, _, data, cfg = fitted
    mine = root / "mine"
    before = _digest(mine)
    monkeypatch.chdir(mine)
    for out in (".", str(mine), str(data), ".."):
        rc = main(["fit", str(data), "--config", str(cfg), "--out", out, "--chains", "1", "--no-progress"])
        line = _one_line_error(capsys, rc)
        assert "--out" in line
    monkeypatch.undo()
    rc = main(["fit", str(data), "--config", str(cfg), "--out", str(mine), "--overwrite", "--no-progress"])
    assert "holds the input" in _one_line_error(capsys, rc)
    assert _digest(mine) == before


def test_damaged_run_is_reported_by_name(fitted, capsys):
    root, mmm, _, _ = fitted
    run = root / "damaged"
    mmm.save(run)
    nc = run / "idata.nc"
    good = nc.read_bytes()
    nc.write_bytes(good[: len(good) // 2])
    with pytest.raises(RunFormatError, match=r"idata.nc: \d+ bytes, \d+ were written"):
        MMM.load(run)
    rc = main(["optimize", str(run), "--total", "1000"])
    assert "idata.nc" in _one_line_error(capsys, rc)
    assert not (run / "budget").exists()  # nothing written for a run that cannot be read
    nc.write_bytes(good)
    (run / "scaling.json").write_text("{not json")
    with pytest.raises(RunFormatError, match="scaling.json"):
        MMM.load(run)
    (run / "meta.json").unlink()  # an old-style run without hashes: still named on a bad file
    (run / "config.json").write_text(json.dumps(CFG.to_dict()))
    with pytest.raises(RunFormatError, match="scaling.json"):
        MMM.load(run)


def test_load_and_model_for_pick_the_facade(fitted, tmp_path):
    import mmm_jax
    from mmm_jax.hierarchical import HierarchicalMMM
    from mmm_jax.persist import mark_output_dir

    root, mmm, _, _ = fitted
    run = root / "any_kind"
    mmm.save(run)
    loaded = mmm_jax.load(run)
    assert type(loaded) is MMM
    pd.testing.assert_frame_equal(loaded.roas(), mmm.roas())
    with pytest.raises(RunFormatError, match="not an mmm_jax output"):
        mmm_jax.load(root / "mine")
    mark_output_dir(tmp_path / "runs", "batch")
    with pytest.raises(RunFormatError, match=r"batch output, not a fitted model.*load_brand"):
        mmm_jax.load(tmp_path / "runs")
    assert type(mmm_jax.model_for(CFG)) is MMM
    assert type(mmm_jax.model_for({**CFG.to_dict(), "market": "geo"})) is HierarchicalMMM


def test_optimize_on_a_folder_that_is_not_a_run_writes_nothing(fitted, capsys):
    root = fitted[0]
    mine = root / "mine"
    before = _digest(mine)
    rc = main(["optimize", str(mine), "--total", "1000"])
    assert "not an mmm_jax output" in _one_line_error(capsys, rc)
    assert _digest(mine) == before and not (mine / "budget").exists()


# --------------------------------------------------------------------------- bad inputs: one line, exit 2
def test_cli_bad_inputs_are_one_line_errors(fitted, tmp_path, capsys):
    root, _, data, cfg = fitted
    out = str(tmp_path / "o")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(bytes(range(256)) * 20)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("date: date\ntarget: sales: oops\nchannels: [tv]\n")
    df = pd.read_csv(data)
    df["tv"] = df["tv"].astype(object)
    df.loc[17, "tv"] = "abc"
    text_cell = tmp_path / "text_cell.csv"
    df.to_csv(text_cell, index=False)
    long = tmp_path / "long.csv"
    pd.read_csv(data).assign(brand="b0").to_csv(long, index=False)
    cases = [
        (["fit", str(empty), "--config", str(cfg), "--out", out], "empty"),
        (["fit", str(binary), "--config", str(cfg), "--out", out], "binary.csv"),
        (["fit", str(data), "--config", str(bad_yaml), "--out", out], "line 2"),
        (["fit", str(data), "--config", str(cfg), "--out", out, "--chains", "0"], "--chains"),
        (["fit", str(data), "--config", str(cfg), "--out", out, "--draws", "-5"], "--draws"),
        (["fit", str(text_cell), "--config", str(cfg), "--out", out], "row 17"),
        (["batch", str(long), "--config", str(cfg), "--out", out], "--by"),
        (["optimize", str(root / "run"), "--total", "100", "--lock", "tv"], "CHANNEL=VALUE"),
        (["optimize", str(root / "run"), "--total", "100", "--lock", "tv=nan"], "finite"),
        (["optimize", str(root / "run"), "--total", "100", "--alpha", "0"], "--alpha"),
        (["optimize", str(root / "run"), "--total", "100", "--alpha", "2"], "--alpha"),
        (["fit", str(tmp_path / "missing.csv"), "--config", str(cfg), "--out", out], "missing.csv"),
    ]
    for argv, needle in cases:
        rc = main(argv)
        line = _one_line_error(capsys, rc)
        assert needle in line, (argv, line)
    assert not (tmp_path / "o").exists()  # refused before anything was written
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("mmm-jax ")


def test_absurd_values_are_refused_by_name(fitted):
    _, mmm, _, _ = fitted
    df, _ = simulate(60, 3, seed=2)
    bad = df.copy()
    bad.loc[30, "tv"] = 1e300
    with pytest.raises(DataError, match=r"column 'tv', row 30.*beyond 1e\+150"):
        MMM(CFG).validate(bad)
    bad.loc[30, "tv"] = df["tv"].max() * 1e5  # a typing error: 1e5 x the next largest week
    with pytest.raises(DataError, match=r"column 'tv', row 30.*more than 10000 times"):
        MMM(CFG).validate(bad)
    MMM(ModelConfig.from_dict({**CFG.to_dict(), "outlier_factor": None})).validate(bad)  # opt-out
    flat = df.assign(sales=123.0)
    with pytest.raises(DataError, match="'sales' is constant"):
        MMM(CFG).validate(flat)
    with pytest.raises(ConfigError, match="sigma must be > 0"):
        ModelConfig.from_dict({**CFG.to_dict(), "priors": {"sigma": {"dist": "HalfNormal", "sigma": -0.5}}})
    with pytest.raises(ConfigError, match="not finite"):
        Prior("Normal", mu=0.0, sigma=math.inf)
    for kw, needle in [({"locked": {"tv": math.nan}}, "finite"), ({"objective": "cvar", "alpha": 0.0}, "alpha"),
                       ({"objective": "cvar", "alpha": 2.0}, "alpha"), ({"bounds": {"tv": (0, math.inf)}}, "finite"),
                       ({"risk_aversion": -1.0, "objective": "mean_sd"}, "risk_aversion")]:
        with pytest.raises(BudgetError, match=needle):
            mmm.optimize_budget(1000.0, 4, max_draws=20, **kw)


# --------------------------------------------------------------------------- batch store
def _long(n: int, weeks: int = 40) -> pd.DataFrame:
    frames = []
    for i in range(n):
        df, _ = simulate(weeks, 3, seed=10 + i)
        frames.append(df.assign(brand=f"b{i}"))
    return pd.concat(frames, ignore_index=True)


def _batch_inputs(folder: Path, n: int) -> tuple[pd.DataFrame, Path, Path]:
    """``n`` brands as a long table, written as ``long.csv``, and the config as ``cfg.json``."""
    long = _long(n)
    data = folder / "long.csv"
    long.to_csv(data, index=False)
    cfg = folder / "cfg.json"
    cfg.write_text(CFG.to_json())
    return long, data, cfg


def _batch_cmd(data: Path, cfg: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "mmm_jax.cli", "batch", str(data), "--by", "brand", "--config", str(cfg),
            "--out", str(out), "--chains", "2", "--warmup", "40", "--draws", "30", "--chunk-size", "1",
            "--devices", "1", "--no-progress"]


def _all_groups_load(out: Path, brands) -> None:
    res = BatchResult(out, {})
    for b in brands:
        idata = res.idata(b)
        for g in GROUPS:
            assert g in group_names(idata), (b, g)
        assert idata.posterior.sizes["draw"] == 30


def test_second_writer_is_refused_and_the_first_keeps_its_files(tmp_path):
    long, data, cfg = _batch_inputs(tmp_path, 2)
    out = tmp_path / "out"
    out.mkdir()
    first = ResultStore(out)  # a running batch (this process) holds the folder
    in_flight = first.brand_dir / f".b0.nc.{os.getpid()}.abcd.tmp"
    in_flight.write_bytes(b"half-written by the first writer")
    with pytest.raises(StoreLockedError, match="in use by another batch"):
        ResultStore(out)
    proc = subprocess.run(_batch_cmd(data, cfg, out), capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "in use by another batch" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert in_flight.read_bytes() == b"half-written by the first writer"  # not cleaned by the second
    first.close()
    in_flight.unlink()
    with ResultStore(out):  # released: the next writer gets it
        pass


def test_damaged_brand_file_is_refitted_on_resume(tmp_path):
    long = _long(3)
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit_many(long, by="brand", config=CFG, out=out, chunk_size=1, progress=False, **TINY)
    assert res.stats["fitted"] == 3
    f = out / "brands" / "b1.nc"
    good_other = (out / "brands" / "b0.nc").read_bytes()
    f.write_bytes(f.read_bytes()[:5000])  # truncated (a crash of the disk, a bad copy)
    with pytest.raises(RunFormatError, match="b1.nc"):
        res.idata("b1")
    with pytest.warns(RuntimeWarning, match="b1"):
        again = fit_many(long, by="brand", config=CFG, out=out, chunk_size=1, progress=False, **TINY)
    assert again.stats["fitted"] == 1 and again.stats["skipped"] == 2
    assert (out / "brands" / "b0.nc").read_bytes() == good_other
    _all_groups_load(out, ["b0", "b1", "b2"])
    m = read_manifest(out)
    assert (m["status"] == "done").all() and m["file_sha256"].notna().all()


def _tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here to fill a disk ({r.stderr.strip() or 'not root'})")


def test_full_disk_stops_the_batch_cleanly_and_a_rerun_finishes(tmp_path):
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("filling a real disk needs a tmpfs mount (root)")
    long, data, cfg = _batch_inputs(tmp_path, 4)
    probe = tmp_path / "probe"  # the size of one brand's file on a normal disk
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_many(long[long["brand"] == "b0"], by="brand", config=CFG, out=probe, progress=False, **TINY)
    one = (probe / "brands" / "b0.nc").stat().st_size
    disk = tmp_path / "disk"
    _tmpfs(disk, f"{int(2.3 * one) // 1024 + 256}k")  # room for about two brands and the manifest
    try:
        out = disk / "out"
        proc = subprocess.run(_batch_cmd(data, cfg, out), capture_output=True, text=True, env=ENV, timeout=600)
        assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])  # not 139 (segfault)
        # the error is one line; "mmm-jax: ..." lines are progress messages (the mmm_jax logger)
        lines = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("mmm-jax: ")]
        assert len(lines) == 1 and "batch stopped" in lines[0] and "rerun" in lines[0], proc.stderr[-3000:]
        assert "No space left" in lines[0] or "disk is full" in lines[0], lines[0]
        m = read_manifest(out)
        assert (m["status"] == "done").all(), m[["brand", "status", "error"]]  # no brand blamed for the disk
        done = m["brand"].tolist()
        assert 1 <= len(done) < 4
        _all_groups_load(out, done)
        assert not list((out / "brands").glob(".*.tmp"))
        kept = {b: (out / "brands" / f"{b}.nc").read_bytes() for b in done}
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        rerun = subprocess.run(_batch_cmd(data, cfg, out), capture_output=True, text=True, env=ENV, timeout=600)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        m = read_manifest(out)
        assert sorted(m["brand"]) == ["b0", "b1", "b2", "b3"] and (m["status"] == "done").all()
        _all_groups_load(out, m["brand"])
        assert all((out / "brands" / f"{b}.nc").read_bytes() == v for b, v in kept.items())
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_full_disk_during_save_is_a_one_line_error(fitted, tmp_path):
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("filling a real disk needs a tmpfs mount (root)")
    root, mmm, data, cfg = fitted
    disk = tmp_path / "disk"
    _tmpfs(disk, "64k")
    try:
        with pytest.raises(OSError, match="No space left"):
            mmm.save(disk / "run")
        assert not (disk / "run").exists()  # what this call created is removed, nothing else
        cmd = [sys.executable, "-m", "mmm_jax.cli", "fit", str(data), "--config", str(cfg), "--out",
               str(disk / "run"), "--chains", "2", "--warmup", "20", "--draws", "10", "--no-progress"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
        assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
        err = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("mmm-jax: ")]  # messages
        assert len(err) == 1 and "No space left" in err[0] and "idata.nc" in err[0], proc.stderr[-3000:]
        assert not (disk / "run").exists()
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


_WORKER = """
import sys, warnings
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
if sys.argv[2] != "1":
    jax.distributed.initialize(sys.argv[1], num_processes=int(sys.argv[2]), process_id=int(sys.argv[3]))
warnings.simplefilter("ignore")
from mmm_jax.batch import fit_many
res = fit_many(sys.argv[4], by="brand", config=sys.argv[5], out=sys.argv[6], chains=2, warmup=40, draws=30,
               seed=1, chunk_size=2, progress=False)
print("fitted", jax.process_index(), res.stats["fitted"])
"""


def test_two_processes_with_jax_distributed_fit_every_brand_once(tmp_path):
    """Two processes (``jax.distributed`` on 127.0.0.1, one CPU device each) over one out dir and
    one brand list: every brand is fitted by exactly one of them, and the draws equal those of
    one process with two devices."""
    import socket

    long, data, cfg = _batch_inputs(tmp_path, 4)
    worker = tmp_path / "worker.py"
    worker.write_text(_WORKER)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**ENV, "MMM_JAX_HOST_DEVICES": "1"}
    two = tmp_path / "two"
    procs = [subprocess.Popen([sys.executable, str(worker), f"127.0.0.1:{port}", "2", str(k), str(data), str(cfg),
                               str(two)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for k in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (o, e) in zip(procs, outs, strict=True):
        assert p.returncode == 0, e[-3000:]
    fitted = sorted(int(o.split()[-1]) for o, _ in outs)
    assert sum(fitted) == 4 and all(n > 0 for n in fitted), outs  # both worked, no brand twice
    assert sorted(p.name for p in two.glob("manifest*.sqlite")) == ["manifest.p0.sqlite", "manifest.p1.sqlite"]
    one = tmp_path / "one"
    r = subprocess.run([sys.executable, str(worker), "-", "1", "0", str(data), str(cfg), str(one)],
                       capture_output=True, text=True, env={**ENV, "MMM_JAX_HOST_DEVICES": "2"}, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    m = read_manifest(two)
    assert sorted(m["brand"]) == ["b0", "b1", "b2", "b3"] and m["brand"].is_unique and (m["status"] == "done").all()
    _all_groups_load(two, m["brand"])
    a, b = BatchResult(two, {}), BatchResult(one, {})
    for brand in m["brand"]:
        x, y = a.idata(brand).posterior, b.idata(brand).posterior
        for v in x.data_vars:
            np.testing.assert_allclose(x[v].values, y[v].values, rtol=1e-9, atol=1e-12, err_msg=f"{brand}/{v}")
