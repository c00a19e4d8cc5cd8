"""Validation: time-slice cross-validation (:mod:`.cv`) and simulation-based calibration
(:mod:`.sbc`), every fold / simulation a brand of the batch engine.

Hold-out scores of a single fit are :meth:`mmm_jax.MMM.holdout_metrics` (``fit(..., holdout=)``)
and lift tests are part of the model (:mod:`mmm_jax.data.lift`).
"""

from .cv import CVResult, fold_frames, time_slice_cv
from .sbc import SBCResult, prior_draws, sbc

__all__ = ["time_slice_cv", "CVResult", "fold_frames", "sbc", "SBCResult", "prior_draws"]
