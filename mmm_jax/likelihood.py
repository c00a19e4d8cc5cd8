"""Posterior-predictive draws for the likelihood families, in JAX (one vectorised pass)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["predictive_draw"]


def predictive_draw(key: jax.Array, likelihood: str, mu, sigma, nu=None):
    """One draw of ``y`` per element of ``mu``.

    Parameters
    ----------
    key : PRNG key
    likelihood : {"normal", "studentt"}
    mu : array (..., T)
        Location (scaled units).
    sigma, nu : arrays broadcastable to ``mu[..., :1]`` (scale and degrees of freedom).
    """
    mu = jnp.asarray(mu)
    sigma = jnp.asarray(sigma)[..., None]
    if likelihood == "normal":
        return mu + sigma * jax.random.normal(key, mu.shape, mu.dtype)
    if likelihood == "studentt":
        nu = jnp.asarray(nu)[..., None]
        return mu + sigma * jax.random.t(key, jnp.broadcast_to(nu, mu.shape), mu.shape, mu.dtype)
    raise ValueError(f"unknown likelihood {likelihood!r}")
