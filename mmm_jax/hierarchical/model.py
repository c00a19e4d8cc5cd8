"""The multi-market MMM as one ``pm.Model`` with partial pooling (non-centred).

On scaled data (:mod:`mmm_jax.hierarchical.panel`), for market ``g`` and week ``t``::

    y[g, t] ~ Likelihood(mu[g, t], sigma[g])                  where mask[g, t] = 1
    mu[g, t] = intercept[g] + trend[g] * time[t] + fourier[t] @ gamma_fourier[g]
               + controls[g, t] @ gamma_control[g] + sum_c media[g, t, c]

(count likelihoods: ``baseline = exp(<linear predictor>)``, the count ``target * target_scale[g]``
with mean ``target_scale[g] * mu[g, t]``, Poisson or negative binomial with ``overdispersion``),
with the same adstock and saturation families as the single-brand model
(:func:`mmm_jax.adstock.apply_adstock`, :func:`mmm_jax.saturation.media_response`), applied to
every (market, channel) series at once, and national channels (one spend series for all markets,
a response per market) appended to the local ones.

HSGP terms (the grid's one time axis): ``time_varying_intercept`` adds one process ``f(t)`` to every
market's baseline; ``time_varying_media`` multiplies the varying media parameter of every market by
the multiplier ``media_multiplier[t, c]`` (shared by the channels, or hierarchical per channel), the
same in every market.

A ``"pooled"`` parameter ``theta`` (per market; per channel for media parameters) is
``link^{-1}(theta_mu + sum_level theta_sd_level * theta_z_level[group_level(g)])``: link = log for
positive parameters, logit for (0, 1), identity otherwise. ``theta_mu`` gets a Normal prior whose
mean and sd are those of the base prior pushed through the link (so the pooled model's marginal
prior for one market matches the single-brand prior), ``theta_sd_level ~ HalfNormal(pooling_scale)``,
``theta_z ~ Normal(0, 1)``. All data are ``pm.Data``, so the compiled log-density takes them as inputs.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..adstock import apply_adstock
from ..model import (count_likelihood_dist, count_masked_logp, likelihood_dist, masked_logp, media_log_multiplier,
                     solve_beta, term_basis_data)
from ..saturation import media_response
from .config import HierarchicalConfig

__all__ = ["build_hierarchical_model", "link_of", "hyper_location"]

_POSITIVE = {"HalfNormal", "HalfCauchy", "HalfStudentT", "Gamma", "LogNormal", "Exponential", "InverseGamma",
             "Weibull", "HalfFlat", "ChiSquared", "Pareto", "Wald"}
_UNIT = {"Beta", "Kumaraswamy", "LogitNormal"}


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


def _parameter(name, config: HierarchicalConfig, groups, n_markets: int, dims: tuple, mu=None):
    """Create parameter ``name`` per its pooling; returns a tensor (G, *shape) (or (*shape) if shared).

    ``mu``: the pooled location on the link scale (default: a ``{name}_mu`` variable)."""
    b = config.base
    prior = b.prior(name)
    mode = config.pooling_of(name)
    if mode == "shared":
        return prior.create(name, dims=dims or None), False
    if mode == "independent":
        return prior.create(name, dims=("market", *dims)), True
    link = link_of(prior)
    if mu is None:
        m, s = hyper_location(prior)
        mu = pm.Normal(f"{name}_mu", m, s, dims=dims or None)
    centred = name in config.centered
    total, loc = mu, pt.shape_padleft(mu)
    for k, level in enumerate(config.levels):
        sd = pm.HalfNormal(f"{name}_sd_{level}", config.pooling_scale, dims=dims or None)
        if centred:  # each level's group values are drawn around their parent group's value
            parent = loc if k == 0 else loc[_parents(groups, config.levels, k)]
            loc = pm.Normal(f"{name}_{level}", parent, sd, dims=(f"{level}_group", *dims))
        else:
            z = pm.Normal(f"{name}_z_{level}", 0.0, 1.0, dims=(f"{level}_group", *dims))
            total = total + sd * z[groups[level]]
    if centred:
        total = loc[groups[config.levels[-1]]]
    return pm.Deterministic(name, _inverse(link, total), dims=("market", *dims)), True


def _to_link(link: str, x):
    if link == "log":
        return pt.log(x)
    if link == "logit":
        return pt.log(x) - pt.log1p(-x)
    return x


def _business_beta(config: HierarchicalConfig, groups, n_markets: int, channels: tuple, unit_total, spend_total):
    """``beta`` (G, C) under ROAS / CAC priors.

    ``roas_<c>`` (``cac_<c>``) is the national ROAS (CAC) of channel ``c`` over the training weeks
    when every market has the pooled location ``b_c`` of ``beta``: ``b_c = roas_c *
    spend_total[c] / unit_total[c]`` (``unit_total``: the national contribution in original units
    at ``beta = 1``, so contribution is linear in ``beta``). ``b_c`` replaces ``beta_mu[c]``
    (pooled: the markets' betas vary around it) or is ``beta[c]`` itself (shared). Channels
    without a ROAS / CAC prior keep their ``beta`` prior (``beta_mu`` / ``beta_free`` over
    ``beta_free_channel``). A channel without spend has ``b_c = 1`` (no contribution either way).
    """
    b = config.base
    business = b.business_priors
    model = pm.modelcontext(None)
    free = [i for i, ch in enumerate(channels) if ch not in business]
    prior = b.prior("beta")
    mode = config.pooling_of("beta")
    if free:
        model.add_coord("beta_free_channel", [channels[i] for i in free])
    loc = []
    if mode == "pooled" and free:
        m, s = hyper_location(prior)
        free_loc = pm.Normal("beta_mu", m, s, dims="beta_free_channel")
    elif free:  # shared
        base_idx = [b.channels.index(channels[i]) for i in free]
        free_loc = prior.subset(base_idx, len(b.channels)).create("beta_free", dims="beta_free_channel")
    link = link_of(prior) if mode == "pooled" else "identity"
    j = 0
    for i, ch in enumerate(channels):
        if ch in business:
            kind, p = business[ch]
            rv = p.create(f"{kind}_{ch}")
            loc.append(_to_link(link, solve_beta(kind, rv, spend_total[i], unit_total[i], empty=1.0)))
        else:
            loc.append(free_loc[j])
            j += 1
    loc = pt.stack(loc)
    if mode == "shared":
        beta = pm.Deterministic("beta", loc, dims="channel")
        return pt.broadcast_to(beta[None, :], (n_markets, len(channels)))
    beta, _ = _parameter("beta", config, groups, n_markets, ("channel",), mu=loc)
    return beta


def _parents(groups: dict, levels: tuple, k: int) -> np.ndarray:
    """Index of each level-``k`` group's parent group at level ``k - 1`` (levels are nested)."""
    child, parent = groups[levels[k]], groups[levels[k - 1]]
    out = np.zeros(child.max() + 1, dtype=int)
    out[child] = parent
    return out


def _per_market(v, per_market: bool, n_markets: int):
    """(G, ...) view of a parameter (broadcast a shared one)."""
    return v if per_market else pt.shape_padleft(v)


def _media_columns(x, x_nat, b, ad_p, sat_p, mult, G: int, n_nat: int):
    """Media contributions (T, C, G) of local spend ``x`` (G, T, C_local) and national spend
    ``x_nat`` (T, C_nat); ``ad_p`` / ``sat_p`` flat (C * G,) channel-major; ``mult`` (T, C) the
    HSGP media multiplier of the varying parameter, or None. ``G`` and ``n_nat`` are static (the
    reshapes need concrete sizes)."""
    T = x.shape[1]
    C = len(b.channels)
    # all (channel, market) series as columns of one (T, C * G) matrix, channel-major: the sum
    # over channels is then a sum of contiguous (T, G) blocks (a reduction over a short minor
    # axis, market-major, measured 4x slower on CPU)
    xa = pt.concatenate([x, pt.broadcast_to(x_nat[None], (G, T, n_nat))], axis=-1)
    cols = xa.dimshuffle(1, 2, 0).reshape((T, C * G))
    ad, sat = b.adstock, b.saturation
    sat_p = dict(sat_p)
    if mult is not None:
        p = b.time_varying_media.varying_param(sat)
        sat_p[p] = sat_p[p][None, :] * pt.repeat(mult, G, axis=1)  # (T, C * G), channel-major
    if b.adstock_first:
        out = media_response(sat.type, apply_adstock(cols, ad, ad_p), sat_p)
    else:
        out = apply_adstock(media_response(sat.type, cols, sat_p), ad, ad_p)
    return out.reshape((T, C, G))


def build_hierarchical_model(config: HierarchicalConfig, arrays: dict, panel) -> pm.Model:
    """Build the joint model.

    Parameters
    ----------
    config : HierarchicalConfig
    arrays : dict from :func:`mmm_jax.hierarchical.panel.panel_arrays`
    panel : PanelData (labels and hierarchy groups)
    """
    b = config.base
    G = arrays["spend"].shape[0]  # markets are fixed; the number of weeks stays symbolic
    local, national = config.local_channels, config.national_channels
    channels = (*local, *national)
    K, n_four = len(b.controls), 2 * b.seasonality
    coords = {"market": list(panel.markets), "date": list(panel.dates), "channel": list(channels)}
    for level in config.levels:
        coords[f"{level}_group"] = list(panel.group_labels[level])
    if K:
        coords["control"] = list(b.controls)
    if n_four:
        coords["fourier_mode"] = [f"{f}{k}" for k in range(1, b.seasonality + 1) for f in ("sin", "cos")]
    groups = panel.groups

    with pm.Model(coords=coords) as model:
        x = pm.Data("spend", np.asarray(arrays["spend"], float))  # (market, date, local channel)
        x_nat = pm.Data("national_spend", np.asarray(arrays["national_spend"], float))
        # no dims on the data: their lengths must stay free so that new weeks (forecasts) can be fed
        y = pm.Data("target", np.asarray(arrays["target"], float))
        mask = pm.Data("mask", np.asarray(arrays["mask"], float))

        icpt, pm_i = _parameter("intercept", config, groups, G, ())
        baseline = _per_market(icpt, pm_i, G)[:, None] * pt.ones_like(y)
        if b.trend:
            time = pm.Data("time", np.asarray(arrays["time"], float))
            tr, pm_t = _parameter("trend", config, groups, G, ())
            baseline = baseline + _per_market(tr, pm_t, G)[:, None] * time[None, :]
        if n_four:
            fourier = pm.Data("fourier", np.asarray(arrays["fourier"], float))
            gf, pm_f = _parameter("gamma_fourier", config, groups, G, ("fourier_mode",))
            baseline = baseline + pt.dot(_per_market(gf, pm_f, G), fourier.T)
        if K:
            ctl = pm.Data("controls", np.asarray(arrays["controls"], float))
            gc, pm_c = _parameter("gamma_control", config, groups, G, ("control",))
            baseline = baseline + (ctl * _per_market(gc, pm_c, G)[:, None, :]).sum(axis=-1)
        if b.time_varying_intercept is not None:
            from ..hsgp import hsgp_process

            spec = b.time_varying_intercept
            phi, sqrt_eig = term_basis_data("intercept_tv", spec, arrays)
            f = hsgp_process("intercept_tv", phi, sqrt_eig, spec.eta_prior, spec.ell_prior, kernel=spec.kernel,
                             dims="date", basis_dim="intercept_tv_basis")
            baseline = baseline + f[None, :]
        if b.is_count:
            baseline = pt.exp(baseline)  # log link: a positive baseline, media stay additive

        business = b.business_priors
        ts = None
        if b.is_count or business:
            ts = pm.Data("target_scale", np.asarray(arrays["target_scale"], float))
        media = {}
        for name in b.media_params:
            if name == "beta" and business:
                continue  # solved from the ROAS / CAC priors below, once the unit contribution is known
            v, per = _parameter(name, config, groups, G, ("channel",))
            media[name] = v if per else pt.broadcast_to(v[None, :], (G, len(channels)))
        T = x.shape[1]
        ad, sat = b.adstock, b.saturation
        flat = {k: v.T.reshape((len(channels) * G,)) for k, v in media.items()}
        ad_p = {n: flat[n] for n in ad.param_names}
        tv = b.time_varying_media
        mult = None
        if tv is not None:
            from ..hsgp import positive_multiplier

            f, f_on_basis = media_log_multiplier(b, arrays)
            mult = pm.Deterministic("media_multiplier", positive_multiplier(f, tv.link) * pt.ones((T, len(channels))),
                                    dims=("date", "channel"))
        if business:
            # contribution = beta[g, c] * unit[g, t, c] (adstock is linear): the unit response on the
            # training weeks fixes beta's location from the ROAS / CAC priors
            flat["beta"] = pt.ones((len(channels) * G,))
            x_tr = pm.Data("spend_train", np.asarray(arrays["spend_train"], float))
            xn_tr = pm.Data("national_spend_train", np.asarray(arrays["national_spend_train"], float))
            m_tr = pm.Data("mask_train", np.asarray(arrays["mask_train"], float))
            s_scale = pm.Data("spend_scale", np.asarray(arrays["spend_scale"], float))  # (G, C) model order
            mult_tr = None
            if tv is not None:
                phi_tr, _ = term_basis_data("media_tv", tv.hsgp, arrays, suffix="_train")
                mult_tr = positive_multiplier(f_on_basis(phi_tr), tv.link) * pt.ones((x_tr.shape[1], len(channels)))
            unit_tr = _media_columns(x_tr, xn_tr, b, ad_p, {n: flat[n] for n in sat.param_names}, mult_tr, G, len(national))
            unit_sum = (unit_tr * m_tr.T[:, None, :]).sum(axis=0)  # (C, G) scaled, at beta = 1
            n_loc = len(local)
            local_tot = (x_tr * m_tr[:, :, None] * s_scale[:, None, :n_loc]).sum(axis=(0, 1))
            nat_tot = (xn_tr * m_tr.max(axis=0)[:, None] * s_scale[0, n_loc:][None, :]).sum(axis=0)
            beta = _business_beta(config, groups, G, channels, (unit_sum * ts[None, :]).sum(axis=1),
                                  pt.concatenate([local_tot, nat_tot]))
        sat_p = {n: flat[n] for n in sat.param_names}
        out = _media_columns(x, x_nat, b, ad_p, sat_p, mult, G, len(national))
        if business:
            out = out * beta.T[None, :, :]
        pm.Deterministic("channel_contribution", out.dimshuffle(2, 0, 1), dims=("market", "date", "channel"))
        baseline = pm.Deterministic("baseline", baseline, dims=("market", "date"))
        summed = out[:, 0]  # unrolled: one fused add on CPU; a Sum over axis 1 became a slower reduction
        for j in range(1, len(channels)):
            summed = summed + out[:, j]
        mu = pm.Deterministic("mu", baseline + summed.T, dims=("market", "date"))

        if b.is_count:
            if b.likelihood == "negative_binomial":
                od, pm_o = _parameter("overdispersion", config, groups, G, ())
                od = _per_market(od, pm_o, G)[:, None]
            else:
                od = pt.constant(0.0)
            pm.CustomDist("y", mu, od, ts[:, None], mask, dist=count_likelihood_dist(b), logp=count_masked_logp(b),
                          observed=y, dims=("market", "date"))
            return model
        sg, pm_s = _parameter("sigma", config, groups, G, ())
        sigma = _per_market(sg, pm_s, G)[:, None] * pt.ones_like(y)
        if b.likelihood == "studentt":
            nu_v, pm_n = _parameter("nu", config, groups, G, ())
            nu = _per_market(nu_v, pm_n, G)[:, None] * pt.ones_like(y)
        else:
            nu = pt.constant(np.inf)
        pm.CustomDist("y", mu, sigma, nu, mask, dist=likelihood_dist(b), logp=masked_logp(b), observed=y,
                      dims=("market", "date"))
    return model
