"""Data in: checked frames (:mod:`.validate`), one brand's scaled model inputs (:mod:`.features`)
and a market panel's (:mod:`.panel`)."""

from .validate import DataError, MMMData, check_counts, validate_frame

__all__ = ["DataError", "MMMData", "validate_frame", "check_counts"]
