"""Where the benchmarks keep their files: ``benchmarks/`` next to the package in a source
checkout, else ``./mmm_jax_bench/`` in the current directory (an installed package)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["checkout_root", "default_out_dir", "work_dir"]

WORK_DIR_NAME = "mmm_jax_bench"


def checkout_root() -> Path | None:
    """The source checkout this package runs from (the folder holding ``mmm_jax/`` and
    ``benchmarks/bench_suite.py``), or None for an installed package."""
    root = Path(__file__).resolve().parent.parent.parent
    return root if (root / "benchmarks" / "bench_suite.py").is_file() else None


def work_dir() -> Path:
    """``benchmarks/`` of the source checkout, else ``./mmm_jax_bench`` (not created here)."""
    root = checkout_root()
    return root / "benchmarks" if root is not None else Path.cwd() / WORK_DIR_NAME


def default_out_dir() -> Path:
    """Where results go without ``--out``: ``benchmarks/results/`` of the source checkout, else
    ``./mmm_jax_bench/`` in the current directory."""
    root = checkout_root()
    return root / "benchmarks" / "results" if root is not None else work_dir()
