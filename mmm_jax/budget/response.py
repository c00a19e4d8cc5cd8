"""Response of a spend plan under posterior draws, in pure JAX.

A plan is spend per week and channel over a horizon of ``H`` weeks, in original currency.
Its response is the contribution it causes, counted over the horizon plus the ``l_max - 1``
weeks after it (carry-over), net of what the history alone would have produced — so the past
spend's carry-over into the horizon is counted in the starting point but not credited to the
plan. Everything here is a pure function of arrays: ``jit``, ``grad`` and ``vmap`` (over
draws, brands) apply.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..adstock import adstock_conv_jax, geometric_weights_jax

__all__ = [
    "ResponseParams",
    "response_params_from_mmm",
    "plan_contributions",
    "plan_response",
    "gross_response",
    "linear_adstock_parts",
]


class ResponseParams(NamedTuple):
    """Posterior draws of the media parameters of one brand.

    Attributes
    ----------
    beta, alpha, lam : (S, C) arrays
        Channel coefficient (scaled target units), geometric decay, saturation rate.
    spend_scale : (C,) array
        Spend scaling (original currency per unit of scaled spend).
    target_scale : () array
        Target scaling (original units per unit of scaled target).
    history : (L, C) array
        The last ``L = l_max - 1`` weeks of spend before the plan, original currency.
    """

    beta: jax.Array
    alpha: jax.Array
    lam: jax.Array
    spend_scale: jax.Array
    target_scale: jax.Array
    history: jax.Array


def response_params_from_mmm(mmm, max_draws: int | None = None, seed: int = 0) -> tuple[ResponseParams, dict]:
    """Media-parameter draws and history from a fitted :class:`mmm_jax.MMM`.

    Returns ``(params, static)`` where ``static`` holds ``l_max`` and ``normalize`` (Python
    values, they fix array shapes) and the channel names.
    """
    post = mmm.idata.posterior
    S = post.sizes["chain"] * post.sizes["draw"]

    def flat(name):
        return np.asarray(post[name].values).reshape(S, -1)

    idx = np.arange(S)
    if max_draws is not None and max_draws < S:
        idx = np.random.default_rng(seed).choice(S, size=max_draws, replace=False)
    ad = mmm.config.adstock
    L = max(ad.l_max - 1, 1)
    hist = np.asarray(mmm.data.spend[-L:], dtype=float)
    if hist.shape[0] < L:
        hist = np.vstack([np.zeros((L - hist.shape[0], hist.shape[1])), hist])
    params = ResponseParams(
        beta=jnp.asarray(flat("beta")[idx]),
        alpha=jnp.asarray(flat("alpha")[idx]),
        lam=jnp.asarray(flat("lam")[idx]),
        spend_scale=jnp.asarray(mmm.scaling.spend_scale),
        target_scale=jnp.asarray(mmm.scaling.target_scale),
        history=jnp.asarray(hist),
    )
    return params, {"l_max": ad.l_max, "normalize": ad.normalize, "channels": list(mmm.config.channels)}


def _window(params: ResponseParams, plan, l_max: int, history=None):
    """Scaled spend over history + plan + carry-over tail: (L + H + l_max - 1, C)."""
    history = params.history if history is None else history
    tail = jnp.zeros((max(l_max - 1, 0), plan.shape[1]), plan.dtype)
    return jnp.concatenate([history, plan, tail]) / params.spend_scale


def _contrib_one_draw(x_scaled, beta, alpha, lam, l_max: int, normalize: bool):
    """Scaled contributions (T, C) for one draw: beta * tanh(lam * adstock(x) / 2)."""
    w = geometric_weights_jax(alpha, l_max, normalize)
    return beta * jnp.tanh(lam * adstock_conv_jax(x_scaled, w) / 2.0)


def plan_contributions(plan, params: ResponseParams, l_max: int, normalize: bool = True):
    """Contribution (original units) caused by ``plan`` per draw, week and channel.

    Parameters
    ----------
    plan : (H, C) spend over the horizon, original currency.

    Returns
    -------
    (S, H + l_max - 1, C): contribution with the plan minus contribution without it, over the
    horizon and the carry-over weeks that follow.
    """
    plan = jnp.asarray(plan)
    L = params.history.shape[0]
    with_plan = _window(params, plan, l_max)
    without = _window(params, jnp.zeros_like(plan), l_max)

    def one(beta, alpha, lam):
        a = _contrib_one_draw(with_plan, beta, alpha, lam, l_max, normalize)
        b = _contrib_one_draw(without, beta, alpha, lam, l_max, normalize)
        return (a - b)[L:]

    return jax.vmap(one)(params.beta, params.alpha, params.lam) * params.target_scale


def plan_response(plan, params: ResponseParams, l_max: int, normalize: bool = True):
    """Total response of ``plan`` per draw: (S,) original units (summed over weeks, channels)."""
    return jnp.sum(plan_contributions(plan, params, l_max, normalize), axis=(1, 2))


def gross_response(plan, params: ResponseParams, l_max: int, normalize: bool = True):
    """Total contribution over the plan's window *including* the history's carry-over: (S,).

    Differs from :func:`plan_response` by a constant (the no-plan carry-over), so it has the
    same gradient at half the cost — what the optimiser iterates on.
    """
    plan = jnp.asarray(plan)
    L = params.history.shape[0]
    x = _window(params, plan, l_max)

    def one(beta, alpha, lam):
        return jnp.sum(_contrib_one_draw(x, beta, alpha, lam, l_max, normalize)[L:])

    return jax.vmap(one)(params.beta, params.alpha, params.lam) * params.target_scale


def linear_adstock_parts(pattern, params: ResponseParams, l_max: int, normalize: bool = True):
    """Adstock over the plan window as ``A + x * B`` (adstock is linear in spend).

    For a plan ``pattern * x`` (pattern (H, C) fixed, x (C,) the decision), the scaled adstocked
    spend over the window (horizon + carry-over weeks) of draw s is ``A[s] + x * B[s]`` with
    ``A`` the history's carry-over and ``B`` the adstock of the pattern per unit of spend. Both
    are computed once per problem, so each optimiser step is one ``tanh`` over (S, W, C).

    Returns ``A, B``: (S, W, C) each, ``W = H + l_max - 1``.
    """
    pattern = jnp.asarray(pattern)
    L = params.history.shape[0]
    hist = _window(params, jnp.zeros_like(pattern), l_max)
    unit = _window(params, pattern, l_max, history=jnp.zeros_like(params.history))

    def one(alpha):
        w = geometric_weights_jax(alpha, l_max, normalize)
        return adstock_conv_jax(hist, w)[L:], adstock_conv_jax(unit, w)[L:]

    return jax.vmap(one)(params.alpha)
