"""Tests for mmm_jax.data.validate.validate_frame: every bad input raises DataError with column/row."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from mmm_jax.data.validate import DataError, MMMData, validate_frame

CONFIG = dict(date="date", target="sales", channels=["tv", "search"], controls=["price"])
T = 12


def make_frame(n: int = T) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "date": pd.date_range("2023-01-01", periods=n, freq="W-SUN"),
            "sales": rng.uniform(100.0, 200.0, n).round(2),
            "tv": rng.uniform(0.0, 50.0, n).round(2),
            "search": rng.uniform(1.0, 5.0, n).round(2),
            "price": rng.normal(0.0, 1.0, n),
        }
    )


def expect_error(df, column, row, match=None, **kwargs) -> DataError:
    config = {**CONFIG, **kwargs}
    with pytest.raises(DataError) as info:
        validate_frame(df, **config)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.column == column, str(err)
    assert err.row == row, str(err)
    if column is not None:
        assert repr(column) in str(err)
    if row is not None:
        assert f"row {row}" in str(err) or f"and {row}" in str(err)
    if match is not None:
        assert match in str(err), str(err)
    return err


# ---------------------------------------------------------------------------
# valid input
# ---------------------------------------------------------------------------


def test_valid_frame_shapes_and_copies():
    df = make_frame()
    data = validate_frame(df, **CONFIG)
    assert isinstance(data, MMMData)
    assert data.n_periods == data.n_weeks == T
    assert data.n_channels == 2 and data.n_controls == 1
    assert data.channels == ("tv", "search") and data.controls == ("price",)
    assert data.spend.shape == (T, 2) and data.spend.dtype == np.float64
    assert data.control_values.shape == (T, 1)
    assert data.target.shape == (T,)
    assert data.freq_days == 7
    assert isinstance(data.dates, pd.DatetimeIndex) and data.dates.tz is None
    np.testing.assert_array_equal(data.spend, df[["tv", "search"]].to_numpy())
    # fresh copies: mutating the result never touches the frame
    data.spend[0, 0] = -1.0
    assert df["tv"].iloc[0] >= 0


def test_round_trip():
    df = make_frame()
    data = validate_frame(df, **CONFIG)
    back = data.to_frame()
    assert list(back.columns) == ["date", "sales", "tv", "search", "price"]
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    again = validate_frame(back, **CONFIG)
    np.testing.assert_array_equal(again.spend, data.spend)
    np.testing.assert_array_equal(again.target, data.target)
    assert again.dates.equals(data.dates)


def test_no_controls_gives_empty_2d_array():
    data = validate_frame(make_frame(), date="date", target="sales", channels=["tv"])
    assert data.control_values.shape == (T, 0)


def test_daily_string_dates_and_bool_and_object_numbers():
    df = make_frame()
    df["date"] = pd.date_range("2024-03-01", periods=T, freq="D").strftime("%Y-%m-%d")
    df["flag"] = np.arange(T) % 2 == 0
    df["search"] = df["search"].astype(object)
    data = validate_frame(df, **{**CONFIG, "controls": ["price", "flag"]})
    assert data.freq_days == 1
    np.testing.assert_array_equal(data.control_values[:, 1], (np.arange(T) % 2 == 0).astype(float))


def test_timezone_aware_dates_converted_to_naive_utc():
    df = make_frame()
    df["date"] = pd.date_range("2023-01-01 05:00", periods=T, freq="7D", tz="America/Bogota")
    data = validate_frame(df, **CONFIG)
    assert data.dates.tz is None
    assert data.dates[0] == pd.Timestamp("2023-01-01 10:00")


def test_negative_controls_and_target_allowed_constant_target_refused():
    df = make_frame()
    df["sales"] = -5.0 - np.arange(len(df)) % 3
    df["price"] = -1.0
    validate_frame(df, **CONFIG)
    df["sales"] = -5.0  # a constant target leaves nothing to explain (it fitted with R-hat 2.4 before)
    with pytest.raises(DataError, match="'sales' is constant"):
        validate_frame(df, **CONFIG)
    df["sales"] = 1e6 + 1e-5 * (np.arange(len(df)) % 2)  # near-constant: a spread of 1e-11 of its size
    with pytest.raises(DataError, match="'sales' is constant"):
        validate_frame(df, **CONFIG)


def test_index_is_ignored_rows_are_positions():
    df = make_frame()
    df.index = np.arange(100, 100 + T)
    df.loc[105, "tv"] = -3.0
    expect_error(df, "tv", 5, "negative spend -3.0")


def test_pickle_keeps_attributes():
    err = DataError("column 'tv', row 3: bad", column="tv", row=3)
    back = pickle.loads(pickle.dumps(err))
    assert (back.column, back.row, str(back)) == ("tv", 3, str(err))


# ---------------------------------------------------------------------------
# frame / config problems
# ---------------------------------------------------------------------------


def test_not_a_dataframe():
    with pytest.raises(DataError, match="DataFrame"):
        validate_frame({"date": [1]}, **CONFIG)


def test_empty_frame():
    expect_error(make_frame().iloc[:0], None, None, "no rows")
    expect_error(pd.DataFrame(), None, None, "no columns")


def test_missing_column():
    err = expect_error(make_frame(), "radio", None, "missing column 'radio'; available: [", channels=["tv", "radio"])
    assert "'search'" in str(err)


def test_missing_target_column():
    expect_error(make_frame().drop(columns="sales"), "sales", None, "missing column 'sales'")


def test_duplicate_roles():
    expect_error(make_frame(), "tv", None, "more than once", controls=["tv"])
    expect_error(make_frame(), "tv", None, "more than once", channels=["tv", "tv"])
    expect_error(make_frame(), "sales", None, "more than once", channels=["sales"])


def test_duplicate_frame_columns():
    df = make_frame()
    df = pd.concat([df, df[["tv"]]], axis=1)
    expect_error(df, "tv", None, "appears 2 times")


def test_no_channels():
    expect_error(make_frame(), None, None, "no channels", channels=[])


def test_channels_as_string():
    expect_error(make_frame(), None, None, "not a single string", channels="tv")


def test_extra_columns():
    df = make_frame()
    df["foo"] = 1.0
    validate_frame(df, **CONFIG)  # allowed by default
    err = expect_error(df, "foo", None, "unexpected columns", allow_extra_columns=False)
    assert "['foo']" in str(err)


def test_too_short():
    err = expect_error(make_frame(), None, None, "min_length=20", min_length=20)
    assert str(T) in str(err)
    expect_error(make_frame(1), None, None, "at least 2 rows")


# ---------------------------------------------------------------------------
# dates
# ---------------------------------------------------------------------------


def test_unparseable_date():
    df = make_frame()
    df["date"] = df["date"].dt.strftime("%Y-%m-%d").astype(object)
    df.loc[4, "date"] = "not a date"
    expect_error(df, "date", 4, "cannot parse 'not a date'")


def test_numeric_dates_rejected():
    df = make_frame()
    df["date"] = np.arange(T)
    expect_error(df, "date", None, "numeric dtype")


def test_nat_date():
    df = make_frame()
    df.loc[6, "date"] = pd.NaT
    expect_error(df, "date", 6, "missing date")


def test_duplicate_dates_names_both_rows():
    df = make_frame()
    df.loc[7, "date"] = df.loc[2, "date"]
    err = expect_error(df, "date", 7, "duplicate date")
    assert "rows 2 and 7" in str(err)


def test_unsorted_dates_first_decrease():
    df = make_frame()
    df.loc[[3, 4], "date"] = df.loc[[4, 3], "date"].to_numpy()
    expect_error(df, "date", 4, "not sorted")


def test_missing_dates_gap():
    df = make_frame().drop(index=[5, 6]).reset_index(drop=True)
    err = expect_error(df, "date", 5, "missing dates between row 4 (2023-01-29) and row 5 (2023-02-19)")
    assert "expected 7-day spacing" in str(err)


def test_irregular_spacing():
    df = make_frame()
    df.loc[6:, "date"] = df.loc[6:, "date"] + pd.Timedelta(days=3)
    expect_error(df, "date", 6, "irregular spacing")


def test_non_whole_day_spacing():
    df = make_frame()
    df["date"] = pd.date_range("2023-01-01", periods=T, freq="12h")
    expect_error(df, "date", None, "whole number of days")


# ---------------------------------------------------------------------------
# numeric columns
# ---------------------------------------------------------------------------


def test_non_numeric_string_value():
    df = make_frame()
    df["search"] = df["search"].astype(object)
    df.loc[3, "search"] = "n/a"
    err = expect_error(df, "search", 3, "non-numeric value 'n/a'")
    assert "(date 2023-01-22)" in str(err)


def test_numeric_strings_are_not_coerced():
    df = make_frame()
    df["price"] = df["price"].astype(str)
    expect_error(df, "price", 0, "non-numeric value")


@pytest.mark.parametrize("column", ["sales", "tv", "price"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_and_inf(column, value):
    df = make_frame()
    df.loc[8, column] = value
    expect_error(df, column, 8, "NaN" if np.isnan(value) else "non-finite")


def test_nullable_na():
    df = make_frame()
    df["tv"] = pd.array(np.arange(T), dtype="Int64")
    df.loc[2, "tv"] = pd.NA
    expect_error(df, "tv", 2, "missing value")


def test_negative_spend_message():
    df = make_frame()
    df.loc[9, "tv"] = -3.0
    err = expect_error(df, "tv", 9, "negative spend -3.0")
    assert str(err) == "column 'tv', row 9 (date 2023-03-05): negative spend -3.0"


def test_all_zero_channel():
    df = make_frame()
    df["search"] = 0.0
    expect_error(df, "search", None, "channel 'search' has no spend at all; drop it from channels")


def test_all_zero_target():
    df = make_frame()
    df["sales"] = 0
    expect_error(df, "sales", None, "all zero")


# ---------------------------------------------------------------------------
# forecasting input (require_target=False)
# ---------------------------------------------------------------------------


def test_require_target_false_absent_target():
    df = make_frame().drop(columns="sales")
    data = validate_frame(df, **CONFIG, require_target=False)
    assert data.target.shape == (T,) and np.isnan(data.target).all()
    assert not data.has_target
    back = data.to_frame()
    assert "sales" not in back.columns
    validate_frame(back, **CONFIG, require_target=False)


def test_require_target_false_present_target_may_have_nan_but_not_inf():
    df = make_frame()
    df.loc[3, "sales"] = np.nan
    data = validate_frame(df, **CONFIG, require_target=False)
    assert np.isnan(data.target[3])
    df.loc[4, "sales"] = np.inf
    expect_error(df, "sales", 4, "non-finite", require_target=False)


def test_require_target_false_still_checks_spend():
    df = make_frame().drop(columns="sales")
    df.loc[1, "tv"] = np.nan
    expect_error(df, "tv", 1, "missing value", require_target=False)


def test_mmmdata_shape_check():
    with pytest.raises(ValueError, match="spend"):
        MMMData(
            dates=pd.date_range("2023-01-01", periods=3, freq="D"),
            channels=("a",), controls=(), spend=np.zeros((3, 2)), control_values=np.zeros((3, 0)),
            target=np.zeros(3), freq_days=1, date_col="date", target_col="y",
        )
