"""Files on disk: fitted-model directories, output-folder rules, atomic and verified writes.

A fitted model is one directory (every kind of fitted model):

* ``config.json`` — the model description (``ModelConfig`` or ``HierarchicalConfig`` dict);
* ``scaling.json`` — the scale factors fitted on the training data;
* ``data.csv`` — the training data (long format for markets);
* ``idata.nc`` — the InferenceData;
* ``meta.json`` — ``format_version``, ``kind`` (``"brand"`` or ``"markets"``), sampler settings,
  package versions, and the size and SHA-256 of every other file (checked on load);
* ``.mmm_jax`` — the marker that says what made the folder (``{"kind": ...}``).

Output folders (:func:`check_output_dir`): mmm_jax writes into a new folder, or into one that an
earlier mmm_jax run of the same kind made (recognised by its marker, or by ``meta.json`` /
``manifest.sqlite`` for folders from before the marker). Anything else — a folder with other
files, a file, the current directory or one above it, the home directory — is refused with an
:class:`OutputDirError` before any work starts, unless ``overwrite`` is given (then mmm_jax's
files are written into the folder and every other file is left as it is; the current directory,
its parents, the home directory and the input files are refused even then). Nothing the user
made is ever deleted or moved.

Every file is written to a temporary name in its folder, flushed to disk, then renamed into
place (:func:`atomic_write_bytes`); NetCDF is serialised to memory first (:func:`netcdf_bytes`),
so a full disk is a Python ``OSError`` raised by a plain write, never a crash inside HDF5.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

__all__ = [
    "FORMAT_VERSION",
    "RunFormatError",
    "OutputDirError",
    "save_run",
    "read_run",
    "check_output_dir",
    "mark_output_dir",
    "output_kind",
    "atomic_write_bytes",
    "atomic_write_text",
    "write_table",
    "netcdf_bytes",
    "read_netcdf",
    "file_digest",
    "is_storage_error",
]

#: Version of the run-directory layout written by :func:`save_run`.
FORMAT_VERSION = 1
#: Marker file of every folder mmm_jax creates.
MARKER = ".mmm_jax"
#: Kinds of output folder; a fitted model is ``"brand"`` or ``"markets"``.
KINDS = ("brand", "markets", "batch", "budget", "demo", "cv", "sbc", "export")
_RUN_KINDS = ("brand", "markets")
#: errno values that mean "the storage failed", not "this brand is bad": retry later.
STORAGE_ERRNOS = {errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EROFS, errno.ENOMEM, errno.EFBIG}


class RunFormatError(ValueError):
    """A directory is not a saved mmm_jax model of the kind asked for, is damaged, or is of a newer format."""


class OutputDirError(ValueError):
    """An output folder that mmm_jax will not write into (it would overwrite what the user made)."""


# --------------------------------------------------------------------------- low-level writes
def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temp file in the same folder (named after this
    process), ``fsync``, ``os.replace``. On any error the temp file is removed and ``path`` is
    unchanged; the error (``OSError`` for a full disk) propagates."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            view = memoryview(data)
            while view:
                n = fh.write(view)
                view = view[n:]
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename is None:  # name the file the disk refused
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    return atomic_write_bytes(path, text.encode())


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``frame`` (without its index) atomically as Parquet (suffix ``.parquet`` / ``.pq``,
    pyarrow) or CSV (any other suffix); returns the path."""
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        return atomic_write_bytes(path, buf.getvalue())
    return atomic_write_text(path, frame.to_csv(index=False))


def netcdf_bytes(idata) -> bytes:
    """The InferenceData as NetCDF-4 bytes (one HDF5 group per InferenceData group, uncompressed:
    posterior draws barely compress and zlib took 5x longer than the write)."""
    from .compat import idata_netcdf_bytes

    return idata_netcdf_bytes(idata)


def read_netcdf(path: str | os.PathLike, *, expect: dict | None = None):
    """Read an InferenceData file fully into memory; ``expect`` (``{"bytes", "sha256"}``) is
    checked first. A damaged file raises :class:`RunFormatError` naming it."""
    from .compat import idata_from_netcdf

    path = Path(path)
    if expect:
        check_digest(path, expect)
    try:
        idata = idata_from_netcdf(str(path))
    except (OSError, ValueError, KeyError) as err:
        raise RunFormatError(f"{path}: not a readable InferenceData file ({type(err).__name__}: "
                             f"{str(err).splitlines()[0] if str(err) else ''}); it is truncated or damaged") from None
    return idata


def file_digest(path: str | os.PathLike) -> dict:
    """``{"bytes": size, "sha256": hex}`` of a file."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
            n += len(block)
    return {"bytes": n, "sha256": h.hexdigest()}


def check_digest(path: Path, expect: dict) -> None:
    """Raise :class:`RunFormatError` when ``path`` is missing or differs from ``expect``."""
    if not path.exists():
        raise RunFormatError(f"{path}: missing")
    size = path.stat().st_size
    if size != int(expect["bytes"]):
        raise RunFormatError(f"{path}: {size} bytes, {int(expect['bytes'])} were written (truncated or changed)")
    if file_digest(path)["sha256"] != expect["sha256"]:
        raise RunFormatError(f"{path}: contents differ from what was written (SHA-256 mismatch)")


def is_storage_error(err: BaseException | str) -> bool:
    """True for errors of the storage (full disk, I/O error, read-only file system, SQLite
    "disk is full"), given as the exception or its recorded message: retryable, never a brand's
    own failure."""
    if isinstance(err, OSError) and err.errno in STORAGE_ERRNOS:
        return True
    text = str(err).lower()
    return any(s in text for s in ("no space left", "disk is full", "disk i/o error", "input/output error",
                                   "errno 28", "errno 5]", "quota exceeded", "read-only file system"))


# --------------------------------------------------------------------------- output folders
def output_kind(path: str | os.PathLike) -> str | None:
    """What mmm_jax output ``path`` holds: one of :data:`KINDS`, or None (not made by mmm_jax)."""
    path = Path(path)
    marker = path / MARKER
    if marker.is_file():
        with contextlib.suppress(OSError, ValueError):
            kind = json.loads(marker.read_text()).get("kind")
            if kind in KINDS:
                return kind
    meta = path / "meta.json"
    if meta.is_file() and (path / "config.json").is_file():  # a run saved before the marker existed
        with contextlib.suppress(OSError, ValueError):
            m = json.loads(meta.read_text())
            if "format_version" in m:
                return m.get("kind", "brand")
    if any(path.glob("manifest*.sqlite")):
        return "batch"
    return None


def _marker_in_writing(name: str) -> bool:
    """``name`` is the temporary file :func:`atomic_write_bytes` writes the marker through."""
    return name.startswith(f".{MARKER}.") and name.endswith(".tmp")


def _compatible(found: str, kind: str) -> bool:
    return found == kind or (found in _RUN_KINDS and kind in _RUN_KINDS)


def check_output_dir(path: str | os.PathLike, kind: str, *, overwrite: bool = False,
                     inputs: Iterable[str | os.PathLike] = (), flag: str = "--out") -> Path:
    """Check that mmm_jax may write an output of ``kind`` into ``path``; returns the path.

    Allowed: a path that does not exist, an empty folder, a folder holding an earlier mmm_jax
    output of the same kind (a fitted model may replace a fitted model of either kind), or —
    with ``overwrite`` — any other folder (mmm_jax's files are written into it; nothing else
    in it is touched). Refused (:class:`OutputDirError`, one line): a file at ``path``; the
    current directory, a folder above it, the home directory or a file system root; a folder
    that holds any of ``inputs`` (the data or config being read) unless it is an mmm_jax output;
    anything else without ``overwrite``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}")
    p = Path(path).expanduser()
    resolved = p.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        where = "the current directory" if resolved == cwd else "a folder above the current directory"
        raise OutputDirError(f"{flag} {path}: is {where}; name a new folder for the output (e.g. {flag} run1)")
    if resolved == Path.home().resolve() or resolved == Path(resolved.anchor):
        raise OutputDirError(f"{flag} {path}: is the home directory or a file system root; name a new folder")
    if p.exists() and not p.is_dir():
        raise OutputDirError(f"{flag} {path}: exists and is a file, not a folder; name a new folder")
    if not p.exists():
        return p
    found = output_kind(p)
    if found is not None:
        if _compatible(found, kind):
            return p
        if not overwrite:
            raise OutputDirError(f"{flag} {path}: holds an mmm_jax {found} output, not a {kind} one; name a new "
                                 "folder (or pass --overwrite to write into it anyway)")
        return p
    # another process of the same job may be writing the marker this moment (its temporary file
    # is all there is): the folder is an mmm_jax output in the making, not someone else's
    entries = sorted(e.name for e in p.iterdir() if not _marker_in_writing(e.name))
    if not entries:
        return p
    for f in inputs:
        fp = Path(f).expanduser().resolve()
        if fp == resolved or resolved in fp.parents:
            raise OutputDirError(f"{flag} {path}: holds the input {f}; write the output to a new folder")
    if overwrite:
        return p
    shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
    raise OutputDirError(f"{flag} {path}: exists and is not an mmm_jax {kind} output (it holds {shown}); name a new "
                         "folder, or pass --overwrite to write mmm_jax's files into it (other files are kept)")


def mark_output_dir(path: str | os.PathLike, kind: str) -> Path:
    """Create ``path`` (if needed) and write its marker."""
    from . import __version__

    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    marker = p / MARKER
    if output_kind(p) != kind or not marker.exists():
        atomic_write_text(marker, json.dumps({"kind": kind, "mmm_jax": __version__}))
    return p


# --------------------------------------------------------------------------- fitted models
def save_run(path: str | os.PathLike, *, kind: str, config: dict, scaling: dict, frame: pd.DataFrame, idata,
             fit_settings: dict, overwrite: bool = False) -> Path:
    """Write a fitted model to the directory ``path``.

    ``path`` must pass :func:`check_output_dir` (kind ``kind``). Each file is written atomically,
    ``meta.json`` (with every other file's size and SHA-256) last, so a run interrupted part-way
    is reported as damaged on load instead of mixing two fits silently. Files of other names in
    the folder are kept.
    """
    if kind not in _RUN_KINDS:
        raise ValueError(f"kind must be one of {_RUN_KINDS}")
    path = check_output_dir(path, kind, overwrite=overwrite)
    created = not path.exists()
    mark_output_dir(path, kind)
    try:
        files = {
            "config.json": json.dumps(config, indent=2, sort_keys=True).encode(),
            "scaling.json": json.dumps(scaling, indent=2).encode(),
            "data.csv": frame.to_csv(index=False).encode(),
            "idata.nc": netcdf_bytes(idata),
        }
        digests = {}
        for name, data in files.items():
            atomic_write_bytes(path / name, data)
            digests[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        meta = {
            "format_version": FORMAT_VERSION,
            "kind": kind,
            "fit_settings": fit_settings,
            "versions": json.loads(idata.posterior.attrs.get("versions", "{}")),
            "files": digests,
        }
        atomic_write_text(path / "meta.json", json.dumps(meta, indent=2, default=str))
    except BaseException:
        if created:  # only what this call made: our own files in a folder it created
            for name in ("config.json", "scaling.json", "data.csv", "idata.nc", "meta.json", MARKER):
                with contextlib.suppress(OSError):
                    (path / name).unlink()
            with contextlib.suppress(OSError):
                path.rmdir()
        raise
    return path


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunFormatError(f"{path}: not readable JSON ({type(err).__name__}: {err}); the run is damaged") from None


def read_run(path: str | os.PathLike, kind: str, date_column: str | None = None) -> dict:
    """Read a directory written by :func:`save_run`: ``{config, scaling, frame, idata, meta}``.

    Raises :class:`RunFormatError` when it is not a saved model, is of another ``kind`` (a
    multi-market run opened as one brand, say), is of a newer format than this version reads, or
    a file differs from what was written (truncated, edited, half-replaced).
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder (a folder written by `mmm-jax fit` / save)")
    if not (path / "config.json").exists():
        raise RunFormatError(f"{path} is not a saved mmm_jax model (no config.json)")
    meta = _read_json(path / "meta.json") if (path / "meta.json").exists() else {}
    version = int(meta.get("format_version", 1))
    if version > FORMAT_VERSION:
        raise RunFormatError(f"{path}: saved with format version {version}; this mmm_jax reads up to "
                             f"{FORMAT_VERSION} (upgrade mmm_jax)")
    found = meta.get("kind", "brand")
    if found != kind:
        what = {"brand": "MMM.load", "markets": "HierarchicalMMM.load"}
        raise RunFormatError(f"{path}: a saved {found!r} model; open it with {what.get(found, found)}")
    digests = meta.get("files", {})
    for name, expect in digests.items():
        if name != "idata.nc":
            check_digest(path / name, expect)
    config = _read_json(path / "config.json")
    scaling = _read_json(path / "scaling.json")
    try:
        frame = pd.read_csv(path / "data.csv")
    except (OSError, ValueError) as err:
        raise RunFormatError(f"{path / 'data.csv'}: not readable ({err})") from None
    if date_column is not None:
        frame[date_column] = pd.to_datetime(frame[date_column])
    idata = read_netcdf(path / "idata.nc", expect=digests.get("idata.nc"))
    return {"config": config, "scaling": scaling, "frame": frame, "idata": idata, "meta": meta}
