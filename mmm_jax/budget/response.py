"""Response of a spend plan under posterior draws, in pure JAX, for every model family.

A plan is spend per week and channel over a horizon of ``H`` weeks, in original currency.
Its response is the contribution it causes, counted over the horizon plus the ``L - 1``
weeks after it (carry-over; ``L`` the adstock window), net of what the history alone would
have produced — so the past spend's carry-over into the horizon is counted in the starting
point but not credited to the plan.

Any adstock family is a causal convolution with a weight vector per draw and channel, so
:class:`ResponseParams` carries the weights (S, C, L) computed from the posterior (the
infinite geometric adstock is truncated after as many lags as there are training weeks, see
:func:`response_window`), and the saturation family and order are static
(:class:`ResponseSpec`).
Everything here is a pure function of arrays: ``jit``, ``grad`` and ``vmap`` (over draws,
brands) apply.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..media.adstock import adstock_conv_jax, adstock_weights_jax, geometric_weights_jax
from ..media.saturation import SATURATION_PARAMS, media_response_jax

__all__ = [
    "ResponseSpec",
    "ResponseParams",
    "geometric_logistic_params",
    "response_params_from_mmm",
    "recent_parameter",
    "RECENT_MULTIPLIER_WEEKS",
    "response_window",
    "plan_contributions",
    "plan_response",
    "gross_response",
    "linear_adstock_parts",
    "net_response_fn",
]


class ResponseSpec(NamedTuple):
    """The static part of a brand's response (hashable: pass it as a static ``jit`` argument).

    Attributes
    ----------
    saturation : str
        Saturation family (a key of :data:`mmm_jax.media.saturation.SATURATION_PARAMS`).
    adstock_first : bool
        ``True``: response = saturation(adstock(spend)); ``False``: adstock(saturation(spend)).
    """

    saturation: str = "logistic"
    adstock_first: bool = True


class ResponseParams(NamedTuple):
    """Posterior draws of the media parameters of one brand.

    Attributes
    ----------
    weights : (S, C, L) array
        Adstock weights per draw and channel (``L`` the window).
    sat : dict of (S, C) arrays
        Saturation parameters per draw, named as in
        :data:`mmm_jax.media.saturation.SATURATION_PARAMS` (e.g. ``beta``, ``lam``), scaled units.
    spend_scale : (C,) array
        Spend scaling (original currency per unit of scaled spend).
    target_scale : () array
        Target scaling (original units per unit of scaled target).
    history : (max(L - 1, 1), C) array
        The last weeks of spend before the plan, original currency.
    """

    weights: jax.Array
    sat: dict
    spend_scale: jax.Array
    target_scale: jax.Array
    history: jax.Array


def geometric_logistic_params(beta, alpha, lam, *, l_max: int, normalize: bool = True, spend_scale,
                              target_scale, history) -> ResponseParams:
    """:class:`ResponseParams` of the default model (geometric adstock, logistic saturation).

    ``beta``, ``alpha``, ``lam``: (S, C) draws; ``history``: (max(l_max - 1, 1), C).
    """
    return ResponseParams(
        weights=geometric_weights_jax(jnp.asarray(alpha), l_max, normalize),
        sat={"beta": jnp.asarray(beta), "lam": jnp.asarray(lam)},
        spend_scale=jnp.asarray(spend_scale),
        target_scale=jnp.asarray(target_scale),
        history=jnp.asarray(history),
    )


def response_window(adstock, n_train: int) -> int:
    """Adstock window ``L`` used by the budget for an adstock config.

    The finite families use ``l_max``. The infinite geometric recursion is truncated to a
    geometric window of ``n_train + 1`` lags: the history is the whole training series, the
    plan's carry-over is credited for ``n_train`` weeks after the horizon, and what is dropped
    (spend older than ``n_train + 1`` weeks) carries the weight ``alpha**(n_train + 1)``
    (below 1e-7 for 156 weeks and ``alpha <= 0.9``).
    """
    if adstock.type == "geometric" and getattr(adstock, "infinite", False):
        return int(n_train) + 1
    return int(adstock.l_max)


#: Weeks at the end of the training window whose average media multiplier a plan uses
#: (time-varying media; see :func:`response_params_from_mmm`).
RECENT_MULTIPLIER_WEEKS = 13


def recent_parameter(values: np.ndarray, mask: np.ndarray, weeks: int) -> np.ndarray:
    """Average of a time-varying parameter over the last ``weeks`` observed weeks.

    Parameters
    ----------
    values : (S, T, C) draws of ``p[t, c]``
    mask : (T,) 1 for observed (training) weeks
    weeks : int >= 1

    Returns
    -------
    (S, C)
    """
    if int(weeks) < 1:
        raise ValueError(f"recent_weeks must be >= 1, got {weeks!r}")
    idx = np.flatnonzero(np.asarray(mask) > 0)[-int(weeks):]
    return np.asarray(values)[:, idx, :].mean(axis=1)


def response_params_from_mmm(
    mmm, max_draws: int | None = None, seed: int = 0, *, recent_weeks: int | None = None
) -> tuple[ResponseParams, dict]:
    """Media-parameter draws, adstock weights and history from a fitted :class:`mmm_jax.MMM`.

    Time-varying media (``config.time_varying_media``): the plan horizon uses, per draw and
    channel, the varying parameter ``p[t, c]`` (``beta`` or ``cac0``) averaged over the last
    ``recent_weeks`` training weeks (default :data:`RECENT_MULTIPLIER_WEEKS`): the most recent
    effectiveness is carried forward, neither extrapolating the HSGP's trend nor reverting to
    its long-run mean. ``static["recent_weeks"]`` records the window.

    Returns ``(params, static)`` where ``static`` holds ``spec`` (:class:`ResponseSpec`),
    ``l_max`` (the window ``L``) and the channel names.
    """
    post = mmm.idata.posterior
    S = post.sizes["chain"] * post.sizes["draw"]
    cfg = mmm.config

    def flat(name):
        return np.asarray(post[name].values).reshape(S, -1)

    idx = np.arange(S)
    if max_draws is not None and max_draws < S:
        idx = np.random.default_rng(seed).choice(S, size=max_draws, replace=False)
    ad, sat = cfg.adstock, cfg.saturation
    L = response_window(ad, mmm.data.spend.shape[0])
    ad_params = {n: jnp.asarray(flat(n)[idx]) for n in ad.param_names}
    weights = adstock_weights_jax(ad, ad_params, n_lags=L)
    n_hist = max(L - 1, 1)
    hist = np.asarray(mmm.data.spend[-n_hist:], dtype=float)
    if hist.shape[0] < n_hist:
        hist = np.vstack([np.zeros((n_hist - hist.shape[0], hist.shape[1])), hist])
    sat_draws = {n: flat(n)[idx] for n in sat.param_names}
    static_tv = {}
    if cfg.time_varying_media is not None:
        p = cfg.time_varying_media.varying_param(sat)
        weeks = RECENT_MULTIPLIER_WEEKS if recent_weeks is None else int(recent_weeks)
        values = np.asarray(post[f"{p}_t"].transpose("chain", "draw", "date", "channel").values)
        values = values.reshape(S, *values.shape[2:])[idx]
        mask = np.asarray(mmm.idata.constant_data["mask"].values) if "mask" in mmm.idata.constant_data \
            else np.ones(values.shape[1])
        sat_draws[p] = recent_parameter(values, mask, weeks)
        static_tv = {"recent_weeks": weeks, "varying_param": p}
    params = ResponseParams(
        weights=jnp.asarray(weights),
        sat={n: jnp.asarray(v) for n, v in sat_draws.items()},
        spend_scale=jnp.asarray(mmm.scaling.spend_scale),
        target_scale=jnp.asarray(mmm.scaling.target_scale),
        history=jnp.asarray(hist),
    )
    spec = ResponseSpec(saturation=sat.type, adstock_first=bool(cfg.adstock_first))
    return params, {"spec": spec, "l_max": L, "channels": list(cfg.channels), **static_tv}


def _check_spec(spec: ResponseSpec, params: ResponseParams) -> None:
    if spec.saturation not in SATURATION_PARAMS:
        raise ValueError(f"unknown saturation {spec.saturation!r}; allowed: {sorted(SATURATION_PARAMS)}")
    missing = [n for n in SATURATION_PARAMS[spec.saturation] if n not in params.sat]
    if missing:
        raise ValueError(f"ResponseParams.sat lacks {missing} for saturation {spec.saturation!r}")


def _window(params: ResponseParams, plan, history=None):
    """Scaled spend over history + plan + carry-over tail: (n_hist + H + L - 1, C)."""
    L = params.weights.shape[-1]
    history = params.history if history is None else history
    tail = jnp.zeros((max(L - 1, 0), plan.shape[1]), plan.dtype)
    return jnp.concatenate([history, plan, tail]) / params.spend_scale


def _contrib_one_draw(x_scaled, w, sat, spec: ResponseSpec):
    """Scaled contributions (T, C) for one draw: weights ``w`` (C, L), ``sat`` dict of (C,)."""
    if spec.adstock_first:
        return media_response_jax(spec.saturation, adstock_conv_jax(x_scaled, w), sat)
    return adstock_conv_jax(media_response_jax(spec.saturation, x_scaled, sat), w)


def plan_contributions(plan, params: ResponseParams, spec: ResponseSpec = ResponseSpec()):
    """Contribution (original units) caused by ``plan`` per draw, week and channel.

    Parameters
    ----------
    plan : (H, C) spend over the horizon, original currency.
    params : ResponseParams
    spec : ResponseSpec (static)

    Returns
    -------
    (S, H + L - 1, C): contribution with the plan minus contribution without it, over the
    horizon and the carry-over weeks that follow.
    """
    _check_spec(spec, params)
    plan = jnp.asarray(plan)
    n_hist = params.history.shape[0]
    with_plan = _window(params, plan)
    without = _window(params, jnp.zeros_like(plan))

    def one(w, sat):
        a = _contrib_one_draw(with_plan, w, sat, spec)
        b = _contrib_one_draw(without, w, sat, spec)
        return (a - b)[n_hist:]

    return jax.vmap(one)(params.weights, params.sat) * params.target_scale


def plan_response(plan, params: ResponseParams, spec: ResponseSpec = ResponseSpec()):
    """Total response of ``plan`` per draw: (S,) original units (summed over weeks, channels)."""
    return jnp.sum(plan_contributions(plan, params, spec), axis=(1, 2))


def gross_response(plan, params: ResponseParams, spec: ResponseSpec = ResponseSpec()):
    """Total contribution over the plan's window *including* the history's carry-over: (S,).

    Differs from :func:`plan_response` by a constant (the no-plan carry-over), so it has the
    same gradient at half the cost.
    """
    _check_spec(spec, params)
    plan = jnp.asarray(plan)
    n_hist = params.history.shape[0]
    x = _window(params, plan)

    def one(w, sat):
        return jnp.sum(_contrib_one_draw(x, w, sat, spec)[n_hist:])

    return jax.vmap(one)(params.weights, params.sat) * params.target_scale


def linear_adstock_parts(pattern, params: ResponseParams):
    """Adstock over the plan window as ``A + x * B`` (adstock is linear in spend).

    For a plan ``pattern * x`` (pattern (H, C) fixed, x (C,) the decision), the scaled adstocked
    spend over the window (horizon + carry-over weeks) of draw s is ``A[s] + x * B[s]`` with
    ``A`` the history's carry-over and ``B`` the adstock of the pattern per unit of spend. Both
    are computed once per problem, so each optimiser step is one saturation over (S, W, C).

    Returns ``A, B``: (S, W, C) each, ``W = H + L - 1``.
    """
    pattern = jnp.asarray(pattern)
    n_hist = params.history.shape[0]
    hist = _window(params, jnp.zeros_like(pattern))
    unit = _window(params, pattern, history=jnp.zeros_like(params.history))

    def one(w):
        return adstock_conv_jax(hist, w)[n_hist:], adstock_conv_jax(unit, w)[n_hist:]

    return jax.vmap(one)(params.weights)


def net_response_fn(pattern, params: ResponseParams, spec: ResponseSpec = ResponseSpec()):
    """``r(x)``: net response draws (S,) (original units) of the plan ``pattern * x``, x (C,).

    Precomputes what does not depend on ``x``, so ``r`` is one saturation over the plan window:

    * adstock first: ``sum f(A + x B) - sum f(A)`` with :func:`linear_adstock_parts`;
    * saturation first: the plan's saturated spend ``f(pattern x / scale)`` is spread by the
      adstock over the window, which the tail covers completely, so its total is
      ``sum_{t, c} f(z_{t,c}) * sum_l w_{c, l}``; the history's share is the same with and
      without the plan and cancels (every family has ``f(0) = 0``).
    """
    _check_spec(spec, params)
    pattern = jnp.asarray(pattern)
    sat = {k: v[:, None, :] for k, v in params.sat.items()}  # (S, 1, C)
    if spec.adstock_first:
        A, B = linear_adstock_parts(pattern, params)
        offset = jnp.sum(media_response_jax(spec.saturation, A, sat), axis=(1, 2))

        def r(x):
            gross = jnp.sum(media_response_jax(spec.saturation, A + x * B, sat), axis=(1, 2))
            return (gross - offset) * params.target_scale

        return r
    wsum = jnp.sum(params.weights, axis=-1)[:, None, :]  # (S, 1, C)

    def r(x):
        z = pattern * x / params.spend_scale  # (H, C)
        return jnp.sum(media_response_jax(spec.saturation, z[None], sat) * wsum, axis=(1, 2)) * params.target_scale

    return r
