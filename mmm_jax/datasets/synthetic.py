"""Seeded synthetic marketing-mix data with known ground truth.

The generating model is exactly the model the package fits, in *scaled*
space (spend divided by its per-channel maximum, target divided by a fixed
``target_scale``)::

    x[t, c]     = spend[t, c] / max_t spend[t, c]
    tau[t]      = t / (T - 1)                                  (0..1)
    d[t]        = (date[t] - 1970-01-01).days
    F[t]        = [sin(2 pi 1 d/365.25), cos(2 pi 1 d/365.25),
                   sin(2 pi 2 d/365.25), cos(2 pi 2 d/365.25), ...]
    z[t, k]     = (v[t, k] - mean_k) / std_k                   (std ddof=0)
    mu[t]       = intercept + trend * tau[t] + F[t] @ gamma_fourier
                  + z[t] @ gamma_control
                  + sum_c beta_c * sat(adstock(x, alpha, l_max, normalize)[t, c], lam_c)
    y[t]        = mu[t] + Normal(0, sigma)
    sales[t]    = round(y[t] * target_scale, 2)

with ``adstock`` = :func:`geometric_adstock_np` and ``sat`` =
:func:`logistic_saturation_np`. All inputs (spend, price index) are rounded
to cents *before* the scaled quantities are computed, so a model fitted to the
returned frame sees exactly the generating inputs.

Run ``python -m mmm_jax.datasets.synthetic --write`` to regenerate the
bundled ``example.csv`` / ``example_truth.json``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "SyntheticTruth",
    "simulate",
    "true_lift",
    "geometric_adstock_np",
    "logistic_saturation_np",
    "fourier_features_np",
]

DEFAULT_CHANNELS = ("tv", "search", "social", "display", "radio", "print", "ooh", "video")
CONTROL_NAME = "price_index"
DATE_COL = "date"
TARGET_COL = "sales"
TARGET_SCALE = 250_000.0
EPOCH = pd.Timestamp("1970-01-01")
DAYS_PER_YEAR = 365.25

# typical weekly spend (currency units) and whether the channel runs in flights
_CHANNEL_PROFILE = {
    "tv": (40_000.0, True),
    "search": (5_000.0, False),
    "social": (8_000.0, False),
    "display": (6_000.0, True),
    "radio": (10_000.0, True),
    "print": (4_000.0, False),
    "ooh": (12_000.0, True),
    "video": (15_000.0, False),
}

# true baseline parameters (scaled space: fraction of TARGET_SCALE)
_INTERCEPT = 0.35
_TREND = 0.10
_SEASON_AMPLITUDE = 0.05
_GAMMA_CONTROL = -0.03


# ---------------------------------------------------------------------------
# transforms (numpy reference implementations)
# ---------------------------------------------------------------------------


def geometric_adstock_np(x, alpha, l_max: int, normalize: bool = True) -> np.ndarray:
    """Geometric adstock with a finite window and zero padding before t=0.

    ``y[t, c] = sum_{l=0}^{l_max-1} w[c, l] * x[t-l, c]`` with
    ``w[c, l] = alpha_c ** l``, divided by ``sum_l w[c, l]`` when
    ``normalize``; terms with ``t - l < 0`` are zero.

    Parameters
    ----------
    x : array_like, shape (T, C) or (T,)
        Input series (any units; the output has the same units).
    alpha : array_like, shape (C,) or scalar
        Retention rates in [0, 1).
    l_max : int
        Window length (number of lags including lag 0), >= 1.
    normalize : bool, optional
        Normalise the weights of each channel to sum to 1.

    Returns
    -------
    numpy.ndarray, shape like ``x``, float64
    """
    x = np.asarray(x, dtype=np.float64)
    squeeze = x.ndim == 1
    x2 = x[:, None] if squeeze else x
    if x2.ndim != 2:
        raise ValueError(f"x must have shape (T, C) or (T,), got {x.shape}")
    if int(l_max) < 1:
        raise ValueError(f"l_max must be >= 1, got {l_max}")
    T, C = x2.shape
    alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (C,))
    lags = np.arange(int(l_max))
    w = alpha[:, None] ** lags[None, :]  # (C, l_max); 0**0 == 1
    if normalize:
        w = w / w.sum(axis=1, keepdims=True)
    y = np.zeros_like(x2)
    for lag in range(min(int(l_max), T)):
        y[lag:] += w[:, lag] * x2[: T - lag]
    return y[:, 0] if squeeze else y


def logistic_saturation_np(x, lam) -> np.ndarray:
    """Logistic saturation ``(1 - exp(-lam x)) / (1 + exp(-lam x))``.

    Computed as the identical, overflow-free ``tanh(lam * x / 2)``.

    Parameters
    ----------
    x : array_like, shape (..., C)
        Non-negative (scaled) input.
    lam : array_like, shape (C,) or scalar
        Saturation rate(s) > 0, broadcast against the last axis of ``x``.

    Returns
    -------
    numpy.ndarray, same shape as the broadcast of ``x`` and ``lam``, in [0, 1)
    """
    x = np.asarray(x, dtype=np.float64)
    lam = np.asarray(lam, dtype=np.float64)
    return np.tanh(lam * x / 2.0)


def fourier_features_np(dates, n_fourier: int) -> np.ndarray:
    """Yearly Fourier features with a calendar (day-count) phase.

    Parameters
    ----------
    dates : array_like of datetimes, shape (T,)
    n_fourier : int
        Number of harmonics (>= 0).

    Returns
    -------
    numpy.ndarray, shape (T, 2 * n_fourier), float64
        Columns ``[sin1, cos1, sin2, cos2, ...]`` with
        ``sin_k = sin(2 pi k d / 365.25)``, ``d`` = whole days since
        1970-01-01.
    """
    d = np.asarray((pd.DatetimeIndex(dates) - EPOCH).days, dtype=np.float64)
    cols = []
    for k in range(1, int(n_fourier) + 1):
        angle = 2.0 * np.pi * k * d / DAYS_PER_YEAR
        cols += [np.sin(angle), np.cos(angle)]
    if not cols:
        return np.zeros((len(d), 0))
    return np.stack(cols, axis=1)


# ---------------------------------------------------------------------------
# truth container
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SyntheticTruth:
    """True parameters and true quantities of a :func:`simulate` draw.

    Parameters are in scaled space (target divided by ``target_scale``,
    spend by ``spend_scale``); ``contributions``, ``baseline`` and ``roas``
    are in original units, which makes them invariant to how a fitting
    package rescales the target.

    Attributes
    ----------
    channels : tuple of str, length C
    controls : tuple of str, length K
    intercept, trend : float
        Scaled-space baseline level and linear trend over tau in [0, 1].
    gamma_fourier : numpy.ndarray, shape (2 * n_fourier,)
        Ordered ``[sin1, cos1, sin2, cos2, ...]``.
    gamma_control : numpy.ndarray, shape (K,)
        Effect of one standard deviation of each control.
    beta, alpha, lam : numpy.ndarray, shape (C,)
        Channel effect at full saturation, adstock retention, saturation rate.
    sigma : float
        Observation noise standard deviation (scaled space).
    l_max : int
    normalize : bool
    n_fourier : int
    contributions : numpy.ndarray, shape (T, C)
        Channel contributions to sales, original currency units.
    baseline : numpy.ndarray, shape (T,)
        Non-media part of the mean, original units.
    roas : numpy.ndarray, shape (C,)
        ``contributions.sum(0) / spend.sum(0)`` (currency per currency).
    target_scale : float
        Scale of the target: ``sales = y_scaled * target_scale``.
    spend_scale : numpy.ndarray, shape (C,)
        Per-channel maximum spend (``x = spend / spend_scale``).
    control_mean, control_std : numpy.ndarray, shape (K,)
        Standardisation of the controls (std with ddof=0).
    target_max_abs : float
        ``max |sales|`` of the returned frame; multiply scaled-space
        parameters by ``target_scale / target_max_abs`` to express them in a
        max-abs-scaled target space (see :meth:`max_abs_scaled`).
    seed : int
    """

    channels: tuple[str, ...]
    controls: tuple[str, ...]
    intercept: float
    trend: float
    gamma_fourier: np.ndarray
    gamma_control: np.ndarray
    beta: np.ndarray
    alpha: np.ndarray
    lam: np.ndarray
    sigma: float
    l_max: int
    normalize: bool
    n_fourier: int
    contributions: np.ndarray
    baseline: np.ndarray
    roas: np.ndarray
    target_scale: float
    spend_scale: np.ndarray
    control_mean: np.ndarray
    control_std: np.ndarray
    target_max_abs: float
    seed: int = field(default=0)

    def max_abs_scaled(self) -> dict:
        """Location/scale parameters re-expressed for a target divided by ``target_max_abs``.

        Returns
        -------
        dict
            ``intercept``, ``trend``, ``sigma`` (floats) and ``gamma_fourier``
            (2 n_fourier,), ``gamma_control`` (K,), ``beta`` (C,) arrays, each
            multiplied by ``target_scale / target_max_abs``. ``alpha`` and
            ``lam`` do not depend on the target scale.
        """
        f = self.target_scale / self.target_max_abs
        return {
            "intercept": self.intercept * f,
            "trend": self.trend * f,
            "sigma": self.sigma * f,
            "gamma_fourier": self.gamma_fourier * f,
            "gamma_control": self.gamma_control * f,
            "beta": self.beta * f,
        }

    def to_dict(self) -> dict:
        """JSON-serialisable dict.

        Per-channel vectors (``beta``, ``alpha``, ``lam``, ``roas``,
        ``spend_scale``, ``total_contribution``) become ``{channel: float}``
        dicts, per-control vectors ``{control: float}``; ``contributions``
        becomes ``{channel: [T floats]}`` and ``baseline`` a list.
        """
        per_channel = lambda a: {c: float(v) for c, v in zip(self.channels, a)}  # noqa: E731
        per_control = lambda a: {k: float(v) for k, v in zip(self.controls, a)}  # noqa: E731
        return {
            "channels": list(self.channels),
            "controls": list(self.controls),
            "intercept": float(self.intercept),
            "trend": float(self.trend),
            "gamma_fourier": [float(v) for v in self.gamma_fourier],
            "gamma_control": per_control(self.gamma_control),
            "beta": per_channel(self.beta),
            "alpha": per_channel(self.alpha),
            "lam": per_channel(self.lam),
            "sigma": float(self.sigma),
            "l_max": int(self.l_max),
            "normalize": bool(self.normalize),
            "n_fourier": int(self.n_fourier),
            "roas": per_channel(self.roas),
            "total_contribution": per_channel(self.contributions.sum(axis=0)),
            "target_scale": float(self.target_scale),
            "spend_scale": per_channel(self.spend_scale),
            "control_mean": per_control(self.control_mean),
            "control_std": per_control(self.control_std),
            "target_max_abs": float(self.target_max_abs),
            "seed": int(self.seed),
            "contributions": {c: [float(v) for v in self.contributions[:, j]]
                              for j, c in enumerate(self.channels)},
            "baseline": [float(v) for v in self.baseline],
        }


# ---------------------------------------------------------------------------
# generators (small pure functions of a Generator)
# ---------------------------------------------------------------------------


def channel_names(n_channels: int) -> list[str]:
    """First ``n_channels`` of tv, search, social, ... then ``ch8``, ``ch9``, ..."""
    return [DEFAULT_CHANNELS[i] if i < len(DEFAULT_CHANNELS) else f"ch{i}" for i in range(n_channels)]


def _profile(name: str, i: int) -> tuple[float, bool]:
    if name in _CHANNEL_PROFILE:
        return _CHANNEL_PROFILE[name]
    return 3_000.0 * (1 + i % 5), i % 3 == 0


def _ar1(rng: np.random.Generator, n: int, rho: float, sd: float) -> np.ndarray:
    """Stationary AR(1) path, shape (n,), marginal standard deviation ``sd``."""
    eps = rng.normal(0.0, sd * np.sqrt(1.0 - rho**2), size=n)
    out = np.empty(n)
    out[0] = rng.normal(0.0, sd)
    for t in range(1, n):
        out[t] = rho * out[t - 1] + eps[t]
    return out


def _marketing_calendar(dates: pd.DatetimeIndex) -> np.ndarray:
    """Shared log-spend factor (T,): Q4 ramp-up, holiday peak, summer dip."""
    doy = dates.day_of_year.to_numpy(dtype=np.float64)
    q4 = 0.25 * np.cos(2 * np.pi * (doy - 330.0) / DAYS_PER_YEAR)
    in_season = ((dates.month == 11) & (dates.day >= 20)) | ((dates.month == 12) & (dates.day <= 24))
    holiday = 0.35 * np.asarray(in_season, dtype=np.float64)
    return q4 + holiday


def _flights(rng: np.random.Generator, n: int) -> np.ndarray:
    """On/off mask (n,) of alternating flights; on at least a third of the time, never all off."""
    mask = np.zeros(n, dtype=bool)
    t = int(rng.integers(0, 4))  # optional short dark start
    while t < n:
        on = int(rng.integers(4, 11))
        mask[t : t + on] = True
        t += on + int(rng.integers(2, 7))
    if mask.sum() < max(1, n // 3):
        mask[: max(1, n // 3)] = True
    return mask


def _simulate_spend(rng: np.random.Generator, dates: pd.DatetimeIndex, names: list[str]) -> np.ndarray:
    """Correlated, flighted lognormal spend (T, C), rounded to cents, each channel > 0 somewhere."""
    T = len(dates)
    shared = _marketing_calendar(dates) + _ar1(rng, T, rho=0.6, sd=0.15)
    spend = np.empty((T, len(names)))
    for i, name in enumerate(names):
        base, flighted = _profile(name, i)
        loading = rng.uniform(0.5, 1.2)
        own = _ar1(rng, T, rho=0.3, sd=rng.uniform(0.25, 0.4))
        s = base * np.exp(loading * shared + own)
        if flighted:
            s = s * _flights(rng, T)
        spend[:, i] = np.round(s, 2)
    return spend


def _simulate_price(rng: np.random.Generator, T: int) -> np.ndarray:
    """Price index (T,) around 100: slow random walk with occasional promotions; rounded to 0.01."""
    walk = np.cumsum(rng.normal(0.0, 0.4, size=T))
    walk -= walk.mean()
    promo = rng.random(T) < 0.12
    return np.round(100.0 + walk - 4.0 * promo, 2)


def _draw_parameters(rng: np.random.Generator, n_channels: int, n_fourier: int) -> dict:
    """True scaled-space parameters; per-channel values drawn within the stated ranges."""
    beta = rng.uniform(0.1, 0.4, size=n_channels)
    alpha = rng.uniform(0.2, 0.7, size=n_channels)
    lam = rng.uniform(1.0, 4.0, size=n_channels)
    phase = rng.uniform(0.0, 2 * np.pi, size=n_fourier)
    amp = _SEASON_AMPLITUDE / np.arange(1, n_fourier + 1)
    gamma_fourier = np.empty(2 * n_fourier)
    gamma_fourier[0::2] = amp * np.cos(phase)  # sin_k coefficient
    gamma_fourier[1::2] = amp * np.sin(phase)  # cos_k coefficient
    return dict(beta=beta, alpha=alpha, lam=lam, gamma_fourier=gamma_fourier)


def _standardize(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(v - mean) / std column-wise, std with ddof=0. Returns (z, mean, std)."""
    mean = v.mean(axis=0)
    std = v.std(axis=0)
    return (v - mean) / std, mean, std


def simulate(
    n_weeks: int = 156,
    n_channels: int = 4,
    *,
    seed: int = 0,
    start: str = "2021-01-03",
    n_fourier: int = 2,
    noise: float = 0.05,
    l_max: int = 8,
    normalize: bool = True,
    collinear: tuple[str, str] | None = None,
) -> tuple[pd.DataFrame, SyntheticTruth]:
    """Simulate weekly marketing-mix data from the package's own model.

    Parameters
    ----------
    n_weeks : int, optional
        Number of weekly periods T (>= 2).
    n_channels : int, optional
        Number of paid channels C (>= 1).
    seed : int, optional
        Seed; the same seed gives an identical frame and truth.
    start : str, optional
        First date; dates follow ``freq="W-SUN"`` (a non-Sunday start rolls
        forward to the next Sunday).
    n_fourier : int, optional
        Number of yearly harmonics in the true seasonality.
    noise : float, optional
        Observation noise sigma in scaled space (fraction of ``target_scale``).
    l_max : int, optional
        Adstock window (weeks).
    normalize : bool, optional
        Whether adstock weights are normalised to sum to 1.
    collinear : (channel, channel), optional
        Make the second channel's spend follow the first's week by week (its own level, times a
        independent log-normal wiggle, sd 0.2): correlation about 0.95, the situation
        where observational data cannot split the two channels' effects (lift tests can). The
        other channels and the default draws are unchanged.

    Returns
    -------
    df : pandas.DataFrame, shape (T, 3 + C)
        Columns ``date`` (datetime64), ``sales`` (currency, cents), one spend
        column per channel (currency per week, cents) and ``price_index``.
    truth : SyntheticTruth
    """
    if n_weeks < 2:
        raise ValueError(f"n_weeks must be >= 2, got {n_weeks}")
    if n_channels < 1:
        raise ValueError(f"n_channels must be >= 1, got {n_channels}")
    rng_params, rng_spend, rng_price, rng_noise = np.random.default_rng(seed).spawn(4)

    dates = pd.date_range(start, periods=n_weeks, freq="W-SUN")
    names = channel_names(n_channels)
    params = _draw_parameters(rng_params, n_channels, n_fourier)
    spend = _simulate_spend(rng_spend, dates, names)
    if collinear is not None:
        a, b = (names.index(c) for c in collinear)
        wiggle = np.exp(np.random.default_rng([seed, 7]).normal(0.0, 0.2, n_weeks))
        spend[:, b] = np.round(spend[:, a] / spend[:, a].mean() * spend[:, b].mean() * wiggle, 2)
    price = _simulate_price(rng_price, n_weeks)[:, None]  # (T, 1)

    spend_scale = spend.max(axis=0)
    x = spend / spend_scale
    tau = np.arange(n_weeks) / (n_weeks - 1)
    fourier = fourier_features_np(dates, n_fourier)
    z, control_mean, control_std = _standardize(price)
    gamma_control = np.array([_GAMMA_CONTROL])

    media_scaled = params["beta"] * logistic_saturation_np(
        geometric_adstock_np(x, params["alpha"], l_max, normalize), params["lam"]
    )  # (T, C)
    base_scaled = _INTERCEPT + _TREND * tau + fourier @ params["gamma_fourier"] + z @ gamma_control
    y_scaled = base_scaled + media_scaled.sum(axis=1) + rng_noise.normal(0.0, noise, size=n_weeks)
    sales = np.round(y_scaled * TARGET_SCALE, 2)

    contributions = TARGET_SCALE * media_scaled
    df = pd.DataFrame({DATE_COL: dates, TARGET_COL: sales})
    for j, name in enumerate(names):
        df[name] = spend[:, j]
    df[CONTROL_NAME] = price[:, 0]

    truth = SyntheticTruth(
        channels=tuple(names),
        controls=(CONTROL_NAME,),
        intercept=_INTERCEPT,
        trend=_TREND,
        gamma_fourier=params["gamma_fourier"],
        gamma_control=gamma_control,
        beta=params["beta"],
        alpha=params["alpha"],
        lam=params["lam"],
        sigma=float(noise),
        l_max=int(l_max),
        normalize=bool(normalize),
        n_fourier=int(n_fourier),
        contributions=contributions,
        baseline=TARGET_SCALE * base_scaled,
        roas=contributions.sum(axis=0) / spend.sum(axis=0),
        target_scale=TARGET_SCALE,
        spend_scale=spend_scale,
        control_mean=control_mean,
        control_std=control_std,
        target_max_abs=float(np.abs(sales).max()),
        seed=int(seed),
    )
    return df, truth


def true_lift(truth: SyntheticTruth, df: pd.DataFrame, channel: str, start: int, n_weeks: int,
              delta_spend: float) -> float:
    """The true incremental response (original units) of raising ``channel``'s spend by
    ``delta_spend`` per week on rows ``start .. start + n_weeks - 1`` of ``df`` (a :func:`simulate`
    frame), summed over those weeks: what a perfect lift test of that design measures."""
    c = list(truth.channels).index(channel)
    x = df[list(truth.channels)].to_numpy(float) / truth.spend_scale
    moved = x.copy()
    moved[start : start + n_weeks, c] += delta_spend / truth.spend_scale[c]

    def media(v):
        ad = geometric_adstock_np(v[:, c : c + 1], truth.alpha[c : c + 1], truth.l_max, truth.normalize)
        return truth.beta[c] * logistic_saturation_np(ad, truth.lam[c : c + 1])[:, 0]

    return float(truth.target_scale * (media(moved) - media(x))[start : start + n_weeks].sum())


# ---------------------------------------------------------------------------
# bundled example
# ---------------------------------------------------------------------------

EXAMPLE_ARGS = dict(n_weeks=156, n_channels=4, seed=2024)


def write_example(out_dir: Path | str | None = None) -> tuple[Path, Path]:
    """Write ``example.csv`` and ``example_truth.json`` (default: next to this module).

    Returns
    -------
    (csv_path, json_path) : tuple of pathlib.Path
    """
    out = Path(out_dir) if out_dir is not None else Path(__file__).resolve().parent
    df, truth = simulate(**EXAMPLE_ARGS)
    csv_path, json_path = out / "example.csv", out / "example_truth.json"
    df.to_csv(csv_path, index=False, float_format="%.2f", date_format="%Y-%m-%d", lineterminator="\n")
    payload = {"generated_by": "mmm_jax.datasets.synthetic.simulate", "simulate_args": EXAMPLE_ARGS,
               **truth.to_dict()}
    json_path.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    return csv_path, json_path


def _main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="regenerate example.csv and example_truth.json")
    parser.add_argument("--out-dir", default=None, help="directory to write to (default: this package)")
    args = parser.parse_args(argv)
    if not args.write:
        parser.print_help()
        return
    for path in write_example(args.out_dir):
        print(f"wrote {path.name}")


if __name__ == "__main__":
    _main()
