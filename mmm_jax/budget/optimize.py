"""Budget allocation by projected gradient ascent (optax) over posterior draws.

The decision is ``x`` (C,): spend per channel over the horizon (original currency), spread
over the horizon's weeks by a fixed ``pattern`` (H, C) whose columns sum to 1 (flat by
default). Each step: gradient of the objective over the S posterior responses, an optax Adam
update, and an exact projection onto the constraint set — so every iterate satisfies the total
and the bounds. The whole loop is one ``lax.scan`` under ``jit``; ``jax.vmap`` over a leading
brand axis of :class:`BudgetProblem` optimises many brands in one call.

Objectives (maximised) over the response draws ``r`` (S,):

* ``"mean"``: E[r];
* ``"mean_sd"``: E[r] - risk_aversion * sd(r);
* ``"cvar"``: mean of the worst ``alpha`` fraction of draws (protects the downside);
* ``"mroas"``: E[r] - min_mroas * sum(x) with ``sum(x) <= total``: spends only while the
  expected marginal ROAS is at least ``min_mroas`` (the KKT form of "maximise response subject
  to a minimum marginal ROAS").
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from .projection import project_budget, project_budget_capped
from .response import ResponseParams, ResponseSpec, net_response_fn

__all__ = [
    "BudgetProblem",
    "OptimizeResult",
    "objective_value",
    "optimize_allocation",
    "minimum_budget",
    "projected_adam",
    "OBJECTIVES",
]

OBJECTIVES = ("mean", "mean_sd", "cvar", "mroas")


class BudgetProblem(NamedTuple):
    """One brand's allocation problem (all arrays; stack a leading axis to batch brands).

    Attributes
    ----------
    params : ResponseParams
    lo, hi : (C,) bounds on each channel's spend over the horizon (original currency)
    total : () budget over the horizon
    pattern : (H, C) weekly share of each channel's spend (columns sum to 1)
    risk_aversion : () weight of sd(r) in ``"mean_sd"``
    alpha : () tail fraction for ``"cvar"``
    min_mroas : () threshold for ``"mroas"``
    """

    params: ResponseParams
    lo: jax.Array
    hi: jax.Array
    total: jax.Array
    pattern: jax.Array
    risk_aversion: jax.Array
    alpha: jax.Array
    min_mroas: jax.Array


class OptimizeResult(NamedTuple):
    x: jax.Array  # (C,) optimal spend per channel over the horizon
    value: jax.Array  # () objective at x
    responses: jax.Array  # (S,) response draws at x
    trace: jax.Array  # (steps,) objective per step


def objective_value(r, x, problem: BudgetProblem, kind: str):
    """Objective (to maximise) from response draws ``r`` (S,) at allocation ``x`` (C,)."""
    if kind == "mean":
        return jnp.mean(r)
    if kind == "mean_sd":
        return jnp.mean(r) - problem.risk_aversion * jnp.std(r)
    if kind == "cvar":
        S = r.shape[0]
        ranks = jnp.arange(S)
        k = jnp.maximum(jnp.floor(problem.alpha * S), 1.0)
        w = (ranks < k).astype(r.dtype) / k
        return jnp.sum(jnp.sort(r) * w)
    if kind == "mroas":
        return jnp.mean(r) - problem.min_mroas * jnp.sum(x)
    raise ValueError(f"objective {kind!r} is not available; allowed: {list(OBJECTIVES)}")


def _project(v, problem: BudgetProblem, kind: str):
    if kind == "mroas":
        return project_budget_capped(v, problem.lo, problem.hi, problem.total)
    return project_budget(v, problem.lo, problem.hi, problem.total)


def optimize_allocation(
    problem: BudgetProblem,
    x0=None,
    *,
    objective: str = "mean",
    spec: ResponseSpec = ResponseSpec(),
    steps: int = 300,
    learning_rate: float = 0.05,
) -> OptimizeResult:
    """Maximise the objective over allocations (pure; ``jit`` with the keyword-only args static).

    Parameters
    ----------
    problem : BudgetProblem
    x0 : (C,), optional
        Starting allocation (projected first); default: the budget split in proportion to the
        upper bounds' room, i.e. the projection of ``total / C``.
    objective : one of :data:`OBJECTIVES`
    spec : the model's saturation family and order (static); the adstock window comes with
        the weights in ``problem.params``.
    steps, learning_rate : Adam steps; the learning rate is in units of the budget and decays
        (cosine) to 1e-3 of its start. The best iterate is returned.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective {objective!r} is not available; allowed: {list(OBJECTIVES)}")
    total = problem.total
    C = problem.lo.shape[0]
    scale = jnp.maximum(total, 1e-12)

    # Adstock is linear in spend: over the plan window it is A + x * B with A, B fixed (or, for
    # saturation first, a fixed weight sum per channel), so each step costs one saturation
    # over (S, W, C) instead of two convolutions.
    response = net_response_fn(problem.pattern, problem.params, spec)

    def value_fn(u):
        x = u * scale
        r = response(x)
        return objective_value(r, x, problem, objective), r

    def project_u(u):
        return _project(u * scale, problem, objective) / scale

    u0 = jnp.full((C,), 1.0 / C) if x0 is None else jnp.asarray(x0) / scale
    best_u, value, r, trace = projected_adam(value_fn, project_u, project_u(u0), steps=steps,
                                             learning_rate=learning_rate,
                                             bounds=(problem.lo / scale, problem.hi / scale))
    return OptimizeResult(x=best_u * scale, value=value, responses=r, trace=trace)


def projected_adam(value_fn, project_u, u0, *, steps: int, learning_rate: float, bounds=None):
    """Maximise ``value_fn(u) -> (value, aux)`` over the feasible set of ``project_u`` (pure).

    Adam (optax, cosine-decayed learning rate) on the gradient's component along the budget
    surface, an exact projection after every step, and the best iterate kept. ``u`` has any
    shape (a channel vector, or weeks x channels for flighting). ``bounds = (lo, hi)`` (same
    shape as ``u``) lets the step ignore coordinates pinned at a bound that the gradient pushes
    outwards (a projected-gradient tangent step), so that Adam's per-coordinate scaling sees
    only the coordinates that can move. Returns ``(best_u, value, aux, trace)``.
    """
    sched = optax.cosine_decay_schedule(learning_rate, steps, alpha=1e-3)
    opt = optax.adam(sched)
    grad_fn = jax.value_and_grad(lambda u: -value_fn(u)[0])

    def step(carry, _):
        u, state, best_u, best_v = carry
        neg, g = grad_fn(u)
        v = -neg
        # Adam rescales each coordinate, which turns a gradient whose entries share a sign
        # into a move that the sum constraint projects away. Give it the gradient's component
        # along the constraint surface instead (differences between marginal returns), when
        # the total binds.
        binding = jnp.sum(u) >= 1.0 - 1e-9
        if bounds is None:
            g = jnp.where(binding, g - jnp.mean(g), g)
        else:
            lo, hi = bounds
            eps = 1e-9
            inside = (u > lo + eps) & (u < hi - eps)
            m_in = jnp.sum(jnp.where(inside, g, 0.0)) / jnp.maximum(jnp.sum(inside), 1)
            m = jnp.where(jnp.any(inside), m_in, jnp.mean(g))
            gt = jnp.where(binding, g - m, g)
            pinned = ((u <= lo + eps) & (gt < 0)) | ((u >= hi - eps) & (gt > 0))
            g = jnp.where(pinned, 0.0, gt)
        better = v > best_v
        best_u = jnp.where(better, u, best_u)
        best_v = jnp.where(better, v, best_v)
        upd, state = opt.update(g, state, u)
        u = project_u(optax.apply_updates(u, upd))
        return (u, state, best_u, best_v), v

    init = (u0, opt.init(u0), u0, -jnp.inf)
    (u, _, best_u, best_v), trace = jax.lax.scan(step, init, None, length=steps)
    v_last, _ = value_fn(u)
    best_u = jnp.where(v_last > best_v, u, best_u)
    value, aux = value_fn(best_u)
    return best_u, value, aux, trace


def minimum_budget(
    problem: BudgetProblem,
    target: float,
    *,
    spec: ResponseSpec = ResponseSpec(),
    steps: int = 300,
    learning_rate: float = 0.05,
    n_bisect: int = 30,
):
    """Smallest total (within ``[sum(lo), problem.total]``) whose best allocation reaches an
    expected response of ``target``.

    The expected response of the optimal allocation increases with the budget, so a bisection
    on the total, each step solving the ``"mean"`` problem, finds the smallest budget that meets
    the target (pure; ``jit`` with the keyword-only args static).

    Returns
    -------
    (total, OptimizeResult at that total, reachable) — ``reachable`` is False when even the
    full ``problem.total`` does not reach the target (then the result is the one at the cap).
    """

    def solve(total):
        p = problem._replace(total=total)
        return optimize_allocation(p, objective="mean", spec=spec, steps=steps, learning_rate=learning_rate)

    lo = jnp.sum(problem.lo)
    hi = problem.total
    at_cap = solve(hi)
    reachable = jnp.mean(at_cap.responses) >= target

    def body(_, bounds):
        a, b = bounds
        m = 0.5 * (a + b)
        ok = jnp.mean(solve(m).responses) >= target
        return jnp.where(ok, a, m), jnp.where(ok, m, b)

    a, b = jax.lax.fori_loop(0, n_bisect, body, (lo, hi))
    total = jnp.where(reachable, b, hi)
    return total, solve(total), reachable
