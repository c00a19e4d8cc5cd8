"""Validation: time-slice cross-validation (:mod:`.cv`), every fold a brand of one batch.

Hold-out scores of a single fit are :meth:`mmm_jax.MMM.holdout_metrics` (``fit(..., holdout=)``)
and lift tests are part of the model (:mod:`mmm_jax.data.lift`).
"""

from .cv import CVResult, fold_frames, time_slice_cv

__all__ = ["time_slice_cv", "CVResult", "fold_frames"]
