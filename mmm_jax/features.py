"""From validated data to the scaled arrays the model sees (and back).

The scaling is fitted once on the training data (:func:`fit_scaling`) and stored with a fitted
model, so that new data (forecasts, what-if spend) are put on exactly the same scale.

Scaled space:
* spend ``x[t, c] = spend[t, c] / spend_scale[c]`` with ``spend_scale`` the channel's max spend;
* target ``y[t] = target[t] / target_scale`` with ``target_scale = max |target|``;
* controls standardised ``(z - loc) / scale``;
* time ``(date - t0) / t_unit`` in [0, 1] over the training window (extrapolates beyond);
* yearly Fourier features ``sin/cos(2 pi k d / 365.25)`` with ``d`` days since 1970-01-01.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .data import MMMData

__all__ = ["Scaling", "fit_scaling", "design_arrays", "fourier_features", "DATA_NAMES", "YEAR_DAYS"]

YEAR_DAYS = 365.25
#: Names of the data inputs of the compiled model, in a fixed order.
DATA_NAMES = ("spend", "controls", "fourier", "time", "target", "mask")
_EPOCH = pd.Timestamp("1970-01-01")


@dataclass(frozen=True)
class Scaling:
    """Scale factors fitted on the training data. Shapes: spend_scale (C,), control_* (K,)."""

    spend_scale: np.ndarray
    target_scale: float
    control_loc: np.ndarray
    control_scale: np.ndarray
    t0: pd.Timestamp
    t_unit_days: float

    def to_dict(self) -> dict:
        return {
            "spend_scale": np.asarray(self.spend_scale).tolist(),
            "target_scale": float(self.target_scale),
            "control_loc": np.asarray(self.control_loc).tolist(),
            "control_scale": np.asarray(self.control_scale).tolist(),
            "t0": self.t0.isoformat(),
            "t_unit_days": float(self.t_unit_days),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Scaling:
        return cls(
            spend_scale=np.asarray(d["spend_scale"], dtype=float),
            target_scale=float(d["target_scale"]),
            control_loc=np.asarray(d["control_loc"], dtype=float),
            control_scale=np.asarray(d["control_scale"], dtype=float),
            t0=pd.Timestamp(d["t0"]),
            t_unit_days=float(d["t_unit_days"]),
        )


def fit_scaling(data: MMMData) -> Scaling:
    """Fit the scale factors on training data."""
    spend_scale = data.spend.max(axis=0)
    target_scale = float(np.max(np.abs(data.target)))
    k = data.control_values.shape[1]
    loc = data.control_values.mean(axis=0) if k else np.zeros(0)
    scale = data.control_values.std(axis=0) if k else np.zeros(0)
    scale = np.where(scale > 0, scale, 1.0)  # a constant control is centred, not divided by 0
    span = (data.dates[-1] - data.dates[0]).days
    return Scaling(
        spend_scale=spend_scale,
        target_scale=target_scale,
        control_loc=loc,
        control_scale=scale,
        t0=pd.Timestamp(data.dates[0]),
        t_unit_days=float(max(span, 1)),
    )


def fourier_features(dates: pd.DatetimeIndex, order: int) -> np.ndarray:
    """Yearly Fourier features ``[sin1, cos1, sin2, cos2, ...]``: (T,) dates -> (T, 2*order)."""
    d = np.asarray((pd.DatetimeIndex(dates) - _EPOCH).days, dtype=float)
    k = np.arange(1, order + 1)
    ang = 2.0 * np.pi * d[:, None] * k[None, :] / YEAR_DAYS
    out = np.empty((len(d), 2 * order))
    out[:, 0::2] = np.sin(ang)
    out[:, 1::2] = np.cos(ang)
    return out


def design_arrays(data: MMMData, scaling: Scaling, seasonality: int) -> dict[str, np.ndarray]:
    """Scaled model inputs (float64 NumPy) keyed by :data:`DATA_NAMES`.

    Shapes: spend (T, C), controls (T, K), fourier (T, 2n), time (T,), target (T,), mask (T,).
    A target that is not known (forecasting) is returned as zeros with ``mask`` zeros.
    """
    target = np.asarray(data.target, dtype=float)
    known = np.isfinite(target)
    t = np.asarray((pd.DatetimeIndex(data.dates) - scaling.t0).days, dtype=float) / scaling.t_unit_days
    return {
        "spend": data.spend / scaling.spend_scale,
        "controls": (data.control_values - scaling.control_loc) / scaling.control_scale,
        "fourier": fourier_features(data.dates, seasonality),
        "time": t,
        "target": np.where(known, target, 0.0) / scaling.target_scale,
        "mask": known.astype(float),
    }
