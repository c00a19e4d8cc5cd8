"""Exact Euclidean projections for budget constraints (pure JAX, jit/vmap-able).

* :func:`project_budget` onto ``{x : lo <= x <= hi, sum(x) = total}``;
* :func:`project_budget_capped` onto ``{x : lo <= x <= hi, sum(x) <= total}``.

The projection is ``clip(v - tau, lo, hi)`` for the scalar ``tau`` that meets the total. The sum
is piecewise linear and non-increasing in ``tau``: bisection brackets the piece, then one
linear solve on the free coordinates makes the total exact to rounding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["project_budget", "project_budget_capped"]


def project_budget(v, lo, hi, total, n_bisect: int = 80):
    """Project ``v`` (C,) onto ``{lo <= x <= hi, sum x = total}`` (assumes sum lo <= total <= sum hi)."""
    v = jnp.asarray(v)
    lo = jnp.broadcast_to(jnp.asarray(lo, v.dtype), v.shape)
    hi = jnp.broadcast_to(jnp.asarray(hi, v.dtype), v.shape)

    def total_at(tau):
        return jnp.sum(jnp.clip(v - tau, lo, hi))

    t_lo = jnp.min(v - hi) - 1.0  # sum = sum(hi) >= total
    t_hi = jnp.max(v - lo) + 1.0  # sum = sum(lo) <= total

    def body(_, bounds):
        a, b = bounds
        m = 0.5 * (a + b)
        above = total_at(m) > total
        return jnp.where(above, m, a), jnp.where(above, b, m)

    a, b = jax.lax.fori_loop(0, n_bisect, body, (t_lo, t_hi))
    tau = 0.5 * (a + b)
    # exact step: with the clipped set fixed, solve sum(v_free - tau) + sum(clipped) = total
    x = jnp.clip(v - tau, lo, hi)
    free = (v - tau > lo) & (v - tau < hi)
    n_free = jnp.sum(free)
    clipped_sum = jnp.sum(jnp.where(free, 0.0, x))
    tau_exact = (jnp.sum(jnp.where(free, v, 0.0)) - (total - clipped_sum)) / jnp.maximum(n_free, 1)
    x_exact = jnp.where(free, jnp.clip(v - tau_exact, lo, hi), x)
    ok = (n_free > 0) & (jnp.abs(jnp.sum(x_exact) - total) <= jnp.abs(jnp.sum(x) - total))
    return jnp.where(ok, x_exact, x)


def project_budget_capped(v, lo, hi, total, n_bisect: int = 80):
    """Project ``v`` onto ``{lo <= x <= hi, sum x <= total}``."""
    v = jnp.asarray(v)
    box = jnp.clip(v, lo, hi)
    return jnp.where(jnp.sum(box) <= total, box, project_budget(v, lo, hi, total, n_bisect))
