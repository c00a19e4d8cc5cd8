"""A fitted model on disk: one directory, written atomically, read back with its format checked.

Layout (every kind of fitted model):

* ``config.json`` — the model description (``ModelConfig`` or ``HierarchicalConfig`` dict);
* ``scaling.json`` — the scale factors fitted on the training data;
* ``data.csv`` — the training data (long format for markets);
* ``idata.nc`` — the InferenceData;
* ``meta.json`` — ``format_version``, ``kind`` (``"brand"`` or ``"markets"``), sampler settings,
  package versions.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

__all__ = ["FORMAT_VERSION", "RunFormatError", "save_run", "read_run"]

#: Version of the run-directory layout written by :func:`save_run`.
FORMAT_VERSION = 1


class RunFormatError(ValueError):
    """A directory is not a saved mmm_jax model of the kind asked for, or is of a newer format."""


def save_run(path: str | os.PathLike, *, kind: str, config: dict, scaling: dict, frame: pd.DataFrame, idata,
             fit_settings: dict) -> Path:
    """Write a fitted model to the directory ``path`` (temp dir + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        (tmp / "scaling.json").write_text(json.dumps(scaling, indent=2))
        frame.to_csv(tmp / "data.csv", index=False)
        idata.to_netcdf(str(tmp / "idata.nc"))
        meta = {
            "format_version": FORMAT_VERSION,
            "kind": kind,
            "fit_settings": fit_settings,
            "versions": json.loads(idata.posterior.attrs.get("versions", "{}")),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_run(path: str | os.PathLike, kind: str, date_column: str | None = None) -> dict:
    """Read a directory written by :func:`save_run`: ``{config, scaling, frame, idata, meta}``.

    Raises :class:`RunFormatError` when it is not a saved model, is of another ``kind`` (a
    multi-market run opened as one brand, say) or of a newer format than this version reads.
    """
    import arviz as az

    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} is not a saved mmm_jax model (no config.json)")
    meta = json.loads((path / "meta.json").read_text()) if (path / "meta.json").exists() else {}
    version = int(meta.get("format_version", 1))
    if version > FORMAT_VERSION:
        raise RunFormatError(f"{path}: saved with format version {version}; this mmm_jax reads up to "
                             f"{FORMAT_VERSION} (upgrade mmm_jax)")
    found = meta.get("kind", "brand")
    if found != kind:
        what = {"brand": "MMM.load", "markets": "HierarchicalMMM.load"}
        raise RunFormatError(f"{path}: a saved {found!r} model; open it with {what.get(found, found)}")
    config = json.loads((path / "config.json").read_text())
    scaling = json.loads((path / "scaling.json").read_text())
    frame = pd.read_csv(path / "data.csv")
    if date_column is not None:
        frame[date_column] = pd.to_datetime(frame[date_column])
    idata = az.from_netcdf(str(path / "idata.nc"))
    idata.load()
    return {"config": config, "scaling": scaling, "frame": frame, "idata": idata, "meta": meta}
