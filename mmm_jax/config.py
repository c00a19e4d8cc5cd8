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
from typing import Any

import pymc as pm

__all__ = [
    "ConfigError",
    "Prior",
    "GeometricAdstock",
    "LogisticSaturation",
    "ModelConfig",
    "DEFAULT_PRIORS",
    "LIKELIHOODS",
]


class ConfigError(ValueError):
    """A configuration key or value is wrong; the message names the key and what is allowed."""


LIKELIHOODS = ("normal", "studentt")


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
        try:
            cls.dist(**{k: _thaw(v) for k, v in self.params.items()})
        except TypeError as err:
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
    # Positive channel effects. HalfNormal keeps effects >= 0 and shrinks a channel that the
    # data cannot separate from a collinear one towards zero instead of letting the pair
    # trade off into a large positive / negative couple.
    "beta": Prior("HalfNormal", sigma=1.0),
    "alpha": Prior("Beta", alpha=1.0, beta=3.0),
    "lam": Prior("Gamma", alpha=3.0, beta=1.0),
    "sigma": Prior("HalfNormal", sigma=0.5),
    "nu": Prior("Gamma", alpha=2.0, beta=0.1),
}


@dataclass(frozen=True)
class GeometricAdstock:
    """Geometric carry-over over a finite window: ``w_l = alpha**l``, ``l = 0..l_max-1``.

    ``normalize=True`` divides the weights by their sum, so that ``beta`` is the effect of a
    sustained unit of (scaled) spend at saturation rather than of its first week.
    """

    l_max: int = 8
    normalize: bool = True
    kind: str = "geometric"

    def __post_init__(self):
        if not isinstance(self.l_max, int) or isinstance(self.l_max, bool) or self.l_max < 1:
            raise ConfigError(f"adstock.l_max: must be a positive integer, got {self.l_max!r}")
        if self.kind != "geometric":
            raise ConfigError(f"adstock.kind: {self.kind!r} is not available; allowed: ['geometric']")


@dataclass(frozen=True)
class LogisticSaturation:
    """Logistic saturation ``(1 - exp(-lam x)) / (1 + exp(-lam x))`` with ``lam > 0``."""

    kind: str = "logistic"

    def __post_init__(self):
        if self.kind != "logistic":
            raise ConfigError(f"saturation.kind: {self.kind!r} is not available; allowed: ['logistic']")


_ADSTOCKS = {"geometric": GeometricAdstock}
_SATURATIONS = {"logistic": LogisticSaturation}


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
    adstock, saturation
        Carry-over and diminishing-returns families; adstock is applied first.
    trend : bool
        Linear trend in time (time scaled to [0, 1] over the training window).
    seasonality : int
        Order ``n`` of the yearly Fourier series (``2n`` features); 0 disables it.
    likelihood : {"normal", "studentt"}
    priors : mapping of parameter name -> :class:`Prior`
        Overrides of :data:`DEFAULT_PRIORS` (keys: intercept, trend, gamma_fourier,
        gamma_control, beta, alpha, lam, sigma, nu).
    """

    date: str
    target: str
    channels: tuple[str, ...]
    controls: tuple[str, ...] = ()
    adstock: GeometricAdstock = field(default_factory=GeometricAdstock)
    saturation: LogisticSaturation = field(default_factory=LogisticSaturation)
    trend: bool = True
    seasonality: int = 2
    likelihood: str = "normal"
    priors: Mapping[str, Prior] = field(default_factory=dict)

    def __post_init__(self):
        for key in ("date", "target"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                raise ConfigError(f"{key}: must be a non-empty column name, got {getattr(self, key)!r}")
        for key in ("channels", "controls"):
            val = getattr(self, key)
            if isinstance(val, str) or not isinstance(val, Sequence | tuple | list):
                raise ConfigError(f"{key}: must be a list of column names, got {val!r}")
            if not all(isinstance(v, str) and v for v in val):
                raise ConfigError(f"{key}: every entry must be a non-empty column name, got {list(val)!r}")
            object.__setattr__(self, key, tuple(val))
        if not self.channels:
            raise ConfigError("channels: at least one channel is required")
        if not isinstance(self.adstock, GeometricAdstock):
            raise ConfigError(f"adstock: expected GeometricAdstock, got {self.adstock!r}")
        if not isinstance(self.saturation, LogisticSaturation):
            raise ConfigError(f"saturation: expected LogisticSaturation, got {self.saturation!r}")
        if not isinstance(self.trend, bool):
            raise ConfigError(f"trend: must be true or false, got {self.trend!r}")
        if not isinstance(self.seasonality, int) or isinstance(self.seasonality, bool) or self.seasonality < 0:
            raise ConfigError(f"seasonality: must be an integer >= 0 (Fourier order), got {self.seasonality!r}")
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(f"likelihood: {self.likelihood!r} is not allowed; allowed: {list(LIKELIHOODS)}")
        priors = {}
        for name, p in dict(self.priors).items():
            if name not in DEFAULT_PRIORS:
                raise ConfigError(f"priors.{name}: unknown parameter; allowed: {sorted(DEFAULT_PRIORS)}")
            priors[name] = Prior.from_dict(p, key=f"priors.{name}")
        object.__setattr__(self, "priors", priors)

    # ------------------------------------------------------------------ accessors
    def prior(self, name: str) -> Prior:
        """The prior in force for ``name`` (user override or default)."""
        return self.priors.get(name, DEFAULT_PRIORS[name])

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return {
            "date": self.date,
            "target": self.target,
            "channels": list(self.channels),
            "controls": list(self.controls),
            "adstock": {k: v for k, v in dataclasses.asdict(self.adstock).items()},
            "saturation": dataclasses.asdict(self.saturation),
            "trend": self.trend,
            "seasonality": self.seasonality,
            "likelihood": self.likelihood,
            "priors": {k: p.to_dict() for k, p in self.priors.items()},
        }

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
        kw["adstock"] = _component(kw.get("adstock", {}), _ADSTOCKS, "adstock", "geometric")
        kw["saturation"] = _component(kw.get("saturation", {}), _SATURATIONS, "saturation", "logistic")
        kw["priors"] = kw.get("priors") or {}
        if not isinstance(kw["priors"], Mapping):
            raise ConfigError(f"priors: expected a mapping of parameter -> prior, got {kw['priors']!r}")
        return cls(**kw)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_file(cls, path: str | Path) -> ModelConfig:
        """Read a YAML (``.yaml``/``.yml``) or JSON file."""
        path = Path(path)
        text = path.read_text()
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            d = yaml.safe_load(text)
        elif path.suffix.lower() == ".json":
            d = json.loads(text)
        else:
            raise ConfigError(f"config file {path.name}: use a .yaml, .yml or .json file")
        return cls.from_dict(d or {})

    def to_file(self, path: str | Path) -> None:
        path = Path(path)
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        else:
            path.write_text(self.to_json())


def _component(value, registry, key, default_kind):
    if isinstance(value, tuple(registry.values())):
        return value
    if isinstance(value, str):
        value = {"kind": value}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected a mapping such as {{'kind': '{default_kind}'}}, got {value!r}")
    value = dict(value)
    kind = value.pop("kind", default_kind)
    if kind not in registry:
        raise ConfigError(f"{key}.kind: {kind!r} is not available; allowed: {sorted(registry)}")
    cls = registry[kind]
    allowed = {f.name for f in dataclasses.fields(cls)} - {"kind"}
    bad = sorted(set(value) - allowed)
    if bad:
        raise ConfigError(f"{key}.{bad[0]}: unknown key for {kind} {key}; allowed: {sorted(allowed)}")
    return cls(**value)
