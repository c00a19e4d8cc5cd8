"""Lift tests (geo / switch-back experiments): a checked table -> the model's lift inputs.

A lift test says: during the weeks ``start``..``end`` (dates, inclusive) the spend of ``channel``
(in ``market``, for a market model) was changed by ``delta_spend`` per week (original currency;
negative for a hold-back), and the incremental response measured over those weeks was
``delta_response`` (original target units) with standard error ``sigma``.

The model predicts the same quantity per posterior draw (:func:`mmm_jax.model.build.build_pymc_model`):
the channel's contribution with the spend changed on the test weeks minus its contribution with
the spend as observed, summed over the test weeks — adstock carry-over between test weeks and
saturation at the observed spend level included; carry-over after ``end`` is not counted (the
experiment measured the test weeks only). The measurement enters as an extra observation of
that prediction (:data:`LIFT_LIKELIHOODS`).

Markets: a test names the market it ran in. A test of a *national* channel may leave ``market``
empty: the spend change then applies to every market (a national experiment) and the predicted
lift is the sum over markets. A per-market channel needs the market.

Model inputs (:func:`lift_arrays`; ``M`` (channel, market) columns perturbed, ``N`` tests):

* ``lift_column`` (M,) int: the media column (one brand: the channel; markets: ``c * G + g``,
  channel-major in the model's channel order);
* ``lift_delta`` (M,): the spend change in scaled units (``delta_spend / spend_scale``);
* ``lift_window`` (T, M): 1 on the test's weeks (and, with markets, weeks the market has);
* ``lift_weight`` (N, M): the column's scaled lift -> the test's lift in units of ``lift_ref``
  (``target_scale[g] / lift_ref[n]`` where column ``m`` belongs to test ``n``);
* ``lift_observed``, ``lift_sigma`` (N,): the measurement and its standard error in units of
  ``lift_ref``; ``lift_ref`` (N,): original target units per unit (the mean target scale of the
  test's markets); ``lift_mask`` (N,): 1 for a real test (0 for batch padding).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .validate import DataError, read_table

__all__ = [
    "LIFT_COLUMNS",
    "LIFT_INPUTS",
    "LIFT_LIKELIHOODS",
    "brand_lift",
    "empty_lift_arrays",
    "lift_arrays",
    "lift_constant_data",
    "lift_for_weeks",
    "lift_table_for",
    "lift_table_from_constant_data",
    "panel_lift",
    "read_lift_tests",
    "validate_lift_tests",
]

#: Required columns of a lift-test table (``market`` is optional: one brand, or national tests).
LIFT_COLUMNS = ("channel", "start", "end", "delta_spend", "delta_response", "sigma")
#: The model inputs a lift-test table becomes.
LIFT_INPUTS = ("lift_column", "lift_delta", "lift_window", "lift_weight", "lift_observed", "lift_sigma",
               "lift_ref", "lift_mask")
#: ``normal``: ``delta_response ~ Normal(lift, sigma)`` — allows a measured lift of the opposite
#: sign (noisy tests of weak channels give those), the default. ``gamma``: ``|delta_response| ~
#: Gamma(mean=|lift|, sd=sigma)`` (PyMC-Marketing's choice) — positive, right-skewed; needs every
#: measured lift non-zero with the sign of its spend change.
LIFT_LIKELIHOODS = ("normal", "gamma")


def read_lift_tests(source) -> pd.DataFrame:
    """A lift-test table from a DataFrame or a CSV / Parquet path (:class:`DataError` naming a bad file)."""
    if isinstance(source, pd.DataFrame):
        return source
    return read_table(source)


def _row_error(row: int, column: str, message: str) -> DataError:
    return DataError(f"lift tests, row {row}, column {column!r}: {message}", column=column, row=row)


def _number(df: pd.DataFrame, column: str) -> np.ndarray:
    v = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(v))
    if len(bad):
        raise _row_error(int(bad[0]), column, f"not a finite number ({df[column].iloc[bad[0]]!r})")
    return v


def _dates(df: pd.DataFrame, column: str) -> pd.DatetimeIndex:
    v = pd.to_datetime(df[column], errors="coerce")
    if getattr(v.dt, "tz", None) is not None:
        v = v.dt.tz_convert("UTC").dt.tz_localize(None)
    bad = np.flatnonzero(v.isna().to_numpy())
    if len(bad):
        raise _row_error(int(bad[0]), column, f"not a date ({df[column].iloc[bad[0]]!r})")
    return pd.DatetimeIndex(v).as_unit("ns")


def validate_lift_tests(
    df: pd.DataFrame,
    *,
    channels: Sequence[str],
    dates: pd.DatetimeIndex,
    freq_days: int,
    spend: np.ndarray,
    observed: np.ndarray | None = None,
    markets: Sequence[str] | None = None,
    national: Sequence[str] = (),
    likelihood: str = "normal",
) -> pd.DataFrame:
    """Check a lift-test table against the data; a bad row raises :class:`DataError` naming it.

    Parameters
    ----------
    df : DataFrame with :data:`LIFT_COLUMNS` (and ``market`` for a market model).
    channels : the config's channels (the columns of ``spend``).
    dates : (T,) the data's dates; ``freq_days`` their spacing.
    spend : one brand (T, C); markets (G, T, C): original-unit spend, config channel order.
    observed : (G, T) bool, the weeks each market has (markets only).
    markets : (G,) market labels (markets only); ``national``: the national channels.
    likelihood : one of :data:`LIFT_LIKELIHOODS`.

    Returns
    -------
    DataFrame with columns channel, market (None for one brand / a national test), start, end,
    delta_spend, delta_response, sigma; the index is the row position in ``df``.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"lift tests: expected a table (DataFrame or CSV / Parquet file), got {type(df).__name__}")
    missing = [c for c in LIFT_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"lift tests: missing column {missing[0]!r}; a lift-test table has columns "
                        f"{[*LIFT_COLUMNS[:1], 'market (optional)', *LIFT_COLUMNS[1:]]}", column=missing[0])
    if likelihood not in LIFT_LIKELIHOODS:
        raise DataError(f"lift tests: likelihood {likelihood!r} is not one of {list(LIFT_LIKELIHOODS)}")
    df = df.reset_index(drop=True)
    start, end = _dates(df, "start"), _dates(df, "end")
    d_spend, d_resp, sigma = _number(df, "delta_spend"), _number(df, "delta_response"), _number(df, "sigma")
    spend = np.asarray(spend, dtype=float)
    one = markets is None
    spend3 = spend[None] if one else spend
    obs = np.ones(spend3.shape[:2], bool) if observed is None else np.asarray(observed, bool)
    labels = [] if one else [str(m) for m in markets]
    has_market = "market" in df.columns
    dates = pd.DatetimeIndex(dates)
    last = dates[-1] + pd.Timedelta(days=max(int(freq_days), 1) - 1)
    rows = []
    for i in range(len(df)):
        ch = df["channel"].iloc[i]
        if not isinstance(ch, str) or ch not in channels:
            raise _row_error(i, "channel", f"unknown channel {ch!r}; channels: {list(channels)}")
        c = list(channels).index(ch)
        mk = df["market"].iloc[i] if has_market else None
        mk = None if mk is None or (isinstance(mk, float) and np.isnan(mk)) or mk == "" else str(mk)
        if one and mk is not None:
            raise _row_error(i, "market", f"{mk!r}: this model has no markets (leave the column empty or drop it)")
        if not one:
            if mk is None and ch not in national:
                raise _row_error(i, "market", f"missing: channel {ch!r} is bought per market, so a test of it "
                                 "ran in one market (only a national channel's test may leave the market empty)")
            if mk is not None and mk not in labels:
                raise _row_error(i, "market", f"unknown market {mk!r}; markets: {labels[:20]}")
        if start[i] > end[i]:
            raise _row_error(i, "end", f"{end[i].date()} is before the start {start[i].date()}")
        if start[i] < dates[0] or end[i] > last:
            raise _row_error(i, "start" if start[i] < dates[0] else "end",
                             f"the test ({start[i].date()} .. {end[i].date()}) reaches outside the data "
                             f"({dates[0].date()} .. {dates[-1].date()})")
        weeks = (dates >= start[i]) & (dates <= end[i])
        g_idx = range(len(spend3)) if mk is None else [labels.index(mk)] if not one else [0]
        if not one and mk is not None and not obs[g_idx[0]][weeks].all():
            raise _row_error(i, "start", f"market {mk!r} has no data on some of the test's weeks "
                             f"({start[i].date()} .. {end[i].date()})")
        if not weeks.any():
            raise _row_error(i, "start", f"no week of the data falls in {start[i].date()} .. {end[i].date()}")
        if d_spend[i] == 0:
            raise _row_error(i, "delta_spend", "is 0: a lift test changes the spend")
        if sigma[i] <= 0:
            raise _row_error(i, "sigma", f"{sigma[i]:g}: the standard error must be > 0")
        if likelihood == "gamma" and (d_resp[i] == 0 or np.sign(d_resp[i]) != np.sign(d_spend[i])):
            raise _row_error(i, "delta_response", f"{d_resp[i]:g}: the gamma lift likelihood needs a non-zero lift "
                             "with the sign of delta_spend (use lift_likelihood: normal for such tests)")
        for g in g_idx:
            live = weeks & obs[g]
            low = spend3[g, live, c] + d_spend[i]
            if len(low) and low.min() < -1e-9 * max(1.0, float(np.abs(spend3[g, :, c]).max())):
                where = f" in market {labels[g]!r}" if not one else ""
                raise _row_error(i, "delta_spend", f"{d_spend[i]:g} takes the spend of {ch!r}{where} below 0 "
                                 f"(it is {spend3[g, live, c].min():g} in a test week)")
        rows.append((ch, mk, start[i], end[i], d_spend[i], d_resp[i], sigma[i]))
    out = pd.DataFrame(rows, columns=["channel", "market", *LIFT_COLUMNS[1:]])
    out["market"] = pd.Series([r[1] for r in rows], dtype=object)  # None: one brand / a national test
    return out


def lift_arrays(
    tests: pd.DataFrame,
    *,
    dates: pd.DatetimeIndex,
    channels: Sequence[str],
    spend_scale: np.ndarray,
    target_scale,
    observed: np.ndarray | None = None,
    markets: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """The lift inputs (module docstring) of a validated table (:func:`validate_lift_tests`).

    ``channels``: the model's channel order (markets: local, then national); ``spend_scale``:
    (C,) one brand, (G, C) markets, in that order; ``target_scale``: () / (G,); ``observed``:
    (G, T) the weeks each market has (markets).
    """
    one = markets is None
    ss = np.asarray(spend_scale, float).reshape((1, -1)) if one else np.asarray(spend_scale, float)
    ts = np.asarray(target_scale, float).reshape((1,)) if one else np.asarray(target_scale, float)
    G, T = ss.shape[0], len(dates)
    obs = np.ones((G, T), bool) if observed is None else np.asarray(observed, bool)
    labels = [] if one else [str(m) for m in markets]
    cols, delta, windows, owner, col_ts = [], [], [], [], []
    N = len(tests)
    ref = np.ones(N)
    for n, r in enumerate(tests.itertuples(index=False)):
        c = list(channels).index(r.channel)
        weeks = np.asarray((dates >= r.start) & (dates <= r.end), float)
        market = r.market if isinstance(r.market, str) and r.market else None
        gs = [0] if one else (range(G) if market is None else [labels.index(market)])
        gs = [g for g in gs if (weeks * obs[g]).any()]
        if not gs:
            raise DataError(f"lift tests, row {n}: no market has data on the test's weeks", row=n)
        ref[n] = float(np.mean(ts[gs]))
        for g in gs:
            cols.append(c if one else c * G + g)
            delta.append(r.delta_spend / ss[g, c])
            windows.append(weeks * obs[g])
            owner.append(n)
            col_ts.append(ts[g])
    M = len(cols)
    weight = np.zeros((N, M))
    for m, (n, t) in enumerate(zip(owner, col_ts, strict=True)):
        weight[n, m] = t / ref[n]
    return {
        "lift_column": np.asarray(cols, dtype=np.int64),
        "lift_delta": np.asarray(delta, float),
        "lift_window": np.stack(windows, axis=1) if M else np.zeros((T, 0)),
        "lift_weight": weight,
        "lift_observed": tests["delta_response"].to_numpy(float) / ref,
        "lift_sigma": tests["sigma"].to_numpy(float) / ref,
        "lift_ref": ref,
        "lift_mask": np.ones(N),
    }


def empty_lift_arrays(n_weeks: int) -> dict[str, np.ndarray]:
    """Lift inputs of no test (a batch brand without tests; padded to the batch's sizes)."""
    return {"lift_column": np.zeros(0, np.int64), "lift_delta": np.zeros(0), "lift_window": np.zeros((n_weeks, 0)),
            "lift_weight": np.zeros((0, 0)), "lift_observed": np.zeros(0), "lift_sigma": np.zeros(0),
            "lift_ref": np.zeros(0), "lift_mask": np.zeros(0)}


def lift_for_weeks(train: dict[str, np.ndarray], n_weeks: int) -> dict[str, np.ndarray]:
    """A fitted model's lift inputs for other weeks (forecasts, what-if data): the tests' windows
    do not apply there (zero), so they add nothing; the compiled model still gets every input."""
    out = {k: np.asarray(train[k]) for k in LIFT_INPUTS if k in train}
    if out:
        out["lift_window"] = np.zeros((int(n_weeks), out["lift_window"].shape[1]))
    return out


def lift_constant_data(tests: pd.DataFrame) -> dict:
    """The table as ``constant_data`` variables over dim ``lift_test`` (stored with a fit, so that
    a loaded fit is rebuilt with its tests)."""
    d = ("lift_test",)
    market = [m if isinstance(m, str) else "" for m in tests["market"]]
    return {
        "lift_channel": (d, tests["channel"].astype(str).to_numpy()),
        "lift_market": (d, np.asarray(market, dtype=str)),
        "lift_start": (d, pd.DatetimeIndex(tests["start"]).to_numpy()),
        "lift_end": (d, pd.DatetimeIndex(tests["end"]).to_numpy()),
        "lift_delta_spend": (d, tests["delta_spend"].to_numpy(float)),
        "lift_delta_response": (d, tests["delta_response"].to_numpy(float)),
        "lift_sigma": (d, tests["sigma"].to_numpy(float)),
    }


def lift_table_from_constant_data(cd) -> pd.DataFrame | None:
    """The lift-test table stored by :func:`lift_constant_data` (None when the fit had none)."""
    if cd is None or "lift_channel" not in cd:
        return None
    market = pd.Series([None if str(m) == "" else str(m) for m in np.asarray(cd["lift_market"].values)], dtype=object)
    return pd.DataFrame({
        "channel": [str(c) for c in np.asarray(cd["lift_channel"].values)], "market": market,
        "start": pd.DatetimeIndex(cd["lift_start"].values).as_unit("ns"),
        "end": pd.DatetimeIndex(cd["lift_end"].values).as_unit("ns"),
        "delta_spend": np.asarray(cd["lift_delta_spend"].values, float),
        "delta_response": np.asarray(cd["lift_delta_response"].values, float),
        "sigma": np.asarray(cd["lift_sigma"].values, float),
    })


def lift_table_for(given, config) -> pd.DataFrame | None:
    """The lift-test table of a fit: ``given`` (a DataFrame or path) when not None, else the
    config's ``lift_tests`` path, else None. ``config``: the (base) :class:`~mmm_jax.ModelConfig`."""
    source = given if given is not None else config.lift_tests
    return None if source is None else read_lift_tests(source)


def brand_lift(table: pd.DataFrame, config, data, scaling) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """One brand's checked tests and lift inputs: ``config`` a ModelConfig, ``data`` its
    :class:`~mmm_jax.data.validate.MMMData`, ``scaling`` its :class:`~mmm_jax.data.features.Scaling`."""
    tests = validate_lift_tests(table, channels=config.channels, dates=data.dates, freq_days=data.freq_days,
                                spend=data.spend, likelihood=config.lift_likelihood)
    return tests, lift_arrays(tests, dates=data.dates, channels=config.channels,
                              spend_scale=scaling.spend_scale, target_scale=scaling.target_scale)


def panel_lift(table: pd.DataFrame, config, panel, scaling) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """A market panel's checked tests and lift inputs: ``config`` a HierarchicalConfig, ``panel``
    its :class:`~mmm_jax.data.panel.PanelData`, ``scaling`` its PanelScaling."""
    b = config.base
    tests = validate_lift_tests(table, channels=b.channels, dates=panel.dates, freq_days=panel.freq_days,
                                spend=panel.spend, observed=panel.observed, markets=panel.markets,
                                national=config.national_channels, likelihood=b.lift_likelihood)
    order = [*config.local_channels, *config.national_channels]
    idx = [b.channels.index(c) for c in order]
    return tests, lift_arrays(tests, dates=panel.dates, channels=order, spend_scale=scaling.spend_scale[:, idx],
                              target_scale=scaling.target_scale, observed=panel.observed, markets=panel.markets)


def lift_digest(tests: pd.DataFrame) -> bytes:
    """Bytes that change when a brand's checked tests change (for the batch's data hash)."""
    cols = ["channel", "market", "start", "end", "delta_spend", "delta_response", "sigma"]
    return tests[cols].astype(str).to_csv(index=False).encode()


def split_lift_tests(table: pd.DataFrame | None, by: str | None, brands) -> dict[str, pd.DataFrame] | None:
    """A batch's lift-test table split per brand: ``{brand: its rows}`` (every brand present, maybe
    empty), or None without a table. The brand column is ``by`` (the data's), else ``brand``; a
    row naming a brand that is not in the data raises :class:`DataError` naming the row."""
    if table is None:
        return None
    col = by if by is not None and by in table.columns else "brand"
    if col not in table.columns:
        raise DataError(f"lift tests: missing the brand column {col!r} (a batch's tests say which brand each is for)",
                        column=col)
    table = table.reset_index(drop=True)
    names = table[col].astype(str)
    known = {str(b) for b in brands}
    bad = np.flatnonzero(~names.isin(known).to_numpy())
    if len(bad):
        raise _row_error(int(bad[0]), col, f"unknown brand {names.iloc[bad[0]]!r}; brands: {sorted(known)[:20]}")
    return {b: table[names == b].drop(columns=[col]).reset_index(drop=True) for b in known}


def with_lift_sizes(arrays: dict, sizes: dict, n_weeks: int) -> dict:
    """``arrays`` with the lift inputs a batch template has (``sizes`` holds ``lift_test``): a brand
    without tests gets :func:`empty_lift_arrays` (padded later to the template's sizes, all masked)."""
    if "lift_test" not in sizes or "lift_column" in arrays:
        return arrays
    return {**arrays, **empty_lift_arrays(n_weeks)}


def lift_sizes(arrays_list) -> dict[str, int]:
    """The lift axes' template sizes over several brands' inputs (``{}`` when none has a test)."""
    n = max((len(a["lift_observed"]) for a in arrays_list if "lift_observed" in a), default=0)
    if n == 0:
        return {}
    return {"lift_test": n, "lift_col": max(len(a["lift_column"]) for a in arrays_list if "lift_column" in a)}
