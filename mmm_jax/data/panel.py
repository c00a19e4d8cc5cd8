"""Long-format multi-market data -> checked, scaled panel arrays.

Every market is validated with :func:`mmm_jax.validate_frame` (its dates contiguous and regular;
a :class:`~mmm_jax.DataError` names the market, column and row). Markets may start and end on
different dates: the panel's date grid is the union, and weeks a market does not have are
masked (``mask = 0``, zero spend). National channels must carry the same spend in every market
on a date.

Scaling (per market ``g``; with ``population`` per capita, so markets are comparable):

* spend ``x[g, t, c] = spend / spend_scale[g, c]``; local channels: the market's max spend
  (``pop[g] * max over markets of per-capita max`` with population); national channels: the
  national max;
* target ``y[g, t] = target / target_scale[g]`` with ``target_scale = max |target|`` (or
  ``pop[g] * max per-capita |target|``);
* controls standardised per market; time in [0, 1] over the grid; yearly Fourier features;
* non-media treatments ``(z - treatment_ref[j]) / treatment_scale[j]`` with ONE reference per
  column for all markets: its minimum over every market's training weeks, and ``scale = max - min``
  (1 for a constant column), so values are in [0, 1] and 0 is the lowest level seen in any market
  (a treatment is a common unit, e.g. a discount in percent, so markets share the reference).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..config.markets import HierarchicalConfig
from ..model.pooling import parent_index
from .features import (
    calendar_inputs,
    fourier_features,
    hsgp_arrays,
    hsgp_domains,
    hsgp_terms,
    training_copies,
    treatment_range,
)
from .lift import lift_for_weeks
from .validate import DataError, check_counts, validate_frame

__all__ = ["PanelData", "PanelScaling", "validate_panel", "fit_panel_scaling", "panel_arrays", "market_keys"]


@dataclass(frozen=True, eq=False)
class PanelData:
    """Validated multi-market data on a common weekly grid.

    Attributes
    ----------
    markets : list of str, (G,)
        Market labels (hierarchy columns joined with "/").
    groups : dict level -> np.ndarray of int (G,)
        Index of each market's group at every hierarchy level (the last level is the market).
    group_labels : dict level -> list of str
    dates : DatetimeIndex (T,)
    spend : (G, T, C) original units (0 outside a market's weeks), channels in config order
    controls : (G, T, K)
    target : (G, T) (NaN outside a market's weeks)
    observed : (G, T) bool, the market has the week
    population : (G,) or None
    freq_days : int
    treatments : (G, T, J) original units (0 outside a market's weeks), ``config.treatments``' order
        (``None`` is read as J = 0)
    """

    markets: list
    groups: dict
    group_labels: dict
    dates: pd.DatetimeIndex
    spend: np.ndarray
    controls: np.ndarray
    target: np.ndarray
    observed: np.ndarray
    population: np.ndarray | None
    freq_days: int
    treatments: np.ndarray | None = None

    def __post_init__(self):
        if self.treatments is None:
            object.__setattr__(self, "treatments", np.zeros((*np.shape(self.target), 0)))

    @property
    def n_markets(self) -> int:
        return len(self.markets)


@dataclass(frozen=True, eq=False)
class PanelScaling:
    spend_scale: np.ndarray  # (G, C)
    target_scale: np.ndarray  # (G,)
    control_loc: np.ndarray  # (G, K)
    control_scale: np.ndarray  # (G, K)
    t0: pd.Timestamp
    t_unit_days: float
    #: HSGP basis domains per term, fixed on the grid's observed weeks (see
    #: :func:`mmm_jax.data.features.hsgp_domains`; one time axis shared by the markets)
    hsgp: dict = field(default_factory=dict)
    #: non-media treatments: each column's minimum (J,) over all markets' training weeks, and
    #: max - min (J,) (1 when constant), original units; empty without treatments (and in runs
    #: saved before treatments existed)
    treatment_ref: np.ndarray = field(default_factory=lambda: np.zeros(0))
    treatment_scale: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def to_dict(self) -> dict:
        out = {
            "spend_scale": self.spend_scale.tolist(),
            "target_scale": self.target_scale.tolist(),
            "control_loc": self.control_loc.tolist(),
            "control_scale": self.control_scale.tolist(),
            "t0": self.t0.isoformat(),
            "t_unit_days": self.t_unit_days,
        }
        if self.hsgp:
            out["hsgp"] = {k: {"centre": float(v["centre"]), "L": float(v["L"]),
                               "shift": [float(x) for x in v["shift"]]} for k, v in self.hsgp.items()}
        if np.size(self.treatment_ref):  # written only when used, so older readers see the same dict
            out["treatment_ref"] = np.asarray(self.treatment_ref, dtype=float).tolist()
            out["treatment_scale"] = np.asarray(self.treatment_scale, dtype=float).tolist()
        return out

    @classmethod
    def from_dict(cls, d: dict) -> PanelScaling:
        return cls(
            np.asarray(d["spend_scale"], float),
            np.asarray(d["target_scale"], float),
            np.asarray(d["control_loc"], float).reshape(len(d["target_scale"]), -1),
            np.asarray(d["control_scale"], float).reshape(len(d["target_scale"]), -1),
            pd.Timestamp(d["t0"]),
            float(d["t_unit_days"]),
            {k: {"centre": float(v["centre"]), "L": float(v["L"]), "shift": [float(x) for x in v["shift"]]}
             for k, v in (d.get("hsgp") or {}).items()},
            np.asarray(d.get("treatment_ref", []), float),
            np.asarray(d.get("treatment_scale", []), float),
        )


def market_keys(df: pd.DataFrame, levels) -> pd.Series:
    """One label per row: the hierarchy columns joined with "/"."""
    missing = [c for c in levels if c not in df.columns]
    if missing:
        raise DataError(f"missing market column(s) {missing}; available: {list(df.columns)[:50]}", column=missing[0])
    for c in levels:
        if df[c].isna().any():
            row = int(np.flatnonzero(df[c].isna().to_numpy())[0])
            raise DataError(f"column {c!r}, row {row}: missing market label", column=c, row=row)
    return df[list(levels)].astype(str).agg("/".join, axis=1)


def validate_panel(df: pd.DataFrame, config: HierarchicalConfig, *, require_target: bool = True,
                   dates: pd.DatetimeIndex | None = None, markets: list | None = None) -> PanelData:
    """Validate long-format data into a :class:`PanelData`.

    ``dates`` / ``markets`` fix the grid and market order (for new data on a fitted model:
    the grid is then extended by the new data's dates).
    """
    b = config.base
    keys = market_keys(df, config.levels)
    names = sorted(keys.unique()) if markets is None else list(markets)
    unknown = sorted(set(keys.unique()) - set(names))
    if unknown:
        raise DataError(f"markets {unknown[:10]} were not in the fitted model; known: {names[:10]}",
                        column=config.levels[-1])
    extra_cols = [*config.levels] + ([config.population] if config.population else [])
    per = {}
    for name in names:
        rows = np.flatnonzero((keys == name).to_numpy())
        if len(rows) == 0:
            raise DataError(f"market {name!r}: no rows", column=config.levels[-1])
        frame = df.iloc[rows]
        present = [c for c in b.channels if c in frame.columns and (pd.to_numeric(frame[c], errors="coerce").fillna(0) != 0).any()]
        absent = [c for c in b.channels if c not in present]
        try:
            data = validate_frame(
                frame.drop(columns=[c for c in absent if c in frame.columns]).reset_index(drop=True),
                date=b.date, target=b.target, channels=present or [b.channels[0]], controls=b.controls,
                min_length=2, require_target=require_target, outlier_factor=b.outlier_factor,
                treatments=b.treatments,
            ) if present else None
        except DataError as err:
            raise DataError(f"market {name!r}: {err}", column=err.column,
                            row=None if err.row is None else int(rows[err.row])) from None
        if data is None:
            raise DataError(f"market {name!r}: no spend in any channel of {list(b.channels)}")
        if b.is_count:
            try:
                check_counts(data.target, b.target, rows=rows if len(rows) == data.n_periods else None)
            except DataError as err:
                raise DataError(f"market {name!r}: {err}", column=err.column, row=err.row) from None
        pop = None
        if config.population:
            if config.population not in frame.columns:
                raise DataError(f"missing population column {config.population!r}", column=config.population)
            p = pd.to_numeric(frame[config.population], errors="coerce").to_numpy(float)
            if not np.all(np.isfinite(p)) or np.any(p <= 0) or np.ptp(p) > 0:
                raise DataError(f"market {name!r}: population must be one positive number per market, got "
                                f"{np.unique(p)[:5]}", column=config.population)
            pop = float(p[0])
        per[name] = (data, present, pop)
    del extra_cols
    freq = {d.freq_days for d, _, _ in per.values()}
    if len(freq) > 1:
        raise DataError(f"markets have different date spacings {sorted(freq)} days; use one frequency")
    step = pd.Timedelta(days=freq.pop())
    all_dates = [d.dates for d, _, _ in per.values()]
    lo = min(d[0] for d in all_dates)
    hi = max(d[-1] for d in all_dates)
    if dates is not None:
        lo, hi = min(lo, dates[0]), max(hi, dates[-1])
    grid = pd.date_range(lo, hi, freq=step)
    for name, (d, _, _) in per.items():
        off = (d.dates[0] - grid[0]) / step
        if off != int(off):
            raise DataError(f"market {name!r}: dates are not on the {step.days}-day grid starting {grid[0].date()}",
                            column=b.date)
    G, T, C, K = len(names), len(grid), len(b.channels), len(b.controls)
    spend = np.zeros((G, T, C))
    controls = np.zeros((G, T, K))
    treatments = np.zeros((G, T, len(b.treatments)))
    target = np.full((G, T), np.nan)
    observed = np.zeros((G, T), bool)
    for g, name in enumerate(names):
        d, present, _ = per[name]
        i0 = int((d.dates[0] - grid[0]) / step)
        sl = slice(i0, i0 + d.n_periods)
        for j, c in enumerate(present):
            spend[g, sl, b.channels.index(c)] = d.spend[:, j]
        controls[g, sl] = d.control_values
        treatments[g, sl] = d.treatment_values
        target[g, sl] = d.target
        observed[g, sl] = True
    _check_national(spend, observed, config, names, grid)
    groups, labels = _groups(names, config)
    pops = np.asarray([per[n][2] for n in names]) if config.population else None
    return PanelData(names, groups, labels, grid, spend, controls, target, observed, pops, step.days, treatments)


def _check_national(spend, observed, config, names, grid):
    b = config.base
    for c in config.national_channels:
        j = b.channels.index(c)
        for t in range(spend.shape[1]):
            vals = spend[observed[:, t], t, j]
            if len(vals) and np.ptp(vals) > 1e-9 * max(1.0, np.abs(vals).max()):
                g = int(np.flatnonzero(observed[:, t])[np.argmax(np.abs(vals - vals[0]))])
                raise DataError(
                    f"national channel {c!r}, date {grid[t].date()}: market {names[g]!r} has spend "
                    f"{spend[g, t, j]:g} but {names[int(np.flatnonzero(observed[:, t])[0])]!r} has {vals[0]:g}; "
                    "a national channel must have the same spend in every market", column=c)


def _groups(names, config):
    """Group index of every market at every level: nested levels by their path from the top
    (``"north/g1"``), crossed levels by their own label."""
    parts = [n.split("/") for n in names]
    groups, labels = {}, {}
    for lvl, level in enumerate(config.levels):
        keys = [p[lvl] if config.crossed else "/".join(p[: lvl + 1]) for p in parts]
        uniq = sorted(set(keys))
        labels[level] = uniq
        groups[level] = np.asarray([uniq.index(k) for k in keys])
    return groups, labels


def fit_panel_scaling(data: PanelData, config: HierarchicalConfig) -> PanelScaling:
    """Per-market scale factors (per capita when the config has a population column)."""
    b = config.base
    spend_max = data.spend.max(axis=1)  # (G, C)
    tmax = np.nanmax(np.abs(data.target), axis=1)
    if data.population is not None:
        pop = data.population
        spend_scale = pop[:, None] * (spend_max / pop[:, None]).max(axis=0, keepdims=True)
        target_scale = pop * np.max(tmax / pop)
    else:
        spend_scale = spend_max.copy()
        target_scale = tmax
    nat = [b.channels.index(c) for c in config.national_channels]
    if nat:
        spend_scale[:, nat] = spend_max[:, nat].max(axis=0, keepdims=True)
    spend_scale = np.where(spend_scale > 0, spend_scale, 1.0)
    target_scale = np.where(target_scale > 0, target_scale, 1.0)
    K = len(b.controls)
    loc = np.zeros((data.n_markets, K))
    scale = np.ones((data.n_markets, K))
    for g in range(data.n_markets):
        v = data.controls[g, data.observed[g]]
        if K and len(v):
            loc[g] = v.mean(axis=0)
            s = v.std(axis=0)
            scale[g] = np.where(s > 0, s, 1.0)
    span = (data.dates[-1] - data.dates[0]).days
    t0, unit = pd.Timestamp(data.dates[0]), float(max(span, 1))
    hsgp = {}
    if hsgp_terms(b):
        t = np.asarray((data.dates - t0).days, dtype=float) / unit
        hsgp = hsgp_domains(b, t, data.observed.any(axis=0))
    ref, tscale = treatment_range(data.treatments[data.observed])  # (n_observed, J): one per column
    return PanelScaling(spend_scale, target_scale, loc, scale, t0, unit, hsgp, ref, tscale)


def panel_arrays(data: PanelData, scaling: PanelScaling, config: HierarchicalConfig,
                 train: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Scaled model inputs: spend (G, T, C_local), national_spend (T, C_nat), controls (G, T, K),
    fourier (T, 2n), time (T,), target (G, T), mask (G, T); count likelihoods and ROAS / CAC
    priors: target_scale (G,); ROAS / CAC priors: spend_scale (G, C) in model channel order
    (local, then national) and the training copies of :func:`mmm_jax.data.features.training_copies`
    (from ``train``, a fitted model's inputs, when given: beta stays solved on the fitted weeks);
    HSGP terms: ``{term}_phi`` (T, m) and ``{term}_sqrt_eig`` (m,) on ``scaling.hsgp``'s domains
    (one time axis for all markets); holidays ``holidays`` (T, H) and day of week ``day_of_week``
    (T, 6), the same for every market; treatments ``treatments`` (G, T, J), ``(z - treatment_ref)
    / treatment_scale`` (0 outside a market's weeks); the hierarchy: ``group_index_{level}`` (G,) int, each
    market's group at every level, and with centred parameters on nested levels
    ``group_parent_{level}`` (groups of the level,) int, each group's parent group."""
    b = config.base
    loc_idx = [b.channels.index(c) for c in config.local_channels]
    nat_idx = [b.channels.index(c) for c in config.national_channels]
    x = data.spend / scaling.spend_scale[:, None, :]
    known = data.observed & np.isfinite(data.target)
    t = np.asarray((data.dates - scaling.t0).days, dtype=float) / scaling.t_unit_days
    if nat_idx:
        # one national series: the spend of the markets that have the week (identical across them)
        nat = np.zeros((len(data.dates), len(nat_idx)))
        for t_i in range(len(data.dates)):
            obs = np.flatnonzero(data.observed[:, t_i])
            if len(obs):
                nat[t_i] = x[obs[0], t_i, nat_idx]
    else:
        nat = np.zeros((len(data.dates), 0))
    out = {
        "spend": x[:, :, loc_idx],
        "national_spend": nat,
        "controls": (data.controls - scaling.control_loc[:, None, :]) / scaling.control_scale[:, None, :]
        * data.observed[:, :, None],
        "fourier": fourier_features(data.dates, b.seasonality),
        "time": t,
        "target": np.where(known, data.target, 0.0) / scaling.target_scale[:, None],
        "mask": known.astype(float),
    }
    out.update(calendar_inputs(b, data.dates, data.freq_days))
    if b.treatments:
        J = len(b.treatments)
        ref, scale = np.asarray(scaling.treatment_ref, float), np.asarray(scaling.treatment_scale, float)
        if data.treatments.shape[-1] != J or ref.shape != (J,) or scale.shape != (J,):
            raise ValueError(f"the panel has {data.treatments.shape[-1]} treatment columns and the scaling {ref.size} "
                             f"references; the config has {J} treatments {list(b.treatments)} (validate and fit the "
                             "scaling with them)")
        out["treatments"] = (data.treatments - ref) / scale * data.observed[:, :, None]
    for k, level in enumerate(config.levels):
        out[f"group_index_{level}"] = np.asarray(data.groups[level], dtype=np.int64)
        if k and config.centered and not config.crossed:
            out[f"group_parent_{level}"] = parent_index(data.groups, config.levels, k)
    if b.is_count or b.business_priors:
        out["target_scale"] = np.asarray(scaling.target_scale, dtype=float)
    if hsgp_terms(b):
        out.update(hsgp_arrays(b, t, scaling.hsgp))
    if b.business_priors:
        out.update(training_copies(out, b, train))
        out["spend_scale"] = np.asarray(scaling.spend_scale[:, loc_idx + nat_idx], dtype=float)
    if train is not None:  # a fit with lift tests: the compiled model takes its lift inputs everywhere
        out.update(lift_for_weeks(train, len(data.dates)))
    return out
