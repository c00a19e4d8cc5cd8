"""Tests for mmm_jax.datasets.synthetic and the bundled example."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from mmm_jax.data.validate import validate_frame

from mmm_jax.datasets import EXAMPLE_CHANNELS, EXAMPLE_CONTROLS, SyntheticTruth, load_example, simulate
from mmm_jax.datasets.synthetic import (
    fourier_features_np,
    geometric_adstock_np,
    logistic_saturation_np,
)


def brute_force_adstock(x, alpha, l_max, normalize):
    T, C = x.shape
    y = np.zeros_like(x)
    for c in range(C):
        w = np.array([alpha[c] ** l for l in range(l_max)])
        if normalize:
            w = w / w.sum()
        for t in range(T):
            for l in range(l_max):
                if t - l >= 0:
                    y[t, c] += w[l] * x[t - l, c]
    return y


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("l_max", [1, 3, 8, 30])
def test_adstock_matches_brute_force(normalize, l_max):
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, size=(20, 3))
    alpha = np.array([0.0, 0.4, 0.9])
    np.testing.assert_allclose(
        geometric_adstock_np(x, alpha, l_max, normalize), brute_force_adstock(x, alpha, l_max, normalize),
        rtol=1e-12, atol=1e-14,
    )


def test_adstock_1d_and_impulse():
    x = np.zeros(6)
    x[0] = 1.0
    y = geometric_adstock_np(x, 0.5, 3, normalize=False)
    np.testing.assert_allclose(y, [1.0, 0.5, 0.25, 0.0, 0.0, 0.0])


def test_saturation_formula():
    x = np.linspace(0, 3, 7)[:, None] * np.ones((1, 2))
    lam = np.array([0.5, 3.0])
    expected = (1 - np.exp(-lam * x)) / (1 + np.exp(-lam * x))
    np.testing.assert_allclose(logistic_saturation_np(x, lam), expected, rtol=1e-12, atol=1e-15)


def test_fourier_features_order_and_phase():
    dates = pd.DatetimeIndex(["1970-01-01", "1970-04-02"])
    f = fourier_features_np(dates, 2)
    d = np.array([0.0, 91.0])
    expected = np.stack([np.sin(2 * np.pi * d / 365.25), np.cos(2 * np.pi * d / 365.25),
                         np.sin(4 * np.pi * d / 365.25), np.cos(4 * np.pi * d / 365.25)], axis=1)
    np.testing.assert_allclose(f, expected)


def test_simulate_deterministic_and_seed_dependent():
    df1, t1 = simulate(60, 3, seed=7)
    df2, t2 = simulate(60, 3, seed=7)
    df3, t3 = simulate(60, 3, seed=8)
    pd.testing.assert_frame_equal(df1, df2)
    assert t1.to_dict() == t2.to_dict()
    assert not df1["sales"].equals(df3["sales"])
    assert not np.allclose(t1.beta, t3.beta)


def test_simulate_frame_layout_and_validity():
    df, truth = simulate(104, 10, seed=3)
    channels = ["tv", "search", "social", "display", "radio", "print", "ooh", "video", "ch8", "ch9"]
    assert list(df.columns) == ["date", "sales", *channels, "price_index"]
    assert truth.channels == tuple(channels) and truth.controls == ("price_index",)
    assert (df["date"].dt.day_of_week == 6).all()
    data = validate_frame(df, date="date", target="sales", channels=channels, controls=["price_index"],
                          min_length=truth.l_max, allow_extra_columns=False)
    assert data.freq_days == 7
    spend = df[channels].to_numpy()
    assert (spend >= 0).all() and (spend.max(axis=0) > 0).all()
    assert (spend[:, 0] == 0).any(), "tv should be flighted"
    np.testing.assert_array_equal(spend, np.round(spend, 2))
    assert df.loc[df["tv"] > 0, "tv"].median() > 3 * df["search"].median()
    assert df["sales"].min() > 0


def test_truth_ranges_and_roas():
    df, truth = simulate(156, 4, seed=11)
    assert np.all((0.1 <= truth.beta) & (truth.beta <= 0.4))
    assert np.all((0.2 <= truth.alpha) & (truth.alpha <= 0.7))
    assert np.all((1.0 <= truth.lam) & (truth.lam <= 4.0))
    spend = df[list(truth.channels)].to_numpy()
    np.testing.assert_allclose(truth.roas, truth.contributions.sum(0) / spend.sum(0))
    assert truth.contributions.shape == (156, 4) and truth.baseline.shape == (156,)
    assert truth.gamma_fourier.shape == (4,) and truth.gamma_control.shape == (1,)


def test_sales_follow_the_stated_model():
    df, truth = simulate(80, 3, seed=5, noise=0.0, l_max=5, normalize=False, n_fourier=3)
    spend = df[list(truth.channels)].to_numpy()
    x = spend / spend.max(0)
    np.testing.assert_allclose(truth.spend_scale, spend.max(0))
    tau = np.arange(80) / 79
    z = df[["price_index"]].to_numpy()
    z = (z - z.mean(0)) / z.std(0)
    mu = (truth.intercept + truth.trend * tau + fourier_features_np(df["date"], 3) @ truth.gamma_fourier
          + z @ truth.gamma_control
          + (truth.beta * logistic_saturation_np(geometric_adstock_np(x, truth.alpha, 5, False), truth.lam)).sum(1))
    np.testing.assert_allclose(df["sales"].to_numpy(), mu * truth.target_scale, atol=0.006)
    np.testing.assert_allclose(truth.baseline + truth.contributions.sum(1), mu * truth.target_scale, rtol=1e-12)


def test_max_abs_scaled_parameters():
    df, truth = simulate(52, 2, seed=0)
    scaled = truth.max_abs_scaled()
    f = truth.target_scale / df["sales"].abs().max()
    np.testing.assert_allclose(scaled["beta"], truth.beta * f)
    assert scaled["intercept"] == pytest.approx(truth.intercept * f)


def test_to_dict_is_json_serialisable():
    _, truth = simulate(30, 2, seed=1)
    assert isinstance(truth, SyntheticTruth)
    d = json.loads(json.dumps(truth.to_dict()))
    assert set(d["roas"]) == {"tv", "search"}
    assert d["roas"]["tv"] == pytest.approx(truth.roas[0])


def test_example_matches_simulate():
    df, truth = load_example()
    ref, ref_truth = simulate(156, 4, seed=2024)
    assert tuple(EXAMPLE_CHANNELS) == ref_truth.channels
    assert tuple(EXAMPLE_CONTROLS) == ref_truth.controls
    assert list(df.columns) == list(ref.columns)
    assert pd.api.types.is_datetime64_any_dtype(df["date"])
    assert (df["date"].to_numpy() == ref["date"].to_numpy()).all()
    num = ref.columns[1:]
    np.testing.assert_allclose(df[num].to_numpy(), ref[num].to_numpy(), rtol=1e-9, atol=0.011)
    for j, c in enumerate(EXAMPLE_CHANNELS):
        assert truth["roas"][c] == pytest.approx(ref_truth.roas[j], rel=1e-6)
        assert truth["beta"][c] == pytest.approx(ref_truth.beta[j], rel=1e-9)
    validate_frame(df, date="date", target="sales", channels=EXAMPLE_CHANNELS, controls=EXAMPLE_CONTROLS)
