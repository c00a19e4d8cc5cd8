"""Hold-out weeks: the last weeks of the data kept out of the likelihood (masked, not dropped).

A hold-out keeps every week's spend in the model, so carry-over from the training weeks into the
held-out ones (and within them) is right, while the held-out targets add nothing to the
log-density. Scaling (spend and target scales, control standardisation, time axis, HSGP domains)
is fitted on the training weeks only, so nothing of the held-out targets leaks into the fit.
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np
import pandas as pd

__all__ = ["holdout_split", "training_weeks", "mask_holdout"]


def holdout_split(dates, holdout, *, min_train: int = 2) -> int:
    """Number of training weeks ``n`` (weeks ``n..T-1`` are held out) for ``holdout``: None (no
    hold-out: ``T``), a number of last weeks (int >= 1) or a date (weeks on or after it).

    Raises ``ValueError`` naming the problem (no week held out, too few training weeks)."""
    dates = pd.DatetimeIndex(dates)
    T = len(dates)
    if holdout is None:
        return T
    if isinstance(holdout, bool):
        raise ValueError(f"holdout: expected a number of weeks or a date, got {holdout!r}")
    if isinstance(holdout, numbers.Integral):
        if holdout < 1:
            raise ValueError(f"holdout: {holdout} weeks; give at least 1 (or None for no hold-out)")
        n = T - int(holdout)
        what = f"{holdout} weeks"
    else:
        try:
            start = pd.Timestamp(holdout)
        except (TypeError, ValueError):
            raise ValueError(f"holdout: {holdout!r} is neither a number of weeks nor a date") from None
        if start.tz is not None:
            start = start.tz_convert("UTC").tz_localize(None)
        n = int((dates < start).sum())
        if n == T:
            raise ValueError(f"holdout: {start.date()} is after the last date {dates[-1].date()}: no week held out")
        what = f"from {start.date()}"
    if n < min_train:
        raise ValueError(f"holdout: {what} leaves {max(n, 0)} training weeks of {T}; the model needs at least "
                         f"{min_train}")
    return n


def training_weeks(data, n: int):
    """``data`` (:class:`~mmm_jax.data.validate.MMMData` or :class:`~mmm_jax.data.panel.PanelData`)
    cut to its first ``n`` weeks (what scaling is fitted on)."""
    if n >= len(data.dates):
        return data
    fields = {"dates": data.dates[:n]}
    if hasattr(data, "observed"):  # a panel: (G, T, ...) arrays
        for k in ("spend", "controls", "target", "observed", "treatments"):
            if getattr(data, k, None) is not None:
                fields[k] = getattr(data, k)[:, :n]
    else:
        for k in ("spend", "control_values", "target", "treatment_values"):
            fields[k] = getattr(data, k)[:n]
    return dataclasses.replace(data, **fields)


def mask_holdout(arrays: dict, n: int) -> dict:
    """Model inputs with weeks ``n..`` out of the likelihood: ``mask`` (and the ROAS-prior training
    window ``mask_train``) set to 0 there (the last axis is the week axis: (T,) or (G, T))."""
    out = dict(arrays)
    for k in ("mask", "mask_train"):
        if k in out:
            m = np.array(out[k], dtype=float, copy=True)
            m[..., n:] = 0.0
            out[k] = m
    return out
