"""From validated data to the scaled arrays the model sees (and back).

The scaling is fitted once on the training data (:func:`fit_scaling`) and stored with a fitted
model, so that new data (forecasts, what-if spend) are put on exactly the same scale.

Scaled space:
* spend ``x[t, c] = spend[t, c] / spend_scale[c]`` with ``spend_scale`` the channel's max spend;
* target ``y[t] = target[t] / target_scale`` with ``target_scale = max |target|``;
* controls standardised ``(z - loc) / scale``;
* non-media treatments ``(z - ref) / scale`` with ``ref`` the column's minimum over the training
  weeks and ``scale = max - min`` (1 for a constant column): values in [0, 1] on the training
  weeks (new data may leave it), 0 at the treatment's lowest level, so its contribution is what
  it added against that level (Meridian's "min" baseline);
* time ``(date - t0) / t_unit`` in [0, 1] over the training window (extrapolates beyond);
* yearly Fourier features ``sin/cos(2 pi k d / 365.25)`` with ``d`` days since 1970-01-01.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..config.model import ModelConfig
from .events import event_features
from .lift import lift_for_weeks
from .validate import DataError, MMMData, check_counts

__all__ = [
    "Scaling",
    "fit_scaling",
    "design_arrays",
    "fourier_features",
    "hsgp_terms",
    "hsgp_domains",
    "hsgp_arrays",
    "model_arrays",
    "scaled_treatments",
    "treatment_range",
    "training_copies",
    "with_hsgp_domains",
    "fit_model_scaling",
    "hsgp_basis_for",
    "input_axes",
    "pad_inputs",
    "widen_channels",
    "DATA_NAMES",
    "YEAR_DAYS",
]

YEAR_DAYS = 365.25
#: Names of the data inputs of the compiled model, in a fixed order.
DATA_NAMES = ("spend", "controls", "fourier", "time", "target", "mask")
_EPOCH = pd.Timestamp("1970-01-01")


@dataclass(frozen=True)
class Scaling:
    """Scale factors fitted on the training data. Shapes: spend_scale (C,), control_* (K,),
    treatment_ref / treatment_scale (J,) (original units of each treatment column; empty without
    treatments, and in runs saved before treatments existed).

    ``hsgp`` holds, per HSGP term of the model (``"intercept_tv"``, ``"media_tv"``), the basis
    domain fixed on the training window: ``{"centre": float, "L": float, "shift": [m floats]}``
    (``shift``: the training-week means of the basis columns), so that forecasts evaluate the
    same (centred) basis (see :func:`hsgp_domains`).
    """

    spend_scale: np.ndarray
    target_scale: float
    control_loc: np.ndarray
    control_scale: np.ndarray
    t0: pd.Timestamp
    t_unit_days: float
    hsgp: dict = field(default_factory=dict)
    treatment_ref: np.ndarray = field(default_factory=lambda: np.zeros(0))
    treatment_scale: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def to_dict(self) -> dict:
        out = {
            "spend_scale": np.asarray(self.spend_scale).tolist(),
            "target_scale": float(self.target_scale),
            "control_loc": np.asarray(self.control_loc).tolist(),
            "control_scale": np.asarray(self.control_scale).tolist(),
            "t0": self.t0.isoformat(),
            "t_unit_days": float(self.t_unit_days),
        }
        if self.hsgp:
            out["hsgp"] = {k: {"centre": float(v["centre"]), "L": float(v["L"]),
                               "shift": [float(x) for x in v["shift"]]} for k, v in self.hsgp.items()}
        if np.size(self.treatment_ref):  # written only when used, so older readers see the same dict
            out["treatment_ref"] = np.asarray(self.treatment_ref, dtype=float).tolist()
            out["treatment_scale"] = np.asarray(self.treatment_scale, dtype=float).tolist()
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Scaling:
        return cls(
            spend_scale=np.asarray(d["spend_scale"], dtype=float),
            target_scale=float(d["target_scale"]),
            control_loc=np.asarray(d["control_loc"], dtype=float),
            control_scale=np.asarray(d["control_scale"], dtype=float),
            t0=pd.Timestamp(d["t0"]),
            t_unit_days=float(d["t_unit_days"]),
            hsgp={k: {"centre": float(v["centre"]), "L": float(v["L"]), "shift": [float(x) for x in v["shift"]]}
                  for k, v in (d.get("hsgp") or {}).items()},
            treatment_ref=np.asarray(d.get("treatment_ref", []), dtype=float),
            treatment_scale=np.asarray(d.get("treatment_scale", []), dtype=float),
        )


def treatment_range(values: np.ndarray, axis=0) -> tuple[np.ndarray, np.ndarray]:
    """``(ref, scale)`` of treatment columns ``values`` (..., J), reduced over ``axis``: ``ref``
    the minimum and ``scale = max - min`` (1 for a constant column), both (J,) in the columns'
    original units; empty for J == 0 or no rows. ``(values - ref) / scale`` is then in [0, 1]."""
    v = np.asarray(values, dtype=float)
    J = v.shape[-1]
    if J == 0 or v.size == 0:
        return np.zeros(J), np.ones(J)
    lo, hi = v.min(axis=axis), v.max(axis=axis)
    span = hi - lo
    return lo, np.where(span > 0, span, 1.0)


def fit_scaling(data: MMMData) -> Scaling:
    """Fit the scale factors on training data."""
    spend_scale = data.spend.max(axis=0)
    target_scale = float(np.max(np.abs(data.target)))
    k = data.control_values.shape[1]
    loc = data.control_values.mean(axis=0) if k else np.zeros(0)
    scale = data.control_values.std(axis=0) if k else np.zeros(0)
    scale = np.where(scale > 0, scale, 1.0)  # a constant control is centred, not divided by 0
    span = (data.dates[-1] - data.dates[0]).days
    ref, tscale = treatment_range(data.treatment_values)
    return Scaling(
        spend_scale=spend_scale,
        target_scale=target_scale,
        control_loc=loc,
        control_scale=scale,
        t0=pd.Timestamp(data.dates[0]),
        t_unit_days=float(max(span, 1)),
        treatment_ref=ref,
        treatment_scale=tscale,
    )


def fourier_features(dates: pd.DatetimeIndex, order: int) -> np.ndarray:
    """Yearly Fourier features ``[sin1, cos1, sin2, cos2, ...]``: (T,) dates -> (T, 2*order)."""
    d = np.asarray((pd.DatetimeIndex(dates) - _EPOCH).days, dtype=float)
    k = np.arange(1, order + 1)
    ang = 2.0 * np.pi * d[:, None] * k[None, :] / YEAR_DAYS
    out = np.empty((len(d), 2 * order))
    out[:, 0::2] = np.sin(ang)
    out[:, 1::2] = np.cos(ang)
    return out


#: the ``weekday`` dim of the day-of-week features (Sunday is the reference: minus their sum)
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


def weekday_features(dates: pd.DatetimeIndex) -> np.ndarray:
    """Day-of-week features in effect (sum-to-zero) coding: (T,) dates -> (T, 6); column ``j``
    (Mon..Sat) is 1 on that day, -1 on Sundays, else 0. Coefficient ``j`` is then day ``j``'s
    effect against the week's average, and Sunday's effect is minus the sum of the six."""
    dow = np.asarray(pd.DatetimeIndex(dates).day_of_week)  # Monday = 0 .. Sunday = 6
    return (dow[:, None] == np.arange(6)[None, :]).astype(float) - (dow == 6)[:, None]


def check_daily(config: ModelConfig, freq_days: int) -> None:
    """``day_of_week`` needs daily data: a :class:`DataError` naming the date column otherwise."""
    if config.day_of_week and int(freq_days) != 1:
        raise DataError(f"column {config.date!r}: day_of_week needs daily data (rows 1 day apart); these rows are "
                        f"{int(freq_days)} days apart", column=config.date)


def calendar_inputs(config: ModelConfig, dates, freq_days: int) -> dict[str, np.ndarray]:
    """The calendar inputs the config uses, the same for a brand and for every market of a panel:
    ``holidays`` (T, H) (:func:`mmm_jax.data.events.event_features`) and ``day_of_week`` (T, 6)
    (:func:`weekday_features`; daily data only, :func:`check_daily`)."""
    out = {}
    if config.holidays:
        out["holidays"] = event_features(dates, config.holidays)
    if config.day_of_week:
        check_daily(config, freq_days)
        out["day_of_week"] = weekday_features(dates)
    return out


def design_arrays(data: MMMData, scaling: Scaling, seasonality: int) -> dict[str, np.ndarray]:
    """Scaled model inputs (float64 NumPy) keyed by :data:`DATA_NAMES`.

    Shapes: spend (T, C), controls (T, K), fourier (T, 2n), time (T,), target (T,), mask (T,).
    A target that is not known (forecasting) is returned as zeros with ``mask`` zeros.
    """
    target = np.asarray(data.target, dtype=float)
    known = np.isfinite(target)
    t = np.asarray((pd.DatetimeIndex(data.dates) - scaling.t0).days, dtype=float) / scaling.t_unit_days
    return {
        "spend": data.spend / scaling.spend_scale,
        "controls": (data.control_values - scaling.control_loc) / scaling.control_scale,
        "fourier": fourier_features(data.dates, seasonality),
        "time": t,
        "target": np.where(known, target, 0.0) / scaling.target_scale,
        "mask": known.astype(float),
    }


# --------------------------------------------------------------------------- model extras
def hsgp_terms(config: ModelConfig) -> dict:
    """The HSGP terms of a config: ``{"intercept_tv": HSGPSpec, "media_tv": HSGPSpec}`` (those used)."""
    out = {}
    if config.time_varying_intercept is not None:
        out["intercept_tv"] = config.time_varying_intercept
    if config.time_varying_media is not None:
        out["media_tv"] = config.time_varying_media.hsgp
    return out


def hsgp_domains(config: ModelConfig, time, mask=None) -> dict[str, dict]:
    """Basis domain of every HSGP term, fitted on the training times ``time`` (T,).

    Returns ``{term: {"centre", "L", "shift"}}``: ``centre`` the middle of the observed
    (``mask > 0``) training weeks, ``L = c * half-width`` (:func:`mmm_jax.model.hsgp.hsgp_domain`; a
    forecast may reach ``L * (1 - 1 / c)`` beyond the window's end) and ``shift`` (m,) the
    training-week means of the basis columns.

    The model uses the *centred* basis ``phi - shift``: every process then averages exactly 0
    over the training weeks, so the intercept (for the baseline HSGP) and the base parameter
    ``p_c`` (for the media multiplier: its geometric mean over the window, exp link) keep their
    meaning instead of trading off with the process's mean along a long, narrow ridge of the
    posterior (the first basis functions are nearly constant on the window; PyMC's HSGP offers
    ``drop_first`` for the same reason).
    """
    from ..model.hsgp import hsgp_basis, hsgp_domain

    time = np.asarray(time, dtype=float)
    obs = time if mask is None else time[np.asarray(mask) > 0]
    out = {}
    for name, spec in hsgp_terms(config).items():
        centre, L = hsgp_domain(obs, spec.c)
        phi, _ = hsgp_basis(obs, spec.m, L=L, centre=centre)
        out[name] = {"centre": centre, "L": L, "shift": phi.mean(axis=0).tolist()}
    return out


def hsgp_arrays(config: ModelConfig, time, domains: dict[str, dict]) -> dict[str, np.ndarray]:
    """Centred basis arrays of every HSGP term at the (scaled) times ``time`` (T,).

    Returns ``{f"{name}_phi": (T, m), f"{name}_sqrt_eig": (m,)}`` per term: the Laplacian
    eigenfunctions on the training domain ``domains[name]`` minus its ``shift`` (see
    :func:`hsgp_domains`). Raises ``ValueError`` for times beyond the domain (the
    approximation does not hold there).
    """
    from ..model.hsgp import hsgp_basis

    out = {}
    for name, spec in hsgp_terms(config).items():
        d = domains[name]
        phi, sqrt_eig = hsgp_basis(np.asarray(time, dtype=float), spec.m, L=d["L"], centre=d["centre"])
        out[f"{name}_phi"], out[f"{name}_sqrt_eig"] = phi - np.asarray(d["shift"], dtype=float), sqrt_eig
    return out


def model_arrays(
    config: ModelConfig,
    data: MMMData,
    scaling: Scaling,
    *,
    train: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Every data input the config's model needs: :func:`design_arrays` plus the extras.

    Extras, only when the config uses them:

    * ``holidays`` (T, H) — 0/1 event features (:func:`mmm_jax.data.events.event_features`);
    * ``day_of_week`` (T, 6) — day-of-week features of daily data (:func:`weekday_features`);
    * ``treatments`` (T, J) — non-media treatments ``(z - treatment_ref) / treatment_scale``
      (:func:`scaled_treatments`; in [0, 1] on the training weeks);
    * ``target_scale`` () — count likelihoods and ROAS / CAC priors;
    * ``spend_scale`` (C,) — ROAS / CAC priors;
    * ``{term}_phi`` (T, m), ``{term}_sqrt_eig`` (m,) — centred HSGP bases on ``scaling.hsgp``'s
      domains (:func:`hsgp_arrays`);
    * ``spend_train`` (T0, C), ``mask_train`` (T0,) and ``media_tv_phi_train`` (T0, m) —
      ROAS / CAC priors: beta is solved on the *training* window, so new data (forecasts)
      must carry the training arrays (``train``: the training :func:`model_arrays`; default:
      these data are the training data);
    * with ``train`` from a fit with lift tests, its ``lift_*`` inputs (:func:`mmm_jax.data.lift.lift_for_weeks`:
      the tests add nothing on other weeks).
    """
    arrays = design_arrays(data, scaling, config.seasonality)
    arrays.update(calendar_inputs(config, data.dates, data.freq_days))
    if config.treatments:
        arrays["treatments"] = scaled_treatments(config, data, scaling)
    if config.is_count or config.business_priors:
        arrays["target_scale"] = np.asarray(float(scaling.target_scale))
    if config.business_priors:
        arrays["spend_scale"] = np.asarray(scaling.spend_scale, dtype=float)
    terms = hsgp_terms(config)
    if terms:
        missing = [n for n in terms if n not in scaling.hsgp]
        if missing:
            raise ValueError(f"scaling.hsgp lacks the domain of {missing}; set it with hsgp_domains on the training time")
        arrays.update(hsgp_arrays(config, arrays["time"], scaling.hsgp))
    if config.business_priors:
        arrays.update(training_copies(arrays, config, train))
    if train is not None:  # a fit with lift tests: the compiled model takes its lift inputs everywhere
        arrays.update(lift_for_weeks(train, len(arrays["time"])))
    return arrays


def scaled_treatments(config: ModelConfig, data: MMMData, scaling: Scaling) -> np.ndarray:
    """The treatment inputs (T, J): ``(z - treatment_ref) / treatment_scale`` of ``data``'s
    treatment columns (original units) in ``config.treatments``' order. Raises ``ValueError``
    when the data or the scaling (e.g. a run saved before treatments existed) lack them."""
    names = tuple(config.treatments)
    if tuple(data.treatments) != names:
        raise ValueError(f"the data's treatments {list(data.treatments)} are not the config's {list(names)} "
                         "(validate the frame with treatments=config.treatments)")
    ref, scale = np.asarray(scaling.treatment_ref, float), np.asarray(scaling.treatment_scale, float)
    if ref.shape != (len(names),) or scale.shape != (len(names),):
        raise ValueError(f"the scaling has {ref.size} treatment references, the config has {len(names)} treatments "
                         f"{list(names)}; fit the scaling on data with them (fit_scaling)")
    return (np.asarray(data.treatment_values, dtype=float) - ref) / scale


def training_copies(arrays: Mapping[str, np.ndarray], config: ModelConfig,
                    train: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The training-window inputs a ROAS / CAC prior is defined on, for one brand or a panel:
    ``spend_train`` (one brand (T0, C); a panel (G, T0, C_local)), ``mask_train`` ((T0,) / (G, T0)),
    a panel's ``national_spend_train`` (T0, C_nat) and, with time-varying media,
    ``media_tv_phi_train`` (T0, m). Taken from ``train`` (a fitted model's inputs) when given,
    else from ``arrays`` itself (these data are the training data)."""
    src = arrays if train is None else train
    keys = {"spend_train": "spend", **({"national_spend_train": "national_spend"} if "national_spend" in arrays else {}),
            "mask_train": "mask"}
    if config.time_varying_media is not None:
        keys["media_tv_phi_train"] = "media_tv_phi"
    return {k: np.asarray(src[k] if k in src else src[v], dtype=float) for k, v in keys.items()}


def fit_model_scaling(config: ModelConfig, data: MMMData) -> Scaling:
    """The scaling a fit of ``config`` on ``data`` uses: :func:`fit_scaling` plus the HSGP domains
    of its terms on the training weeks. Count likelihoods: the target is checked first
    (:func:`mmm_jax.data.validate.check_counts`, a ``DataError`` naming the row)."""
    if config.is_count:
        check_counts(data.target, config.target)
    scaling = fit_scaling(data)
    if hsgp_terms(config):
        scaling = with_hsgp_domains(scaling, config, design_arrays(data, scaling, 0)["time"])
    return scaling


def with_hsgp_domains(scaling: Scaling, config: ModelConfig, time, mask=None) -> Scaling:
    """``scaling`` with the HSGP domains of ``config`` fitted on the training ``time``."""
    return replace(scaling, hsgp=hsgp_domains(config, time, mask))


def hsgp_basis_for(spec, time, mask=None) -> tuple[np.ndarray, np.ndarray]:
    """Centred basis ``(phi (T, m), sqrt_eig (m,))`` of one :class:`mmm_jax.model.hsgp.HSGPSpec` on
    the domain of the observed (``mask > 0``) weeks of ``time`` (:func:`hsgp_domains`' rule)."""
    from ..model.hsgp import hsgp_basis, hsgp_domain

    time = np.asarray(time, dtype=float)
    obs = time if mask is None else time[np.asarray(mask) > 0]
    centre, L = hsgp_domain(obs, spec.c)
    shift = hsgp_basis(obs, spec.m, L=L, centre=centre)[0].mean(axis=0)
    phi, sqrt_eig = hsgp_basis(time, spec.m, L=L, centre=centre)
    return phi - shift, sqrt_eig


#: axes of every fixed-name input of one brand's model (no markets)
_BRAND_AXES = {
    "spend": ("date", "channel"), "controls": ("date", "control"), "fourier": ("date", "fourier_mode"),
    "time": ("date",), "target": ("date",), "mask": ("date",), "target_scale": (),
    "spend_scale": ("channel",), "spend_train": ("date", "channel"), "mask_train": ("date",),
    "holidays": ("date", "holiday"), "day_of_week": ("date", "weekday"), "treatments": ("date", "treatment"),
}
#: ... and of a market panel's model (``channel``: local channels; ``model_channel``: local, then national)
_PANEL_AXES = {
    "spend": ("market", "date", "channel"), "national_spend": ("date", "national_channel"),
    "controls": ("market", "date", "control"), "fourier": ("date", "fourier_mode"), "time": ("date",),
    "target": ("market", "date"), "mask": ("market", "date"), "target_scale": ("market",),
    "spend_scale": ("market", "model_channel"), "spend_train": ("market", "date", "channel"),
    "national_spend_train": ("date", "national_channel"), "mask_train": ("market", "date"),
    "holidays": ("date", "holiday"), "day_of_week": ("date", "weekday"),
    "treatments": ("market", "date", "treatment"),
}
#: axes of the lift-test inputs (:mod:`mmm_jax.data.lift`), the same for brands and panels
_LIFT_AXES = {
    "lift_column": ("lift_col",), "lift_delta": ("lift_col",), "lift_window": ("date", "lift_col"),
    "lift_weight": ("lift_test", "lift_col"), "lift_observed": ("lift_test",), "lift_sigma": ("lift_test",),
    "lift_ref": ("lift_test",), "lift_mask": ("lift_test",),
}
#: inputs padded with 1 (scales: a padded entry is masked, and any positive scale will do)
PAD_ONE = frozenset({"target_scale", "spend_scale", "lift_sigma", "lift_ref"})
#: inputs that continue the calendar on padded weeks instead of being zero there
CALENDAR = frozenset({"time", "fourier"})


def input_axes(name: str, markets: bool = False) -> tuple[str, ...]:
    """Axes of the model input ``name``: ``"date"``, ``"channel"``, ``"market"``, ``"group:<level>"``
    (a hierarchy level's groups) or another label; ``markets``: the input of a market panel's model.

    The one description of every input's layout, used to pad brands and market panels to a
    template (:func:`pad_inputs`) and to widen a brand's channels to the batch's channels.
    Raises ``KeyError`` for an input it does not know (so nothing is passed through unpadded).
    """
    table = _PANEL_AXES if markets else _BRAND_AXES
    if name in table:
        return table[name]
    if name in _LIFT_AXES:
        return _LIFT_AXES[name]
    if markets and name.startswith("group_index_"):
        return ("market",)
    if markets and name.startswith("group_parent_"):
        return (f"group:{name[len('group_parent_'):]}",)
    if name.endswith("_phi") or name.endswith("_phi_train"):
        return ("date", "basis")
    if name.endswith("_sqrt_eig"):
        return ("basis",)
    raise KeyError(f"unknown model input {name!r}")


def pad_inputs(arrays: Mapping[str, np.ndarray], sizes: Mapping[str, int], calendar: Mapping[str, np.ndarray],
               *, markets: bool = False) -> dict[str, np.ndarray]:
    """Every model input padded at the end of each axis named in ``sizes`` (``{"date": T}``, and
    for panels ``"market"`` and ``"group:<level>"`` sizes), by :func:`input_axes`.

    Padding is 0 (no spend, no target, masked weeks and markets, zero HSGP basis rows, group
    index 0), 1 for the scales (:data:`PAD_ONE`); the calendar inputs (:data:`CALENDAR`: time,
    Fourier features) are taken from ``calendar``, the padded weeks continuing the calendar.
    Integer inputs (group indices) keep their dtype.
    """
    out = {}
    for name, v in arrays.items():
        axes = input_axes(name, markets)
        if name in CALENDAR:
            out[name] = np.asarray(calendar[name])
            continue
        v = np.asarray(v)
        widths = []
        for ax, n in zip(axes, v.shape):
            size = int(sizes.get(ax, n))
            if size < n:
                raise ValueError(f"input {name!r}: axis {ax!r} has {n} entries, more than the template's {size}")
            widths.append((0, size - n))
        out[name] = np.pad(v, widths, constant_values=1 if name in PAD_ONE else 0) if any(w for _, w in widths) else v
    return out


def widen_channels(arrays: dict[str, np.ndarray], present: np.ndarray) -> dict[str, np.ndarray]:
    """Arrays over a brand's present channels -> over all ``len(present)`` channels.

    An absent channel gets zero spend (every saturation is 0 at 0: it contributes nothing) and
    a spend scale of 1.
    """
    present = np.asarray(present, dtype=bool)
    out = {}
    for name, v in arrays.items():
        axes = input_axes(name)
        if "channel" not in axes:
            out[name] = v
            continue
        ax = axes.index("channel")
        shape = list(np.shape(v))
        shape[ax] = len(present)
        full = np.full(shape, 1.0 if name in PAD_ONE else 0.0)
        idx = [slice(None)] * len(shape)
        idx[ax] = np.flatnonzero(present)
        full[tuple(idx)] = v
        out[name] = full
    return out
