"""Saturation (diminishing returns) curves, elementwise.

Logistic saturation: ``sat(x) = (1 - exp(-lam * x)) / (1 + exp(-lam * x)) = tanh(lam * x / 2)``,
0 at zero spend, tending to 1; ``lam`` (> 0) sets how quickly it saturates (in units of
scaled spend). Each curve has a PyTensor form (used in the model), a JAX form and a NumPy
reference; they are the same formula so the tests can check them against each other.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytensor.tensor as pt

__all__ = ["logistic_saturation", "logistic_saturation_jax", "logistic_saturation_np"]


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
