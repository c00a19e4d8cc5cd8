"""Validation of a user's pandas DataFrame into checked, model-ready arrays.

The single entry point is :func:`validate_frame`. It never drops, sorts,
imputes or coerces anything silently: every problem is reported as a
:class:`DataError` that names the offending column and, where it makes sense,
the 0-based row position (and that row's date once dates are known).

Message style (stable, relied on by tests)::

    column 'tv', row 17 (date 2023-04-30): negative spend -3.0
    column 'date', rows 3 and 4: duplicate date 2023-01-22
    missing column 'radio'; available: ['date', 'sales', 'tv']
"""

from __future__ import annotations

import decimal
import math
import numbers
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["DataError", "MMMData", "validate_frame", "check_counts", "read_table"]

_NS_PER_DAY = 86_400 * 10**9
_MAX_LISTED_COLUMNS = 50


class DataError(ValueError):
    """Bad input data.

    Parameters
    ----------
    message : str
        Full human-readable message. It already names the column and row
        when they are known, e.g.
        ``"column 'tv', row 17 (date 2023-04-30): negative spend -3.0"``.
    column : str or None, optional
        Name of the offending column, or ``None`` for frame-level problems.
    row : int or None, optional
        0-based *position* of the offending row in the frame as given
        (``df.iloc`` position, not the index label), or ``None``.

    Attributes
    ----------
    column : str or None
    row : int or None
    """

    def __init__(self, message: str, *, column: Hashable | None = None, row: int | None = None):
        super().__init__(message)
        self.column = column
        self.row = None if row is None else int(row)

    def __reduce__(self):
        return (_rebuild_data_error, (str(self), self.column, self.row))


def _rebuild_data_error(message, column, row):
    return DataError(message, column=column, row=row)


@dataclass(frozen=True, eq=False)
class MMMData:
    """Validated marketing-mix data.

    All arrays are fresh ``float64`` copies owned by this object. Equality is
    identity (``eq=False``) because the fields are numpy arrays.

    Attributes
    ----------
    dates : pandas.DatetimeIndex, shape (T,)
        Timezone-naive (UTC when the input was timezone-aware), strictly
        increasing and regularly spaced, nanosecond resolution.
    channels : tuple of str, length C
        Paid-media channel column names, in the order given.
    controls : tuple of str, length K
        Control column names, in the order given (K may be 0).
    spend : numpy.ndarray, shape (T, C), float64
        Spend per period and channel, original currency units, all >= 0.
    control_values : numpy.ndarray, shape (T, K), float64
        Control covariates in original units (shape ``(T, 0)`` if K == 0).
    target : numpy.ndarray, shape (T,), float64
        Target (e.g. sales) in original units; all-NaN when the frame had no
        target column and ``require_target=False``.
    freq_days : int
        Spacing between consecutive dates in days (7 weekly, 1 daily).
    date_col, target_col : str
        Original names of the date and target columns.
    treatments : tuple of str, length J
        Non-media treatment column names (promotions, price changes), in the order given (J may
        be 0).
    treatment_values : numpy.ndarray, shape (T, J), float64
        Treatment values in original units (shape ``(T, 0)`` if J == 0; ``None`` is read as that).
    """

    dates: pd.DatetimeIndex
    channels: tuple[str, ...]
    controls: tuple[str, ...]
    spend: np.ndarray
    control_values: np.ndarray
    target: np.ndarray
    freq_days: int
    date_col: str
    target_col: str
    treatments: tuple[str, ...] = ()
    treatment_values: np.ndarray | None = None

    def __post_init__(self):
        T, C, K = len(self.dates), len(self.channels), len(self.controls)
        object.__setattr__(self, "treatments", tuple(self.treatments))
        if self.treatment_values is None:
            object.__setattr__(self, "treatment_values", np.zeros((T, len(self.treatments))))
        expected = {
            "spend": (self.spend, (T, C)),
            "control_values": (self.control_values, (T, K)),
            "target": (self.target, (T,)),
            "treatment_values": (self.treatment_values, (T, len(self.treatments))),
        }
        for name, (arr, shape) in expected.items():
            if np.shape(arr) != shape:
                raise ValueError(f"MMMData.{name} has shape {np.shape(arr)}, expected {shape}")

    @property
    def n_periods(self) -> int:
        """Number of time periods T."""
        return len(self.dates)

    @property
    def n_weeks(self) -> int:
        """Alias of :attr:`n_periods` (T), whatever the frequency."""
        return self.n_periods

    @property
    def n_channels(self) -> int:
        """Number of paid-media channels C."""
        return len(self.channels)

    @property
    def n_controls(self) -> int:
        """Number of control covariates K."""
        return len(self.controls)

    @property
    def n_treatments(self) -> int:
        """Number of non-media treatments J."""
        return len(self.treatments)

    @property
    def has_target(self) -> bool:
        """False when the target is entirely missing (forecasting input)."""
        return not bool(np.isnan(self.target).all())

    def to_frame(self) -> pd.DataFrame:
        """Rebuild a DataFrame with the original column names.

        Returns
        -------
        pandas.DataFrame, shape (T, 2 + C + K + J)
            Columns ``[date_col, target_col, *channels, *controls, *treatments]`` with a
            fresh RangeIndex. The target column is omitted when the target is
            all-NaN (i.e. it was absent), so that the result validates again
            with the same ``require_target`` setting.
        """
        cols: dict = {self.date_col: pd.Series(self.dates, copy=True).reset_index(drop=True)}
        if self.has_target:
            cols[self.target_col] = self.target.copy()
        for j, name in enumerate(self.channels):
            cols[name] = self.spend[:, j].copy()
        for j, name in enumerate(self.controls):
            cols[name] = self.control_values[:, j].copy()
        for j, name in enumerate(self.treatments):
            cols[name] = self.treatment_values[:, j].copy()
        return pd.DataFrame(cols)


# ---------------------------------------------------------------------------
# message helpers
# ---------------------------------------------------------------------------


def _fmt_date(ts: pd.Timestamp) -> str:
    """'YYYY-MM-DD' for midnight timestamps, ISO format otherwise."""
    ts = pd.Timestamp(ts)
    if ts is pd.NaT or pd.isna(ts):
        return "NaT"
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.isoformat()


def _where(column: Hashable, row: int | None = None, dates: pd.DatetimeIndex | None = None) -> str:
    """Location prefix: "column 'tv', row 17 (date 2023-04-30)"."""
    text = f"column {column!r}"
    if row is not None:
        text += f", row {row}"
        if dates is not None:
            text += f" (date {_fmt_date(dates[row])})"
    return text


def _fail(detail: str, column: Hashable | None = None, row: int | None = None, dates=None):
    if column is None:
        raise DataError(detail, column=None, row=row)
    raise DataError(f"{_where(column, row, dates)}: {detail}", column=column, row=row)


def _list_columns(columns) -> str:
    cols = list(columns)
    if len(cols) > _MAX_LISTED_COLUMNS:
        return repr(cols[:_MAX_LISTED_COLUMNS])[:-1] + f", ... ({len(cols)} in total)]"
    return repr(cols)


# ---------------------------------------------------------------------------
# configuration / frame structure
# ---------------------------------------------------------------------------


def _as_name_tuple(value, what: str) -> tuple:
    if isinstance(value, (str, bytes)):
        raise DataError(
            f"{what} must be a sequence of column names, not a single string {value!r}; "
            f"use [{value!r}]"
        )
    try:
        return tuple(value)
    except TypeError:
        raise DataError(f"{what} must be a sequence of column names, got {type(value).__name__}") from None


def _check_roles(date, target, channels: tuple, controls: tuple, treatments: tuple = ()) -> None:
    if len(channels) == 0:
        raise DataError("no channels given; pass at least one spend column in channels")
    roles = [(date, "date"), (target, "target")]
    roles += [(c, "channel") for c in channels] + [(k, "control") for k in controls]
    roles += [(k, "treatment") for k in treatments]
    seen: dict = {}
    for name, role in roles:
        if name in seen:
            raise DataError(
                f"column {name!r} is used more than once (as {seen[name]} and as {role}); "
                "each column can have only one role",
                column=name,
            )
        seen[name] = role


def _check_columns(df: pd.DataFrame, date, target, channels, controls, require_target: bool,
                   allow_extra_columns: bool, treatments=()) -> bool:
    """Check that configured columns exist exactly once. Returns whether the target is present."""
    available = _list_columns(df.columns)
    roles = [(date, "the date column"), (target, "the target")]
    roles += [(c, "a channel") for c in channels] + [(k, "a control") for k in controls]
    roles += [(k, "a treatment") for k in treatments]
    has_target = target in df.columns
    for name, role in roles:
        if name == target and not require_target and not has_target:
            continue
        if name not in df.columns:
            raise DataError(f"missing column {name!r}; available: {available} ({name!r} was given as {role})",
                            column=name)
        count = int(np.sum(df.columns == name))
        if count > 1:
            raise DataError(f"column {name!r} appears {count} times in the frame; column names must be unique",
                            column=name)
    if not allow_extra_columns:
        used = {date, target, *channels, *controls, *treatments}
        extra = [c for c in df.columns if c not in used]
        if extra:
            raise DataError(
                f"unexpected columns not used as date/target/channel/control/treatment: {_list_columns(extra)}; "
                "drop them or pass allow_extra_columns=True",
                column=extra[0],
            )
    return has_target


# ---------------------------------------------------------------------------
# dates
# ---------------------------------------------------------------------------


def _to_datetime_quiet(values: pd.Series, **kwargs) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.to_datetime(values, **kwargs)


def _parse_dates(s: pd.Series, column) -> tuple[pd.DatetimeIndex, str | None]:
    """Parse a date column. Returns (naive ns DatetimeIndex possibly with NaT, original tz name)."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        parsed = s
    elif pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
        _fail(f"expected dates or date strings, got numeric dtype {s.dtype}; numbers are not "
              f"interpreted as dates, convert explicitly (e.g. pd.to_datetime(..., unit='D'))", column)
    else:
        try:
            parsed = _to_datetime_quiet(s, errors="raise")
        except (ValueError, TypeError, OverflowError):
            try:  # mixed UTC offsets (e.g. across daylight saving) need utc=True
                parsed = _to_datetime_quiet(s, errors="raise", utc=True)
            except (ValueError, TypeError, OverflowError) as exc:
                coerced = _to_datetime_quiet(s, errors="coerce", utc=True)
                bad = np.flatnonzero(s.notna().to_numpy() & coerced.isna().to_numpy())
                if bad.size:
                    i = int(bad[0])
                    _fail(f"cannot parse {s.iloc[i]!r} as a date (consistently with the other rows)", column, i)
                _fail(f"cannot parse dates: {exc}", column)
    tz = getattr(parsed.dtype, "tz", None)
    if tz is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    idx = pd.DatetimeIndex(parsed)
    try:
        idx = idx.as_unit("ns")
    except (ValueError, OverflowError):  # pragma: no cover - dates outside 1677..2262
        _fail("dates outside the representable range 1677-2262", column)
    return idx, (None if tz is None else str(tz))


def _check_date_order(idx: pd.DatetimeIndex, column) -> np.ndarray:
    """NaT, duplicates, sortedness. Returns diffs in ns (all > 0)."""
    nat = np.flatnonzero(idx.isna())
    if nat.size:
        _fail("missing date (NaT)", column, int(nat[0]))
    dup = np.flatnonzero(idx.duplicated(keep="first"))
    if dup.size:
        j = int(dup[0])
        i = int(np.flatnonzero(idx == idx[j])[0])
        raise DataError(f"column {column!r}, rows {i} and {j}: duplicate date {_fmt_date(idx[j])}",
                        column=column, row=j)
    diffs = np.diff(idx.asi8)
    down = np.flatnonzero(diffs < 0)
    if down.size:
        k = int(down[0])
        _fail(f"dates are not sorted ascending: earlier than the previous date {_fmt_date(idx[k])} "
              f"(row {k}); "
              "sort the frame by date first (rows are never reordered automatically)", column, k + 1, idx)
    return diffs


def _modal_spacing(diffs: np.ndarray) -> int:
    """Most common positive difference (ties -> the smallest), in ns."""
    values, counts = np.unique(diffs, return_counts=True)
    return int(values[np.argmax(counts)])  # np.unique sorts, argmax takes the first maximum


def _check_spacing(idx: pd.DatetimeIndex, diffs: np.ndarray, column, tz: str | None) -> int:
    """Regular spacing in whole days. Returns freq_days."""
    tz_hint = ""
    if tz is not None:
        tz_hint = (f"; the dates were timezone-aware ({tz}) and were converted to UTC, so daylight-saving "
                   "shifts break regular spacing: pass naive local dates instead "
                   "(e.g. df[col].dt.tz_localize(None))")
    step = _modal_spacing(diffs)
    if step % _NS_PER_DAY:
        _fail(f"the most common spacing between dates is {pd.Timedelta(step, unit='ns')}, "
              f"which is not a whole number of days{tz_hint}", column)
    freq_days = step // _NS_PER_DAY
    monthly_hint = ""
    if 28 <= freq_days <= 31:
        monthly_hint = "; calendar-monthly data is not evenly spaced and is not supported (use weekly or daily)"
    bad = np.flatnonzero(diffs != step)
    if bad.size:
        i = int(bad[0])
        d = int(diffs[i])
        pair = (f"row {i} ({_fmt_date(idx[i])}) and row {i + 1} ({_fmt_date(idx[i + 1])})")
        if d % step == 0:
            n_missing = d // step - 1
            _fail(f"missing dates between {pair}: expected {freq_days}-day spacing "
                  f"({n_missing} period{'s' if n_missing > 1 else ''} missing){tz_hint}", column, i + 1)
        _fail(f"irregular spacing between {pair}: {pd.Timedelta(d, unit='ns')}, "
              f"expected {freq_days}-day spacing{monthly_hint}{tz_hint}", column, i + 1)
    return int(freq_days)


# ---------------------------------------------------------------------------
# numeric columns
# ---------------------------------------------------------------------------


def _is_missing_scalar(v) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, (float, np.floating)) and math.isnan(v)


def _parses_as_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def _numeric_values(s: pd.Series, column, dates) -> np.ndarray:
    """Column -> fresh float64 array (T,), NaN for missing. Strings are never coerced."""
    dtype = s.dtype
    if pd.api.types.is_bool_dtype(dtype) or (
        pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype)
    ):
        return np.array(s.to_numpy(dtype="float64", na_value=np.nan), dtype=np.float64, copy=True)
    out = np.empty(len(s), dtype=np.float64)
    values = s.to_numpy(dtype=object)
    for i, v in enumerate(values):  # a CSV column read as text because of one bad cell: blame that cell
        if isinstance(v, str) and not _parses_as_number(v):
            _fail(f"non-numeric value {v!r} (the column is read as text because of it)", column, i, dates)
    for i, v in enumerate(values):
        if _is_missing_scalar(v):
            out[i] = np.nan
        elif isinstance(v, (bool, np.bool_, numbers.Real, decimal.Decimal)):
            out[i] = float(v)
        else:
            hint = ""
            if isinstance(v, str):
                hint = "; strings are not converted automatically, convert the column explicitly (e.g. pd.to_numeric)"
            _fail(f"non-numeric value {v!r} ({type(v).__name__}) in column of dtype {dtype}{hint}",
                  column, i, dates)
    return out


def _check_finite(values: np.ndarray, column, dates, allow_nan: bool = False) -> None:
    bad = np.isinf(values) if allow_nan else ~np.isfinite(values)
    idx = np.flatnonzero(bad)
    if idx.size:
        i = int(idx[0])
        what = "missing value (NaN)" if np.isnan(values[i]) else f"non-finite value {values[i]}"
        _fail(what, column, i, dates)


#: Default of ``validate_frame(outlier_factor=)``: a week this many times the next largest is an error.
OUTLIER_FACTOR = 1e4
#: Largest absolute value accepted in any numeric column (beyond it sums and squares overflow).
MAX_MAGNITUDE = 1e150


def _check_magnitude(values: np.ndarray, column, dates, what: str, factor: float | None) -> None:
    """Values beyond :data:`MAX_MAGNITUDE`, and (``factor``) one week more than ``factor`` times
    the next largest absolute value, are errors naming the row."""
    a = np.abs(values)
    ok = np.isfinite(a)
    big = np.flatnonzero(ok & (a > MAX_MAGNITUDE))
    if big.size:
        i = int(big[0])
        _fail(f"{what} {values[i]:.3g} is beyond {MAX_MAGNITUDE:.0e} in absolute value (rescale the column)",
              column, i, dates)
    if factor is None or ok.sum() < 3:
        return
    order = np.argsort(np.where(ok, a, -np.inf))
    i, j = int(order[-1]), int(order[-2])
    if a[j] > 0 and a[i] > factor * a[j]:
        _fail(f"{what} {values[i]:.6g} is more than {factor:g} times the next largest ({values[j]:.6g}); a typing "
              "error? fix the value, or set outlier_factor (null turns this check off)", column, i, dates)


def _check_varies(values: np.ndarray, column) -> None:
    v = values[np.isfinite(values)]
    if v.size and (v.max() - v.min()) <= 1e-9 * max(abs(v.max()), abs(v.min())):
        raise DataError(f"target column {column!r} is constant ({v[0]:g} in every week): there is nothing "
                        "for the model to explain", column=column)


def _check_spend(values: np.ndarray, column, dates) -> None:
    neg = np.flatnonzero(values < 0)
    if neg.size:
        i = int(neg[0])
        _fail(f"negative spend {values[i]}", column, i, dates)
    if not np.any(values > 0):
        raise DataError(f"channel {column!r} has no spend at all; drop it from channels", column=column)


# ---------------------------------------------------------------------------
# public entry point
# ---------------------------------------------------------------------------


def validate_frame(
    df: pd.DataFrame,
    *,
    date: str,
    target: str,
    channels: Sequence[str],
    controls: Sequence[str] = (),
    min_length: int = 1,
    allow_extra_columns: bool = True,
    require_target: bool = True,
    outlier_factor: float | None = OUTLIER_FACTOR,
    treatments: Sequence[str] = (),
) -> MMMData:
    """Validate a DataFrame and return checked float64 arrays.

    Nothing is dropped, sorted, imputed or coerced: the first problem found
    raises :class:`DataError` naming the column and 0-based row position.

    Parameters
    ----------
    df : pandas.DataFrame, shape (T, n_columns)
        One row per period, in ascending date order.
    date : str
        Date column: datetimes or date strings (timezone-aware values are
        converted to naive UTC). Must be unique, sorted ascending, and
        regularly spaced by a whole number of days.
    target : str
        Target column (e.g. sales, original units). Finite, not all zero;
        negative and constant values are allowed.
    channels : sequence of str, length C >= 1
        Spend columns (original currency units): finite, >= 0, and each with
        some positive spend.
    controls : sequence of str, length K >= 0, optional
        Control columns: finite, any sign.
    treatments : sequence of str, length J >= 0, optional
        Non-media treatment columns (promotions, price changes): finite, any sign, checked as
        the controls are (required on forecast rows too: a treatment's plan is known).
    min_length : int, optional
        Minimum number of rows T (callers pass the adstock window ``l_max``).
        At least 2 rows are always required.
    allow_extra_columns : bool, optional
        If False, columns not named in date/target/channels/controls are an
        error.
    require_target : bool, optional
        If False the target column may be absent (forecasting with future
        spend): the target is then an all-NaN array. If it is present, NaN
        is allowed (but not +-inf) and the all-zero check is skipped.
    outlier_factor : float or None, optional
        A spend week, or a target week in absolute value, more than this factor above the
        column's next largest value is an error naming the column and row (a typing error such
        as a missing decimal point; default :data:`OUTLIER_FACTOR` = 1e4). None turns the check
        off (config key ``outlier_factor: null``).

    Every numeric value must be finite and at most :data:`MAX_MAGNITUDE` (1e150) in absolute
    value, and a target that does not vary (max - min <= 1e-9 x its magnitude) is refused:
    there is nothing to explain.

    Returns
    -------
    MMMData
        Dates (T,), spend (T, C), control_values (T, K), treatment_values (T, J),
        target (T,), all fresh float64 copies, plus ``freq_days``.

    Raises
    ------
    DataError
        Subclass of ValueError with ``.column`` and ``.row`` attributes.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}")
    if df.shape[1] == 0:
        raise DataError("the frame has no columns")
    if df.shape[0] == 0:
        raise DataError("the frame has no rows")

    channels_t = _as_name_tuple(channels, "channels")
    controls_t = _as_name_tuple(controls, "controls")
    treatments_t = _as_name_tuple(treatments, "treatments")
    _check_roles(date, target, channels_t, controls_t, treatments_t)
    has_target = _check_columns(df, date, target, channels_t, controls_t, require_target, allow_extra_columns,
                                treatments_t)

    n_rows = len(df)
    if n_rows < 2:
        raise DataError(f"the series has {n_rows} row; at least 2 rows are required")
    if n_rows < min_length:
        raise DataError(f"the series has {n_rows} rows but min_length={min_length} (e.g. the adstock window "
                        f"l_max) requires at least {min_length}")

    idx, tz = _parse_dates(df[date], date)
    diffs = _check_date_order(idx, date)
    freq_days = _check_spacing(idx, diffs, date, tz)

    if has_target:
        target_values = _numeric_values(df[target], target, idx)
        _check_finite(target_values, target, idx, allow_nan=not require_target)
        _check_magnitude(target_values, target, idx, "target", outlier_factor)
        if require_target and not np.any(target_values != 0):
            raise DataError(f"target column {target!r} is all zero", column=target)
        if require_target:
            _check_varies(target_values, target)
    else:
        target_values = np.full(n_rows, np.nan, dtype=np.float64)

    spend = np.empty((n_rows, len(channels_t)), dtype=np.float64)
    for j, name in enumerate(channels_t):
        values = _numeric_values(df[name], name, idx)
        _check_finite(values, name, idx)
        _check_spend(values, name, idx)
        _check_magnitude(values, name, idx, "spend", outlier_factor)
        spend[:, j] = values

    def covariates(names: tuple) -> np.ndarray:  # controls and treatments: finite numbers of any sign
        out = np.empty((n_rows, len(names)), dtype=np.float64)
        for j, name in enumerate(names):
            values = _numeric_values(df[name], name, idx)
            _check_finite(values, name, idx)
            _check_magnitude(values, name, idx, "value", None)
            out[:, j] = values
        return out

    control_values = covariates(controls_t)
    treatment_values = covariates(treatments_t)

    return MMMData(
        dates=idx,
        channels=channels_t,
        controls=controls_t,
        spend=spend,
        control_values=control_values,
        target=target_values,
        freq_days=freq_days,
        date_col=date,
        target_col=target,
        treatments=treatments_t,
        treatment_values=treatment_values,
    )


def check_counts(target, column: str, rows=None) -> None:
    """A count likelihood needs integers >= 0 as the target; ``rows`` (same length) maps each
    value to the row number to report (default: its position). NaN (unknown) values pass."""
    y = np.asarray(target, dtype=float)
    bad = np.flatnonzero(np.isfinite(y) & ((y < 0) | (np.abs(y - np.round(y)) > 1e-9)))
    if bad.size:
        i = int(bad[0])
        row = i if rows is None else int(np.asarray(rows)[i])
        raise DataError(
            f"column {column!r}, row {row}: {y[i]!r} is not a count (the Poisson / negative binomial likelihood "
            "needs integers >= 0; use likelihood 'normal' or 'studentt' for a continuous target)",
            column=column,
            row=row,
        )


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file (by suffix); an empty, binary or malformed file raises
    :class:`DataError` naming it, a missing one ``FileNotFoundError``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a CSV / Parquet file")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except ImportError as err:
        raise DataError(f"{path}: reading Parquet needs pyarrow ({err}); pip install pyarrow, or use CSV") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty (no header row)") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file (binary or not UTF-8)") from None
    except (pd.errors.ParserError, ValueError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"{path}: not a readable {'Parquet' if path.suffix.lower() in ('.parquet', '.pq') else 'CSV'} "
                        f"file ({first})") from None
