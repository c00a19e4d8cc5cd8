"""Simulators for the model library's acquisition features, with known truth.

* :func:`simulate_counts` — weekly **new-customer counts** from a negative binomial whose
  mean is ``exp(baseline) + sum_c contribution_c`` (log link on the baseline, additive
  media), the model of ``likelihood="negative_binomial"``; the truth has each channel's
  incremental customers and CAC (spend / incremental customers).
* :func:`simulate_time_varying` — a continuous target whose media effect drifts over time:
  tanh saturation with ``cac0[t, c] = cac0_c * exp(g(t) + d_c(t))``, ``g`` shared by all
  channels and ``d_c`` per channel, both smooth Gaussian-process paths — the model of
  ``time_varying_media=TimeVaryingMedia(hierarchical=True)`` with the tanh saturation.

Both generate in the package's scaled space (spend divided by its per-channel maximum,
time in [0, 1]); ``simulate`` and the bundled example are untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .synthetic import (
    CONTROL_NAME,
    DATE_COL,
    _simulate_price,
    _simulate_spend,
    _standardize,
    channel_names,
    fourier_features_np,
    geometric_adstock_np,
    logistic_saturation_np,
)

__all__ = ["CountTruth", "TimeVaryingTruth", "simulate_counts", "simulate_time_varying", "smooth_gp_paths"]

COUNT_TARGET = "new_customers"
TV_TARGET = "sales"
TV_TARGET_SCALE = 250_000.0


@dataclass(frozen=True, eq=False)
class CountTruth:
    """Truth of :func:`simulate_counts`.

    Attributes
    ----------
    channels : tuple of str (C,)
    base_level : float
        Baseline customers per week at ``log_baseline = 0``.
    log_baseline : (T,) array
        ``log(baseline / base_level)``: trend, seasonality and price effect.
    beta : (C,) array
        Customers per week at full saturation, per channel.
    alpha, lam : (C,) arrays
        Geometric adstock retention and logistic saturation rate.
    overdispersion : float
        Relative sd of the extra-Poisson noise (``alpha_nb = overdispersion**-2``).
    contributions : (T, C) array
        Expected incremental customers per week and channel.
    baseline : (T,) array
        Expected customers per week without media.
    cac : (C,) array
        Total spend / total incremental customers (currency per customer).
    mean : (T,) array
        Expected customers per week.
    l_max : int
    seed : int
    """

    channels: tuple[str, ...]
    base_level: float
    log_baseline: np.ndarray
    beta: np.ndarray
    alpha: np.ndarray
    lam: np.ndarray
    overdispersion: float
    contributions: np.ndarray
    baseline: np.ndarray
    cac: np.ndarray
    mean: np.ndarray
    l_max: int
    seed: int = field(default=0)

    @property
    def incremental_customers(self) -> np.ndarray:
        """(C,) expected incremental customers over the series."""
        return self.contributions.sum(axis=0)


def simulate_counts(
    n_weeks: int = 156,
    n_channels: int = 4,
    *,
    seed: int = 0,
    start: str = "2021-01-03",
    base_level: float = 1500.0,
    overdispersion: float = 0.05,
    l_max: int = 8,
    n_fourier: int = 2,
) -> tuple[pd.DataFrame, CountTruth]:
    """Weekly new-customer counts (negative binomial) with known incremental customers and CAC.

    ``mean_t = base_level * exp(0.15 tau_t + F_t @ gamma - 0.04 z_t) + sum_c beta_c *
    logistic(adstock(x)_{t,c}; lam_c)`` with ``x`` spend / max spend, ``z`` the standardised
    price index, and ``y_t ~ NegBin(mean_t, alpha = overdispersion**-2)`` (gamma-Poisson).
    ``beta_c`` is drawn in ``[0.1, 0.35] * base_level`` customers per week.

    Parameters
    ----------
    n_weeks, n_channels : int
    seed : int
        Same seed, same frame and truth.
    start : str
        First date (weekly, Sundays).
    base_level : float
        Baseline customers per week.
    overdispersion : float
        Relative sd of the gamma mixing (0 gives Poisson counts).
    l_max : int
        Adstock window (normalised geometric weights).
    n_fourier : int
        Yearly harmonics of the baseline.

    Returns
    -------
    df : DataFrame (T, 3 + C): ``date``, ``new_customers`` (int), one spend column per
        channel (currency per week), ``price_index``.
    truth : CountTruth
    """
    if n_weeks < 2 or n_channels < 1:
        raise ValueError("need n_weeks >= 2 and n_channels >= 1")
    rng_p, rng_s, rng_price, rng_y = np.random.default_rng(seed).spawn(4)
    dates = pd.date_range(start, periods=n_weeks, freq="W-SUN")
    names = channel_names(n_channels)
    spend = _simulate_spend(rng_s, dates, names)
    price = _simulate_price(rng_price, n_weeks)[:, None]
    z, _, _ = _standardize(price)
    x = spend / spend.max(axis=0)
    tau = np.arange(n_weeks) / (n_weeks - 1)
    fourier = fourier_features_np(dates, n_fourier)
    phase = rng_p.uniform(0, 2 * np.pi, n_fourier)
    amp = 0.10 / np.arange(1, n_fourier + 1)
    gamma = np.empty(2 * n_fourier)
    gamma[0::2], gamma[1::2] = amp * np.cos(phase), amp * np.sin(phase)
    beta = rng_p.uniform(0.10, 0.35, n_channels) * base_level
    alpha = rng_p.uniform(0.2, 0.6, n_channels)
    lam = rng_p.uniform(1.0, 3.0, n_channels)
    log_base = 0.15 * tau + fourier @ gamma - 0.04 * z[:, 0]
    baseline = base_level * np.exp(log_base)
    contrib = beta * logistic_saturation_np(geometric_adstock_np(x, alpha, l_max, True), lam)
    mean = baseline + contrib.sum(axis=1)
    if overdispersion > 0:
        a = 1.0 / overdispersion**2
        rate = mean * rng_y.gamma(a, 1.0 / a, n_weeks)
    else:
        rate = mean
    y = rng_y.poisson(rate)
    df = pd.DataFrame({DATE_COL: dates, COUNT_TARGET: y.astype(np.int64)})
    for j, n in enumerate(names):
        df[n] = spend[:, j]
    df[CONTROL_NAME] = price[:, 0]
    truth = CountTruth(
        channels=tuple(names), base_level=float(base_level), log_baseline=log_base, beta=beta, alpha=alpha,
        lam=lam, overdispersion=float(overdispersion), contributions=contrib, baseline=baseline,
        cac=spend.sum(axis=0) / contrib.sum(axis=0), mean=mean, l_max=int(l_max), seed=int(seed),
    )
    return df, truth


# --------------------------------------------------------------------------- time-varying
def smooth_gp_paths(rng: np.random.Generator, t, n_paths: int, ell: float, sd: float = 1.0) -> np.ndarray:
    """Draws of a zero-mean ExpQuad GP on ``t`` (T,): (T, n_paths), marginal sd ``sd``.

    Exact covariance ``sd**2 exp(-(t - t')**2 / (2 ell**2))`` with a small jitter; ``ell``
    in the unit of ``t``.
    """
    t = np.asarray(t, dtype=float)
    K = sd**2 * np.exp(-0.5 * ((t[:, None] - t[None, :]) / ell) ** 2) + 1e-8 * sd**2 * np.eye(t.size)
    return np.linalg.cholesky(K) @ rng.standard_normal((t.size, n_paths))


@dataclass(frozen=True, eq=False)
class TimeVaryingTruth:
    """Truth of :func:`simulate_time_varying` (generating scale: target / ``target_scale``).

    Attributes
    ----------
    channels : tuple of str
    cac0 : (C,) base cost per unit of response at zero spend
    cac0_t : (T, C) ``cac0 * exp(log_multiplier)`` — the time-varying cac0
    log_multiplier_global : (T,) ``g(t)``
    log_multiplier : (T, C) ``g(t) + d_c(t)``
    sat_level : (C,) response at saturation
    alpha : (C,) geometric adstock retention (l_max weeks, normalised)
    contributions : (T, C) original units
    target_scale : float
    target_max_abs : float
        ``max |sales|``. The model fits the target divided by it, so its ``cac0`` is this
        truth's times ``target_max_abs / target_scale`` (and ``sat_level`` divided by it).
    l_max : int
    seed : int
    """

    channels: tuple[str, ...]
    cac0: np.ndarray
    cac0_t: np.ndarray
    log_multiplier_global: np.ndarray
    log_multiplier: np.ndarray
    sat_level: np.ndarray
    alpha: np.ndarray
    contributions: np.ndarray
    target_scale: float
    target_max_abs: float
    l_max: int
    seed: int = field(default=0)

    def model_scale(self) -> dict[str, np.ndarray]:
        """``cac0``, ``cac0_t``, ``sat_level`` as the model (target / max |target|) sees them."""
        f = self.target_max_abs / self.target_scale
        return {"cac0": self.cac0 * f, "cac0_t": self.cac0_t * f, "sat_level": self.sat_level / f}


def simulate_time_varying(
    n_weeks: int = 156,
    n_channels: int = 3,
    *,
    seed: int = 0,
    start: str = "2021-01-03",
    ell: float = 0.25,
    global_sd: float = 0.25,
    channel_sd: float = 0.2,
    noise: float = 0.01,
    l_max: int = 6,
) -> tuple[pd.DataFrame, TimeVaryingTruth]:
    """Weekly sales whose media effectiveness drifts: ``cac0[t, c] = cac0_c exp(g(t) + d_c(t))``.

    Scaled space: ``x`` = spend / max spend (always-on spend with AR(1) log-noise), time
    ``tau`` in [0, 1]; ``g ~ GP(0, global_sd**2 ExpQuad(ell))``, ``d_c ~ GP(0, channel_sd**2
    ExpQuad(ell))``; ``media = sat_level * tanh(adstock(x) / (sat_level * cac0[t]))``
    (geometric adstock, normalised); ``y = 0.4 + 0.1 tau + 0.03 sin1 - 0.02 cos1 + sum media
    + Normal(0, noise)`` (``sin1, cos1`` the first yearly Fourier pair of
    :func:`mmm_jax.data.features.fourier_features`); ``sales = y * 250 000``.

    Returns
    -------
    df : DataFrame (T, 2 + C): ``date``, ``sales``, one spend column per channel.
    truth : TimeVaryingTruth
    """
    if n_weeks < 2 or n_channels < 1:
        raise ValueError("need n_weeks >= 2 and n_channels >= 1")
    rng_p, rng_s, rng_gp, rng_y = np.random.default_rng(seed).spawn(4)
    dates = pd.date_range(start, periods=n_weeks, freq="W-SUN")
    names = channel_names(n_channels)
    tau = np.arange(n_weeks) / (n_weeks - 1)
    # always-on spend: lognormal with AR(1) log-noise, so that the slope is seen every week
    spend = np.empty((n_weeks, n_channels))
    for j in range(n_channels):
        e = np.empty(n_weeks)
        e[0] = rng_s.normal(0, 0.5)
        for t in range(1, n_weeks):
            e[t] = 0.5 * e[t - 1] + rng_s.normal(0, 0.5 * np.sqrt(1 - 0.25))
        spend[:, j] = np.round(rng_s.uniform(3_000, 20_000) * np.exp(e), 2)
    x = spend / spend.max(axis=0)
    g = smooth_gp_paths(rng_gp, tau, 1, ell, global_sd)[:, 0]
    d = smooth_gp_paths(rng_gp, tau, n_channels, ell, channel_sd)
    logm = g[:, None] + d
    cac0 = rng_p.uniform(1.0, 2.0, n_channels)
    sat = rng_p.uniform(0.3, 0.5, n_channels)
    alpha = rng_p.uniform(0.2, 0.5, n_channels)
    cac0_t = cac0 * np.exp(logm)
    xa = geometric_adstock_np(x, alpha, l_max, True)
    media = sat * np.tanh(xa / (sat * cac0_t))
    season = fourier_features_np(dates, 1) @ np.array([0.03, -0.02])
    y = 0.4 + 0.1 * tau + season + media.sum(axis=1) + rng_y.normal(0, noise, n_weeks)
    sales = np.round(y * TV_TARGET_SCALE, 2)
    df = pd.DataFrame({DATE_COL: dates, TV_TARGET: sales})
    for j, n in enumerate(names):
        df[n] = spend[:, j]
    truth = TimeVaryingTruth(
        channels=tuple(names), cac0=cac0, cac0_t=cac0_t, log_multiplier_global=g, log_multiplier=logm,
        sat_level=sat, alpha=alpha, contributions=media * TV_TARGET_SCALE, target_scale=TV_TARGET_SCALE,
        target_max_abs=float(np.abs(sales).max()), l_max=int(l_max), seed=int(seed),
    )
    return df, truth
