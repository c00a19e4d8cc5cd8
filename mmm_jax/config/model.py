"""Model configuration: what to fit, with which priors.

A :class:`ModelConfig` is plain, immutable data. It round-trips through ``to_dict`` /
``from_dict`` and YAML/JSON files, and every bad key or value raises :class:`ConfigError`
saying which key is wrong and what is allowed.

>>> cfg = ModelConfig(date="date", target="sales", channels=("tv", "search"))
>>> ModelConfig.from_dict(cfg.to_dict()) == cfg
True
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pymc as pm

__all__ = [
    "ConfigError",
    "Prior",
    "GeometricAdstock",
    "DelayedAdstock",
    "WeibullAdstock",
    "LogisticSaturation",
    "TanhSaturation",
    "HillSaturation",
    "MichaelisMentenSaturation",
    "ADSTOCK_TYPES",
    "SATURATION_TYPES",
    "TimeVaryingMedia",
    "ModelConfig",
    "DEFAULT_PRIORS",
    "LIKELIHOODS",
    "COUNT_LIKELIHOODS",
    "MEDIA_LINKS",
]


class ConfigError(ValueError):
    """A configuration key or value is wrong; the message names the key and what is allowed."""


#: Likelihood families: Normal / StudentT for a continuous target (revenue), Poisson /
#: negative binomial for counts (new customers).
LIKELIHOODS = ("normal", "studentt", "poisson", "negative_binomial")
#: The count likelihoods (integer target >= 0; mean = exp(baseline) + contributions).
COUNT_LIKELIHOODS = ("poisson", "negative_binomial")
#: Links from a zero-mean HSGP to a positive media multiplier (see :func:`mmm_jax.model.hsgp.positive_multiplier`).
MEDIA_LINKS = ("exp", "softplus")


#: Distribution parameters that must be positive (scales, shapes, rates, degrees of freedom) ...
_POSITIVE_PARAMS = frozenset({"sigma", "tau", "lam", "nu", "alpha", "beta", "b", "a", "kappa"})
#: ... except these, which take any sign.
_SIGNED_PARAMS = frozenset({("SkewNormal", "alpha")})


def _dist_parameter_names(cls) -> frozenset[str]:
    """The named parameters of ``cls.dist`` (a PyMC distribution), less the shape and RNG
    keywords; empty where it takes only ``*args`` / ``**kwargs``."""
    import inspect

    try:
        sig = inspect.signature(cls.dist)
    except (TypeError, ValueError):
        return frozenset()
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    named = frozenset(n for n, p in sig.parameters.items() if p.kind in kinds)
    return named - {"size", "shape", "dims", "rng", "dtype"}


@dataclass(frozen=True, eq=True)
class Prior:
    """A prior: a PyMC distribution name and its parameters.

    Parameters may be scalars or, for per-channel / per-control parameters, lists with one
    value per element (e.g. ``Prior("HalfNormal", sigma=[0.5, 1.0, 1.0])``).

    >>> Prior("HalfNormal", sigma=0.5).to_dict()
    {'dist': 'HalfNormal', 'sigma': 0.5}
    """

    dist: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __init__(self, dist: str, params: Mapping[str, Any] | None = None, **kwargs: Any):
        object.__setattr__(self, "dist", dist)
        merged = dict(params or {})
        merged.update(kwargs)
        object.__setattr__(self, "params", {k: _freeze(v) for k, v in merged.items()})
        self.validate("prior")

    def validate(self, key: str) -> None:
        cls = getattr(pm, self.dist, None)
        if not (isinstance(cls, type) and issubclass(cls, pm.Distribution)):
            raise ConfigError(
                f"{key}: unknown distribution {self.dist!r}; use a PyMC distribution name such as "
                "'Normal', 'HalfNormal', 'Beta', 'Gamma', 'LogNormal', 'StudentT'"
            )
        for name, v in self.params.items():
            values = np.asarray(_thaw(v), dtype=object).ravel()
            for x in values:
                if isinstance(x, bool) or not isinstance(x, int | float | np.integer | np.floating):
                    raise ConfigError(f"{key}: {self.dist} parameter {name}={_thaw(v)!r} is not a number")
                if not np.isfinite(float(x)):
                    raise ConfigError(f"{key}: {self.dist} parameter {name}={_thaw(v)!r} is not finite")
                if name in _POSITIVE_PARAMS and (self.dist, name) not in _SIGNED_PARAMS and float(x) <= 0:
                    raise ConfigError(f"{key}: {self.dist} parameter {name} must be > 0, got {_thaw(v)!r}")
        lo, hi = self.params.get("lower"), self.params.get("upper")
        if lo is not None and hi is not None and np.any(np.asarray(_thaw(lo), float) >= np.asarray(_thaw(hi), float)):
            raise ConfigError(f"{key}: {self.dist} needs lower < upper, got lower={_thaw(lo)!r}, upper={_thaw(hi)!r}")
        named = _dist_parameter_names(cls)
        unknown = sorted(set(self.params) - named) if named else []
        if unknown:  # PyMC 6 passes unknown keywords on silently
            raise ConfigError(f"{key}: bad parameters {dict(self.params)} for {self.dist}: unknown parameter "
                              f"{unknown[0]!r}; its parameters: {sorted(named)}")
        try:
            cls.dist(**{k: _thaw(v) for k, v in self.params.items()})
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{key}: bad parameters {dict(self.params)} for {self.dist}: {err}") from None

    __hash__ = None  # parameters are a dict

    def to_dict(self) -> dict[str, Any]:
        return {"dist": self.dist, **{k: _thaw(v) for k, v in self.params.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | Prior, key: str = "prior") -> Prior:
        if isinstance(d, Prior):
            return d
        if not isinstance(d, Mapping) or "dist" not in d:
            raise ConfigError(f"{key}: expected a mapping like {{'dist': 'HalfNormal', 'sigma': 1.0}}, got {d!r}")
        d = dict(d)
        dist = d.pop("dist")
        try:
            return cls(dist, d)
        except ConfigError as err:
            raise ConfigError(str(err).replace("prior:", f"{key}:", 1)) from None

    def subset(self, idx: Sequence[int], n: int) -> Prior:
        """This prior restricted to the elements ``idx`` of ``n``: list parameters of length ``n``
        (one value per channel) are indexed, others kept."""
        params = {}
        for k, v in self.params.items():
            if isinstance(v, tuple) and len(v) == n:
                v = [v[i] for i in idx]
            elif isinstance(v, tuple):
                v = list(v)
            params[k] = v
        return Prior(self.dist, params)

    def create(self, name: str, dims=None, **kwargs):
        """Create the random variable in the current ``pm.Model`` context."""
        cls = getattr(pm, self.dist)
        return cls(name, dims=dims, **{k: _thaw(v) for k, v in self.params.items()}, **kwargs)


def _freeze(v):
    if isinstance(v, Mapping):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    if isinstance(v, list | tuple):
        return tuple(_freeze(x) for x in v)
    if hasattr(v, "tolist"):
        return _freeze(v.tolist())
    return v


def _thaw(v):
    if isinstance(v, tuple):
        return [_thaw(x) for x in v]
    return v


#: Default priors, on the scaled data (target / max|target|, spend / max spend per channel,
#: controls standardised, time in [0, 1]).
DEFAULT_PRIORS: dict[str, Prior] = {
    "intercept": Prior("Normal", mu=0.0, sigma=1.0),
    "trend": Prior("Normal", mu=0.0, sigma=0.5),
    "gamma_fourier": Prior("Normal", mu=0.0, sigma=0.5),
    "gamma_control": Prior("Normal", mu=0.0, sigma=0.5),
    # holiday / event indicators (0/1): the effect of an event's period on the scaled target
    "gamma_holiday": Prior("Normal", mu=0.0, sigma=0.3),
    # day-of-week effects (daily data): Monday..Saturday against the week's average (Sunday = -sum)
    "gamma_weekday": Prior("Normal", mu=0.0, sigma=0.3),
    # non-media treatments (promotions, price changes), each scaled to [0, 1] over the training
    # weeks (0 = its lowest level): the signed effect of the whole range on the scaled target
    "gamma_treatment": Prior("Normal", mu=0.0, sigma=0.5),
    # treatment_carryover: geometric decay of each treatment's effect (weights normalised to sum 1)
    "alpha_treatment": Prior("Beta", alpha=1.0, beta=3.0),
    # Positive channel effects. HalfNormal keeps effects >= 0 and shrinks a channel that the
    # data cannot separate from a collinear one towards zero instead of letting the pair
    # trade off into a large positive / negative couple.
    "beta": Prior("HalfNormal", sigma=1.0),
    # adstock: geometric / delayed decay, delayed peak lag (weeks), Weibull shape and scale (weeks)
    "alpha": Prior("Beta", alpha=1.0, beta=3.0),
    "theta": Prior("HalfNormal", sigma=2.0),
    "weibull_shape": Prior("Gamma", alpha=3.0, beta=2.0),
    "weibull_scale": Prior("Gamma", alpha=2.0, beta=0.5),
    # saturation: logistic rate; tanh level and cost per unit at zero spend; Hill / MM
    # half-saturation point (on adstocked scaled spend) and Hill slope
    "lam": Prior("Gamma", alpha=3.0, beta=1.0),
    "sat_level": Prior("HalfNormal", sigma=1.0),
    "cac0": Prior("LogNormal", mu=0.0, sigma=1.0),
    "half_sat": Prior("Gamma", alpha=2.0, beta=3.0),
    "slope": Prior("Gamma", alpha=3.0, beta=2.0),
    "sigma": Prior("HalfNormal", sigma=0.5),
    "nu": Prior("Gamma", alpha=2.0, beta=0.1),
    # negative binomial: var = mean + (overdispersion * mean)**2, i.e. overdispersion is the
    # relative sd of the extra-Poisson noise (alpha = overdispersion**-2; 0 is Poisson)
    "overdispersion": Prior("HalfNormal", sigma=0.5),
}


def _check_l_max(value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"adstock.l_max: must be a positive integer, got {value!r}")


def _check_bool(key: str, value) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: must be true or false, got {value!r}")


@dataclass(frozen=True)
class GeometricAdstock:
    """Geometric carry-over: ``w_l = alpha**l``, ``l = 0..l_max-1`` (parameter ``alpha``).

    ``normalize=True`` divides the weights by their sum, so that the saturation sees a
    weighted average of recent spend rather than a sum. ``infinite=True`` replaces the window
    by the recursion ``y_t = x_t + alpha * y_{t-1}`` over the whole series (times
    ``1 - alpha`` when normalised); ``l_max`` then only sets the shortest series allowed.
    """

    l_max: int = 8
    normalize: bool = True
    infinite: bool = False
    type: ClassVar[str] = "geometric"
    param_names: ClassVar[tuple[str, ...]] = ("alpha",)

    def __post_init__(self):
        _check_l_max(self.l_max)
        _check_bool("adstock.normalize", self.normalize)
        _check_bool("adstock.infinite", self.infinite)


@dataclass(frozen=True)
class DelayedAdstock:
    """Delayed geometric carry-over peaking at lag ``theta``: ``w_l = alpha**((l - theta)**2)``.

    Parameters ``alpha`` (decay, in (0, 1)) and ``theta`` (peak lag in weeks, >= 0).
    """

    l_max: int = 8
    normalize: bool = True
    type: ClassVar[str] = "delayed"
    param_names: ClassVar[tuple[str, ...]] = ("alpha", "theta")

    def __post_init__(self):
        _check_l_max(self.l_max)
        _check_bool("adstock.normalize", self.normalize)


#: Forms of the Weibull adstock.
WEIBULL_KINDS = ("cdf", "pdf")


@dataclass(frozen=True)
class WeibullAdstock:
    """Weibull carry-over with shape ``weibull_shape`` (k) and scale ``weibull_scale`` (weeks).

    ``kind="cdf"``: ``w_0 = 1, w_l = prod_{j<=l} (1 - F(j))`` (monotone decay, flexible tail);
    ``kind="pdf"``: the Weibull density at lags ``1..l_max`` rescaled to ``[0, 1]`` (can peak
    after the first week). See :mod:`mmm_jax.media.adstock`.
    """

    l_max: int = 8
    normalize: bool = True
    kind: str = "cdf"
    type: ClassVar[str] = "weibull"
    param_names: ClassVar[tuple[str, ...]] = ("weibull_shape", "weibull_scale")

    def __post_init__(self):
        _check_l_max(self.l_max)
        _check_bool("adstock.normalize", self.normalize)
        if self.kind not in WEIBULL_KINDS:
            raise ConfigError(f"adstock.kind: {self.kind!r} is not allowed for weibull; allowed: {list(WEIBULL_KINDS)}")


@dataclass(frozen=True)
class LogisticSaturation:
    """Logistic saturation: contribution ``beta * (1 - exp(-lam x)) / (1 + exp(-lam x))``."""

    type: ClassVar[str] = "logistic"
    param_names: ClassVar[tuple[str, ...]] = ("beta", "lam")


@dataclass(frozen=True)
class TanhSaturation:
    """Interpretable tanh saturation: contribution ``sat_level * tanh(x / (sat_level * cac0))``.

    ``sat_level`` is the contribution at saturation and ``cac0`` the cost per unit of
    contribution at zero spend (scaled units: spend / max spend, target / max |target|); there
    is no separate ``beta``.
    """

    type: ClassVar[str] = "tanh"
    param_names: ClassVar[tuple[str, ...]] = ("sat_level", "cac0")


@dataclass(frozen=True)
class HillSaturation:
    """Hill saturation: contribution ``beta * x**slope / (x**slope + half_sat**slope)``."""

    type: ClassVar[str] = "hill"
    param_names: ClassVar[tuple[str, ...]] = ("beta", "half_sat", "slope")


@dataclass(frozen=True)
class MichaelisMentenSaturation:
    """Michaelis–Menten saturation: contribution ``beta * x / (half_sat + x)`` (``beta`` = vmax)."""

    type: ClassVar[str] = "michaelis_menten"
    param_names: ClassVar[tuple[str, ...]] = ("beta", "half_sat")


def _hsgp_spec(value, key: str):
    """An :class:`mmm_jax.model.hsgp.HSGPSpec` from an instance, ``True`` (defaults) or a mapping."""
    from ..model.hsgp import HSGPSpec  # hsgp imports this module: import when first used

    if isinstance(value, HSGPSpec):
        return value
    if value is True:
        return HSGPSpec()
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{key}: expected true or a mapping such as {{m: 20, c: 2.5, kernel: expquad}}, got {value!r}"
        )
    try:
        return HSGPSpec.from_dict(value)
    except ConfigError as err:
        raise ConfigError(str(err).replace("hsgp:", f"{key}:", 1).replace("hsgp.", f"{key}.", 1)) from None
    except TypeError as err:  # pragma: no cover - from_dict checks the keys
        raise ConfigError(f"{key}: {err}") from None


_HSGP_KEYS = ("m", "c", "kernel", "ell_prior", "eta_prior")


@dataclass(frozen=True)
class TimeVaryingMedia:
    """Time-varying media effectiveness with an HSGP over (scaled) time.

    One media parameter ``p`` of the saturation family becomes a (date, channel) array::

        p[t, c] = p_c * positive_multiplier(f[t, c], link)

    ``f`` averages exactly 0 over the training weeks (the basis is centred there, see
    :func:`mmm_jax.data.features.hsgp_domains`), so with the ``exp`` link ``p_c`` is the geometric
    mean of ``p[t, c]`` over the window.

    * ``hierarchical=False``: ``f[t, c] = f(t)``, one process shared by all channels (a
      common media multiplier, e.g. brand health or seasonality of attention);
    * ``hierarchical=True``: ``f[t, c] = f_global(t) + delta_c(t)``, a shared process plus one
      deviation process per channel on the same basis (:func:`mmm_jax.model.hsgp.hsgp_hierarchical`).

    Parameters
    ----------
    hsgp : HSGPSpec (or mapping)
        Basis size ``m``, boundary factor ``c``, kernel, and the priors of the (global)
        process: ``ell_prior`` (lengthscale, in units of the training window: time is scaled
        to [0, 1]) and ``eta_prior`` (sd of ``f``: for the ``exp`` link, ``eta = 0.2`` is about
        +-20%). In a mapping / file the HSGP keys sit next to the others
        (``{hierarchical: true, m: 20, c: 2.5, eta_prior: {...}}``).
    hierarchical : bool
    delta_eta_prior : Prior
        Amplitude of the per-channel deviations (hierarchical only).
    delta_ell_prior : Prior or None
        Lengthscale of the deviations; ``None`` shares the global lengthscale.
    zero_sum : bool
        Hierarchical only: the deviations sum to 0 over the channels at every week
        (``pm.ZeroSumNormal`` coefficients), so the global process is the channels' average
        and the data identify the split (otherwise ``global + s, delta_c - s`` is a posterior
        ridge that only the amplitude priors bound, which costs NUTS many leapfrog steps).
    link : {"exp", "softplus"}
        :func:`mmm_jax.model.hsgp.positive_multiplier`.
    param : str or None
        The media parameter that varies: ``None`` means ``cac0`` for the tanh saturation
        (cost per unit of response at zero spend; the multiplier > 1 means *dearer*
        acquisition) and ``beta`` for the others (the multiplier > 1 means a larger effect).
        Any parameter of the saturation family is allowed. ``p[t, c]`` acts where the
        saturation acts: on the adstocked spend of week ``t`` (``adstock_first``), or on the
        spend of week ``t`` before its carry-over (``adstock_first=False``).
    """

    hsgp: Any = True
    hierarchical: bool = False
    delta_eta_prior: Prior = field(default_factory=lambda: Prior("HalfNormal", sigma=0.1))
    delta_ell_prior: Prior | None = None
    zero_sum: bool = True
    link: str = "exp"
    param: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "hsgp", _hsgp_spec(self.hsgp, "time_varying_media"))
        _check_bool("time_varying_media.hierarchical", self.hierarchical)
        _check_bool("time_varying_media.zero_sum", self.zero_sum)
        object.__setattr__(
            self, "delta_eta_prior", Prior.from_dict(self.delta_eta_prior, key="time_varying_media.delta_eta_prior")
        )
        if self.delta_ell_prior is not None:
            object.__setattr__(
                self, "delta_ell_prior",
                Prior.from_dict(self.delta_ell_prior, key="time_varying_media.delta_ell_prior"),
            )
        if self.link not in MEDIA_LINKS:
            raise ConfigError(f"time_varying_media.link: {self.link!r} is not allowed; allowed: {list(MEDIA_LINKS)}")
        if self.param is not None and (not isinstance(self.param, str) or not self.param):
            raise ConfigError(f"time_varying_media.param: must be a saturation parameter name, got {self.param!r}")

    def varying_param(self, saturation) -> str:
        """The parameter that varies for ``saturation`` (a saturation config)."""
        if self.param is not None:
            return self.param
        return "cac0" if saturation.type == "tanh" else "beta"

    def to_dict(self) -> dict[str, Any]:
        d = {"hierarchical": self.hierarchical, "zero_sum": self.zero_sum, "link": self.link, **self.hsgp.to_dict(),
             "delta_eta_prior": self.delta_eta_prior.to_dict()}
        if self.delta_ell_prior is not None:
            d["delta_ell_prior"] = self.delta_ell_prior.to_dict()
        if self.param is not None:
            d["param"] = self.param
        return d

    @classmethod
    def from_value(cls, value, key: str = "time_varying_media") -> TimeVaryingMedia:
        """From an instance, ``True`` (all defaults) or a flat mapping (HSGP keys inline)."""
        if isinstance(value, cls):
            return value
        if value is True:
            return cls()
        from ..model.hsgp import HSGPSpec

        if isinstance(value, HSGPSpec):
            return cls(hsgp=value)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected true or a mapping such as {{hierarchical: true, m: 20}}, got {value!r}")
        d = dict(value)
        allowed = {"hsgp", *_HSGP_KEYS, *(f.name for f in dataclasses.fields(cls))}
        bad = sorted(set(d) - allowed)
        if bad:
            raise ConfigError(f"{key}.{bad[0]}: unknown key; allowed: {sorted(allowed - {'hsgp'})}")
        hs = {k: d.pop(k) for k in _HSGP_KEYS if k in d}
        if "hsgp" in d:
            if hs:
                raise ConfigError(f"{key}.hsgp: give the HSGP keys either inline or under hsgp, not both")
            hs = d.pop("hsgp")
        return cls(hsgp=hs if hs else True, **d)


_ADSTOCKS = {c.type: c for c in (GeometricAdstock, DelayedAdstock, WeibullAdstock)}
_SATURATIONS = {c.type: c for c in (LogisticSaturation, TanhSaturation, HillSaturation, MichaelisMentenSaturation)}
#: Adstock config classes.
ADSTOCK_TYPES = tuple(_ADSTOCKS.values())
#: Saturation config classes.
SATURATION_TYPES = tuple(_SATURATIONS.values())


def component_to_dict(component) -> dict[str, Any]:
    """``{"type": ..., **fields}`` of an adstock or saturation config."""
    return {"type": component.type, **dataclasses.asdict(component)}


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines a single-brand MMM.

    Parameters
    ----------
    date, target : str
        Column names of the dates and the target (revenue, sales, ...).
    channels : sequence of str
        Media spend columns (original currency units, >= 0).
    controls : sequence of str
        Control columns (standardised before fitting).
    adstock : GeometricAdstock, DelayedAdstock or WeibullAdstock (or a dict / type name)
        Carry-over family.
    saturation : LogisticSaturation, TanhSaturation, HillSaturation or
        MichaelisMentenSaturation (or a dict / type name). Diminishing-returns family.
    adstock_first : bool
        ``True``: contribution = saturation(adstock(spend)); ``False``:
        adstock(saturation(spend)).
    trend : bool
        Linear trend in time (time scaled to [0, 1] over the training window).
    seasonality : int
        Order ``n`` of the yearly Fourier series (``2n`` features); 0 disables it.
    likelihood : {"normal", "studentt", "poisson", "negative_binomial"}
        Normal / StudentT for a continuous target (on the target scaled by max |target|).
        Poisson / negative binomial for a count target (integers >= 0, e.g. new customers):
        the mean count is ``target_scale * (exp(baseline) + sum_c contribution_c)`` — a log
        link on the baseline, media contributions additive and >= 0, so that CAC = spend /
        contribution is meaningful — and the count log-probability is evaluated on the
        original integer counts (``target_scale`` is a data input of the model).
    priors : mapping of parameter name -> :class:`Prior`
        Overrides of :data:`DEFAULT_PRIORS` (keys: intercept, trend, gamma_fourier,
        gamma_control, gamma_holiday, gamma_weekday, gamma_treatment, alpha_treatment, sigma, nu,
        overdispersion, and the media parameters of the chosen
        families: beta, alpha, theta, weibull_shape, weibull_scale, lam, sat_level, cac0,
        half_sat, slope).
    time_varying_intercept : HSGPSpec, True or None
        Adds an HSGP ``f(t)`` to the baseline (on the scaled target; on the log scale for count
        likelihoods), centred to average 0 over the training weeks so that the intercept stays
        the average level. ``True`` uses :class:`mmm_jax.model.hsgp.HSGPSpec` defaults.
    time_varying_media : TimeVaryingMedia, True or None
        Time-varying media effectiveness: one media parameter (``beta``; ``cac0`` for tanh)
        times a positive HSGP multiplier shared by all channels, or hierarchical per channel.
    roas_prior, cac_prior : mapping of channel -> :class:`Prior`
        A prior on a channel's ROAS (contribution / spend over the training weeks, original
        units) or CAC (spend / contribution) instead of on ``beta``: that channel's ROAS (CAC)
        is the random variable ``roas_<channel>`` (``cac_<channel>``) and ``beta`` is solved
        from it, ``beta_c = ROAS_c * spend_c / (target_scale * sum_t g[t, c])`` with ``g`` the
        channel's contribution at ``beta = 1``. Needs a saturation with a ``beta``
        (logistic, hill, michaelis_menten). A channel takes one of the two.
    lift_tests : str or None
        A lift-test table (CSV / Parquet path; columns channel, [market], start, end,
        delta_spend, delta_response, sigma; for a batch also the brand column): experiments that
        enter the likelihood (:mod:`mmm_jax.data.lift`). A relative path in a config file is
        read next to the file when it is there. ``fit(..., lift_tests=df)`` gives a table directly.
    lift_likelihood : {"normal", "gamma"}
        How a measured lift is compared with the model's (:data:`mmm_jax.data.lift.LIFT_LIKELIHOODS`).
    outlier_factor : float or None
        Data check: a spend week (or target week, in absolute value) more than this factor
        above the column's next largest value is refused as a likely typing error, naming the
        column and row (default 1e4; ``None`` / ``null`` turns the check off).
    holidays : path, DataFrame, list of mappings or None
        Holidays and events (:mod:`mmm_jax.data.events`): rows of ``date``, ``holiday`` (name)
        and optional ``days_before`` / ``days_after``; each name becomes a 0/1 feature of the
        periods its windows touch, with coefficient ``gamma_holiday`` (dim ``holiday``) added to
        the baseline. Read once; the config keeps (and saves) the events themselves. A relative
        path in a config file is read next to the file when it is there.
    day_of_week : bool
        Daily data only: day-of-week effects ``gamma_weekday`` (dim ``weekday``, Mon..Sat; each
        against the week's average, Sunday's is minus their sum) added to the baseline.
    treatments : sequence of str
        Non-media treatment columns (promotions, price changes; any sign, finite). Each is scaled
        to ``(z - min) / (max - min)`` over the training weeks (in [0, 1]; 0 is its lowest level)
        and enters the mean with a signed coefficient ``gamma_treatment`` (dim ``treatment``):
        ``mu = baseline + treatments + media``. Its contribution (``treatment_contribution``) is
        reported apart from the baseline: what the treatment added against its lowest level.
        Not available with a count likelihood (its baseline has a log link; an additive signed
        effect could make the mean count negative). A column has one role: not a channel,
        control, date or target.
    treatment_carryover : bool
        Each treatment's effect carries over with a geometric decay ``alpha_treatment`` (dim
        ``treatment``) over the media adstock's ``l_max`` weeks, weights normalised to sum 1 (so
        ``gamma_treatment`` is the total effect of one period at the treatment's highest level).
        Needs ``treatments``.
    """

    date: str
    target: str
    channels: tuple[str, ...]
    controls: tuple[str, ...] = ()
    adstock: GeometricAdstock | DelayedAdstock | WeibullAdstock = field(default_factory=GeometricAdstock)
    saturation: LogisticSaturation | TanhSaturation | HillSaturation | MichaelisMentenSaturation = field(
        default_factory=LogisticSaturation
    )
    adstock_first: bool = True
    trend: bool = True
    seasonality: int = 2
    likelihood: str = "normal"
    priors: Mapping[str, Prior] = field(default_factory=dict)
    time_varying_intercept: Any = None
    time_varying_media: TimeVaryingMedia | None = None
    roas_prior: Mapping[str, Prior] = field(default_factory=dict)
    cac_prior: Mapping[str, Prior] = field(default_factory=dict)
    outlier_factor: float | None = 1e4
    lift_tests: str | None = None
    lift_likelihood: str = "normal"
    holidays: Any = None
    day_of_week: bool = False
    treatments: tuple[str, ...] = ()
    treatment_carryover: bool = False

    def __post_init__(self):
        for key in ("date", "target"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                raise ConfigError(f"{key}: must be a non-empty column name, got {getattr(self, key)!r}")
        for key in ("channels", "controls", "treatments"):
            val = getattr(self, key)
            if isinstance(val, str) or not isinstance(val, Sequence | tuple | list):
                raise ConfigError(f"{key}: must be a list of column names, got {val!r}")
            if not all(isinstance(v, str) and v for v in val):
                raise ConfigError(f"{key}: every entry must be a non-empty column name, got {list(val)!r}")
            object.__setattr__(self, key, tuple(val))
        if not self.channels:
            raise ConfigError("channels: at least one channel is required")
        object.__setattr__(self, "adstock", _component(self.adstock, _ADSTOCKS, "adstock", "geometric"))
        object.__setattr__(self, "saturation", _component(self.saturation, _SATURATIONS, "saturation", "logistic"))
        _check_bool("adstock_first", self.adstock_first)
        _check_bool("day_of_week", self.day_of_week)
        _check_bool("treatment_carryover", self.treatment_carryover)
        if not isinstance(self.trend, bool):
            raise ConfigError(f"trend: must be true or false, got {self.trend!r}")
        if not isinstance(self.seasonality, int) or isinstance(self.seasonality, bool) or self.seasonality < 0:
            raise ConfigError(f"seasonality: must be an integer >= 0 (Fourier order), got {self.seasonality!r}")
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(f"likelihood: {self.likelihood!r} is not allowed; allowed: {list(LIKELIHOODS)}")
        priors = {}
        all_media = {n for c in (*ADSTOCK_TYPES, *SATURATION_TYPES) for n in c.param_names}
        for name, p in dict(self.priors).items():
            if name not in DEFAULT_PRIORS:
                raise ConfigError(f"priors.{name}: unknown parameter; allowed: {sorted(DEFAULT_PRIORS)}")
            if name in all_media and name not in self.media_params:
                raise ConfigError(
                    f"priors.{name}: not a parameter of the {self.adstock.type} adstock and "
                    f"{self.saturation.type} saturation; their parameters: {list(self.media_params)}"
                )
            priors[name] = Prior.from_dict(p, key=f"priors.{name}")
        object.__setattr__(self, "priors", priors)
        of = self.outlier_factor
        if of is not None and (isinstance(of, bool) or not isinstance(of, int | float) or not np.isfinite(of) or of <= 1):
            raise ConfigError(f"outlier_factor: must be a number > 1 or null (no check), got {of!r}")
        if self.lift_tests is not None:
            if isinstance(self.lift_tests, Path):
                object.__setattr__(self, "lift_tests", str(self.lift_tests))
            if not isinstance(self.lift_tests, str) or not self.lift_tests:
                raise ConfigError(f"lift_tests: must be the path of a CSV / Parquet table, got {self.lift_tests!r}")
        if self.lift_likelihood not in ("normal", "gamma"):
            raise ConfigError(f"lift_likelihood: {self.lift_likelihood!r} is not allowed; allowed: ['normal', 'gamma']")
        self._check_holidays()
        self._check_treatments()
        self._check_time_varying()
        self._check_business_priors()

    def _check_holidays(self) -> None:
        if self.holidays is None:
            return
        from ..data.events import read_events

        try:
            events = read_events(self.holidays, key="holidays")
        except FileNotFoundError as err:
            raise ConfigError(f"holidays: {err}") from None
        except ValueError as err:  # DataError included: the message names the row and column
            msg = str(err)
            raise ConfigError(msg if msg.startswith("holidays") else f"holidays: {msg}") from None
        object.__setattr__(self, "holidays", events)

    def _check_treatments(self) -> None:
        roles = {self.date: "the date column", self.target: "the target",
                 **{c: "a control" for c in self.controls}, **{c: "a channel" for c in self.channels}}
        seen = set()
        for name in self.treatments:
            if name in roles:
                raise ConfigError(f"treatments: {name!r} is already {roles[name]}; a column has one role")
            if name in seen:
                raise ConfigError(f"treatments: {name!r} is listed twice")
            seen.add(name)
        if self.treatments and self.is_count:
            raise ConfigError(
                f"treatments: not available with the {self.likelihood} likelihood: the count model's baseline has a "
                "log link (exp(baseline) + media), so an additive signed treatment effect could make the mean count "
                "negative; use likelihood 'normal' or 'studentt', or give the column as a control (a multiplier on "
                "the baseline)")
        if self.treatment_carryover and not self.treatments:
            raise ConfigError("treatment_carryover: needs treatments (the columns whose effect carries over)")

    def _check_time_varying(self) -> None:
        tvi = self.time_varying_intercept
        object.__setattr__(
            self, "time_varying_intercept",
            None if tvi is None or tvi is False else _hsgp_spec(tvi, "time_varying_intercept"),
        )
        tvm = self.time_varying_media
        tvm = None if tvm is None or tvm is False else TimeVaryingMedia.from_value(tvm)
        object.__setattr__(self, "time_varying_media", tvm)
        if tvm is not None:
            p = tvm.varying_param(self.saturation)
            if p not in self.saturation.param_names:
                raise ConfigError(
                    f"time_varying_media.param: {p!r} is not a parameter of the {self.saturation.type} saturation; "
                    f"allowed: {list(self.saturation.param_names)}"
                )

    def _check_business_priors(self) -> None:
        seen: dict[str, str] = {}
        for key in ("roas_prior", "cac_prior"):
            val = getattr(self, key)
            if not isinstance(val, Mapping):
                raise ConfigError(f"{key}: expected a mapping of channel -> prior, got {val!r}")
            out = {}
            for ch, p in val.items():
                if ch not in self.channels:
                    raise ConfigError(f"{key}.{ch}: unknown channel; channels: {list(self.channels)}")
                if ch in seen:
                    raise ConfigError(f"{key}.{ch}: channel {ch!r} already has a {seen[ch]}; give one of the two")
                seen[ch] = key
                out[ch] = Prior.from_dict(p, key=f"{key}.{ch}")
            object.__setattr__(self, key, out)
        if seen and "beta" not in self.saturation.param_names:
            key = next(iter(seen.values()))
            raise ConfigError(
                f"{key}: needs a saturation with a beta coefficient (logistic, hill, michaelis_menten); "
                f"the {self.saturation.type} saturation has {list(self.saturation.param_names)} "
                "(for tanh put the prior on cac0, its cost per unit of response at zero spend)"
            )
        tvm = self.time_varying_media
        if seen and tvm is not None and tvm.varying_param(self.saturation) != "beta":
            raise ConfigError(
                f"{next(iter(seen.values()))}: with time_varying_media the varying parameter must be beta "
                f"(got {tvm.varying_param(self.saturation)!r}) so that beta can be solved from the ROAS / CAC"
            )

    # ------------------------------------------------------------------ accessors
    def prior(self, name: str) -> Prior:
        """The prior in force for ``name`` (user override or default)."""
        return self.priors.get(name, DEFAULT_PRIORS[name])

    @property
    def holiday_names(self) -> tuple[str, ...]:
        """The event names of ``holidays`` (the model's ``holiday`` dim), in order; () without."""
        from ..data.events import event_names

        return event_names(self.holidays) if self.holidays else ()

    @property
    def is_count(self) -> bool:
        """Whether the likelihood is a count likelihood (Poisson, negative binomial)."""
        return self.likelihood in COUNT_LIKELIHOODS

    @property
    def business_priors(self) -> dict[str, tuple[str, Prior]]:
        """``{channel: ("roas" | "cac", prior)}`` for the channels with a ROAS / CAC prior."""
        out = {ch: ("roas", p) for ch, p in self.roas_prior.items()}
        out.update({ch: ("cac", p) for ch, p in self.cac_prior.items()})
        return out

    @property
    def media_params(self) -> tuple[str, ...]:
        """Per-channel media parameters of the chosen families, in the model's creation order."""
        sat = self.saturation.param_names
        first = tuple(p for p in sat if p == "beta")
        return first + self.adstock.param_names + tuple(p for p in sat if p != "beta")

    def for_channels(self, channels: Sequence[str]) -> ModelConfig:
        """The same model over a subset of its channels (a brand that lacks some channels).

        Per-channel prior lists are indexed; ROAS / CAC priors of the dropped channels go.
        """
        unknown = [c for c in channels if c not in self.channels]
        if unknown:
            raise ConfigError(f"channels: {unknown} are not in the config's channels {list(self.channels)}")
        idx = [self.channels.index(c) for c in channels]
        n = len(self.channels)
        media = set(self.media_params)
        priors = {k: (p.subset(idx, n) if k in media else p) for k, p in self.priors.items()}
        return dataclasses.replace(
            self, channels=tuple(channels), priors=priors,
            roas_prior={c: p for c, p in self.roas_prior.items() if c in channels},
            cac_prior={c: p for c, p in self.cac_prior.items() if c in channels},
        )

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        out = {
            "date": self.date,
            "target": self.target,
            "channels": list(self.channels),
            "controls": list(self.controls),
            "adstock": component_to_dict(self.adstock),
            "saturation": component_to_dict(self.saturation),
            "adstock_first": self.adstock_first,
            "trend": self.trend,
            "seasonality": self.seasonality,
            "likelihood": self.likelihood,
            "priors": {k: p.to_dict() for k, p in self.priors.items()},
        }
        # the options below are written only when used, so older readers see the same dict
        if self.time_varying_intercept is not None:
            out["time_varying_intercept"] = self.time_varying_intercept.to_dict()
        if self.time_varying_media is not None:
            out["time_varying_media"] = self.time_varying_media.to_dict()
        for key in ("roas_prior", "cac_prior"):
            if getattr(self, key):
                out[key] = {ch: p.to_dict() for ch, p in getattr(self, key).items()}
        if self.outlier_factor != 1e4:
            out["outlier_factor"] = self.outlier_factor
        if self.lift_tests is not None:
            out["lift_tests"] = self.lift_tests
        if self.lift_likelihood != "normal":
            out["lift_likelihood"] = self.lift_likelihood
        if self.holidays is not None:  # the events themselves: a saved model needs no table file
            out["holidays"] = [e.to_dict() for e in self.holidays]
        if self.day_of_week:
            out["day_of_week"] = True
        if self.treatments:
            out["treatments"] = list(self.treatments)
        if self.treatment_carryover:
            out["treatment_carryover"] = True
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        if not isinstance(d, Mapping):
            raise ConfigError(f"config: expected a mapping, got {type(d).__name__}")
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown key; allowed keys: {sorted(allowed)}")
        missing = [k for k in ("date", "target", "channels") if k not in d]
        if missing:
            raise ConfigError(f"{missing[0]}: required key is missing")
        kw = dict(d)
        kw["adstock"] = kw.get("adstock") or {}
        kw["saturation"] = kw.get("saturation") or {}
        kw["priors"] = kw.get("priors") or {}
        for key in ("roas_prior", "cac_prior"):
            kw[key] = kw.get(key) or {}
        if not isinstance(kw["priors"], Mapping):
            raise ConfigError(f"priors: expected a mapping of parameter -> prior, got {kw['priors']!r}")
        return cls(**kw)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_file(cls, path: str | Path) -> ModelConfig:
        """Read a YAML (``.yaml``/``.yml``) or JSON file."""
        return cls.from_dict(with_paths_near(read_mapping(path) or {}, path))

    def to_file(self, path: str | Path) -> None:
        path = Path(path)
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        else:
            path.write_text(self.to_json())


def read_mapping(path: str | Path) -> Any:
    """The mapping of a YAML / JSON config file; a missing, unreadable or malformed file raises
    ``FileNotFoundError`` / :class:`ConfigError` naming it (and the YAML line)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path}: no such file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path}: not readable as text ({type(err).__name__})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ConfigError(f"config file {path.name}: not valid YAML{where} ({problem})") from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"config file {path.name}: not valid JSON ({err})") from None
    raise ConfigError(f"config file {path.name}: use a .yaml, .yml or .json file")


def with_paths_near(d, path: str | Path):
    """A config mapping read from ``path`` with its relative ``lift_tests`` / ``holidays`` paths (also under
    ``base``) resolved next to the file when the file is there (else left for the working directory)."""
    if not isinstance(d, Mapping):
        return d
    d = dict(d)
    if isinstance(d.get("base"), Mapping):
        d["base"] = with_paths_near(d["base"], path)
    for key in ("lift_tests", "holidays"):
        p = d.get(key)
        if isinstance(p, str) and p and not Path(p).is_absolute() and not Path(p).exists():
            near = Path(path).parent / p
            if near.exists():
                d[key] = str(near)
    return d


def _component(value, registry, key, default_type):
    """An adstock / saturation config from an instance, a type name or a mapping.

    Mappings name the family with ``type`` (``{type: weibull, kind: pdf, l_max: 12}``); the
    older spelling ``{kind: geometric}`` (``kind`` naming the family) is still read.
    """
    if isinstance(value, tuple(registry.values())):
        return value
    allowed_types = sorted(registry)
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{key}: expected a mapping such as {{'type': '{default_type}'}} or one of {allowed_types}, got {value!r}"
        )
    value = dict(value)
    if "type" in value:
        typ = value.pop("type")
    elif value.get("kind") in registry:  # older files: {kind: geometric}
        typ = value.pop("kind")
    elif "kind" in value and default_type in registry and "kind" not in _field_names(registry[default_type]):
        raise ConfigError(
            f"{key}.kind: {value['kind']!r} is not available; allowed {key} types: {allowed_types} "
            f"(name the family with 'type', e.g. {{type: weibull, kind: pdf}})"
        )
    else:
        typ = default_type
    if typ not in registry:
        raise ConfigError(f"{key}.type: {typ!r} is not available; allowed: {allowed_types}")
    cls = registry[typ]
    allowed = _field_names(cls)
    bad = sorted(set(value) - set(allowed))
    if bad:
        raise ConfigError(f"{key}.{bad[0]}: unknown key for {typ} {key}; allowed: {sorted(allowed)}")
    return cls(**value)


def _field_names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))
