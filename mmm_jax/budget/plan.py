"""The user-facing budget planner on a fitted :class:`mmm_jax.MMM`.

>>> plan = optimize_budget(mmm, total=1_000_000, horizon=13, objective="cvar", alpha=0.1)  # doctest: +SKIP
>>> plan.table          # current vs optimal spend per channel, change in %, ROAS   # doctest: +SKIP
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .optimize import OBJECTIVES, BudgetProblem, minimum_budget, optimize_allocation
from .response import plan_contributions, response_params_from_mmm

__all__ = [
    "BudgetError",
    "ExtrapolationWarning",
    "BudgetPlan",
    "build_problem",
    "allocation_bounds",
    "check_risk",
    "optimize_budget",
    "minimum_budget_plan",
]


class BudgetError(ValueError):
    """An impossible budget request (bounds that cannot meet the total, unknown channel, ...)."""


class ExtrapolationWarning(UserWarning):
    """The plan spends beyond what the model has seen: the response there is extrapolated."""


_jit_minimum_budget = jax.jit(minimum_budget, static_argnames=("spec", "steps", "learning_rate", "n_bisect"))
#: ``optimize_allocation`` compiled once per (objective, spec, steps, learning_rate); shared by the
#: single-model planner here and the portfolio planner.
jit_optimize = jax.jit(optimize_allocation, static_argnames=("objective", "spec", "steps", "learning_rate"))


@dataclass
class BudgetPlan:
    """Result of :func:`optimize_budget`.

    Attributes
    ----------
    table : DataFrame indexed by channel: current and optimal spend over the horizon, change
        (%), expected contribution and ROAS of each, and an ``extrapolated`` flag.
    responses : dict with ``optimal`` and ``current`` response draws (S,), original units.
    summary : dict: expected response and 94% HDI for both, uplift mean / HDI / P(uplift > 0).
    settings : the request (total, horizon, objective, bounds, ...).
    """

    table: pd.DataFrame
    responses: dict[str, np.ndarray]
    summary: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    _problem: Any = field(default=None, repr=False)
    _meta: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_json(self) -> str:
        return json.dumps(
            {"table": json.loads(self.table.reset_index().to_json(orient="records")),
             "summary": self.summary, "settings": self.settings},
            indent=2, default=float,
        )

    def plot(self, path=None):
        """Allocation before/after and the response distributions."""
        import matplotlib

        if not matplotlib.get_backend().lower().startswith(("agg", "module")):
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
        idx = np.arange(len(self.table))
        a1.barh(idx + 0.2, self.table["current_spend"], height=0.4, label="current")
        a1.barh(idx - 0.2, self.table["optimal_spend"], height=0.4, label="optimal")
        a1.set_yticks(idx, self.table.index)
        a1.set_xlabel("spend over the horizon")
        a1.legend()
        for name, r in self.responses.items():
            a2.hist(r, bins=50, alpha=0.6, label=name, density=True)
        a2.set_xlabel("response over the horizon (incl. carry-over)")
        a2.legend()
        if path is not None:
            fig.savefig(path, dpi=110)
        return fig

    def response_curves(self, n_points: int = 40, hdi_prob: float = 0.9) -> dict[str, pd.DataFrame]:
        """Per channel: response over the horizon (incl. carry-over) as that channel's spend
        varies from 0 to 1.5x max(optimal, current, upper-bounded), the other channels held at
        the optimum. Columns: spend, mean, lower, upper (original units)."""
        p, meta = self._problem, self._meta
        x_opt = self.table["optimal_spend"].to_numpy()
        pattern = np.asarray(p.pattern)
        out = {}
        for i, ch in enumerate(self.table.index):
            top = 1.5 * max(x_opt[i], self.table["current_spend"].iloc[i], 1e-9)
            grid = np.linspace(0.0, top, n_points)
            allocs = np.repeat(x_opt[None, :], n_points, axis=0)
            allocs[:, i] = grid
            fn = jax.vmap(lambda a: plan_contributions(jnp.asarray(pattern) * a[None, :], p.params,
                                                       meta["spec"])[:, :, i].sum(axis=1))
            r = np.asarray(fn(jnp.asarray(allocs)))  # (n_points, S)
            lo, hi = np.quantile(r, [(1 - hdi_prob) / 2, 1 - (1 - hdi_prob) / 2], axis=1)
            out[ch] = pd.DataFrame({"spend": grid, "mean": r.mean(1), "lower": lo, "upper": hi})
        return out

    def plot_response_curves(self, path=None, hdi_prob: float = 0.9):
        """Response curve of each channel with its band, the current and the optimal points."""
        import matplotlib

        if not matplotlib.get_backend().lower().startswith(("agg", "module")):
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        curves = self.response_curves(hdi_prob=hdi_prob)
        n = len(curves)
        cols = min(3, n)
        rows = -(-n // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.4 * rows), squeeze=False, constrained_layout=True)
        for ax, (ch, df) in zip(axes.ravel(), curves.items(), strict=False):
            ax.fill_between(df["spend"], df["lower"], df["upper"], alpha=0.25, label=f"{hdi_prob:.0%} interval")
            ax.plot(df["spend"], df["mean"], label="expected response")
            for col, marker, label in (("current_spend", "o", "current"), ("optimal_spend", "*", "optimal")):
                xs = self.table.loc[ch, col]
                ax.plot([xs], [np.interp(xs, df["spend"], df["mean"])], marker, ms=10, label=label)
            if self.table.loc[ch, "extrapolated"]:
                ax.set_title(f"{ch} (extrapolated)", color="C3")
            else:
                ax.set_title(ch)
            ax.set_xlabel("spend over the horizon")
        for ax in axes.ravel()[n:]:
            ax.set_visible(False)
        axes.ravel()[0].legend(fontsize=7)
        if path is not None:
            fig.savefig(path, dpi=110)
        return fig


def _hdi(x, prob=0.94):
    from ..compat import hdi_array

    lo, hi = hdi_array(x, prob)
    return float(lo), float(hi)


def build_problem(
    mmm,
    total: float,
    horizon: int,
    *,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    bounds_pct: float | None = None,
    locked: Mapping[str, float] | None = None,
    max_history_multiple: float | None = None,
    risk_aversion: float = 1.0,
    alpha: float = 0.1,
    min_mroas: float = 0.0,
    max_draws: int | None = None,
    seed: int = 0,
):
    """Turn a request into a :class:`BudgetProblem` plus the current allocation and metadata.

    Bounds are totals per channel over the horizon (original currency). ``bounds_pct=0.2``
    allows +-20% around the current allocation; ``locked`` fixes channels at a value;
    ``max_history_multiple=k`` caps each channel's weekly spend at k x its historical max.
    """
    check_risk(alpha=alpha, risk_aversion=risk_aversion, min_mroas=min_mroas)
    channels = list(mmm.config.channels)
    lo, hi, current = allocation_bounds(channels, mmm.data.spend, total, horizon, bounds=bounds,
                                        bounds_pct=bounds_pct, locked=locked,
                                        max_history_multiple=max_history_multiple)
    params, static = response_params_from_mmm(mmm, max_draws=max_draws, seed=seed)
    C = len(channels)
    hist_max = mmm.data.spend.max(0)
    problem = BudgetProblem(
        params=params,
        lo=jnp.asarray(lo),
        hi=jnp.asarray(hi),
        total=jnp.asarray(float(total)),
        pattern=jnp.full((int(horizon), C), 1.0 / horizon),
        risk_aversion=jnp.asarray(float(risk_aversion)),
        alpha=jnp.asarray(float(alpha)),
        min_mroas=jnp.asarray(float(min_mroas)),
    )
    meta = {"channels": channels, "current": current, "hist_max_week": hist_max, **static}
    return problem, meta


def check_risk(*, alpha: float = 0.1, risk_aversion: float = 1.0, min_mroas: float | None = 0.0) -> None:
    """Raise :class:`BudgetError` unless CVaR ``alpha`` is in (0, 1], ``risk_aversion`` is finite and
    >= 0 and ``min_mroas`` (when given) is finite."""
    if not (np.isfinite(alpha) and 0.0 < alpha <= 1.0):
        raise BudgetError(f"alpha (the CVaR tail fraction) must be in (0, 1], got {alpha!r}")
    if not (np.isfinite(risk_aversion) and risk_aversion >= 0):
        raise BudgetError(f"risk_aversion must be a finite number >= 0, got {risk_aversion!r}")
    if min_mroas is not None and not np.isfinite(min_mroas):
        raise BudgetError(f"min_mroas must be finite, got {min_mroas!r}")


def allocation_bounds(units, spend, total, horizon, *, bounds=None, bounds_pct=None, locked=None,
                      max_history_multiple=None):
    """Per-unit bounds over the horizon and the current allocation.

    Parameters
    ----------
    units : list of hashable labels (channels, or (market, channel) pairs), length U
    spend : (T, U) spend history (original currency)
    total, horizon : budget over the horizon and its length in weeks
    bounds, bounds_pct, locked, max_history_multiple : see :func:`build_problem`

    Returns ``lo, hi, current`` (U,) each; ``current`` splits ``total`` as in the last
    ``horizon`` weeks. Raises :class:`BudgetError` for unknown units or impossible bounds.
    """
    if not np.isfinite(total) or total < 0:
        raise BudgetError(f"total budget must be a finite number >= 0, got {total!r}")
    if int(horizon) != horizon or horizon < 1:
        raise BudgetError(f"horizon must be a positive number of weeks, got {horizon!r}")
    keys = {u: i for i, u in enumerate(units)}
    U = len(units)
    kind = "channel" if all(isinstance(u, str) for u in units) else "(market, channel)"
    for name, mapping in (("bounds", bounds or {}), ("locked", locked or {})):
        unknown = [k for k in mapping if (k if isinstance(k, str) else tuple(k)) not in keys]
        if unknown:
            raise BudgetError(f"{name}: unknown {kind}(s) {unknown[:5]}; they are {list(units)[:10]}")
    spend = np.asarray(spend, dtype=float)
    recent = spend[-int(horizon):].sum(0)
    current = total * (recent / recent.sum() if recent.sum() > 0 else np.full(U, 1.0 / U))
    lo, hi = np.zeros(U), np.full(U, float(total))
    if bounds_pct is not None:
        if not (np.isfinite(bounds_pct) and bounds_pct >= 0):
            raise BudgetError(f"bounds_pct must be a finite number >= 0, got {bounds_pct}")
        lo, hi = current * (1 - bounds_pct), current * (1 + bounds_pct)
    for k, (a, b) in (bounds or {}).items():
        if not (np.isfinite(a) and np.isfinite(b)) or a > b or a < 0:
            raise BudgetError(f"bounds[{k!r}] = ({a}, {b}): need finite 0 <= lower <= upper")
        i = keys[k if isinstance(k, str) else tuple(k)]
        lo[i], hi[i] = a, b
    if max_history_multiple is not None:
        if not (np.isfinite(max_history_multiple) and max_history_multiple > 0):
            raise BudgetError(f"max_history_multiple must be a finite number > 0, got {max_history_multiple}")
        hi = np.minimum(hi, max_history_multiple * spend.max(0) * horizon)
    for k, v in (locked or {}).items():
        if not np.isfinite(v) or v < 0:
            raise BudgetError(f"locked[{k!r}] = {v}: spend must be a finite number >= 0")
        i = keys[k if isinstance(k, str) else tuple(k)]
        lo[i] = hi[i] = v
    lo = np.minimum(lo, hi)
    if lo.sum() > total * (1 + 1e-12):
        raise BudgetError(f"the lower bounds sum to {lo.sum():,.2f}, more than the total {total:,.2f}")
    if hi.sum() < total * (1 - 1e-12):
        raise BudgetError(
            f"the upper bounds sum to {hi.sum():,.2f}, less than the total {total:,.2f} "
            "(raise the bounds or max_history_multiple, or lower the total)"
        )
    return lo, hi, current


def optimize_budget(
    mmm,
    total: float,
    horizon: int = 13,
    *,
    objective: str = "mean",
    bounds: Mapping[str, tuple[float, float]] | None = None,
    bounds_pct: float | None = None,
    locked: Mapping[str, float] | None = None,
    max_history_multiple: float | None = None,
    risk_aversion: float = 1.0,
    alpha: float = 0.1,
    min_mroas: float | None = None,
    max_draws: int | None = 2000,
    steps: int = 300,
    learning_rate: float = 0.02,
    seed: int = 0,
) -> BudgetPlan:
    """Optimise next period's split of ``total`` across the channels of a fitted model.

    Parameters
    ----------
    total : budget over the horizon (original currency).
    horizon : weeks; spend is flat within the horizon; carry-over from past spend is counted
        in the starting point and the plan's own carry-over after the horizon is credited.
    objective : "mean", "mean_sd" (``risk_aversion``), "cvar" (``alpha``), or "mroas"
        (spend only while the expected marginal ROAS >= ``min_mroas``; ``total`` is a cap).
    bounds, bounds_pct, locked, max_history_multiple : constraints (see :func:`build_problem`).
    max_draws : posterior draws used (random subset; all if None).
    """
    if objective not in OBJECTIVES:
        raise BudgetError(f"objective {objective!r} is not available; allowed: {list(OBJECTIVES)}")
    if objective == "mroas" and min_mroas is None:
        raise BudgetError("objective 'mroas' needs min_mroas (e.g. 1.0 for break-even on revenue)")
    problem, meta = build_problem(
        mmm, total, horizon, bounds=bounds, bounds_pct=bounds_pct, locked=locked,
        max_history_multiple=max_history_multiple, risk_aversion=risk_aversion, alpha=alpha,
        min_mroas=min_mroas or 0.0, max_draws=max_draws, seed=seed,
    )
    res = jit_optimize(problem, objective=objective, spec=meta["spec"], steps=steps, learning_rate=learning_rate)
    settings = {
        "total": float(total), "horizon": int(horizon), "objective": objective, "bounds": dict(bounds or {}),
        "bounds_pct": bounds_pct, "locked": dict(locked or {}), "max_history_multiple": max_history_multiple,
        "risk_aversion": risk_aversion, "alpha": alpha, "min_mroas": min_mroas, "steps": steps,
        "learning_rate": learning_rate, "max_draws": max_draws, "seed": seed,
    }
    return make_plan(problem, meta, np.asarray(res.x), float(res.value), objective, settings)


def make_plan(problem: BudgetProblem, meta: dict, x: np.ndarray, value: float, objective: str,
              settings: dict) -> BudgetPlan:
    """Tables, response draws and summary for allocation ``x`` (shape ``(C,)``, currency per week).

    ``meta`` is the dict ``build_problem`` returns (channels, current weekly spend, hist_max_week, spec);
    ``value`` the objective at ``x``; ``settings`` the request, recorded on the plan.
    """
    total = float(problem.total)
    horizon = int(problem.pattern.shape[0])
    cur = meta["current"]
    pattern = np.asarray(problem.pattern)

    def contribs(alloc):
        c = plan_contributions(jnp.asarray(pattern * alloc[None, :]), problem.params, meta["spec"])
        return np.asarray(c.sum(axis=1))  # (S, C)

    c_opt, c_cur = contribs(x), contribs(cur)
    r_opt, r_cur = c_opt.sum(1), c_cur.sum(1)
    weekly = x / horizon
    extrap = weekly > meta["hist_max_week"] * (1 + 1e-9)
    channels = meta["channels"]
    with np.errstate(divide="ignore", invalid="ignore"):
        table = pd.DataFrame(
            {
                "current_spend": cur,
                "optimal_spend": x,
                "change_pct": np.where(cur > 0, 100 * (x - cur) / cur, np.nan),
                "current_contribution": c_cur.mean(0),
                "optimal_contribution": c_opt.mean(0),
                "current_roas": np.where(cur > 0, c_cur.mean(0) / cur, np.nan),
                "optimal_roas": np.where(x > 0, c_opt.mean(0) / x, np.nan),
                "lower_bound": np.asarray(problem.lo),
                "upper_bound": np.asarray(problem.hi),
                "extrapolated": extrap,
            },
            index=pd.Index(channels, name="channel"),
        )
    if extrap.any():
        names = [c for c, e in zip(channels, extrap, strict=True) if e]
        warnings.warn(
            f"the plan spends more per week than ever seen on {names}; the response there is "
            "extrapolated from the fitted curve (cap it with max_history_multiple=...)",
            ExtrapolationWarning,
            stacklevel=3,
        )
    uplift = r_opt - r_cur
    summary = {
        "objective": objective,
        "objective_value": value,
        "total": float(total),
        "spent": float(x.sum()),
        "expected_response": float(r_opt.mean()),
        "response_hdi_94": _hdi(r_opt),
        "current_expected_response": float(r_cur.mean()),
        "current_response_hdi_94": _hdi(r_cur),
        "uplift_mean": float(uplift.mean()),
        "uplift_hdi_94": _hdi(uplift),
        "p_uplift_positive": float(np.mean(uplift > 0)),
        "roas": float(r_opt.mean() / x.sum()) if x.sum() > 0 else float("nan"),
        "draws": int(r_opt.shape[0]),
    }
    return BudgetPlan(table=table, responses={"optimal": r_opt, "current": r_cur}, summary=summary, settings=settings,
                      _problem=problem, _meta=meta)


def minimum_budget_plan(
    mmm,
    target_response: float,
    horizon: int = 13,
    *,
    max_total: float,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    locked: Mapping[str, float] | None = None,
    max_history_multiple: float | None = None,
    max_draws: int | None = 2000,
    steps: int = 300,
    seed: int = 0,
) -> BudgetPlan:
    """The smallest budget (up to ``max_total``) whose best split reaches an expected response of
    ``target_response`` over the horizon (incl. carry-over), and that split.

    Raises :class:`BudgetError` when even ``max_total`` cannot reach the target.
    """
    problem, meta = build_problem(mmm, max_total, horizon, bounds=bounds, locked=locked,
                                  max_history_multiple=max_history_multiple, max_draws=max_draws, seed=seed)
    total, res, ok = _jit_minimum_budget(problem, float(target_response), spec=meta["spec"], steps=steps)
    if not bool(ok):
        raise BudgetError(
            f"even the maximum budget {max_total:,.2f} reaches an expected response of only "
            f"{float(np.mean(np.asarray(res.responses))):,.2f} < target {target_response:,.2f}"
        )
    problem = problem._replace(total=total)
    meta = {**meta, "current": meta["current"] * float(total) / float(max_total)}
    settings = {"target_response": float(target_response), "max_total": float(max_total), "horizon": int(horizon),
                "bounds": dict(bounds or {}), "locked": dict(locked or {}),
                "max_history_multiple": max_history_multiple, "max_draws": max_draws, "seed": seed}
    return make_plan(problem, meta, np.asarray(res.x), float(res.value), "min_spend", settings)
