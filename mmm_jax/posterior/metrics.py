"""Forecast scores from posterior predictive samples."""

from __future__ import annotations

import numpy as np

__all__ = ["crps_samples", "forecast_metrics"]


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


def forecast_metrics(samples: np.ndarray, observed: np.ndarray) -> dict[str, float]:
    """Scores of a sample forecast over the observed (finite) cells.

    Parameters
    ----------
    samples : (S, ...) posterior predictive draws (original units)
    observed : (...) the actual values (NaN cells are skipped)

    Returns
    -------
    ``{"n": cells scored, "crps": mean CRPS, "crps_relative": mean CRPS / mean |observed|,
    "mape": mean |posterior mean - observed| / |observed| over non-zero observations,
    "coverage_50": share inside the central 50% interval, "coverage_90": ... 90% interval}``.
    """
    x = np.asarray(samples, dtype=float).reshape((np.shape(samples)[0], -1))
    y = np.asarray(observed, dtype=float).reshape(-1)
    keep = np.isfinite(y)
    x, y = x[:, keep], y[keep]
    if not len(y):
        raise ValueError("no observed value to score the forecast against")
    crps = crps_samples(x, y)
    mean = x.mean(axis=0)
    nz = y != 0
    out = {"n": int(len(y)), "crps": float(crps.mean()), "crps_relative": float(crps.mean() / np.abs(y).mean()),
           "mape": float(np.mean(np.abs(mean[nz] - y[nz]) / np.abs(y[nz]))) if nz.any() else float("nan")}
    for p in (50, 90):
        lo, hi = np.quantile(x, [(1 - p / 100) / 2, 1 - (1 - p / 100) / 2], axis=0)
        out[f"coverage_{p}"] = float(np.mean((y >= lo) & (y <= hi)))
    return out
