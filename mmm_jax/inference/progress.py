"""Progress bars for compiled loops: a host callback every few iterations of a ``lax.scan``.

The step counter is part of the scan carry and never batched, so under ``vmap`` (chains,
brands) the callback fires once per step for the whole batch. Updates are rate-limited
(about 50 per loop), so the loop makes only a handful of host round-trips.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

__all__ = ["scan_with_progress", "report_progress", "ProgressClock"]


class ProgressClock(dict):
    """Host-side record ``{desc: wall time when the loop's last step ran}``."""


def report_progress(i, n_steps: int, hook, marks: tuple[int, ...] = ()) -> None:
    """Inside a compiled loop: call the host function ``hook(steps_done, n_steps)`` after step ``i``
    (0-based, unbatched) about 50 times per loop — every ``n_steps // 50`` steps, at the last
    step, and after each step count in ``marks`` (e.g. the end of warm-up). Under
    ``shard_map`` it may be called once per device for the same step: make it idempotent."""
    rate = max(1, n_steps // 50)
    fire = (i % rate == rate - 1) | (i == n_steps - 1)
    for m in marks:
        if 0 < m <= n_steps:
            fire = fire | (i + 1 == m)

    def _call(j):
        hook(int(j) + 1, n_steps)

    jax.lax.cond(fire, lambda j: jax.debug.callback(_call, j), lambda j: None, i)


def scan_with_progress(body, init, xs, n_steps: int, desc: str, enabled: bool = True,
                       clock: ProgressClock | None = None):
    """``lax.scan(body, init, xs)`` with a tqdm bar (when ``enabled``) and an end-time record.

    Parameters
    ----------
    body : (carry, x) -> (carry, y)
    n_steps : int
        Length of the scan (static).
    desc : str
        Label of the bar, and key in ``clock``.
    clock : ProgressClock, optional
        Receives ``clock[desc] = time.perf_counter()`` when the last step executes.
    """
    if not enabled and clock is None:
        return jax.lax.scan(body, init, xs, length=n_steps)
    host = {"bar": None, "done": 0}

    def _update(i, n):
        if clock is not None and i >= n:
            clock[desc] = time.perf_counter()
        if not enabled:
            return
        if host["bar"] is None:
            from tqdm.auto import tqdm

            host["bar"] = tqdm(total=n, desc=desc, dynamic_ncols=True)
        bar = host["bar"]
        if i > host["done"]:
            bar.update(i - host["done"])
            host["done"] = i
        if i >= n:
            bar.close()
            host["bar"] = None
            host["done"] = 0

    def wrapped(carry, x):
        i, c = carry
        c, y = body(c, x)
        report_progress(i, n_steps, _update)
        return (i + 1, c), y

    (_, carry), ys = jax.lax.scan(wrapped, (jnp.zeros((), jnp.int32), init), xs, length=n_steps)
    return carry, ys
