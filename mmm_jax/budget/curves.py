"""Per-channel response curves, ROAS / CAC and their marginal values at any spend level.

A *spend level* is a weekly spend per channel (original currency) held for ``horizon``
weeks right after the training data, on top of the real history (carry-over of past spend
counted in the starting point, the plan's own carry-over after the horizon credited) — the
same response as the budget optimiser's (:func:`mmm_jax.budget.plan_contributions`). For
level ``s`` of channel ``c`` and posterior draw ``k``:

* response ``r_kc(s)``: contribution caused over the horizon + carry-over weeks (original
  target units: revenue, or customers for count models);
* average ROAS ``r_kc(s) / (s * horizon)`` and CAC its inverse;
* marginal ROAS ``d r_kc / d (s * horizon)`` (the return of one more unit of currency spread
  over the horizon), exact by forward-mode differentiation, and marginal CAC its inverse
  (cost of one more unit of response, e.g. one more customer).

Channels do not interact in the model (contributions add up), so one pass with every
channel at its level gives each channel's curve, and a forward derivative along all channels
at once gives each channel's own derivative. Pure JAX over draws; ``jit`` applies.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .response import ResponseParams, ResponseSpec, plan_contributions

__all__ = ["level_responses", "marginal_responses", "spend_level_grid", "hdi_columns", "marginal_table", "curve_frame"]


def _one_level(level, horizon: int, params: ResponseParams, spec: ResponseSpec):
    plan = jnp.broadcast_to(level, (horizon, level.shape[0]))
    return jnp.sum(plan_contributions(plan, params, spec), axis=1)  # (S, C)


def level_responses(levels, params: ResponseParams, spec: ResponseSpec, horizon: int):
    """Responses at weekly spend levels.

    Parameters
    ----------
    levels : (n, C) weekly spend per channel (original currency)
    params : ResponseParams with S draws
    spec : ResponseSpec (static)
    horizon : int, weeks the level is held (static)

    Returns
    -------
    (n, S, C) response over the horizon and its carry-over weeks, original units.
    """
    levels = jnp.asarray(levels)
    return jax.lax.map(lambda lv: _one_level(lv, horizon, params, spec), levels)


def marginal_responses(levels, params: ResponseParams, spec: ResponseSpec, horizon: int):
    """Responses and marginal ROAS at weekly spend levels.

    Returns
    -------
    response : (n, S, C) as :func:`level_responses`
    marginal : (n, S, C) ``d response / d (total spend over the horizon)``: target units per
        unit of currency (the marginal ROAS; its inverse is the marginal CAC).
    """
    levels = jnp.asarray(levels)

    def one(lv):
        r, dr = jax.jvp(lambda v: _one_level(v, horizon, params, spec), (lv,), (jnp.ones_like(lv),))
        return r, dr / horizon

    return jax.lax.map(one, levels)


def spend_level_grid(spend_levels, channels: list[str], default: np.ndarray) -> np.ndarray:
    """Weekly spend levels as an ``(n, C)`` array.

    ``spend_levels`` may be ``None`` (``default`` (C,): one level per channel), a number or
    a 1-d sequence (the same levels for every channel), an ``(n, C)`` array, or a mapping
    ``{channel: level or levels}`` (channels left out get ``default``; all sequences the same
    length). Levels must be finite and >= 0.
    """
    C = len(channels)
    default = np.asarray(default, dtype=float).reshape(C)
    if spend_levels is None:
        out = default[None, :]
    elif isinstance(spend_levels, dict):
        unknown = [k for k in spend_levels if k not in channels]
        if unknown:
            raise ValueError(f"spend_levels: unknown channel(s) {unknown}; channels are {channels}")
        cols = {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in spend_levels.items()}
        n = {len(v) for v in cols.values()} or {1}
        if len(n) > 1:
            raise ValueError("spend_levels: give every channel the same number of levels")
        n = n.pop()
        out = np.repeat(default[None, :], n, axis=0)
        for k, v in cols.items():
            out[:, channels.index(k)] = v
    else:
        a = np.asarray(spend_levels, dtype=float)
        if a.ndim <= 1:
            out = np.repeat(np.atleast_1d(a)[:, None], C, axis=1)
        elif a.ndim == 2 and a.shape[1] == C:
            out = a
        else:
            raise ValueError(f"spend_levels: expected a number, a 1-d sequence or an (n, {C}) array, got {a.shape}")
    if not np.all(np.isfinite(out)) or np.any(out < 0):
        raise ValueError("spend_levels: weekly spend levels must be finite and >= 0")
    return out


def hdi_columns(x, prob: float = 0.94) -> tuple[np.ndarray, np.ndarray]:
    """Highest-density interval of each column of ``x`` (S, ...) over the first axis.

    The shortest interval spanning ``floor(prob * S) + 1`` sorted draws (ArviZ's ``hdi`` for
    unimodal posteriors, vectorised over columns).

    Returns
    -------
    lower, upper : arrays of shape ``x.shape[1:]``
    """
    if not 0 < prob < 1:
        raise ValueError(f"hdi_prob must be in (0, 1), got {prob!r}")
    x = np.sort(np.asarray(x, dtype=float), axis=0)
    n = x.shape[0]
    inc = int(np.floor(prob * n))
    if inc < 1 or inc >= n:
        return x[0], x[-1]
    width = x[inc:] - x[: n - inc]  # (n - inc, ...)
    with np.errstate(invalid="ignore"):
        width = np.where(np.isnan(width), np.inf, width)
    i = np.argmin(width, axis=0)
    lo = np.take_along_axis(x, i[None], axis=0)[0]
    hi = np.take_along_axis(x, (i + inc)[None], axis=0)[0]
    return lo, hi


def marginal_table(labels: list[dict], levels, marginal, hdi_prob: float, *, inverse: bool = False) -> pd.DataFrame:
    """Marginal ROAS (or, ``inverse``, marginal CAC) per level and column, with HDIs.

    Parameters
    ----------
    labels : list over the K columns of ``{label: value}`` (e.g. ``{"channel": "tv"}``)
    levels : (n, K) weekly spend of each column at each level (original currency)
    marginal : (n, S, K) marginal ROAS draws (:func:`marginal_responses`)

    Returns
    -------
    DataFrame, one row per (level, column): the labels, ``weekly_spend``, ``mean``, ``median``
    and the HDI bounds ``hdi_<lo>%`` / ``hdi_<hi>%``.
    """
    vals = np.moveaxis(np.asarray(marginal, dtype=float), 1, 0)  # (S, n, K)
    if inverse:
        with np.errstate(divide="ignore"):
            vals = 1.0 / vals
    lo, hi = hdi_columns(vals, hdi_prob)
    q = (1 - hdi_prob) / 2
    mean, median = vals.mean(axis=0), np.median(vals, axis=0)
    rows = [{**lab, "weekly_spend": levels[i, j], "mean": mean[i, j], "median": median[i, j],
             f"hdi_{q:.0%}": lo[i, j], f"hdi_{1 - q:.0%}": hi[i, j]}
            for i in range(levels.shape[0]) for j, lab in enumerate(labels)]
    return pd.DataFrame(rows)


def curve_frame(weekly, response, marginal, horizon: int, hdi_prob: float, current: float) -> pd.DataFrame:
    """One response curve as a table.

    Parameters
    ----------
    weekly : (n,) weekly spend levels; response, marginal : (n, S) draws at those levels
    current : the current weekly spend (stored in ``attrs["current_weekly_spend"]``)

    Returns
    -------
    DataFrame with ``weekly_spend``, ``total_spend`` (``weekly_spend x horizon``), ``mean``,
    ``lower``, ``upper`` (HDI of the response), ``roas_mean`` and ``mroas_mean``.
    """
    weekly = np.asarray(weekly, dtype=float)
    response = np.asarray(response, dtype=float)
    lo, hi = hdi_columns(response.T, hdi_prob)
    total = weekly * horizon
    mean = response.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        roas = np.where(total > 0, mean / np.where(total > 0, total, 1.0), np.nan)
    df = pd.DataFrame({"weekly_spend": weekly, "total_spend": total, "mean": mean, "lower": lo, "upper": hi,
                       "roas_mean": roas, "mroas_mean": np.asarray(marginal, dtype=float).mean(axis=1)})
    df.attrs.update({"current_weekly_spend": float(current), "horizon": int(horizon), "hdi_prob": float(hdi_prob)})
    return df
