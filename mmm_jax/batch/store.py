"""The results store of a batch job: one NetCDF file per brand plus an SQLite manifest.

Layout of ``OUT/``::

    manifest.sqlite          job table (config, hash, settings) + one row per brand
    brands/<brand>.nc        the brand's InferenceData (written to a temp file, then renamed)
    .lock (.lock.p<k>)       held by the process writing (``fcntl.flock``)

A brand counts as finished only when its manifest row says so; the row (with the file's size
and SHA-256) is written after the file is renamed into place, in one SQLite transaction. A job
killed at any instant therefore leaves every finished brand complete and every other brand
pending: a rerun redoes only those (``os.replace`` overwrites a half-recorded file, so nothing
appears twice). A rerun checks every finished brand's file against its recorded size and hash
and refits a brand whose file is missing, truncated or changed.

One writer per output folder: the store takes an exclusive lock on ``OUT/.lock`` and a second
process on the same folder gets :class:`StoreLockedError` at once (it does not wait). With
several hosts (``jax.distributed``), process ``k`` locks ``.lock.p<k>`` and keeps its own
``manifest.p<k>.sqlite``; readers merge them. Temporary files carry the writer's process id and
are removed only when stale (their process is gone and they are older than a minute).

Storage failures (full disk, I/O error, read-only file system, SQLite "disk is full") raise
:class:`StorageError` and are never recorded as a brand's failure: the batch stops with what it
finished kept, and a rerun continues.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from ..persist import atomic_write_bytes, file_digest, is_storage_error, netcdf_bytes

__all__ = ["ResultStore", "ConfigChangedError", "StoreLockedError", "StorageError", "config_hash",
           "MANIFEST_COLUMNS", "brand_filename"]

#: Manifest columns (in order).
MANIFEST_COLUMNS = (
    "brand",
    "status",  # "done" (fitted; see converged) or "failed" (see error)
    "converged",  # 1 when max R-hat < threshold and no divergences
    "max_rhat",
    "min_ess_bulk",
    "divergences",
    "n_weeks",
    "channels",  # JSON list of the brand's present channels
    "wall_s",  # seconds of the chunk's sampling time attributed to the brand
    "error",
    "file",
    "data_hash",
    "config_hash",
    "versions",  # JSON
    "finished_at",
    "file_bytes",  # size of the brand's file as written
    "file_sha256",  # its SHA-256 (checked on resume and on load)
)
#: Seconds after which an orphaned temp file (its process gone) is removed.
STALE_TEMP_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS job (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS brands (
    brand TEXT PRIMARY KEY, status TEXT NOT NULL, converged INTEGER, max_rhat REAL,
    min_ess_bulk REAL, divergences INTEGER, n_weeks INTEGER, channels TEXT, wall_s REAL,
    error TEXT, file TEXT, data_hash TEXT, config_hash TEXT NOT NULL, versions TEXT,
    finished_at TEXT NOT NULL, file_bytes INTEGER, file_sha256 TEXT
);
"""


class ConfigChangedError(RuntimeError):
    """The output directory holds a job with a different configuration."""


class StoreLockedError(RuntimeError):
    """Another process is writing to the same batch output directory."""


class StorageError(OSError):
    """Writing results failed for a reason of the storage (full disk, I/O error): retry later."""


def _storage_error(err: BaseException, what: str) -> StorageError:
    e = StorageError(getattr(err, "errno", None) or 0, f"{what}: {type(err).__name__}: {err}")
    e.__cause__ = err
    return e


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def config_hash(job: Mapping) -> str:
    """SHA-256 of the job's canonical JSON (model config + sampler settings + seed)."""
    return hashlib.sha256(json.dumps(job, sort_keys=True, default=str).encode()).hexdigest()


def brand_filename(name: str) -> str:
    """A file name for a brand: safe characters, plus a short hash when anything was changed."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "brand"
    if safe != name:
        safe = f"{safe[:80]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    return f"{safe}.nc"


class ResultStore:
    """Manifest + per-brand files under ``root``.

    Parameters
    ----------
    root : path
        Output directory (created).
    process_index : int
        This process's index in a multi-host job (``jax.process_index()``); 0 alone.
    """

    def __init__(self, root: str | os.PathLike, process_index: int = 0, process_count: int = 1):
        self.process_index, self.process_count = int(process_index), int(process_count)
        self.root = Path(root)
        self.brand_dir = self.root / "brands"
        self.brand_dir.mkdir(parents=True, exist_ok=True)
        self._lock = self._acquire_lock()
        self.damaged: list[str] = []  # brands whose recorded file failed verification (refitted)
        try:
            name = "manifest.sqlite" if process_count == 1 else f"manifest.p{process_index}.sqlite"
            self.path = self.root / name
            self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            have = {r[1] for r in self._db.execute("PRAGMA table_info(brands)").fetchall()}
            for col in ("file_bytes", "file_sha256"):  # manifests written before these columns
                if col not in have:
                    self._db.execute(f"ALTER TABLE brands ADD COLUMN {col} {'INTEGER' if col == 'file_bytes' else 'TEXT'}")
            self._clean_temp_files()
        except BaseException:
            self._lock.close()
            raise

    def _acquire_lock(self):
        name = ".lock" if self.process_count == 1 else f".lock.p{self.process_index}"
        fh = open(self.root / name, "a+")  # noqa: SIM115 - held for the store's lifetime
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise StoreLockedError(f"{self.root} is in use by another batch ({holder}); wait for it to finish "
                                   "or use another output folder") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {os.uname().nodename} since {time.strftime('%Y-%m-%dT%H:%M:%S')}")
        fh.flush()
        return fh

    def close(self) -> None:
        self._db.close()
        self._lock.close()  # releases the lock

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _clean_temp_files(self) -> None:
        """Remove temp files left by writers that died (``.<name>.<pid>.<random>.tmp``)."""
        now = time.time()
        for p in self.brand_dir.glob(".*.tmp"):
            m = re.search(r"\.(\d+)\.[^.]*\.tmp$", p.name)
            with contextlib.suppress(OSError):
                if m and _pid_alive(int(m.group(1))):
                    continue
                if now - p.stat().st_mtime > STALE_TEMP_S:
                    p.unlink()

    # ------------------------------------------------------------------ job
    def job(self) -> dict | None:
        rows = dict(self._db.execute("SELECT key, value FROM job").fetchall())
        return {k: json.loads(v) for k, v in rows.items()} or None

    def open_job(self, job: Mapping, *, force: bool = False) -> str:
        """Record the job (first run) or check it against the stored one (rerun).

        A different configuration raises :class:`ConfigChangedError` unless ``force``, which
        discards the old results (files and manifest rows) and starts over.
        """
        h = config_hash(job)
        old = self.job()
        if old is not None and old.get("hash") != h:
            if not force:
                diff = _diff_keys(old.get("job", {}), job)
                raise ConfigChangedError(
                    f"{self.root} holds a batch with a different configuration (changed: {', '.join(diff) or '?'}); "
                    "use a new output directory, or force=True / --force to discard the old results and refit"
                )
            self.reset()
        with self._tx():
            self._db.execute("INSERT OR REPLACE INTO job VALUES ('hash', ?)", (json.dumps(h),))
            self._db.execute("INSERT OR REPLACE INTO job VALUES ('job', ?)", (json.dumps(job, default=str),))
        return h

    def reset(self) -> None:
        """Delete every result of this store."""
        with self._tx():
            self._db.execute("DELETE FROM brands")
            self._db.execute("DELETE FROM job")
        for p in self.brand_dir.glob("*.nc"):
            p.unlink()

    # ------------------------------------------------------------------ brands
    @contextlib.contextmanager
    def _tx(self):
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def finished(self) -> dict[str, dict]:
        """``{brand: row}`` of every recorded brand (done or failed) whose file (if any) exists.

        In a multi-host job every process reads every process's manifest (a shared file
        system), so all processes agree on what is left to do.
        """
        rows = []
        others = [p for p in sorted(self.root.glob("manifest*.sqlite")) if p != self.path]
        if self.process_count > 1:
            for p in others:
                with contextlib.closing(sqlite3.connect(p, timeout=60)) as db:
                    rows += _records(db)
        rows += _records(self._db)
        out = {}
        self.damaged = []
        for rec in rows:
            if rec["status"] == "done" and not self.verify(rec):
                self.damaged.append(rec["brand"])
                continue  # recorded but the file is gone, truncated or changed: redo it
            out[rec["brand"]] = rec
        return out

    def verify(self, rec: Mapping) -> bool:
        """Whether a done brand's file is there with its recorded size and SHA-256 (rows written
        before hashes were recorded: the file exists)."""
        path = self.root / rec["file"]
        try:
            if rec.get("file_bytes") is None:
                return path.exists()
            if path.stat().st_size != int(rec["file_bytes"]):
                return False
            return file_digest(path)["sha256"] == rec["file_sha256"]
        except OSError:
            return False

    @property
    def is_lead(self) -> bool:
        """Process 0 records what every process knows (bad data, failed chunks) — once."""
        return self.process_index == 0

    def write_brand(self, name: str, idata, record: Mapping) -> Path:
        """Write ``idata`` atomically and record the brand as done with the file's size and hash.

        The NetCDF is built in memory and written with a plain write, so a full disk raises
        :class:`StorageError` (and leaves no partial file) instead of failing inside HDF5.
        """
        rel = Path("brands") / brand_filename(name)
        final = self.root / rel
        data = netcdf_bytes(idata)
        try:
            atomic_write_bytes(final, data)
        except OSError as err:
            if is_storage_error(err):
                raise _storage_error(err, f"writing {final}") from err
            raise
        self._record({**record, "brand": name, "status": "done", "file": str(rel), "file_bytes": len(data),
                      "file_sha256": hashlib.sha256(data).hexdigest()})
        return final

    def write_failure(self, name: str, reason: str, record: Mapping | None = None) -> None:
        """Record a brand as failed with its reason (no file)."""
        self._record({**(record or {}), "brand": name, "status": "failed", "error": reason, "file": None})

    def _record(self, rec: Mapping) -> None:
        rec = dict(rec)
        rec.setdefault("finished_at", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        for k in ("channels", "versions"):
            if k in rec and not isinstance(rec[k], str | type(None)):
                rec[k] = json.dumps(rec[k])
        values = [rec.get(c) for c in MANIFEST_COLUMNS]
        try:
            with self._tx():
                self._db.execute(
                    f"INSERT OR REPLACE INTO brands ({', '.join(MANIFEST_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(MANIFEST_COLUMNS))})",
                    values,
                )
        except (sqlite3.Error, OSError) as err:
            if is_storage_error(err):
                raise _storage_error(err, f"recording {rec.get('brand')!r} in {self.path}") from err
            raise

    def forget(self, names: Iterable[str]) -> None:
        """Drop brands from the manifest (they will be refitted)."""
        with self._tx():
            self._db.executemany("DELETE FROM brands WHERE brand = ?", [(n,) for n in names])


def _records(db) -> list[dict]:
    cur = db.execute("SELECT * FROM brands")
    names = [d[0] for d in cur.description]
    return [{c: dict(zip(names, row)).get(c) for c in MANIFEST_COLUMNS} for row in cur.fetchall()]


def read_manifest(root: str | os.PathLike) -> pd.DataFrame:
    """The manifest of ``root`` as a DataFrame (all hosts' manifests merged), one row per brand."""
    root = Path(root)
    paths = sorted(root.glob("manifest*.sqlite"))
    if not paths:
        raise FileNotFoundError(f"{root}: no manifest.sqlite (not a batch output directory)")
    frames = []
    for p in paths:
        with contextlib.closing(sqlite3.connect(p)) as db:
            frames.append(pd.read_sql_query("SELECT * FROM brands", db).reindex(columns=list(MANIFEST_COLUMNS)))
    df = pd.concat(frames, ignore_index=True).sort_values(["brand", "finished_at"])
    return df.drop_duplicates("brand", keep="last").reset_index(drop=True)


def _diff_keys(old: Mapping, new: Mapping, prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            keys += _diff_keys(a, b, f"{prefix}{k}.")
        elif json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True, default=str):
            keys.append(f"{prefix}{k}")
    return keys


__all__ += ["read_manifest"]
