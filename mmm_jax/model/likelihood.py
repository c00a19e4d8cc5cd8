"""Posterior-predictive draws for the likelihood families, in JAX (one vectorised pass)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["predictive_draw", "COUNT_LIKELIHOODS"]

#: Likelihoods whose draws are counts (see :data:`mmm_jax.config.model.COUNT_LIKELIHOODS`).
COUNT_LIKELIHOODS = ("poisson", "negative_binomial")


def predictive_draw(key: jax.Array, likelihood: str, mu, sigma=None, nu=None, *, alpha=None):
    """One draw of ``y`` per element of ``mu``.

    Parameters
    ----------
    key : PRNG key
    likelihood : {"normal", "studentt", "poisson", "negative_binomial"}
    mu : array (..., T)
        Normal / StudentT: the location (any units; ``sigma`` in the same units).
        Poisson / negative binomial: the mean *count* (original units, > 0).
    sigma, nu : arrays broadcastable to ``mu[..., :1]`` (scale and degrees of freedom;
        Normal / StudentT only).
    alpha : array broadcastable to ``mu[..., :1]``
        Negative-binomial shape (``var = mu + mu**2 / alpha``); a gamma-Poisson mixture:
        ``y ~ Poisson(mu * G)``, ``G ~ Gamma(alpha, alpha)``.

    Returns
    -------
    array (..., T): float draws; integers (as floats) for the count likelihoods.
    """
    mu = jnp.asarray(mu)
    if likelihood == "normal":
        sigma = jnp.asarray(sigma)[..., None]
        return mu + sigma * jax.random.normal(key, mu.shape, mu.dtype)
    if likelihood == "studentt":
        sigma = jnp.asarray(sigma)[..., None]
        nu = jnp.asarray(nu)[..., None]
        return mu + sigma * jax.random.t(key, jnp.broadcast_to(nu, mu.shape), mu.shape, mu.dtype)
    if likelihood == "poisson":
        return jax.random.poisson(key, mu, mu.shape).astype(mu.dtype)
    if likelihood == "negative_binomial":
        k_g, k_p = jax.random.split(key)
        a = jnp.broadcast_to(jnp.asarray(alpha, mu.dtype)[..., None], mu.shape)
        g = jax.random.gamma(k_g, a, mu.shape, mu.dtype) / a
        return jax.random.poisson(k_p, mu * g, mu.shape).astype(mu.dtype)
    raise ValueError(f"unknown likelihood {likelihood!r}")
