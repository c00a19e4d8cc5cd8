"""The PyMC-Marketing interpreter of the ``pmm-*`` runs: given (``--pmm-python``), the default
virtual environment (``.venv-pmm`` in :func:`~mmm_jax.bench.paths.work_dir`), or created there
(``--setup-pmm-venv``: ``python -m venv`` + ``pip install pymc-marketing numpyro``).

Its pins may clash with ours, so it is a separate interpreter; it has no mmm_jax and runs
:data:`PMM_WORKER` (a file of this package, imported by nothing from mmm_jax) by path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .paths import work_dir
from .runner import clean_environ, log

__all__ = ["PMM_PACKAGES", "PMM_WORKER", "check_pmm_python", "default_pmm_venv", "resolve_pmm_python",
           "setup_pmm_venv", "venv_python"]

PMM_PACKAGES = ("pymc-marketing", "numpyro")
PMM_WORKER = Path(__file__).with_name("pmm_worker.py")


def default_pmm_venv() -> Path:
    """``benchmarks/.venv-pmm`` of the source checkout, else ``./mmm_jax_bench/.venv-pmm``."""
    return work_dir() / ".venv-pmm"


def venv_python(venv: Path) -> Path:
    """The interpreter of the virtual environment ``venv``."""
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def setup_pmm_venv(venv: Path | None = None) -> Path:
    """Create ``venv`` (default :func:`default_pmm_venv`) if needed and pip install PyMC-Marketing
    + NumPyro into it; returns its interpreter."""
    venv = default_pmm_venv() if venv is None else venv
    py = venv_python(venv)
    if not py.exists():
        log(f"creating virtual environment {venv} ...")
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    log(f"pip install {' '.join(PMM_PACKAGES)} into {venv} (this can take a few minutes) ...")
    env = clean_environ()
    subprocess.run([str(py), "-m", "pip", "install", "--upgrade", "pip"], check=True, env=env)
    subprocess.run([str(py), "-m", "pip", "install", *PMM_PACKAGES], check=True, env=env)
    return py


def check_pmm_python(py: str) -> str | None:
    """None if ``py`` can import pymc_marketing and numpyro, else the reason it cannot."""
    if not Path(py).exists() and shutil.which(py) is None:
        return f"{py} does not exist"
    code = (
        "import importlib.util as u, sys; "
        "missing = [m for m in ('pymc_marketing', 'numpyro') if u.find_spec(m) is None]; "
        "print(','.join(missing)); sys.exit(1 if missing else 0)"
    )
    r = subprocess.run([py, "-c", code], capture_output=True, text=True, env=clean_environ())
    if r.returncode != 0:
        return f"{py} lacks {r.stdout.strip() or r.stderr.strip()[-300:]}"
    return None


def resolve_pmm_python(pmm_python: str | None, setup: bool = False) -> tuple[str | None, str | None]:
    """(interpreter, None) or (None, why the pmm runs are skipped): ``setup`` creates the default
    environment; else ``pmm_python``; else the default environment where it exists."""
    venv = default_pmm_venv()
    if setup:
        py = str(setup_pmm_venv(venv))
    elif pmm_python:
        py = pmm_python
    elif venv_python(venv).exists():
        py = str(venv_python(venv))
    else:
        return None, (
            "no PyMC-Marketing interpreter: pass --pmm-python PATH (a python with pymc-marketing and "
            "numpyro) or --setup-pmm-venv to create one (benchmarks/.venv-pmm in a source checkout, else "
            "./mmm_jax_bench/.venv-pmm)"
        )
    why = check_pmm_python(py)
    return (None, why) if why else (py, None)
