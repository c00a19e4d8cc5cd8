"""Saturation (diminishing returns) curves, elementwise.

Each curve has a PyTensor form (used in the model), a JAX form and a NumPy reference written
in the textbook form; the tests check them against each other. ``x`` is (adstocked) scaled
spend, >= 0; parameters broadcast against it (per channel (C,), or (T, C) for time-varying
ones).

* logistic: ``(1 - exp(-lam x)) / (1 + exp(-lam x)) = tanh(lam x / 2)``, in [0, 1);
  contribution ``beta * logistic``.
* tanh (interpretable): ``sat_level * tanh(x / (sat_level * cac0))`` *is* the contribution:
  ``sat_level`` is the response at saturation, ``cac0`` the cost per unit of response at zero
  spend (the slope at 0 is ``1 / cac0``); both in scaled units; no separate ``beta``.
* Hill: ``x**s / (x**s + K**s)`` with half-saturation ``K`` (``half_sat``) and slope ``s``;
  contribution ``beta * hill``. Computed as ``sigmoid(s * (log x - log K))`` with ``x = 0``
  mapped to exactly 0 — value *and* gradients (``x**s`` at ``x = 0`` has an infinite or NaN
  derivative for ``s < 1``, and ``log 0`` poisons the gradient of ``s`` and ``K``).
* Michaelis–Menten: ``x / (K + x)``; contribution ``beta * x / (K + x)`` (``beta`` = vmax).

:func:`media_response`, :func:`media_response_jax` and :func:`media_response_np` give a
channel's contribution for a family name and a dict of parameters named as in
:data:`SATURATION_PARAMS`.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pytensor.tensor as pt

__all__ = [
    "SATURATION_PARAMS",
    "logistic_saturation",
    "logistic_saturation_jax",
    "logistic_saturation_np",
    "tanh_saturation",
    "tanh_saturation_jax",
    "tanh_saturation_np",
    "hill_saturation",
    "hill_saturation_jax",
    "hill_saturation_np",
    "michaelis_menten_saturation",
    "michaelis_menten_saturation_jax",
    "michaelis_menten_saturation_np",
    "media_response",
    "media_response_jax",
    "media_response_np",
]

#: Per-channel parameter names of each saturation family (the model's variable names).
SATURATION_PARAMS = {
    "logistic": ("beta", "lam"),
    "tanh": ("sat_level", "cac0"),
    "hill": ("beta", "half_sat", "slope"),
    "michaelis_menten": ("beta", "half_sat"),
}


# --------------------------------------------------------------------------- logistic
def logistic_saturation(x, lam):
    """PyTensor logistic saturation; ``x`` (..., C), ``lam`` (C,) -> (..., C)."""
    # tanh(z/2) == (1 - e^-z) / (1 + e^-z), and is stable for large z.
    return pt.tanh(lam * x / 2.0)


def logistic_saturation_jax(x, lam):
    """JAX logistic saturation; same shapes as :func:`logistic_saturation`."""
    return jnp.tanh(lam * x / 2.0)


def logistic_saturation_np(x, lam):
    """NumPy reference written in the textbook form ``(1 - e^{-lam x}) / (1 + e^{-lam x})``."""
    e = np.exp(-np.asarray(lam) * np.asarray(x))
    return (1.0 - e) / (1.0 + e)


# --------------------------------------------------------------------------- tanh (S, cac0)
def tanh_saturation(x, sat_level, cac0):
    """PyTensor ``sat_level * tanh(x / (sat_level * cac0))``; (..., C) with (C,) params -> (..., C)."""
    return sat_level * pt.tanh(x / (sat_level * cac0))


def tanh_saturation_jax(x, sat_level, cac0):
    """JAX form of :func:`tanh_saturation`."""
    return sat_level * jnp.tanh(x / (sat_level * cac0))


def tanh_saturation_np(x, sat_level, cac0):
    """NumPy reference ``S (1 - e^{-2u}) / (1 + e^{-2u})``, ``u = x / (S cac0)`` (exp form via ``expm1``)."""
    u = np.asarray(x, dtype=float) / (np.asarray(sat_level) * np.asarray(cac0))
    em = np.expm1(-2.0 * u)  # e^{-2u} - 1, exact for small u
    return np.asarray(sat_level) * -em / (2.0 + em)


# --------------------------------------------------------------------------- Hill
def hill_saturation(x, half_sat, slope):
    """PyTensor Hill curve ``x**s / (x**s + K**s)``, exactly 0 (value and gradients) at ``x <= 0``."""
    x = pt.as_tensor_variable(x)
    pos = pt.gt(x, 0.0)
    xs = pt.switch(pos, x, 1.0)
    y = pt.sigmoid(slope * (pt.log(xs) - pt.log(half_sat)))
    return pt.switch(pos, y, 0.0)


def hill_saturation_jax(x, half_sat, slope):
    """JAX form of :func:`hill_saturation` (same safe handling of ``x = 0``)."""
    x = jnp.asarray(x)
    pos = x > 0
    xs = jnp.where(pos, x, 1.0)
    y = jax.nn.sigmoid(slope * (jnp.log(xs) - jnp.log(half_sat)))
    return jnp.where(pos, y, 0.0)


def hill_saturation_np(x, half_sat, slope):
    """NumPy reference in the textbook form ``x**s / (x**s + K**s)``."""
    xs = np.asarray(x, dtype=float) ** np.asarray(slope)
    return xs / (xs + np.asarray(half_sat, dtype=float) ** np.asarray(slope))


# --------------------------------------------------------------------------- Michaelis-Menten
def michaelis_menten_saturation(x, half_sat):
    """PyTensor Michaelis–Menten curve ``x / (K + x)`` (times ``beta`` = vmax in the model)."""
    return x / (half_sat + x)


def michaelis_menten_saturation_jax(x, half_sat):
    """JAX form of :func:`michaelis_menten_saturation`."""
    return x / (half_sat + x)


def michaelis_menten_saturation_np(x, half_sat):
    """NumPy reference ``x / (K + x)``."""
    x = np.asarray(x, dtype=float)
    return x / (np.asarray(half_sat, dtype=float) + x)


# --------------------------------------------------------------------------- dispatch
def _check(kind: str) -> None:
    if kind not in SATURATION_PARAMS:
        raise ValueError(f"unknown saturation type {kind!r}; allowed: {sorted(SATURATION_PARAMS)}")


def media_response(kind: str, x, params: Mapping):
    """A channel's contribution for saturation family ``kind`` (PyTensor).

    Parameters
    ----------
    kind : one of :data:`SATURATION_PARAMS`
    x : (..., C) scaled (adstocked) spend
    params : dict of (C,) (or broadcastable) tensors named as in :data:`SATURATION_PARAMS`

    Returns
    -------
    (..., C) contribution in scaled target units.
    """
    _check(kind)
    p = params
    if kind == "logistic":
        return p["beta"] * logistic_saturation(x, p["lam"])
    if kind == "tanh":
        return tanh_saturation(x, p["sat_level"], p["cac0"])
    if kind == "hill":
        return p["beta"] * hill_saturation(x, p["half_sat"], p["slope"])
    return p["beta"] * michaelis_menten_saturation(x, p["half_sat"])


def media_response_jax(kind: str, x, params: Mapping):
    """JAX form of :func:`media_response` (pure; ``vmap`` over draws)."""
    _check(kind)
    p = params
    if kind == "logistic":
        return p["beta"] * logistic_saturation_jax(x, p["lam"])
    if kind == "tanh":
        return tanh_saturation_jax(x, p["sat_level"], p["cac0"])
    if kind == "hill":
        return p["beta"] * hill_saturation_jax(x, p["half_sat"], p["slope"])
    return p["beta"] * michaelis_menten_saturation_jax(x, p["half_sat"])


def media_response_np(kind: str, x, params: Mapping):
    """NumPy reference of :func:`media_response`."""
    _check(kind)
    p = {k: np.asarray(v, dtype=float) for k, v in params.items()}
    if kind == "logistic":
        return p["beta"] * logistic_saturation_np(x, p["lam"])
    if kind == "tanh":
        return tanh_saturation_np(x, p["sat_level"], p["cac0"])
    if kind == "hill":
        return p["beta"] * hill_saturation_np(x, p["half_sat"], p["slope"])
    return p["beta"] * michaelis_menten_saturation_np(x, p["half_sat"])
