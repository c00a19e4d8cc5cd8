"""Progress bars for compiled loops: a host callback every few iterations of a ``lax.scan``.

The step counter is part of the scan carry and never batched, so under ``vmap`` (chains,
brands) the callback fires once per step for the whole batch. Updates are rate-limited
(about 50 per loop), so the loop makes only a handful of host round-trips.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

__all__ = ["scan_with_progress", "ProgressClock"]


class ProgressClock(dict):
    """Host-side record ``{desc: wall time when the loop's last step ran}``."""


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
    rate = max(1, n_steps // 50)
    host = {"bar": None, "done": 0}

    def _update(i):
        i = int(i) + 1
        if enabled:
            from tqdm.auto import tqdm

            if host["bar"] is None:
                host["bar"] = tqdm(total=n_steps, desc=desc, leave=True, dynamic_ncols=True)
            if i > host["done"]:
                host["bar"].update(i - host["done"])
                host["done"] = i
        if i >= n_steps:
            if clock is not None:
                clock[desc] = time.perf_counter()
            if host["bar"] is not None:
                host["bar"].close()
                host["bar"] = None
                host["done"] = 0

    def wrapped(carry, x):
        i, c = carry
        c, y = body(c, x)
        fire = (i % rate == rate - 1) | (i == n_steps - 1)
        jax.lax.cond(fire, lambda j: jax.debug.callback(_update, j), lambda j: None, i)
        return (i + 1, c), y

    (_, carry), ys = jax.lax.scan(wrapped, (jnp.zeros((), jnp.int32), init), xs, length=n_steps)
    return carry, ys
