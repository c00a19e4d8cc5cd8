"""Forecast scores from posterior predictive samples."""

from __future__ import annotations

import numpy as np

__all__ = ["crps_samples"]


def crps_samples(samples: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Continuous ranked probability score of a sample forecast (lower is better).

    ``CRPS(F, y) = E|X - y| - 0.5 E|X - X'|`` with ``X, X' ~ F`` estimated from the samples
    (the sorted-sample form, O(S log S), exact for the empirical distribution).

    Parameters
    ----------
    samples : (S, ...) draws of the forecast
    observed : (...) observed values (NaN gives NaN)

    Returns
    -------
    (...) CRPS in the units of ``observed``.
    """
    x = np.sort(np.asarray(samples, dtype=float), axis=0)
    y = np.asarray(observed, dtype=float)
    S = x.shape[0]
    term1 = np.mean(np.abs(x - y[None]), axis=0)
    i = np.arange(1, S + 1, dtype=float).reshape((S,) + (1,) * (x.ndim - 1))
    # E|X - X'| = 2 / S^2 * sum_i (2 i - S - 1) x_(i)
    term2 = 2.0 / S**2 * np.sum((2 * i - S - 1) * x, axis=0)
    return term1 - 0.5 * term2
