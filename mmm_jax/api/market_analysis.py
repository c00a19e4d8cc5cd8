"""Marginal ROAS / CAC and response curves of a fitted multi-market model, per market and nationally.

A **national weekly spend level** ``s_c`` of a local channel is split over the markets by their
current shares ``w_gc`` (each market's mean weekly spend on ``c`` over the last ``horizon``
weeks, over the national total; equal shares where the channel had no recent spend). A national
channel's level is the national spend itself, seen by every market (``w_gc = 1``). Market ``g``'s
response ``r_gc(w_gc s_c)`` is the single-brand response (:mod:`mmm_jax.budget.curves`: held for
``horizon`` weeks after the data, carry-over included, original units), with the market's own
posterior draws; then

* national response ``R_c(s_c) = sum_g r_gc(w_gc s_c)``;
* national marginal ROAS ``dR_c / d(s_c * horizon) = sum_g w_gc r'_gc`` (one more unit of
  currency spread over the markets as today), marginal CAC its inverse;
* market marginal ROAS ``r'_gc`` at the market's own level ``w_gc s_c``.

Draw ``k`` is the same joint posterior draw in every market, so sums over markets are draws of
the national quantity. Time-varying media use the recent multiplier
(:func:`mmm_jax.budget.portfolio.hierarchical_units`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..budget.curves import curve_frame, marginal_responses, marginal_table, spend_level_grid
from ..budget.portfolio import portfolio_units

__all__ = ["MarketUnits", "market_units", "unit_levels", "marginal_frame", "response_curve_frames"]

LEVELS = ("national", "market")


class MarketUnits(NamedTuple):
    """Every (market, channel) of a fitted multi-market model as one response problem.

    params : merged ResponseParams over U units (original units); labels : U (market, channel);
    channels : the C model channels; channel_of : (U,) index into ``channels``; share : (U,)
    ``w_gc``; current : (C,) current national weekly spend; spec : ResponseSpec.
    """

    params: object
    labels: list
    channels: list
    channel_of: np.ndarray
    share: np.ndarray
    current: np.ndarray
    spec: object


def market_units(h, horizon: int, max_draws: int | None, seed: int, recent_weeks: int | None = None) -> MarketUnits:
    """The units of ``h`` with their current shares (see the module docstring)."""
    if int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be a positive number of weeks, got {horizon!r}")
    params, labels, hist, spec = portfolio_units(h, max_draws=max_draws, seed=seed, national=True,
                                                 recent_weeks=recent_weeks)
    channels = list(h.channels)
    national = set(h.config.national_channels)
    channel_of = np.asarray([channels.index(c) for _, c in labels])
    unit_now = np.asarray(hist[-int(horizon):], dtype=float).mean(axis=0)  # (U,)
    share = np.ones(len(labels))
    current = np.zeros(len(channels))
    for j, c in enumerate(channels):
        u = np.flatnonzero(channel_of == j)
        if c in national:
            current[j] = unit_now[u].max()
            continue
        current[j] = unit_now[u].sum()
        share[u] = unit_now[u] / current[j] if current[j] > 0 else 1.0 / len(u)
    return MarketUnits(params, labels, channels, channel_of, share, current, spec)


def unit_levels(units: MarketUnits, national_levels: np.ndarray) -> np.ndarray:
    """(n, U) each unit's weekly spend for national levels (n, C)."""
    return np.asarray(national_levels, dtype=float)[:, units.channel_of] * units.share[None, :]


def _draws(units: MarketUnits, national_levels, horizon: int):
    fn = jax.jit(marginal_responses, static_argnames=("spec", "horizon"))
    r, dr = fn(jnp.asarray(unit_levels(units, national_levels)), units.params, spec=units.spec, horizon=int(horizon))
    return np.asarray(r), np.asarray(dr)  # (n, S, U)


def _national(units: MarketUnits, per_unit, weights=None):
    """(n, S, C) sums over each channel's markets of ``per_unit`` (n, S, U) (times ``weights``)."""
    x = per_unit if weights is None else per_unit * weights[None, None, :]
    out = np.zeros((*x.shape[:2], len(units.channels)))
    np.add.at(out, (slice(None), slice(None), units.channel_of), x)
    return out


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise ValueError(f"level must be one of {list(LEVELS)}, got {level!r}")


def marginal_frame(h, spend_levels, *, level: str, horizon: int, hdi_prob: float, max_draws: int | None,
                   seed: int, recent_weeks: int | None, inverse: bool) -> pd.DataFrame:
    """Marginal ROAS (``inverse``: CAC) table of :meth:`HierarchicalMMM.marginal_roas`."""
    _check_level(level)
    units = market_units(h, horizon, max_draws, seed, recent_weeks)
    levels = spend_level_grid(spend_levels, units.channels, units.current)  # (n, C) national weekly spend
    _, dr = _draws(units, levels, horizon)
    if level == "national":
        return marginal_table([{"channel": c} for c in units.channels], levels,
                              _national(units, dr, units.share), hdi_prob, inverse=inverse)
    return marginal_table([{"market": m, "channel": c} for m, c in units.labels], unit_levels(units, levels), dr,
                          hdi_prob, inverse=inverse)


def response_curve_frames(h, n_points: int, *, level: str, max_multiple: float, horizon: int, hdi_prob: float,
                          max_draws: int | None, seed: int, recent_weeks: int | None) -> dict:
    """Curves of :meth:`HierarchicalMMM.response_curves`: national weekly spend from 0 to
    ``max_multiple`` x the largest national weekly spend in the data, split by current shares."""
    _check_level(level)
    if n_points < 2:
        raise ValueError(f"n_points must be >= 2, got {n_points}")
    units = market_units(h, horizon, max_draws, seed, recent_weeks)
    loc = [h.config.base.channels.index(c) for c in h.config.local_channels]
    nat = [h.config.base.channels.index(c) for c in h.config.national_channels]
    spend = h.panel.spend  # (G, T, C) original units, config channel order
    top = np.concatenate([spend[:, :, loc].sum(axis=0).max(axis=0), spend[:, :, nat].max(axis=(0, 1))])
    levels = np.linspace(0.0, 1.0, n_points)[:, None] * (max_multiple * top)[None, :]
    r, dr = _draws(units, levels, horizon)
    if level == "national":
        R, dR = _national(units, r), _national(units, dr, units.share)
        return {c: curve_frame(levels[:, j], R[:, :, j], dR[:, :, j], horizon, hdi_prob, units.current[j])
                for j, c in enumerate(units.channels)}
    ul = unit_levels(units, levels)
    return {(m, c): curve_frame(ul[:, u], r[:, :, u], dr[:, :, u], horizon, hdi_prob,
                                units.current[units.channel_of[u]] * units.share[u])
            for u, (m, c) in enumerate(units.labels)}
