"""The sampler benchmark suite (mmm_jax.bench.suite: `mmm-jax bench`, benchmarks/bench_suite.py): planning,
analysis, the package's worker files, and one tiny end-to-end run through the CLI."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmm_jax.bench import paths, pmm, suite, suite_report

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _args(argv):
    return suite.parse_args(argv)


def test_plan_default_grid_and_skips():
    a = _args(["--hsgp", "off,on"])
    runs, skipped = suite.plan_runs(a, {"nutpie": "not installed"}, hsgp_ok=False)
    ids = {r["id"] for r in runs}
    # 2 weeks x 2 channels x 1 chain count, hsgp off only; meads skipped at 4 chains
    assert "T104_C3_ch4_off/numpyro" in ids and "T156_C10_ch4_off/chees" in ids
    assert "T104_C3_ch4_off/meads" in skipped and "16 chains" in skipped["T104_C3_ch4_off/meads"]
    assert "T104_C3_ch4_off/nutpie" in skipped
    assert any(k.endswith("_on/numpyro") and "HSGP" in v for k, v in skipped.items())
    assert not any("_on/" in i for i in ids)
    # speed options on the (156, 3) cell, against the grid's own numpyro run
    variants = {r["variant"] for r in runs if r["id"].startswith("T156_C3_ch4_off/numpyro")}
    assert variants == {"default", "float32", "cache-cold", "cache-warm", "dense", "vectorized"}


def test_full_grid_flag():
    a = _args(["--full", "--speed-options", "none"])
    assert a.weeks == [104, 156, 520] and a.channels == [3, 10, 30] and a.chains == [4, 64]
    runs, skipped = suite.plan_runs(a, {}, hsgp_ok=True)
    assert any(r["id"] == "T520_C30_ch64_on/meads" for r in runs)
    assert len(runs) == 3 * 3 * 2 * 2 * 7 - len(skipped)


def test_ratios_and_float32_agreement():
    def run(s, ess_s):
        return {"status": "ok", "variant": "default", "sampler": s, "ess_per_s": ess_s,
                "cell": {"weeks": 104, "channels": 3, "chains": 4, "hsgp": "off"}}

    res = {"a": run("numpyro", 30.0), "b": run("pymc-default", 10.0), "c": run("pmm-numpyro", 15.0)}
    r = suite_report.ratios(res)["T104_C3_ch4_off"]
    assert r["numpyro"] == {"pymc-default": 3.0, "pmm-numpyro": 2.0}
    assert "pymc-default" not in r
    p64 = {"beta": {"mean": [1.0, 2.0], "sd": [0.1, 0.2], "ess_bulk": [400.0, 400.0]}}
    close = {"beta": {"mean": [1.001, 2.002], "sd": [0.1, 0.2], "ess_bulk": [400.0, 400.0]}}
    far = {"beta": {"mean": [1.0, 2.2], "sd": [0.1, 0.2], "ess_bulk": [400.0, 400.0]}}
    assert suite_report.posterior_agreement(p64, close)["agree"] is True
    bad = suite_report.posterior_agreement(p64, far)
    assert bad["agree"] is False and bad["max_z_param"] == "beta[1]" and bad["max_diff_in_sd"] == pytest.approx(1.0)


def test_bad_arguments():
    with pytest.raises(SystemExit):
        _args(["--samplers", "numpyro,stan"])
    with pytest.raises(SystemExit):
        _args(["--weeks", "0"])


def test_bench_help_and_suite_module(capsys):
    """`mmm-jax bench --help` lists the suite's options (loaded from the package, not from benchmarks/)."""
    from mmm_jax.cli import main

    assert main(["bench", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--pmm-python" in text and "--speed-options" in text and "./mmm_jax_bench/" in text
    assert main(["--quiet", "bench", "--help"]) == 0  # the top-level options may come first
    assert "--speed-options" in capsys.readouterr().out
    assert suite.__name__ == "mmm_jax.bench.suite" and Path(suite.__file__).parent.name == "bench"
    assert pmm.PMM_WORKER.is_file() and pmm.PMM_WORKER.parent == Path(suite.__file__).parent


def test_default_out_dir(tmp_path, monkeypatch):
    """benchmarks/results/ of a source checkout, else ./mmm_jax_bench/ in the current directory."""
    if paths.checkout_root() is not None:  # the tests run from a source checkout (editable install)
        assert paths.checkout_root() == BENCH.parent and paths.default_out_dir() == BENCH / "results"
    monkeypatch.setattr(paths, "checkout_root", lambda: None)  # as installed
    monkeypatch.chdir(tmp_path)
    assert paths.default_out_dir() == tmp_path / "mmm_jax_bench"
    assert pmm.default_pmm_venv() == tmp_path / "mmm_jax_bench" / ".venv-pmm"


def test_pmm_worker_imports_nothing_from_mmm_jax():
    """The PyMC-Marketing interpreter has no mmm_jax: the worker file and the `common` next to it,
    imported as the suite runs them (by path), must not import it."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import pmm_worker; "
            "bad = sorted(m for m in sys.modules if m == 'mmm_jax' or m.startswith('mmm_jax.')); "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code, str(pmm.PMM_WORKER.parent)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_tiny_suite_end_to_end(tmp_path, monkeypatch):
    """One tiny cell, two samplers and two speed options through `mmm-jax bench`."""
    from mmm_jax.cli import main

    monkeypatch.setattr(pmm, "default_pmm_venv", lambda: tmp_path / "no-venv")  # pmm: skipped, with a note
    rc = main(["bench", "--samplers", "numpyro,chees,pmm-numpyro", "--weeks", "40", "--channels", "2",
               "--warmup", "40", "--draws", "40", "--speed-options", "float32,cache", "--timeout", "300",
               "--out", str(tmp_path), "--tag", "smoke"])
    rep = json.loads((tmp_path / "bench_suite_smoke_latest.json").read_text())
    assert rc == 0, {k: v.get("error") for k, v in rep["runs"].items()}
    assert set(rep["runs"]) == {"T40_C2_ch4_off/numpyro", "T40_C2_ch4_off/chees", "T40_C2_ch4_off/numpyro+float32",
                                "T40_C2_ch4_off/numpyro+cache-cold", "T40_C2_ch4_off/numpyro+cache-warm"}
    assert "pmm-numpyro" in rep["skipped"]["T40_C2_ch4_off/pmm-numpyro"] or "PyMC-Marketing" in \
        rep["skipped"]["T40_C2_ch4_off/pmm-numpyro"]
    for r in rep["runs"].values():
        assert r["status"] == "ok"
        assert r["min_ess_bulk"] > 0 and r["ess_per_s"] > 0 and r["ess_per_grad"] > 0
        assert r["compile_s"] > 0 and r["peak_mem_mb"] > 100
        assert r["total_leapfrog_steps"] >= 4 * 40
    chees = rep["runs"]["T40_C2_ch4_off/chees"]
    assert chees["warmup_s"] > 0 and chees["sampling_s"] > 0 and chees["warmup_leapfrog_steps_per_chain"] > 0
    assert rep["runs"]["T40_C2_ch4_off/numpyro+float32"]["x64"] is False
    assert rep["runs"]["T40_C2_ch4_off/numpyro"]["x64"] is True
    assert rep["speed"]["float32"]["agree"] in (True, False)
    warm = rep["runs"]["T40_C2_ch4_off/numpyro+cache-warm"]["compile_detail"]
    assert warm["cache_retrieval_s"] > 0  # the warm run loaded programs from the persistent cache
    md = (tmp_path / "bench_suite_smoke_latest.md").read_text()
    assert "| 40×2, 4, off | chees |" in md and "float32" in md and "Skipped" in md
    assert (tmp_path / "bench_suite_smoke_latest.png").stat().st_size > 1000
    text = (tmp_path / "bench_suite_smoke_latest.json").read_text()
    assert str(tmp_path) not in text and str(Path.home()) + "/" not in text  # no machine paths


@pytest.mark.slow
def test_bench_hier_grad_only_end_to_end(tmp_path):
    """bench_hier --grad-only: both precisions in their own interpreter, a table and JSON written."""
    import subprocess

    out = subprocess.run([sys.executable, str(BENCH / "bench_hier.py"), "--markets", "3", "--weeks", "40",
                          "--channels", "2", "--grad-only", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    rep = json.loads((tmp_path / "bench_hier_compare_grad_latest.json").read_text())
    runs = rep["runs"]
    assert runs["grad-f64"]["dtype"] == "float64" and runs["grad-f32"]["dtype"] == "float32"
    # 3 markets x 2 channels x (2 pooled media params) + the rest: the same parameter count in both
    assert runs["grad-f64"]["n_params"] == runs["grad-f32"]["n_params"] > 12
    assert all(0 < r["grad_us"] < 1e5 for r in runs.values())
    assert "us per value + gradient" in (tmp_path / "bench_hier_compare_grad_latest.md").read_text()
