"""One budget over many markets x channels, and week-by-week flighting.

**Portfolio.** A batch of independent fits (``fit_many``), a ``{name: MMM}`` mapping, or a
:class:`~mmm_jax.hierarchical.HierarchicalMMM` becomes one allocation problem whose decision is
the spend of every (market, channel) *unit* over the horizon, under ONE total. Units are just
channels of a bigger brand: their adstock weights are padded to a common window, their
saturation parameters are rescaled to original units (so one target scale of 1 serves all), and
the existing optimiser (projected Adam, exact projection) runs unchanged. Draw ``s`` of every
independent fit is paired with draw ``s`` of the others (their posteriors are independent, so
the pairs are draws of the joint posterior); a hierarchical fit's draws are joint already.
National channels of a hierarchical model are one purchase for all markets and are left out of
the per-market split (they keep their current spend).

**Flighting.** :func:`optimize_flighting` optimises the weekly plan (H, C) itself instead of a
flat split: the same objectives, the response recomputed through the adstock each step, a
total over the horizon, per-week caps, and locked channels.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..media.adstock import adstock_weights_jax
from .optimize import OBJECTIVES, BudgetProblem, objective_value, projected_adam
from .plan import BudgetError, BudgetPlan, allocation_bounds, check_risk, jit_optimize, make_plan
from .projection import project_budget
from .response import (
    RECENT_MULTIPLIER_WEEKS,
    ResponseParams,
    ResponseSpec,
    plan_contributions,
    recent_parameter,
    response_params_from_mmm,
    response_window,
)

__all__ = ["hierarchical_units", "portfolio_units", "left_out_brands", "optimize_portfolio", "optimize_flighting", "FlightPlan", "rescale_saturation"]


def rescale_saturation(kind: str, sat: Mapping, k):
    """Saturation parameters whose response is ``k`` times the original (``k`` broadcasts)."""
    sat = dict(sat)
    if kind == "tanh":  # S tanh(x / (S cac0)) * k == (k S) tanh(x / ((k S)(cac0 / k)))
        sat["sat_level"] = sat["sat_level"] * k
        sat["cac0"] = sat["cac0"] / k
    else:  # beta * f(x)
        sat["beta"] = sat["beta"] * k
    return sat


def _pad_params(p: ResponseParams, L: int) -> ResponseParams:
    """Weights padded with zero lags to ``L``; history padded with zero weeks in front."""
    w = p.weights
    if w.shape[-1] < L:
        w = jnp.concatenate([w, jnp.zeros((*w.shape[:-1], L - w.shape[-1]), w.dtype)], axis=-1)
    n_hist = max(L - 1, 1)
    h = p.history
    if h.shape[0] < n_hist:
        h = jnp.concatenate([jnp.zeros((n_hist - h.shape[0], h.shape[1]), h.dtype), h])
    return p._replace(weights=w, history=h)


def _units_from_mmms(fits: Mapping[str, Any], max_draws: int | None, seed: int):
    params, labels, spend, spec = [], [], [], None
    sizes = []
    for name, mmm in fits.items():
        p, static = response_params_from_mmm(mmm)
        sizes.append(p.weights.shape[0])
        if spec is not None and static["spec"] != spec:
            raise BudgetError(f"{name}: saturation family/order {static['spec']} differs from {spec}; "
                              "a portfolio needs one model family")
        spec = static["spec"]
        params.append(p)
        labels += [(name, c) for c in static["channels"]]
        spend.append(np.asarray(mmm.data.spend, float))
    S = min(sizes) if max_draws is None else min(min(sizes), int(max_draws))
    rng = np.random.default_rng(seed)
    picked = []
    for p in params:
        idx = np.sort(rng.choice(p.weights.shape[0], size=S, replace=False))
        picked.append(p._replace(weights=p.weights[idx], sat={k: v[idx] for k, v in p.sat.items()}))
    return picked, labels, spend, spec


def hierarchical_units(h, max_draws: int | None = None, seed: int = 0, *, national: bool = False,
                       recent_weeks: int | None = None):
    """Per-market :class:`ResponseParams` of a fitted HierarchicalMMM, original units.

    Parameters
    ----------
    h : fitted :class:`~mmm_jax.hierarchical.HierarchicalMMM`
    max_draws : int, optional, random subset of the draws (the same subset for every market)
    national : bool
        Also the national channels, one unit per market (each market sees the national spend
        itself, not a share of it); by default the local channels only (a plan buys those per
        market).
    recent_weeks : int, optional
        Time-varying media: weeks whose average multiplier the plan uses (default
        :data:`~mmm_jax.budget.response.RECENT_MULTIPLIER_WEEKS`; as for one brand).

    Returns
    -------
    params : list over markets of ResponseParams (S draws, the market's channels)
    labels : list of (market, channel), market-major
    spend : list over markets of (T, C_unit) spend histories
    spec : ResponseSpec
    """
    cfg, post = h.config, h.idata.posterior
    b = cfg.base
    channels = [*cfg.local_channels, *(cfg.national_channels if national else ())]
    n_c = len(channels)
    S = post.sizes["chain"] * post.sizes["draw"]
    idx = np.arange(S)
    if max_draws is not None and max_draws < S:
        idx = np.sort(np.random.default_rng(seed).choice(S, size=max_draws, replace=False))

    def flat(name):  # (S, G, C_unit)
        da = post[name]
        v = np.asarray(da.values).reshape(S, *da.shape[2:])[idx]
        if "market" not in da.dims:
            v = np.broadcast_to(v[:, None], (len(idx), h.panel.n_markets, *v.shape[1:]))
        return v[..., :n_c]

    sat_draws = {n: flat(n) for n in b.saturation.param_names}
    tv = b.time_varying_media
    if tv is not None:  # the varying parameter times the recent multiplier (the same in every market)
        p = tv.varying_param(b.saturation)
        weeks = RECENT_MULTIPLIER_WEEKS if recent_weeks is None else int(recent_weeks)
        mult = np.asarray(post["media_multiplier"].transpose("chain", "draw", "date", "channel").values)
        mult = mult.reshape(S, *mult.shape[2:])[idx][..., :n_c]
        sat_draws[p] = sat_draws[p] * recent_parameter(mult, h.panel.observed.any(axis=0), weeks)[:, None, :]
    L = response_window(b.adstock, len(h.panel.dates))
    col = [b.channels.index(c) for c in channels]
    params, labels, spend = [], [], []
    n_hist = max(L - 1, 1)
    for g, m in enumerate(h.panel.markets):
        ad_p = {n: jnp.asarray(flat(n)[:, g]) for n in b.adstock.param_names}
        params.append(ResponseParams(
            weights=jnp.asarray(adstock_weights_jax(b.adstock, ad_p, n_lags=L)),
            sat={n: jnp.asarray(v[:, g]) for n, v in sat_draws.items()},
            spend_scale=jnp.asarray(h.scaling.spend_scale[g, col]),
            target_scale=jnp.asarray(float(h.scaling.target_scale[g])),
            history=jnp.asarray(h.panel.spend[g][-n_hist:, col]),
        ))
        labels += [(m, c) for c in channels]
        spend.append(h.panel.spend[g][:, col])
    spec = ResponseSpec(saturation=b.saturation.type, adstock_first=bool(b.adstock_first))
    return params, labels, spend, spec


def portfolio_units(source, max_draws: int | None = 2000, seed: int = 0, *, national: bool = False,
                    recent_weeks: int | None = None):
    """All (market, channel) units of ``source`` as ONE :class:`ResponseParams` (original units).

    Parameters
    ----------
    source : ``{name: MMM}``, a ``fit_many`` output directory or :class:`~mmm_jax.batch.BatchResult`
        (its finished brands), or a fitted :class:`~mmm_jax.hierarchical.HierarchicalMMM`.
    national : bool
        HierarchicalMMM: also its national channels, one unit per market (for response curves;
        an allocation over those units would buy the channel once per market).
    recent_weeks : int, optional
        HierarchicalMMM with time-varying media: see :func:`hierarchical_units`.

    Returns
    -------
    params : ResponseParams with C = number of units (``target_scale`` 1)
    labels : list of (market, channel)
    spend : (T_max, C) each unit's spend history, aligned at the last week (zeros before a
        market's first week)
    spec : ResponseSpec
    """
    from ..api.markets import HierarchicalMMM

    if isinstance(source, HierarchicalMMM):
        params, labels, spend, spec = hierarchical_units(source, max_draws, seed, national=national,
                                                          recent_weeks=recent_weeks)
    else:
        if not isinstance(source, Mapping):
            from ..batch import BatchResult, load_brand, read_manifest

            out = source.out if isinstance(source, BatchResult) else source
            m = read_manifest(out)
            done = m[m["status"] == "done"]["brand"].tolist()
            if not done:
                raise BudgetError(f"{out}: no finished brands to allocate over")
            failed = m[m["status"] != "done"]["brand"].tolist()
            if failed:
                warnings.warn(f"{out}: {len(failed)} brand(s) failed to fit and are left out of the plan: "
                              f"{', '.join(failed[:10])}{' ...' if len(failed) > 10 else ''}", RuntimeWarning,
                              stacklevel=3)
            source = {b: load_brand(out, b) for b in done}
        params, labels, spend, spec = _units_from_mmms(source, max_draws, seed)
    L = max(p.weights.shape[-1] for p in params)
    params = [_pad_params(p, L) for p in params]
    sat_kind = spec.saturation
    merged = ResponseParams(
        weights=jnp.concatenate([p.weights for p in params], axis=1),
        sat={k: jnp.concatenate([rescale_saturation(sat_kind, p.sat, p.target_scale)[k] for p in params], axis=1)
             for k in params[0].sat},
        spend_scale=jnp.concatenate([p.spend_scale for p in params]),
        target_scale=jnp.asarray(1.0),
        history=jnp.concatenate([p.history for p in params], axis=1),
    )
    T = max(s.shape[0] for s in spend)
    hist = np.concatenate([np.vstack([np.zeros((T - s.shape[0], s.shape[1])), s]) for s in spend], axis=1)
    return merged, labels, hist, spec


def left_out_brands(source) -> list[str]:
    """Brands of a batch output folder (path or ``BatchResult``) that failed to fit, so that a
    plan over the folder does not include them; [] for other sources."""
    from ..batch import BatchResult, read_manifest

    if isinstance(source, BatchResult):
        source = source.out
    if not isinstance(source, str | os.PathLike):
        return []
    m = read_manifest(source)
    return m[m["status"] != "done"]["brand"].tolist()


def optimize_portfolio(
    source,
    total: float,
    horizon: int = 13,
    *,
    objective: str = "mean",
    bounds: Mapping[tuple[str, str], tuple[float, float]] | None = None,
    bounds_pct: float | None = None,
    locked: Mapping[tuple[str, str], float] | None = None,
    max_history_multiple: float | None = None,
    risk_aversion: float = 1.0,
    alpha: float = 0.1,
    min_mroas: float | None = None,
    max_draws: int | None = 1000,
    steps: int = 400,
    learning_rate: float = 0.02,
    seed: int = 0,
) -> BudgetPlan:
    """Split ONE ``total`` over every market x channel of ``source`` (see :func:`portfolio_units`).

    Constraints are keyed by ``(market, channel)``; the plan's table is indexed the same way
    (``plan.table.loc[("m07", "tv")]``; per market: ``plan.table.groupby(level="market").sum()``).
    Objectives as in :func:`mmm_jax.budget.optimize_budget`.
    """
    if objective not in OBJECTIVES:
        raise BudgetError(f"objective {objective!r} is not available; allowed: {list(OBJECTIVES)}")
    if objective == "mroas" and min_mroas is None:
        raise BudgetError("objective 'mroas' needs min_mroas")
    if not np.isfinite(total) or total < 0:
        raise BudgetError(f"total budget must be a finite number >= 0, got {total!r}")
    check_risk(alpha=alpha, risk_aversion=risk_aversion, min_mroas=min_mroas)
    params, labels, hist, spec = portfolio_units(source, max_draws=max_draws, seed=seed)
    lo, hi, current = allocation_bounds(labels, hist, total, horizon, bounds=bounds, bounds_pct=bounds_pct,
                                        locked=locked, max_history_multiple=max_history_multiple)
    U = len(labels)
    problem = BudgetProblem(params=params, lo=jnp.asarray(lo), hi=jnp.asarray(hi), total=jnp.asarray(float(total)),
                            pattern=jnp.full((int(horizon), U), 1.0 / horizon),
                            risk_aversion=jnp.asarray(float(risk_aversion)), alpha=jnp.asarray(float(alpha)),
                            min_mroas=jnp.asarray(float(min_mroas or 0.0)))
    res = jit_optimize(problem, objective=objective, spec=spec, steps=steps, learning_rate=learning_rate)
    meta = {"channels": [f"{m}/{c}" for m, c in labels], "current": current, "hist_max_week": hist.max(0),
            "spec": spec, "l_max": int(params.weights.shape[-1])}
    settings = {"total": float(total), "horizon": int(horizon), "objective": objective, "units": len(labels),
                "bounds_pct": bounds_pct, "max_history_multiple": max_history_multiple, "alpha": alpha,
                "risk_aversion": risk_aversion, "min_mroas": min_mroas, "steps": steps, "max_draws": max_draws,
                "seed": seed, "locked": {f"{k[0]}/{k[1]}": v for k, v in (locked or {}).items()},
                "bounds": {f"{k[0]}/{k[1]}": v for k, v in (bounds or {}).items()},
                "left_out": left_out_brands(source)}
    plan = make_plan(problem, meta, np.asarray(res.x), float(res.value), objective, settings)
    plan.table.index = pd.MultiIndex.from_tuples(labels, names=["market", "channel"])
    return plan


# --------------------------------------------------------------------------- flighting
def optimize_flighting(
    mmm,
    total: float,
    horizon: int = 13,
    *,
    objective: str = "mean",
    max_weekly: Mapping[str, float] | None = None,
    max_history_multiple: float | None = None,
    locked: Mapping[str, float] | None = None,
    risk_aversion: float = 1.0,
    alpha: float = 0.1,
    max_draws: int | None = 1000,
    steps: int = 400,
    learning_rate: float = 0.02,
    seed: int = 0,
):
    """Optimise the weekly plan (horizon x channel) of a fitted :class:`mmm_jax.MMM`.

    Unlike :func:`~mmm_jax.budget.optimize_budget` (a flat weekly split), every week's spend is
    a decision, so the plan can pulse (concentrate spend where carry-over and saturation make it
    pay). Constraints: the total over the horizon (exact), per-week caps per channel
    (``max_weekly`` in currency, or ``max_history_multiple`` x the channel's historical weekly
    max), and ``locked`` channels (their total spread flat).

    Returns
    -------
    dict with ``plan`` (DataFrame week x channel), ``responses`` (S,) draws at the optimum,
    ``flat`` (S,) draws of the best flat plan with the same channel totals, ``summary``.
    """
    if objective not in ("mean", "mean_sd", "cvar"):
        raise BudgetError(f"flighting supports objectives mean, mean_sd, cvar; got {objective!r}")
    if not np.isfinite(total) or total < 0:
        raise BudgetError(f"total budget must be a finite number >= 0, got {total!r}")
    check_risk(alpha=alpha, risk_aversion=risk_aversion)
    H = int(horizon)
    if H != horizon or H < 1:
        raise BudgetError(f"horizon must be a positive number of weeks, got {horizon!r}")
    params, static = response_params_from_mmm(mmm, max_draws=max_draws, seed=seed)
    spec, channels = static["spec"], static["channels"]
    C = len(channels)
    for name, mapping in (("max_weekly", max_weekly or {}), ("locked", locked or {})):
        unknown = [k for k in mapping if k not in channels]
        if unknown:
            raise BudgetError(f"{name}: unknown channel(s) {unknown}; channels are {channels}")
    cap = np.full(C, float(total))
    if max_history_multiple is not None:
        cap = np.minimum(cap, max_history_multiple * mmm.data.spend.max(0))
    for k, v in (max_weekly or {}).items():
        cap[channels.index(k)] = min(cap[channels.index(k)], float(v))
    lo, hi = np.zeros((H, C)), np.broadcast_to(cap, (H, C)).copy()
    for k, v in (locked or {}).items():
        lo[:, channels.index(k)] = hi[:, channels.index(k)] = float(v) / H
    if lo.sum() > total * (1 + 1e-12) or hi.sum() < total * (1 - 1e-12):
        raise BudgetError(f"the weekly caps/locks allow totals between {lo.sum():,.2f} and {hi.sum():,.2f}; "
                          f"{total:,.2f} is outside")
    problem = BudgetProblem(params=params, lo=jnp.asarray(lo), hi=jnp.asarray(hi), total=jnp.asarray(float(total)),
                            pattern=jnp.full((H, C), 1.0 / H), risk_aversion=jnp.asarray(float(risk_aversion)),
                            alpha=jnp.asarray(float(alpha)), min_mroas=jnp.asarray(0.0))
    flat = jit_optimize(problem._replace(lo=jnp.asarray(lo.sum(0)), hi=jnp.asarray(hi.sum(0))),
                        objective=objective, spec=spec, steps=steps, learning_rate=learning_rate)
    X, value, r = _jit_flight(problem, jnp.asarray(np.broadcast_to(np.asarray(flat.x)[None, :] / H, (H, C))), objective=objective,
                              spec=spec, steps=steps, learning_rate=learning_rate)
    X = np.asarray(X)
    r_flat = np.asarray(flat.responses)
    r = np.asarray(r)
    weeks = pd.RangeIndex(1, H + 1, name="week")
    plan = pd.DataFrame(X, index=weeks, columns=pd.Index(channels, name="channel"))
    summary = {"objective": objective, "objective_value": float(value), "total": float(total),
               "spent": float(X.sum()), "expected_response": float(r.mean()),
               "flat_expected_response": float(r_flat.mean()),
               "gain_over_flat": float(r.mean() - r_flat.mean()),
               "p_gain_positive": float(np.mean(r - r_flat > 0)), "draws": int(r.shape[0])}
    return FlightPlan(plan, r, r_flat, np.asarray(flat.x), summary)


@dataclass
class FlightPlan:
    """Result of :func:`optimize_flighting`.

    Attributes
    ----------
    plan : DataFrame (week x channel) spend, original currency
    responses : (S,) response draws of the plan (incl. carry-over after the horizon)
    flat : (S,) response draws of the best flat plan (same objective, one split for all weeks)
    flat_totals : (C,) channel totals of that flat plan
    summary : dict (expected responses, gain over flat and P(gain > 0))
    """

    plan: pd.DataFrame
    responses: np.ndarray
    flat: np.ndarray
    flat_totals: np.ndarray
    summary: dict

    def to_json(self) -> str:
        return json.dumps({"plan": {c: self.plan[c].tolist() for c in self.plan.columns},
                           "summary": self.summary}, indent=2, default=float)

    def plot(self, path=None):
        """Weekly spend per channel (stacked) and the response distributions (flighted vs flat)."""
        import matplotlib

        if not matplotlib.get_backend().lower().startswith(("agg", "module")):
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
        self.plan.plot.bar(stacked=True, ax=a1, width=0.85)
        a1.set_ylabel("spend per week")
        a2.hist(self.responses, bins=50, alpha=0.6, density=True, label="flighted")
        a2.hist(self.flat, bins=50, alpha=0.6, density=True, label="flat")
        a2.set_xlabel("response over the horizon (incl. carry-over)")
        a2.legend()
        if path is not None:
            fig.savefig(path, dpi=110)
        return fig


def _flight(problem: BudgetProblem, X0, *, objective: str, spec: ResponseSpec, steps: int, learning_rate: float):
    """Projected Adam over the weekly plan ``X`` (H, C) (pure)."""
    scale = jnp.maximum(problem.total, 1e-12)

    def value_fn(u):
        X = u * scale
        r = jnp.sum(plan_contributions(X, problem.params, spec), axis=(1, 2))
        return objective_value(r, X, problem, objective), r

    def project_u(u):
        return project_budget(u * scale, problem.lo, problem.hi, problem.total) / scale

    best_u, value, r, _ = projected_adam(value_fn, project_u, project_u(X0 / scale), steps=steps,
                                         learning_rate=learning_rate, bounds=(problem.lo / scale, problem.hi / scale))
    return best_u * scale, value, r


_jit_flight = jax.jit(_flight, static_argnames=("objective", "spec", "steps", "learning_rate"))
