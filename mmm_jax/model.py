"""The MMM as a ``pm.Model``.

On scaled data (see :mod:`mmm_jax.features`)::

    y_t ~ Likelihood(mu_t, sigma[, nu])            for weeks with mask_t = 1
    mu_t = intercept + trend * time_t + fourier_t @ gamma_fourier + controls_t @ gamma_control
           + sum_c media_c(spend)_t

    media_c = response(adstock(spend_c))       (adstock_first, the default)
            = adstock(response(spend_c))       (adstock_first = False)

with the adstock family of ``config.adstock`` (:func:`mmm_jax.adstock.apply_adstock`) and the
response (saturation times its coefficient) of ``config.saturation``
(:func:`mmm_jax.saturation.media_response`).

Every data array is a ``pm.Data`` container, so :func:`mmm_jax.compile.compile_logdensity`
can turn it into a function input. Deterministics (``channel_contribution``, ``baseline``,
``mu``) are part of the model graph and are evaluated after sampling in one vectorised pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .adstock import apply_adstock
from .config import ModelConfig
from .saturation import media_response

__all__ = ["build_pymc_model", "likelihood_dist", "masked_logp"]


def likelihood_dist(config: ModelConfig):
    """The likelihood family as ``(dist_fn(mu, sigma, nu, mask, size), n_extra)``."""
    if config.likelihood == "normal":
        return lambda mu, sigma, nu, mask, size: pm.Normal.dist(mu, sigma, size=size)
    return lambda mu, sigma, nu, mask, size: pm.StudentT.dist(nu=nu, mu=mu, sigma=sigma, size=size)


def masked_logp(config: ModelConfig):
    """Elementwise log-likelihood multiplied by the week mask (padded weeks add 0)."""
    if config.likelihood == "normal":

        def logp(value, mu, sigma, nu, mask):
            return mask * pm.logp(pm.Normal.dist(mu, sigma), value)

    else:

        def logp(value, mu, sigma, nu, mask):
            return mask * pm.logp(pm.StudentT.dist(nu=nu, mu=mu, sigma=sigma), value)

    return logp


def build_pymc_model(
    config: ModelConfig,
    arrays: dict[str, np.ndarray],
    *,
    dates: Sequence | None = None,
) -> pm.Model:
    """Build the PyMC model for one brand.

    Parameters
    ----------
    config : ModelConfig
    arrays : dict
        Scaled inputs from :func:`mmm_jax.features.design_arrays`: spend (T, C),
        controls (T, K), fourier (T, 2n), time (T,), target (T,), mask (T,).
    dates : sequence, optional
        Labels for the ``date`` dimension (defaults to ``0..T-1``).

    Returns
    -------
    pm.Model
        Free variables: intercept, [trend], [gamma_fourier], [gamma_control], the media
        parameters of the chosen families (``config.media_params``, each per channel; e.g.
        beta, alpha, lam), sigma, [nu]. Deterministics: channel_contribution (date, channel), baseline
        (date), mu (date) — all in scaled units.
    """
    spend = np.asarray(arrays["spend"], dtype=float)
    T, C = spend.shape
    if C != len(config.channels):
        raise ValueError(f"spend has {C} columns but the config lists {len(config.channels)} channels")
    K = len(config.controls)
    n_four = 2 * config.seasonality
    coords = {
        "date": list(dates) if dates is not None else list(range(T)),
        "channel": list(config.channels),
    }
    if K:
        coords["control"] = list(config.controls)
    if n_four:
        coords["fourier_mode"] = [f"{f}{k}" for k in range(1, config.seasonality + 1) for f in ("sin", "cos")]

    with pm.Model(coords=coords) as model:
        x = pm.Data("spend", spend, dims=("date", "channel"))
        y = pm.Data("target", np.asarray(arrays["target"], dtype=float), dims="date")
        mask = pm.Data("mask", np.asarray(arrays["mask"], dtype=float), dims="date")

        intercept = config.prior("intercept").create("intercept")
        baseline = intercept * pt.ones_like(y)
        if config.trend:
            time = pm.Data("time", np.asarray(arrays["time"], dtype=float), dims="date")
            trend = config.prior("trend").create("trend")
            baseline = baseline + trend * time
        if n_four:
            fourier = pm.Data("fourier", np.asarray(arrays["fourier"], dtype=float), dims=("date", "fourier_mode"))
            gamma_f = config.prior("gamma_fourier").create("gamma_fourier", dims="fourier_mode")
            baseline = baseline + pt.dot(fourier, gamma_f)
        if K:
            controls = pm.Data("controls", np.asarray(arrays["controls"], dtype=float), dims=("date", "control"))
            gamma_c = config.prior("gamma_control").create("gamma_control", dims="control")
            baseline = baseline + pt.dot(controls, gamma_c)

        media = {name: config.prior(name).create(name, dims="channel") for name in config.media_params}
        ad, sat = config.adstock, config.saturation
        ad_params = {name: media[name] for name in ad.param_names}
        sat_params = {name: media[name] for name in sat.param_names}
        if config.adstock_first:
            contribution = media_response(sat.type, apply_adstock(x, ad, ad_params), sat_params)
        else:
            contribution = apply_adstock(media_response(sat.type, x, sat_params), ad, ad_params)

        contribution = pm.Deterministic("channel_contribution", contribution, dims=("date", "channel"))
        baseline = pm.Deterministic("baseline", baseline, dims="date")
        mu = pm.Deterministic("mu", baseline + contribution.sum(axis=-1), dims="date")

        sigma = config.prior("sigma").create("sigma")
        nu = config.prior("nu").create("nu") if config.likelihood == "studentt" else pt.constant(np.inf)
        pm.CustomDist(
            "y",
            mu,
            sigma,
            nu,
            mask,
            dist=likelihood_dist(config),
            logp=masked_logp(config),
            observed=y,
            dims="date",
        )
    return model
