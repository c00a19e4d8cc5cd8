"""How a model's parameters are shared between markets.

A model has markets (:class:`Markets`: labels, hierarchy groups, one pooling mode per
parameter) or none (one brand: every parameter ``"shared"``, the one-market case). For a
parameter ``theta`` of shape ``dims`` (``()`` or ``("channel",)``, ...):

* ``"shared"``: one value for all markets, with the base prior;
* ``"independent"``: one value per market (``("market", *dims)``), each with the base prior;
* ``"pooled"``: ``link^{-1}(theta_mu + sum_level theta_sd_level * theta_z_level[group_level(g)])``
  (non-centred), with link = log for positive parameters, logit for (0, 1), identity otherwise;
  ``theta_mu`` has a Normal prior whose mean and sd are those of the base prior pushed through
  the link (so one market's marginal prior matches the single-brand prior),
  ``theta_sd_level ~ HalfNormal(pooling_scale)``, ``theta_z ~ Normal(0, 1)``. A centred
  parameter draws each level's group values around their parent's (``{name}_{level}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import pymc as pm
import pytensor.tensor as pt

__all__ = ["Markets", "link_of", "hyper_location", "to_link", "parameter", "parent_index", "mode_of"]

_POSITIVE = {"HalfNormal", "HalfCauchy", "HalfStudentT", "Gamma", "LogNormal", "Exponential", "InverseGamma",
             "Weibull", "HalfFlat", "ChiSquared", "Pareto", "Wald"}
_UNIT = {"Beta", "Kumaraswamy", "LogitNormal"}


class Markets(NamedTuple):
    """The market structure of a model.

    labels : (G,) market labels; levels : hierarchy levels, outermost first; group_labels :
    level -> labels of the groups; groups : level -> (G,) int index of each market's group;
    pooling : parameter -> "shared" | "pooled" | "independent" (every parameter of the model);
    centered : pooled parameters in the centred form; pooling_scale : HalfNormal scale of each
    level's between-group sd; national : channels with one spend series for all markets (the
    model's channel order is the local channels, then these); parents : level -> index of each
    of its groups' parent group at the level above (nested levels after the first; used by
    centred parameters). :func:`mmm_jax.model.build.build_pymc_model` fills ``groups`` / ``parents``
    with ``pm.Data`` inputs from the model's arrays (``group_index_<level>``,
    ``group_parent_<level>``), so that a batch can pad them.
    """

    labels: tuple
    levels: tuple
    group_labels: Mapping[str, tuple]
    pooling: Mapping[str, str]
    centered: tuple = ()
    pooling_scale: float = 0.5
    national: tuple = ()
    groups: Mapping[str, np.ndarray] = {}
    parents: Mapping[str, np.ndarray] = {}

    @property
    def size(self) -> int:
        return len(self.labels)


def link_of(prior) -> str:
    """``"log"``, ``"logit"`` or ``"identity"``: the link of a pooled parameter, from its prior's support."""
    if prior.dist in _POSITIVE:
        return "log"
    if prior.dist in _UNIT:
        return "logit"
    return "identity"


def hyper_location(prior, n: int = 4000, seed: int = 0) -> tuple[float, float]:
    """Mean and sd of the base prior on the link scale (Monte Carlo, fixed seed)."""
    cls = getattr(pm, prior.dist)
    params = {k: (np.asarray(v) if isinstance(v, list | tuple) else v) for k, v in prior.to_dict().items() if k != "dist"}
    draws = np.asarray(pm.draw(cls.dist(**params), draws=n, random_seed=seed), dtype=float)
    link = link_of(prior)
    eps = 1e-9
    if link == "log":
        draws = np.log(np.maximum(draws, eps))
    elif link == "logit":
        d = np.clip(draws, eps, 1 - eps)
        draws = np.log(d) - np.log1p(-d)
    return float(np.mean(draws)), float(max(np.std(draws), 1e-3))


def _inverse(link: str, x):
    if link == "log":
        return pt.exp(x)
    if link == "logit":
        return pt.sigmoid(x)
    return x


def to_link(link: str, x):
    """``x`` on the link scale (PyTensor)."""
    if link == "log":
        return pt.log(x)
    if link == "logit":
        return pt.log(x) - pt.log1p(-x)
    return x


def parent_index(groups: Mapping, levels: tuple, k: int) -> np.ndarray:
    """Index (int64) of each level-``k`` group's parent group at level ``k - 1`` (nested levels)."""
    child, parent = np.asarray(groups[levels[k]]), np.asarray(groups[levels[k - 1]])
    out = np.zeros(child.max() + 1, dtype=np.int64)
    out[child] = parent
    return out


def mode_of(markets: Markets | None, name: str) -> str:
    """The pooling of parameter ``name`` (``"shared"`` without markets)."""
    return "shared" if markets is None else markets.pooling[name]


def parameter(name: str, prior, markets: Markets | None, dims: tuple, mu=None):
    """Create parameter ``name`` per its pooling, in the current model.

    Returns ``(value, per_market)``: ``value`` has shape ``(G, *dims)`` when ``per_market``, else
    ``dims`` (shared). ``mu``: the pooled location on the link scale (default: a ``{name}_mu``
    variable with the base prior's location).
    """
    mode = mode_of(markets, name)
    if mode == "shared":
        return prior.create(name, dims=dims or None), False
    if mode == "independent":
        return prior.create(name, dims=("market", *dims)), True
    link = link_of(prior)
    if mu is None:
        m, s = hyper_location(prior)
        mu = pm.Normal(f"{name}_mu", m, s, dims=dims or None)
    centred = name in markets.centered
    total, loc = mu, pt.shape_padleft(mu)
    for k, level in enumerate(markets.levels):
        sd = pm.HalfNormal(f"{name}_sd_{level}", markets.pooling_scale, dims=dims or None)
        if centred:  # each level's group values are drawn around their parent group's value
            parent = loc if k == 0 else loc[markets.parents[level]]
            loc = pm.Normal(f"{name}_{level}", parent, sd, dims=(f"{level}_group", *dims))
        else:
            z = pm.Normal(f"{name}_z_{level}", 0.0, 1.0, dims=(f"{level}_group", *dims))
            total = total + sd * z[markets.groups[level]]
    if centred:
        total = loc[markets.groups[markets.levels[-1]]]
    return pm.Deterministic(name, _inverse(link, total), dims=("market", *dims)), True
