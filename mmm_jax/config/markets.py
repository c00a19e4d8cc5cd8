"""Configuration of a hierarchical (multi-market) MMM.

A :class:`HierarchicalConfig` wraps the single-brand :class:`~mmm_jax.config.model.ModelConfig` (date,
target, channels, controls, adstock and saturation families, priors, likelihood) and adds the
market hierarchy and how each parameter is shared between markets:

* ``"shared"``: one value for all markets (per channel for media parameters);
* ``"pooled"``: one value per market, partially pooled — non-centred, on the parameter's natural
  link scale (log for positive parameters, logit for (0, 1), identity otherwise):
  ``link(theta[m]) = mu + sum_levels tau_level * z_level[group_level(m)]``;
* ``"independent"``: one value per market, each with the base prior.

>>> from mmm_jax import ModelConfig
>>> base = ModelConfig(date="date", target="sales", channels=("tv", "search"))
>>> cfg = HierarchicalConfig(base, market=("region", "geo"), pooling={"sigma": "shared"})
>>> cfg.pooling_of("beta"), cfg.pooling_of("sigma"), cfg.levels
('pooled', 'shared', ('region', 'geo'))
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .model import ConfigError, ModelConfig, read_mapping, with_paths_near

__all__ = ["HierarchicalConfig", "POOLING_CHOICES", "DEFAULT_POOLING", "MARKET_KEYS", "load_config"]

POOLING_CHOICES = ("shared", "pooled", "independent")

#: Default sharing per parameter (media parameters default to ``"pooled"``).
#:
#: ``sat_level`` (tanh saturation: the response at saturation, as a share of each market's
#: scaled target) is shared. A market's own saturation level is barely identified wherever its
#: spend does not saturate, and pooling it leaves a slow-mixing hyper-mean/sd pair. Measured at
#: 40 markets x 156 weeks x 5 channels (2 chains x 500 + 500), min bulk ESS 28 pooled -> 180
#: shared (R-hat <= 1.07 -> <= 1.03), at the same 127 leapfrog steps per draw. The markets keep
#: their own efficiency ``cac0`` (the slope at zero spend) and carry-over.
DEFAULT_POOLING: dict[str, str] = {
    "intercept": "pooled",
    "trend": "pooled",
    "gamma_fourier": "pooled",
    "gamma_control": "shared",
    "gamma_holiday": "shared",
    "gamma_weekday": "shared",
    "gamma_treatment": "shared",
    "alpha_treatment": "shared",
    "sigma": "independent",
    "nu": "shared",
    "overdispersion": "shared",
    "sat_level": "shared",
    "intercept_tv": "shared",
}

#: Keys of a config file that describe the markets (next to the model's own keys, or with the
#: model under ``base``).
MARKET_KEYS = ("market", "crossed", "national_channels", "population", "pooling", "pooling_scale", "centered")


@dataclass(frozen=True)
class HierarchicalConfig:
    """A multi-market model.

    Parameters
    ----------
    base : ModelConfig
        Columns, families, priors and likelihood, as for one brand. Its priors are the priors of
        ``"shared"`` / ``"independent"`` parameters and set the hyper-prior location of
        ``"pooled"`` ones.
    market : str or sequence of str
        Market column(s), outermost level first (``("region", "geo")``: geos nested in regions);
        a market is one combination of the columns.
    national_channels : sequence of str
        Channels bought nationally: the same spend in every market on a date (validated); each
        market has its own (pooled) response to it.
    population : str, optional
        Column with each market's population: spend and target are then scaled per capita, so
        effects are comparable across market sizes.
    pooling : mapping parameter -> "shared" | "pooled" | "independent"
        Overrides of :data:`DEFAULT_POOLING` (media parameters default to "pooled").
    pooling_scale : float
        Prior scale (HalfNormal sigma) of each level's between-market standard deviation on
        the link scale.
    crossed : bool
        ``False`` (default): the market columns are nested, outermost first (a geo belongs to
        one region; a group is identified by its path, ``"north/g1"``). ``True``: they are
        crossed factors (``("geo", "product")``: every product in several geos), each level's
        groups are its own labels, and a market (one combination) gets the sum of one
        deviation per factor. Crossed levels take the non-centred form only.
    centered : sequence of str
        ``"pooled"`` parameters to parametrise centred (``link(theta[group]) ~ Normal(parent,
        tau)``, group values are the free variables, named ``{name}_{level}``) instead of
        non-centred (``{name}_z_{level}``). Centred suits parameters the data pin down in every
        market (long series); non-centred suits weakly identified ones (few weeks, collinear
        spend), where the centred form has a funnel.
    """

    base: ModelConfig
    market: tuple[str, ...]
    national_channels: tuple[str, ...] = ()
    population: str | None = None
    pooling: Mapping[str, str] = field(default_factory=dict)
    pooling_scale: float = 0.5
    centered: tuple[str, ...] = ()
    crossed: bool = False

    def __post_init__(self):
        if not isinstance(self.base, ModelConfig):
            object.__setattr__(self, "base", ModelConfig.from_dict(self.base))
        market = (self.market,) if isinstance(self.market, str) else tuple(self.market)
        if not market or not all(isinstance(m, str) and m for m in market):
            raise ConfigError(f"market: one or more column names, got {self.market!r}")
        object.__setattr__(self, "market", market)
        nat = tuple(self.national_channels)
        unknown = [c for c in nat if c not in self.base.channels]
        if unknown:
            raise ConfigError(f"national_channels: {unknown} are not in channels {list(self.base.channels)}")
        object.__setattr__(self, "national_channels", nat)
        allowed = set(self.parameter_names)
        pooling = dict(self.pooling)
        for k, v in pooling.items():
            if k not in allowed:
                raise ConfigError(f"pooling.{k}: not a parameter of this model; parameters: {sorted(allowed)}")
            if v not in POOLING_CHOICES:
                raise ConfigError(f"pooling.{k}: {v!r} is not allowed; allowed: {list(POOLING_CHOICES)}")
        object.__setattr__(self, "pooling", pooling)
        if self.pooling_of("intercept_tv") == "independent":
            raise ConfigError("pooling.intercept_tv: 'independent' is not available for the HSGP intercept; use "
                              "'shared' (one process for all markets) or 'pooled' (a shared process plus one "
                              "deviation process per market)")
        centered = (self.centered,) if isinstance(self.centered, str) else tuple(self.centered)
        for k in centered:
            if k not in allowed:
                raise ConfigError(f"centered: {k!r} is not a parameter of this model; parameters: {sorted(allowed)}")
            if k == "intercept_tv":
                raise ConfigError("centered: 'intercept_tv' is an HSGP, its per-market deviations are non-centred "
                                  "basis weights; drop it from 'centered'")
            if self.pooling_of(k) != "pooled":
                raise ConfigError(f"centered: {k!r} is {self.pooling_of(k)!r}, only 'pooled' parameters have a "
                                  "centred/non-centred choice")
        object.__setattr__(self, "centered", centered)
        if not isinstance(self.crossed, bool):
            raise ConfigError(f"crossed: must be true or false, got {self.crossed!r}")
        if self.crossed and centered:
            raise ConfigError(f"centered: {list(centered)} with crossed market levels {list(market)}: the centred "
                              "form draws each group around its parent group, which crossed levels do not have; "
                              "use the non-centred form (drop 'centered') or nest the levels")
        business = self.base.business_priors
        if business and self.pooling_of("beta") == "independent":
            kind = "roas_prior" if self.base.roas_prior else "cac_prior"
            raise ConfigError(
                f"{kind} with pooling.beta: independent: a national ROAS / CAC prior sets the location that "
                "the markets' betas share, which independent betas do not have; use pooling.beta: pooled or shared")
        if not (isinstance(self.pooling_scale, int | float) and self.pooling_scale > 0):
            raise ConfigError(f"pooling_scale: must be a positive number, got {self.pooling_scale!r}")
        if self.population is not None and not isinstance(self.population, str):
            raise ConfigError(f"population: a column name or null, got {self.population!r}")

    @property
    def levels(self) -> tuple[str, ...]:
        return self.market

    @property
    def local_channels(self) -> tuple[str, ...]:
        return tuple(c for c in self.base.channels if c not in self.national_channels)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        b = self.base
        names = ["intercept"]
        if b.time_varying_intercept is not None:
            names.append("intercept_tv")
        if b.trend:
            names.append("trend")
        if b.seasonality:
            names.append("gamma_fourier")
        if b.controls:
            names.append("gamma_control")
        if b.holidays:
            names.append("gamma_holiday")
        if b.day_of_week:
            names.append("gamma_weekday")
        if b.treatments:
            names.append("gamma_treatment")
            if b.treatment_carryover:
                names.append("alpha_treatment")
        names += list(b.media_params)
        if not b.is_count:
            names.append("sigma")
        if b.likelihood == "studentt":
            names.append("nu")
        if b.likelihood == "negative_binomial":
            names.append("overdispersion")
        return tuple(names)

    def pooling_of(self, name: str) -> str:
        if name in self.pooling:
            return self.pooling[name]
        return DEFAULT_POOLING.get(name, "pooled")

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base.to_dict(),
            "market": list(self.market),
            "national_channels": list(self.national_channels),
            "population": self.population,
            "pooling": dict(self.pooling),
            "pooling_scale": self.pooling_scale,
            "centered": list(self.centered),
            **({"crossed": True} if self.crossed else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HierarchicalConfig:
        """From ``{base: {model keys}, market: ..., ...}`` or the flat form: the model's keys and
        the market keys (:data:`MARKET_KEYS`) side by side."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"config: expected a mapping, got {type(d).__name__}")
        d = dict(d)
        if "base" not in d:  # flat: model keys next to the market keys
            if "market" not in d:
                raise ConfigError("market: required key is missing (the market column(s) of a multi-market model)")
            d = {"base": {k: v for k, v in d.items() if k not in MARKET_KEYS},
                 **{k: v for k, v in d.items() if k in MARKET_KEYS}}
        allowed = {"base", *MARKET_KEYS}
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown key; allowed: {sorted(allowed)}")
        if "market" not in d:
            raise ConfigError("market: required key is missing (the market column(s) of a multi-market model)")
        base = d.pop("base")
        return cls(base=ModelConfig.from_dict(base) if not isinstance(base, ModelConfig) else base, **d)

    @classmethod
    def from_file(cls, path: str | Path) -> HierarchicalConfig:
        return cls.from_dict(with_paths_near(read_mapping(path), path))


def load_config(source: str | Path | Mapping | ModelConfig | HierarchicalConfig) -> ModelConfig | HierarchicalConfig:
    """A model description from a file or mapping: with a ``market`` key (flat, or with the model
    under ``base``) a :class:`HierarchicalConfig`, else a single-market :class:`ModelConfig`."""
    if isinstance(source, ModelConfig | HierarchicalConfig):
        return source
    d = with_paths_near(read_mapping(source), source) if isinstance(source, str | Path) else source
    if isinstance(d, Mapping) and ("market" in d or "base" in d):
        return HierarchicalConfig.from_dict(d)
    return ModelConfig.from_dict(d)
