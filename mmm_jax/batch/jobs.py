"""The one batch job loop: chunks of brands through a compiled batch sampler, two chunks in flight.

Any model runs through it (:func:`mmm_jax.batch.fit_many`: one market per brand, or a market
panel per brand); the kind of brand (:class:`mmm_jax.batch.run.BatchKind`) supplies two functions:

* ``stack(filled) -> (arrays, context)``: the chunk's brands padded to the template and stacked
  (``arrays``: the sampler's data inputs with a leading brand axis);
* ``postprocess(chunk) -> int``: label, check and write the chunk's brands of this process
  (``chunk``: a :class:`Chunk`); returns how many were written (the rest failed).

The loop owns what every kind shares: per-brand keys (``brand_seed``), dispatching chunk ``i + 2``
while the host post-processes chunk ``i``, a failing chunk recorded for its brands without
sinking the batch, a failing disk stopping it (:class:`~mmm_jax.batch.store.StorageError`, what
is finished kept), per-chunk timing, lock-step waste and the progress bar.
"""

from __future__ import annotations

import math
import os
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

from ..persist import is_storage_error
from ..posterior.results import RHAT_MAX, diagnostics
from .engine import finish_chunk, lockstep_waste, start_chunk
from .stack import brand_seed
from .store import StorageError

__all__ = ["Chunk", "run_chunks", "short_error", "brand_keys", "write_brand_result", "nonfinite_draws"]


class Chunk(NamedTuple):
    """One finished chunk, as handed to ``postprocess``.

    Attributes
    ----------
    members : list
        The chunk's brands (``.name``, ``.n_weeks``, ``.data_hash``).
    filled : list
        ``members`` repeated to the chunk size (the sampler's static brand axis).
    rows : dict
        ``{row: (positions, stats, ...)}`` for this process's rows (:func:`finish_chunk`);
        ``row < len(members)`` are real brands.
    arrays : dict
        The stacked inputs the chunk was sampled with.
    context : Any
        What ``stack`` returned beside the arrays.
    k_pp : np.ndarray
        (chunk, key data) posterior-predictive key of every row.
    wall : float
        Seconds of this chunk per member brand.
    """

    members: list
    filled: list
    rows: dict
    arrays: dict
    context: Any
    k_pp: np.ndarray
    wall: float

    @property
    def mine(self) -> list[int]:
        """This process's rows that are real brands, in order."""
        return sorted(r for r in self.rows if r < len(self.members))


def brand_keys(seed: int, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(sampling, posterior predictive) key data per brand, from ``brand_seed(seed, name)``."""
    keys = [jax.random.split(jax.random.key(brand_seed(seed, n))) for n in names]
    return (np.stack([np.asarray(jax.random.key_data(k[0])) for k in keys]),
            np.stack([np.asarray(jax.random.key_data(k[1])) for k in keys]))


def short_error(err: BaseException) -> str:
    """One line for the manifest (with a hint for out-of-memory errors)."""
    text = f"{type(err).__name__}: {err}".strip().splitlines()
    msg = text[0][:500] if text else type(err).__name__
    if "RESOURCE_EXHAUSTED" in msg or "out of memory" in msg.lower():
        msg += " (lower chunk_size / --chunk-size)"
    return msg


def run_chunks(pending: list, *, sampler, seed: int, store, record: dict, stack: Callable, postprocess: Callable,
               bar, stats: dict, max_chunks: int | None = None) -> None:
    """Fit ``pending`` brands chunk by chunk; updates ``stats`` (fitted, failed_fit, sampling_s,
    lockstep_waste, lockstep_waste_if_sorted) in place.

    ``record``: fields written with every failure record (config hash, versions).
    """
    chunk = sampler.chunk_size
    n_chunks = math.ceil(len(pending) / chunk)
    n_run = n_chunks if max_chunks is None else max(0, min(n_chunks, int(max_chunks)))
    wastes = []

    def launch(ci: int) -> dict:
        """Stack chunk ``ci`` and dispatch it; JAX runs it while the host post-processes the last one."""
        members = pending[ci * chunk : (ci + 1) * chunk]
        filled = members + [members[-1]] * (chunk - len(members))
        job = {"members": members, "filled": filled, "t": time.perf_counter(), "out": None, "err": None,
               "arrays": None, "context": None, "k_pp": None}
        try:
            job["arrays"], job["context"] = stack(filled)
            k_sample, job["k_pp"] = brand_keys(seed, [b.name for b in filled])
            job["out"] = start_chunk(sampler, job["arrays"], k_sample)
        except Exception as err:  # noqa: BLE001 - reported when the chunk is collected
            job["err"] = err
        return job

    t_prev = time.perf_counter()
    # two chunks in flight: a device that finishes its share of chunk ci goes on with its share of
    # ci + 1 at once, and the host post-processes ci while the devices sample
    inflight = [launch(i) for i in range(min(2, n_run))]
    for ci in range(n_run):
        cur = inflight.pop(0)
        bar.chunk(ci + 1, n_chunks)
        members = cur["members"]
        rows, failure = None, cur["err"]
        if failure is None:
            try:
                rows = finish_chunk(cur["out"])
            except Exception as err:  # noqa: BLE001 - a failing chunk must not sink the batch
                failure = err
        t_done = time.perf_counter()
        if ci + 2 < n_run:
            inflight.append(launch(ci + 2))
        if failure is not None:
            msg = short_error(failure)
            for b in members if store.is_lead else []:
                store.write_failure(b.name, f"chunk failed: {msg}",
                                    {**record, "n_weeks": b.n_weeks, "data_hash": b.data_hash})
            stats["failed_fit"] += len(members)
            bar.advance(len(members))
            continue
        t_chunk = t_done - max(cur["t"], t_prev)  # this chunk's own share (chunks queue behind each other)
        t_prev = t_done
        stats["sampling_s"] = stats.get("sampling_s", 0.0) + t_chunk
        n_steps = np.stack([rows[r][1]["n_steps"] for r in sorted(rows)])
        groups = [sampler.group] * (len(rows) // sampler.group)
        # what grouping brands by their (here: known afterwards) mean trajectory length would save
        by_depth = n_steps[np.argsort(n_steps.mean(axis=(1, 2)))]
        wastes.append((lockstep_waste(n_steps, groups, sampler.vmap_chains),
                       lockstep_waste(by_depth, groups, sampler.vmap_chains), n_steps.sum()))
        done = Chunk(members, cur["filled"], rows, cur["arrays"], cur["context"], cur["k_pp"],
                     t_chunk / len(members))
        try:
            written = postprocess(done)
        except StorageError as err:
            raise StorageError(err.errno, f"batch stopped: {err.strerror}. Every brand finished so far is kept "
                               f"({stats['fitted']} in this run); the rest stay pending: fix the storage (free space) "
                               "and rerun the same command to continue") from err
        stats["fitted"] += written
        stats["failed_fit"] += len(done.mine) - written
        bar.advance(len(members))
    total = sum(w[-1] for w in wastes)
    stats["lockstep_waste"] = float(sum(w[0] * w[-1] for w in wastes) / total) if total else float("nan")
    stats["lockstep_waste_if_sorted"] = float(sum(w[1] * w[-1] for w in wastes) / total) if total else float("nan")


def nonfinite_draws(draws: Mapping[str, np.ndarray], names) -> str | None:
    """The failure message for draws of ``names`` that hold NaN / inf (None when all are finite)."""
    bad = [n for n in names if n in draws and not np.all(np.isfinite(draws[n]))]
    return f"sampler produced non-finite draws for {bad} (log-density NaN/inf?)" if bad else None


def write_brand_result(store, name: str, rec: dict, build: Callable[[], Any]) -> bool:
    """Write one brand of a chunk: ``build()`` returns its InferenceData (or a failure message);
    its convergence goes into the manifest record ``rec``. A problem of the brand marks it failed
    and returns False (never raises); a failing disk raises :class:`StorageError` (the batch stops,
    what is finished is kept, a rerun retries)."""
    try:
        idata = build()
        if isinstance(idata, str):
            store.write_failure(name, idata, rec)
            return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            d = diagnostics(idata)
        converged = bool(np.isfinite(d["max_rhat"]) and d["max_rhat"] < RHAT_MAX and d["divergences"] == 0)
        rec.update(max_rhat=d["max_rhat"], min_ess_bulk=d["min_ess_bulk"], divergences=d["divergences"],
                   converged=int(converged))
        store.write_brand(name, idata, rec)
        return True
    except Exception as err:  # noqa: BLE001 - isolate the brand
        if isinstance(err, StorageError) or is_storage_error(err):
            raise  # the disk, not the brand: stop the batch, keep what is finished, retry on rerun
        store.write_failure(name, f"{type(err).__name__}: {err}", rec)
        if os.environ.get("MMM_JAX_DEBUG"):
            traceback.print_exc()
        return False
