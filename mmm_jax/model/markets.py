"""The multi-market MMM: the model of :func:`mmm_jax.model.build.build_pymc_model` with markets.

On scaled data (:mod:`mmm_jax.data.panel`), for market ``g`` and week ``t``::

    y[g, t] ~ Likelihood(mu[g, t], sigma[g])                  where mask[g, t] = 1
    mu[g, t] = intercept[g] + trend[g] * time[t] + fourier[t] @ gamma_fourier[g]
               + controls[g, t] @ gamma_control[g] + sum_c media[g, t, c]

(count likelihoods: ``baseline = exp(<linear predictor>)``, the count ``target * target_scale[g]``
with mean ``target_scale[g] * mu[g, t]``, Poisson or negative binomial with ``overdispersion``),
with the same adstock and saturation families as the single-brand model
(:func:`mmm_jax.media.adstock.apply_adstock`, :func:`mmm_jax.media.saturation.media_response`), applied to
every (market, channel) series at once, and national channels (one spend series for all markets,
a response per market) appended to the local ones.

HSGP terms (the grid's one time axis): ``time_varying_intercept`` adds one process ``f(t)`` to every
market's baseline; ``time_varying_media`` multiplies the varying media parameter of every market by
the multiplier ``media_multiplier[t, c]`` (shared by the channels, or hierarchical per channel), the
same in every market.

How each parameter is shared between markets (shared / pooled / independent) is
:mod:`mmm_jax.model.pooling`. One brand is the one-market case of the same builder. All data are
``pm.Data``, so the compiled log-density takes them as inputs.
"""

from __future__ import annotations

import pymc as pm

from ..config.markets import HierarchicalConfig
from .build import build_pymc_model
from .pooling import Markets, hyper_location, link_of

__all__ = ["build_hierarchical_model", "markets_of", "link_of", "hyper_location"]


def markets_of(config: HierarchicalConfig, panel) -> Markets:
    """The market structure of ``config`` on ``panel`` (labels and hierarchy groups; the group
    indices themselves are model inputs, :func:`~mmm_jax.data.panel.panel_arrays`)."""
    return Markets(
        labels=tuple(panel.markets), levels=tuple(config.levels),
        group_labels={k: tuple(v) for k, v in panel.group_labels.items()},
        pooling={name: config.pooling_of(name) for name in config.parameter_names},
        centered=tuple(config.centered), pooling_scale=float(config.pooling_scale),
        national=tuple(config.national_channels),
    )


def build_hierarchical_model(config: HierarchicalConfig, arrays: dict, panel) -> pm.Model:
    """Build the joint model.

    Parameters
    ----------
    config : HierarchicalConfig
    arrays : dict from :func:`mmm_jax.data.panel.panel_arrays`
    panel : PanelData (market and group labels)
    """
    return build_pymc_model(config.base, arrays, dates=list(panel.dates), markets=markets_of(config, panel))
