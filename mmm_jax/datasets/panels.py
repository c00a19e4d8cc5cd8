"""Seeded multi-market data with market effects drawn from a known hyper-distribution.

Per channel ``c`` the truth has hyper-parameters; per market ``g``::

    log beta[g, c]  ~ Normal(beta_mu[c],  beta_sd[c])          (scaled target units)
    logit alpha[g, c] ~ Normal(alpha_mu[c], alpha_sd[c])
    log lam[g, c]   ~ Normal(lam_mu[c],   lam_sd[c])
    intercept[g] ~ Normal(0.4, 0.1), trend[g] ~ Normal(0.1, 0.05), seasonality shared + noise
    y_s[g, t] = intercept + trend * tau + F @ gamma + sum_c beta * tanh(lam * adstock(x)[g, t, c] / 2)
                + Normal(0, sigma[g])
    sales[g, t] = y_s[g, t] * size[g]         (size: a market's scale, lognormal)

Spend is simulated on the scaled level (each series' max is 1) and multiplied by a market-
and channel-specific budget, so the model's spend scaling recovers ``x`` exactly. ``n_short``
markets are *new*: they launch ``short_weeks`` before the end (no rows, no spend before), so
they have the least data. ROAS per market and channel is computed in original units from the
noise-free contributions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.features import fourier_features
from ..media.adstock import adstock_conv_np, geometric_weights_np

__all__ = ["simulate_panel", "PanelTruth"]

CHANNELS = ("tv", "search", "social", "display", "radio", "video")


@dataclass
class PanelTruth:
    """Known truth of :func:`simulate_panel` (arrays indexed [market, channel])."""

    markets: list
    channels: list
    beta: np.ndarray
    alpha: np.ndarray
    lam: np.ndarray
    hyper: dict  # {"beta_mu": (C,), "beta_sd": (C,), "alpha_mu": ..., ...} on the link scale
    roas: np.ndarray  # (G, C) original units
    n_weeks: np.ndarray  # (G,) observed weeks per market
    size: np.ndarray  # (G,) target scale of the simulation (sales = y_scaled * size)
    target_max_scaled: np.ndarray  # (G,) max |y_scaled| over observed weeks (the model's target scale / size)
    contributions: np.ndarray  # (G, T, C) noise-free contributions, original units (0 before a market starts)
    spend: np.ndarray  # (G, T, C) original units
    dates: pd.DatetimeIndex

    def roas_between(self, start=None, end=None) -> np.ndarray:
        """True ROAS (G, C) over the weeks ``start <= date < end`` (None: open)."""
        sel = np.ones(len(self.dates), bool)
        if start is not None:
            sel &= self.dates >= pd.Timestamp(start)
        if end is not None:
            sel &= self.dates < pd.Timestamp(end)
        return self.contributions[:, sel].sum(axis=1) / self.spend[:, sel].sum(axis=1)

    def beta_model_units(self) -> np.ndarray:
        """beta in the model's units (target / max |target| per market)."""
        return self.beta / self.target_max_scaled[:, None]


def simulate_panel(
    n_markets: int = 20,
    n_weeks: int = 104,
    n_channels: int = 4,
    *,
    seed: int = 0,
    n_short: int = 4,
    short_weeks: int = 26,
    noise: float = 0.05,
    l_max: int = 8,
    start: str = "2022-01-02",
    hyper_sd: float = 0.3,
) -> tuple[pd.DataFrame, PanelTruth]:
    """Simulate a weekly panel; returns ``(long DataFrame, truth)``.

    Columns: ``market``, ``date``, ``sales``, one spend column per channel, ``price_index``.
    """
    rng = np.random.default_rng(seed)
    G, T, C = n_markets, n_weeks, n_channels
    channels = list(CHANNELS[:C])
    dates = pd.date_range(pd.Timestamp(start), periods=T, freq="7D")
    hyper = {
        "beta_mu": np.log(rng.uniform(0.08, 0.25, C)),
        "beta_sd": np.full(C, hyper_sd),
        "alpha_mu": rng.uniform(-1.5, 0.5, C),
        "alpha_sd": np.full(C, hyper_sd),
        "lam_mu": np.log(rng.uniform(1.0, 4.0, C)),
        "lam_sd": np.full(C, hyper_sd),
    }
    beta = np.exp(hyper["beta_mu"] + hyper["beta_sd"] * rng.normal(size=(G, C)))
    alpha = 1 / (1 + np.exp(-(hyper["alpha_mu"] + hyper["alpha_sd"] * rng.normal(size=(G, C)))))
    lam = np.exp(hyper["lam_mu"] + hyper["lam_sd"] * rng.normal(size=(G, C)))
    intercept = rng.normal(0.4, 0.1, G)
    trend = rng.normal(0.1, 0.05, G)
    gamma = np.array([0.05, 0.02, 0.01, -0.01])[: 4] + rng.normal(0, 0.01, (G, 4))
    sigma = noise * rng.uniform(0.8, 1.2, G)
    size = np.exp(rng.normal(np.log(2e5), 0.8, G))
    budget = np.exp(rng.normal(np.log(1e4), 0.7, (G, C)))
    fourier = fourier_features(dates, 2)
    tau = np.arange(T) / (T - 1)
    start_idx = np.zeros(G, dtype=int)
    start_idx[G - n_short:] = T - short_weeks if n_short else T
    rows, roas = [], np.zeros((G, C))
    all_contrib, all_spend = np.zeros((G, T, C)), np.zeros((G, T, C))
    tmax = np.zeros(G)
    for g in range(G):
        s0 = start_idx[g]
        x = rng.gamma(2.0, 1.0, (T, C)) * (rng.random((T, C)) < 0.8)
        x[:s0] = 0.0
        x = x / x.max(axis=0, keepdims=True)
        w = geometric_weights_np(alpha[g], l_max, True)
        contrib = beta[g] * np.tanh(lam[g] * adstock_conv_np(x, w) / 2)
        price = 1.0 + 0.05 * rng.normal(size=T)
        z = (price[s0:] - price[s0:].mean()) / price[s0:].std()
        mu = intercept[g] + trend[g] * tau + fourier @ gamma[g] + contrib.sum(axis=1)
        mu[s0:] += -0.02 * z
        y = mu + sigma[g] * rng.normal(size=T)
        tmax[g] = np.abs(y[s0:]).max()
        spend = x * budget[g]
        roas[g] = contrib[s0:].sum(axis=0) * size[g] / spend[s0:].sum(axis=0)
        all_contrib[g, s0:] = contrib[s0:] * size[g]
        all_spend[g] = spend
        frame = pd.DataFrame({"market": f"m{g:02d}", "date": dates, "sales": y * size[g]})
        for j, c in enumerate(channels):
            frame[c] = spend[:, j]
        frame["price_index"] = price
        rows.append(frame.iloc[s0:])
    df = pd.concat(rows, ignore_index=True)
    truth = PanelTruth([f"m{g:02d}" for g in range(G)], channels, beta, alpha, lam, hyper, roas,
                       T - start_idx, size, tmax, all_contrib, all_spend, dates)
    return df, truth
