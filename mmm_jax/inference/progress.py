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
                       clock: ProgressClock | None = None, marks: dict[str, int] | None = None,
                       on_step=None):
    """``lax.scan(body, init, xs)`` with a tqdm bar (when ``enabled``) and an end-time record.

    Parameters
    ----------
    body : (carry, x) -> (carry, y)
    n_steps : int
        Length of the scan (static).
    desc : str
        Label of the bar, and key in ``clock``.
    clock : ProgressClock, optional
        Receives ``clock[desc] = time.perf_counter()`` when the last step executes, and
        ``clock[name]`` when step ``marks[name]`` (a step count, e.g. the end of warm-up) is done.
    marks : dict[str, int], optional
    on_step : callable, optional
        Host function ``on_step(steps_done, n_steps)`` called at the same rate-limited points
        (e.g. to drive a batch-level bar). Under ``shard_map`` it may be called once per
        device for the same step: make it idempotent.
    """
    if not enabled and clock is None and on_step is None:
        return jax.lax.scan(body, init, xs, length=n_steps)
    rate = max(1, n_steps // 50)
    host = {"bar": None, "done": 0}
    marks = {k: int(v) for k, v in (marks or {}).items() if 0 < int(v) <= n_steps}
    mark_steps = jnp.asarray(sorted(set(marks.values())) or [-1], dtype=jnp.int32)

    def _update(i):
        i = int(i) + 1
        now = time.perf_counter()
        if on_step is not None:
            on_step(i, n_steps)
        if clock is not None:
            for name, at in marks.items():
                if i == at:
                    clock[name] = now
            if i >= n_steps:
                clock[desc] = now
        if not enabled:
            return
        if host["bar"] is None:
            from tqdm.auto import tqdm

            first = min(marks, key=marks.get) if marks else None
            host["bar"] = tqdm(total=n_steps, desc=f"{desc} ({first})" if first else desc, dynamic_ncols=True)
        bar = host["bar"]
        if i > host["done"]:
            bar.update(i - host["done"])
            host["done"] = i
        later = [k for k, at in marks.items() if at == i]
        if later and i < n_steps:
            bar.set_description(f"{desc} (after {later[0]})")
        if i >= n_steps:
            bar.close()
            host["bar"] = None
            host["done"] = 0

    def wrapped(carry, x):
        i, c = carry
        c, y = body(c, x)
        fire = (i % rate == rate - 1) | (i == n_steps - 1) | jnp.any(i + 1 == mark_steps)
        jax.lax.cond(fire, lambda j: jax.debug.callback(_update, j), lambda j: None, i)
        return (i + 1, c), y

    (_, carry), ys = jax.lax.scan(wrapped, (jnp.zeros((), jnp.int32), init), xs, length=n_steps)
    return carry, ys
