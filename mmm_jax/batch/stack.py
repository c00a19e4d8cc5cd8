"""Many brands in one array program: split, validate, scale and pad to a template shape.

Each brand is validated on its own (a bad brand becomes a :class:`BrandFailure`, never an
exception for the batch), scaled with its own :class:`~mmm_jax.data.features.Scaling`, and padded
to the template length ``T_max`` at the END of its history:

* padded weeks have ``mask = 0`` (they add nothing to the log-likelihood), zero spend, zero
  controls, zero treatments and zero target; time and Fourier features continue the brand's calendar;
* a channel the brand does not have (column absent, all NaN or all zero for that brand) gets
  zero spend: every saturation curve is 0 at 0, so it contributes nothing and its parameters
  are only sampled from their prior; it is dropped from the brand's results.

Padding at the end keeps adstock causal: padded weeks cannot carry over into real ones.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..config.model import ModelConfig
from ..data.features import Scaling, fit_model_scaling, fourier_features, model_arrays, pad_inputs, widen_channels
from ..data.holdout import holdout_split, mask_holdout, training_weeks
from ..data.lift import brand_lift, lift_digest, with_lift_sizes
from ..data.validate import DataError, MMMData, read_table, validate_frame

__all__ = [
    "BrandData",
    "BrandFailure",
    "StackedBatch",
    "split_brands",
    "prepare_brand",
    "stack_brands",
    "brand_seed",
    "read_table",
]


@dataclass(frozen=True, eq=False)
class BrandData:
    """One brand, validated and scaled.

    Attributes
    ----------
    name : str
    data : MMMData
        The brand's own data with its present channels only.
    config : ModelConfig
        The batch config restricted to the brand's present channels.
    present : np.ndarray of bool, (C,)
        Which of the batch config's channels the brand has.
    scaling : Scaling
        Per-brand scaling over the present channels.
    arrays : dict of np.ndarray
        The model's inputs (:func:`mmm_jax.data.features.model_arrays`) over ALL batch channels
        (absent ones zero spend, spend scale 1), unpadded (T_b rows).
    data_hash : str
        SHA-256 of the brand's validated arrays and lift tests (detects changed data on resume).
    lift_tests : DataFrame or None
        The brand's checked lift tests (:mod:`mmm_jax.data.lift`); ``arrays`` then has their
        inputs (columns indexed over all batch channels).
    holdout_start : Timestamp or None
        The first held-out week (masked in ``arrays``), or None.
    """

    name: str
    data: MMMData
    config: ModelConfig
    present: np.ndarray
    scaling: Scaling
    arrays: dict
    data_hash: str
    lift_tests: pd.DataFrame | None = None
    holdout_start: pd.Timestamp | None = None

    @property
    def n_weeks(self) -> int:
        return self.data.n_periods


@dataclass(frozen=True)
class BrandFailure:
    """A brand that could not be prepared (bad data); ``reason`` names column and row."""

    name: str
    reason: str


@dataclass(frozen=True, eq=False)
class StackedBatch:
    """Brands padded to one template shape.

    Attributes
    ----------
    names : list of str, length B
    arrays : dict of np.ndarray
        Each input with a leading brand axis: spend (B, T, C), controls (B, T, K),
        fourier (B, T, 2n), time (B, T), target (B, T), mask (B, T), and the extras the
        config uses (``target_scale`` (B,), HSGP bases (B, T, m) / (B, m), ...).
    n_weeks : np.ndarray of int, (B,)
        Real (unpadded) length of each brand.
    """

    names: list
    arrays: dict
    n_weeks: np.ndarray


def brand_seed(seed: int, name: str) -> int:
    """A brand's own 32-bit seed from the job seed and the brand name (order independent)."""
    return (zlib.crc32(f"{int(seed)}:{name}".encode()) ^ (int(seed) * 0x9E3779B1)) & 0xFFFFFFFF


def split_brands(
    data: pd.DataFrame | Mapping[str, pd.DataFrame] | str | Path | Iterable,
    by: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Brands as ``{name: frame}`` from any of the accepted inputs.

    Parameters
    ----------
    data : DataFrame (long format, needs ``by``), mapping name -> DataFrame, a file (long
        format), a directory of CSV/Parquet files (one brand per file, named by the file stem),
        or a list of such files.
    by : str
        Brand/market column of a long-format table.
    """
    if isinstance(data, Mapping):
        return {str(k): v for k, v in data.items()}
    if isinstance(data, str | Path):
        path = Path(data)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".csv", ".parquet", ".pq"))
            if not files:
                raise FileNotFoundError(f"{path}: no .csv or .parquet files (one per brand) found")
            return {p.stem: read_table(p) for p in files}
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or directory")
        data = read_table(path)
    elif not isinstance(data, pd.DataFrame):
        files = [Path(p) for p in data]
        return {p.stem: read_table(p) for p in files}
    if by is None:
        raise DataError("a long-format table needs the brand column: by=<column> (CLI: --by COLUMN)")
    if by not in data.columns:
        raise DataError(f"missing brand column {by!r}; available: {list(data.columns)[:50]}", column=by)
    if data[by].isna().any():
        row = int(np.flatnonzero(data[by].isna().to_numpy())[0])
        raise DataError(f"column {by!r}, row {row}: missing brand name", column=by, row=row)
    out = {}
    for name, frame in data.groupby(by, sort=True):
        out[str(name)] = frame.drop(columns=[by]).reset_index(drop=True)
    return out


def _present_channels(frame: pd.DataFrame, channels) -> np.ndarray:
    """A channel is present when its column exists and has some non-zero, non-NaN spend."""
    present = []
    for c in channels:
        if c not in frame.columns:
            present.append(False)
            continue
        v = pd.to_numeric(frame[c], errors="coerce")
        present.append(bool((v.fillna(0) != 0).any()))
    return np.asarray(present, dtype=bool)


def _data_hash(data: MMMData) -> str:
    h = hashlib.sha256()
    h.update(np.asarray(data.dates.asi8).tobytes())
    for a in (data.spend, data.control_values, data.target):
        h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    h.update(repr((data.channels, data.controls)).encode())
    if data.treatments:  # only then: a brand without treatments keeps the hash of earlier runs (resume)
        h.update(np.ascontiguousarray(data.treatment_values, dtype=np.float64).tobytes())
        h.update(repr(data.treatments).encode())
    return h.hexdigest()


def prepare_brand(name: str, frame: pd.DataFrame, config: ModelConfig,
                  lift: pd.DataFrame | None = None, holdout=None) -> BrandData | BrandFailure:
    """Validate and scale one brand; a problem gives a :class:`BrandFailure`, never an exception.

    The arrays are the single-brand model's own inputs (:func:`mmm_jax.data.features.model_arrays`:
    HSGP bases, ``target_scale``, ROAS-prior training arrays included), widened to all of the
    batch's channels. ``lift``: the brand's lift-test rows (a test of a channel the brand does not
    have, or any bad row, fails the brand naming the row). ``holdout``: weeks kept out of the
    likelihood (:mod:`mmm_jax.data.holdout`: scaling on the training weeks, held-out weeks masked).
    """
    try:
        present = _present_channels(frame, config.channels)
        if not present.any():
            return BrandFailure(name, f"no spend in any channel of {list(config.channels)}")
        chans = tuple(c for c, p in zip(config.channels, present, strict=True) if p)
        tvm = config.time_varying_media
        if not present.all() and tvm is not None and tvm.hierarchical and tvm.zero_sum and len(chans) > 1:
            absent = [c for c, p in zip(config.channels, present, strict=True) if not p]
            return BrandFailure(name, (
                f"no spend in {absent}: time_varying_media hierarchical with zero_sum ties the channels' "
                "deviations together, so a brand cannot leave a channel out; give the brand every channel or "
                "set time_varying_media.zero_sum: false"))
        # an absent channel's column may still be there (all zero/NaN): not an "unknown" column
        drop = [c for c, p in zip(config.channels, present, strict=True) if not p and c in frame.columns]
        data = validate_frame(
            frame.drop(columns=drop),
            date=config.date,
            target=config.target,
            channels=chans,
            controls=config.controls,
            min_length=max(2, int(getattr(config.adstock, "l_max", 1) or 1)),
            outlier_factor=config.outlier_factor,
            treatments=config.treatments,
        )
        brand_cfg = config.for_channels(chans)
        n = holdout_split(data.dates, holdout, min_train=max(2, int(getattr(config.adstock, "l_max", 1) or 1)))
        scaling = fit_model_scaling(brand_cfg, training_weeks(data, n))
        arrays = widen_channels(mask_holdout(model_arrays(brand_cfg, data, scaling), n), present)
        tests, digest = None, _data_hash(data)
        start = None if n == data.n_periods else pd.Timestamp(data.dates[n])
        if start is not None:
            digest = hashlib.sha256(f"{digest}|holdout {start.isoformat()}".encode()).hexdigest()
        if lift is not None and len(lift):
            tests, lift_in = brand_lift(lift, brand_cfg, data, scaling)
            lift_in["lift_column"] = np.flatnonzero(present)[lift_in["lift_column"]]  # over all batch channels
            arrays.update(lift_in)
            digest = hashlib.sha256(digest.encode() + lift_digest(tests)).hexdigest()
        return BrandData(name, data, brand_cfg, present, scaling, arrays, digest, tests, start)
    except DataError as err:
        return BrandFailure(name, f"bad data: {err}")
    except Exception as err:  # noqa: BLE001 - any surprise is this brand's failure, not the batch's
        return BrandFailure(name, f"{type(err).__name__}: {err}")


def _padded_arrays(b: BrandData, T: int, seasonality: int, lift: Mapping[str, int] | None = None) -> dict:
    """``b.arrays`` padded at the end to ``T`` weeks by :func:`mmm_jax.data.features.pad_inputs`:
    time and Fourier features continue the brand's calendar, everything else with a date axis
    (spend, target, masks, HSGP basis rows, training copies) is zero there; the padded weeks are
    masked out of the likelihood and, being last, cannot carry over into real weeks. ``lift``:
    the template's lift sizes (``lift_test``, ``lift_col``): padded tests are masked.
    """
    Tb, lift = b.n_weeks, dict(lift or {})
    arrays = with_lift_sizes(b.arrays, lift, Tb)
    if Tb == T and not lift:
        return arrays
    step = pd.Timedelta(days=b.data.freq_days)
    extra = pd.DatetimeIndex([b.data.dates[-1] + step * (i + 1) for i in range(T - Tb)])
    t_extra = np.asarray((extra - b.scaling.t0).days, dtype=float) / b.scaling.t_unit_days
    calendar = {"time": np.concatenate([b.arrays["time"], t_extra]),
                "fourier": np.concatenate([b.arrays["fourier"], fourier_features(extra, seasonality)])}
    return pad_inputs(arrays, {"date": T, **lift}, calendar)


def stack_brands(brands: list[BrandData], T: int, seasonality: int, lift: Mapping[str, int] | None = None
                 ) -> StackedBatch:
    """Pad every brand to ``T`` weeks (and the ``lift`` sizes, :func:`mmm_jax.data.lift.lift_sizes`)
    and stack along a new leading brand axis."""
    if any(b.n_weeks > T for b in brands):
        raise ValueError(f"template length {T} is shorter than a brand ({max(b.n_weeks for b in brands)} weeks)")
    padded = [_padded_arrays(b, T, seasonality, lift) for b in brands]
    arrays = {k: np.stack([p[k] for p in padded]) for k in padded[0]}
    return StackedBatch([b.name for b in brands], arrays, np.asarray([b.n_weeks for b in brands]))
