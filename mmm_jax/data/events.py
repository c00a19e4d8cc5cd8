"""Holidays and events: a table of dated events -> indicator features, one column per event name.

An event table has one row per occurrence: ``date`` (the day of the event), ``holiday`` (its
name; every occurrence of a name shares one coefficient, e.g. each year's ``black_friday``) and,
optionally, ``days_before`` / ``days_after`` (integers >= 0, default 0): the event's window is
``date - days_before .. date + days_after`` (days, inclusive).

Each row of the data covers the days from its date up to the next row's date (weekly data: the
week that *starts* on the row's date; daily data: the day). A period's feature for a name is 1
when any day of any window of that name falls in the period, else 0. Events outside the data's
dates are kept (they matter for forecasts) and add nothing to the fitted weeks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from .validate import read_table

__all__ = ["EVENT_COLUMNS", "Event", "event_features", "event_names", "read_events"]

#: Columns of an event table (``days_before`` / ``days_after`` are optional).
EVENT_COLUMNS = ("date", "holiday", "days_before", "days_after")


class Event(NamedTuple):
    """One event occurrence: ISO date, name, and its window in days before and after."""

    date: str
    holiday: str
    days_before: int = 0
    days_after: int = 0

    def to_dict(self) -> dict:
        return dict(self._asdict())


def read_events(value, key: str = "holidays") -> tuple[Event, ...]:
    """Events from a CSV / Parquet path, a DataFrame or a list of mappings / :class:`Event`.

    Raises ``ValueError`` naming ``key``, the row (0-based, as given) and the column for a bad
    entry, ``FileNotFoundError`` for a missing file.
    """
    if isinstance(value, str | Path):
        value = read_table(value)
    if isinstance(value, pd.DataFrame):
        missing = [c for c in EVENT_COLUMNS[:2] if c not in value.columns]
        if missing:
            raise ValueError(f"{key}: the table needs the column {missing[0]!r} (columns: date, holiday, "
                             f"optional days_before, days_after; got {list(value.columns)})")
        extra = [c for c in value.columns if c not in EVENT_COLUMNS]
        if extra:
            raise ValueError(f"{key}: unknown column {extra[0]!r}; allowed: {list(EVENT_COLUMNS)}")
        rows = value.to_dict("records")
    elif isinstance(value, Sequence) and not isinstance(value, str):
        rows = list(value)
    else:
        raise ValueError(f"{key}: expected the path of a CSV / Parquet table or a list of events "
                         f"(date, holiday[, days_before, days_after]), got {type(value).__name__}")
    events = []
    for i, row in enumerate(rows):
        if isinstance(row, Event):
            row = row.to_dict()
        if not isinstance(row, Mapping):
            raise ValueError(f"{key}, row {i}: expected a mapping with date and holiday, got {row!r}")
        unknown = sorted(set(row) - set(EVENT_COLUMNS))
        if unknown:
            raise ValueError(f"{key}, row {i}: unknown key {unknown[0]!r}; allowed: {list(EVENT_COLUMNS)}")
        events.append(_event(row, i, key))
    if not events:
        raise ValueError(f"{key}: the table has no events")
    return tuple(events)


def _event(row: Mapping, i: int, key: str) -> Event:
    where = f"{key}, row {i}"
    raw = row.get("date")
    try:
        date = pd.Timestamp(raw)
    except (ValueError, TypeError):
        date = pd.NaT
    if raw is None or pd.isna(date):
        raise ValueError(f"{where}, column 'date': {raw!r} is not a date")
    name = row.get("holiday")
    if isinstance(name, float) and np.isnan(name):
        name = None
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where}, column 'holiday': needs a non-empty name, got {name!r}")
    window = []
    for col in ("days_before", "days_after"):
        v = row.get(col, 0)
        if v is None or (isinstance(v, float) and np.isnan(v)):
            v = 0
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating) or v < 0 or v != int(v):
            raise ValueError(f"{where}, column {col!r}: must be a whole number of days >= 0, got {v!r}")
        window.append(int(v))
    return Event(date.normalize().strftime("%Y-%m-%d"), name.strip(), *window)


def event_names(events: Sequence[Event]) -> tuple[str, ...]:
    """The distinct event names, in order of first appearance: the feature columns."""
    return tuple(dict.fromkeys(e.holiday for e in events))


def _days(x) -> np.ndarray:
    """Whole days since 1970-01-01 of datetime64 values (any unit)."""
    return np.asarray(x).astype("datetime64[D]").astype(np.int64)


def event_features(dates, events: Sequence[Event]) -> np.ndarray:
    """Indicator features ``(T, H)`` (float 0/1) of ``events`` on the periods starting at ``dates``.

    ``dates`` (T,) must increase; a period runs from its date to the next one (the last period
    is as long as the median spacing). ``H = len(event_names(events))``.
    """
    d = _days(pd.DatetimeIndex(dates).normalize().values)  # days since the epoch
    names = event_names(events)
    out = np.zeros((len(d), len(names)))
    if len(d) == 0:
        return out
    step = int(np.median(np.diff(d))) if len(d) > 1 else 1
    ends = np.append(d[1:], d[-1] + step)  # exclusive end of each period
    col = {n: j for j, n in enumerate(names)}
    for e in events:
        day = int(_days(np.datetime64(e.date)))
        lo, hi = day - e.days_before, day + e.days_after  # inclusive window
        hit = (d <= hi) & (ends > lo)
        out[hit, col[e.holiday]] = 1.0
    return out
