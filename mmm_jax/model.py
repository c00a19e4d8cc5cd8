"""The MMM as a ``pm.Model``.

On scaled data (see :mod:`mmm_jax.features`)::

    y_t ~ Likelihood(mu_t, sigma[, nu])            for weeks with mask_t = 1
    mu_t = baseline_t + sum_c media_c(spend)_t
    baseline_t = intercept + trend * time_t + fourier_t @ gamma_fourier + controls_t @ gamma_control
                 [+ f_intercept(t)]                (time_varying_intercept: an HSGP)

Count likelihoods (Poisson, negative binomial) use a log link on the baseline and keep the
media additive: ``baseline_t = exp(<the linear predictor above>)``, and the count
``n_t = target_t * target_scale`` (an integer) has mean ``target_scale * mu_t``; the count
log-probability is evaluated on the integer counts (``target_scale`` is a data input), so
contributions stay in units of the target and CAC = spend / contribution.

Time-varying media (``time_varying_media``): one saturation parameter ``p`` (``beta``;
``cac0`` for tanh) becomes ``p[t, c] = p_c * multiplier[t, c]`` with the positive HSGP
multiplier of :func:`mmm_jax.hsgp.positive_multiplier` (shared, or hierarchical per channel).

ROAS / CAC priors: ``beta_c = ROAS_c * spend_c / (target_scale * sum_t g[t, c])`` on the
training window, ``g`` the channel's contribution at ``beta = 1``.

    media_c = response(adstock(spend_c))       (adstock_first, the default)
            = adstock(response(spend_c))       (adstock_first = False)

with the adstock family of ``config.adstock`` (:func:`mmm_jax.adstock.apply_adstock`) and the
response (saturation times its coefficient) of ``config.saturation``
(:func:`mmm_jax.saturation.media_response`).

Every data array is a ``pm.Data`` container, so :func:`mmm_jax.compile.compile_logdensity`
can turn it into a function input (HSGP bases included). Deterministics
(``channel_contribution``, ``baseline``, ``mu``; ``media_multiplier``, ``<p>_t``,
``intercept_tv``; ``beta`` under ROAS priors) are part of the model graph and are evaluated
after sampling in one vectorised pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .adstock import apply_adstock
from .config import COUNT_LIKELIHOODS, ModelConfig, Prior
from .saturation import media_response

__all__ = [
    "build_pymc_model",
    "likelihood_dist",
    "masked_logp",
    "count_likelihood_dist",
    "count_masked_logp",
    "nb_alpha",
    "term_basis_data",
    "media_log_multiplier",
    "solve_beta",
]

#: Basis coordinate names of the HSGP terms.
_BASIS_DIM = {"intercept_tv": "intercept_tv_basis", "media_tv": "media_tv_basis"}
#: Largest negative-binomial alpha used (alpha = overdispersion**-2; beyond it NB == Poisson).
_NB_ALPHA_MAX = 1e10


def likelihood_dist(config: ModelConfig):
    """The likelihood family as ``dist_fn(mu, sigma, nu, mask, size)`` (Normal / StudentT).

    Count likelihoods take other parameters: use :func:`count_likelihood_dist`.
    """
    if config.likelihood == "normal":
        return lambda mu, sigma, nu, mask, size: pm.Normal.dist(mu, sigma, size=size)
    if config.likelihood == "studentt":
        return lambda mu, sigma, nu, mask, size: pm.StudentT.dist(nu=nu, mu=mu, sigma=sigma, size=size)
    raise ValueError(
        f"likelihood {config.likelihood!r} is a count likelihood: use count_likelihood_dist / count_masked_logp "
        "(parameters mu, overdispersion, target_scale, mask)"
    )


def masked_logp(config: ModelConfig):
    """Elementwise log-likelihood multiplied by the week mask (padded weeks add 0); Normal / StudentT."""
    if config.likelihood == "normal":

        def logp(value, mu, sigma, nu, mask):
            return mask * pm.logp(pm.Normal.dist(mu, sigma), value)

    elif config.likelihood == "studentt":

        def logp(value, mu, sigma, nu, mask):
            return mask * pm.logp(pm.StudentT.dist(nu=nu, mu=mu, sigma=sigma), value)

    else:
        likelihood_dist(config)  # raises with the message for count likelihoods
    return logp


def nb_alpha(overdispersion):
    """Negative-binomial ``alpha = overdispersion**-2`` (``var = mean + (overdispersion * mean)**2``),
    capped at 1e10 (numerically Poisson). Works on PyTensor and JAX / NumPy arrays."""
    inv = 1.0 / (overdispersion * overdispersion)
    if isinstance(overdispersion, pt.TensorVariable):
        return pt.minimum(inv, _NB_ALPHA_MAX)
    import jax.numpy as jnp

    return jnp.minimum(inv, _NB_ALPHA_MAX)


def _count_dist(likelihood: str, lam, overdispersion, size=None):
    if likelihood == "poisson":
        return pm.Poisson.dist(lam, size=size)
    return pm.NegativeBinomial.dist(mu=lam, alpha=nb_alpha(overdispersion), size=size)


def count_likelihood_dist(config: ModelConfig):
    """Forward draws of a count likelihood: ``dist_fn(mu, overdispersion, target_scale, mask, size)``.

    ``mu`` is the mean on the scaled target; the draw is the count divided by
    ``target_scale``, i.e. on the scale of the observed (scaled) target.
    """
    if config.likelihood not in COUNT_LIKELIHOODS:
        raise ValueError(f"likelihood {config.likelihood!r} is not a count likelihood")
    lik = config.likelihood

    def dist(mu, overdispersion, target_scale, mask, size):
        return _count_dist(lik, mu * target_scale, overdispersion, size=size) / target_scale

    return dist


def count_masked_logp(config: ModelConfig):
    """Count log-probability at the original integer counts, times the week mask.

    ``value`` is the scaled target; the count is ``round(value * target_scale)`` (exact:
    the scaling is one division by a constant) and its mean ``mu * target_scale``.
    """
    if config.likelihood not in COUNT_LIKELIHOODS:
        raise ValueError(f"likelihood {config.likelihood!r} is not a count likelihood")
    lik = config.likelihood

    def logp(value, mu, overdispersion, target_scale, mask):
        counts = pt.round(value * target_scale)
        return mask * pm.logp(_count_dist(lik, mu * target_scale, overdispersion), counts)

    return logp


# --------------------------------------------------------------------------- helpers
def _need(arrays, name: str, why: str) -> np.ndarray:
    if name not in arrays:
        raise ValueError(f"arrays lacks {name!r}, needed for {why} (build the inputs with features.model_arrays)")
    return np.asarray(arrays[name], dtype=float)


def term_basis_data(name: str, spec, arrays, *, suffix: str = ""):
    """The HSGP basis of term ``name`` as pm.Data: ``(phi (date, basis), sqrt_eig (basis,))``
    (``suffix="_train"``: the training copy of ``phi`` and ``None``); computed from
    ``arrays['time']`` when absent. Call inside the model's context."""
    phi_key, eig_key = f"{name}_phi{suffix}", f"{name}_sqrt_eig"
    if phi_key not in arrays or eig_key not in arrays:
        if suffix:
            raise ValueError(f"arrays lacks {phi_key!r} (build the inputs with features.model_arrays)")
        from .features import hsgp_basis_for

        # the (centred) basis on the domain of the observed weeks: the training window
        phi, sqrt_eig = hsgp_basis_for(spec, arrays["time"], arrays.get("mask"))
    else:
        phi, sqrt_eig = np.asarray(arrays[phi_key], float), np.asarray(arrays[eig_key], float)
    if phi.shape[1] != spec.m:
        raise ValueError(f"{phi_key} has {phi.shape[1]} basis functions, the config says m = {spec.m}")
    dim = _BASIS_DIM[name]
    model = pm.modelcontext(None)
    if dim not in model.coords:
        model.add_coord(dim, list(range(spec.m)))
    date_dim = None if suffix else "date"
    out_phi = pm.Data(phi_key, phi, dims=(date_dim, dim) if date_dim else None)
    if suffix:
        return out_phi, None
    return out_phi, pm.Data(eig_key, sqrt_eig, dims=dim)


def solve_beta(kind: str, rv, spend_total, unit_total, *, empty: float):
    """The ``beta`` whose contribution ``beta * unit_total`` (original units, over the training
    weeks) gives ROAS ``rv`` (``kind="roas"``) or CAC ``rv`` (``"cac"``) on ``spend_total``
    (original currency); ``empty`` where ``unit_total`` is 0 (a channel without spend)."""
    has = unit_total > 0
    per_unit = spend_total / pt.switch(has, unit_total, 1.0)  # beta per unit of ROAS
    return pt.switch(has, rv * per_unit if kind == "roas" else per_unit / rv, empty)


def _media_contribution(x, config: ModelConfig, ad_params: dict, sat_params: dict):
    ad, sat = config.adstock, config.saturation
    if config.adstock_first:
        return media_response(sat.type, apply_adstock(x, ad, ad_params), sat_params)
    return apply_adstock(media_response(sat.type, x, sat_params), ad, ad_params)


def media_log_multiplier(config: ModelConfig, arrays):
    """The HSGP ``f`` of the media multiplier: (T, C) (hierarchical) or (T, 1) (shared), plus a
    function evaluating the same process on another basis (the training one). Call inside the
    model's context; the model needs ``date`` and ``channel`` coordinates."""
    from .hsgp import hsgp_hierarchical, hsgp_process, sqrt_spectral_density

    tv = config.time_varying_media
    spec = tv.hsgp
    phi, sqrt_eig = term_basis_data("media_tv", spec, arrays)
    dim = _BASIS_DIM["media_tv"]
    model = pm.modelcontext(None)
    if tv.hierarchical:
        f = hsgp_hierarchical(
            "media_tv", phi, sqrt_eig, eta_global=spec.eta_prior, ell_global=spec.ell_prior,
            eta_delta=tv.delta_eta_prior, ell_delta=tv.delta_ell_prior, kernel=spec.kernel,
            group_dim="channel", zero_sum=tv.zero_sum and len(config.channels) > 1, dims=("date", "channel"),
            basis_dim=dim,
        )

        def on_basis(phi_other):
            se = pt.as_tensor_variable(sqrt_eig)
            g = sqrt_spectral_density(se, model["media_tv_global_eta"], model["media_tv_global_ell"],
                                      spec.kernel, xp=pt) * model["media_tv_global_z"]
            ell_d = model["media_tv_delta_ell"] if tv.delta_ell_prior is not None else model["media_tv_global_ell"]
            d = sqrt_spectral_density(se[:, None], model["media_tv_delta_eta"], ell_d, spec.kernel, xp=pt)
            return pt.dot(phi_other, g)[:, None] + pt.dot(phi_other, d * model["media_tv_delta_z"])

        return f, on_basis
    f = hsgp_process("media_tv", phi, sqrt_eig, spec.eta_prior, spec.ell_prior, kernel=spec.kernel,
                     dims="date", basis_dim=dim)

    def on_basis(phi_other):
        w = sqrt_spectral_density(pt.as_tensor_variable(sqrt_eig), model["media_tv_eta"], model["media_tv_ell"],
                                  spec.kernel, xp=pt) * model["media_tv_z"]
        return pt.dot(phi_other, w)[:, None]

    return f[:, None], on_basis


def build_pymc_model(
    config: ModelConfig,
    arrays: dict[str, np.ndarray],
    *,
    dates: Sequence | None = None,
) -> pm.Model:
    """Build the PyMC model for one brand.

    Parameters
    ----------
    config : ModelConfig
    arrays : dict
        Scaled inputs from :func:`mmm_jax.features.design_arrays`: spend (T, C),
        controls (T, K), fourier (T, 2n), time (T,), target (T,), mask (T,); plus, when the
        config uses them, the extras of :func:`mmm_jax.features.model_arrays`
        (``target_scale``, ``spend_scale``, HSGP bases ``*_phi`` / ``*_sqrt_eig``, training
        copies ``spend_train``, ``mask_train``, ``media_tv_phi_train``). A missing HSGP basis
        is computed from ``time`` on the domain of the unmasked weeks.
    dates : sequence, optional
        Labels for the ``date`` dimension (defaults to ``0..T-1``).

    Returns
    -------
    pm.Model
        Free variables: intercept, [trend], [gamma_fourier], [gamma_control],
        [intercept_tv_eta, intercept_tv_ell, intercept_tv_z], the media parameters of the
        chosen families (``config.media_params``, each per channel; e.g. beta, alpha, lam;
        under ROAS / CAC priors ``roas_<channel>`` / ``cac_<channel>`` and ``beta_free`` replace
        ``beta``), [media_tv_* HSGP variables], sigma, [nu] (Normal / StudentT) or
        [overdispersion] (negative binomial). Deterministics: channel_contribution (date,
        channel), baseline (date), mu (date) — all in scaled units — and, when used,
        intercept_tv (date), media_multiplier (date, channel), ``<p>_t`` (date, channel),
        beta (channel).
    """
    spend = np.asarray(arrays["spend"], dtype=float)
    T, C = spend.shape
    if C != len(config.channels):
        raise ValueError(f"spend has {C} columns but the config lists {len(config.channels)} channels")
    K = len(config.controls)
    n_four = 2 * config.seasonality
    coords = {
        "date": list(dates) if dates is not None else list(range(T)),
        "channel": list(config.channels),
    }
    if K:
        coords["control"] = list(config.controls)
    if n_four:
        coords["fourier_mode"] = [f"{f}{k}" for k in range(1, config.seasonality + 1) for f in ("sin", "cos")]
    business = config.business_priors
    tv = config.time_varying_media

    with pm.Model(coords=coords) as model:
        x = pm.Data("spend", spend, dims=("date", "channel"))
        y = pm.Data("target", np.asarray(arrays["target"], dtype=float), dims="date")
        mask = pm.Data("mask", np.asarray(arrays["mask"], dtype=float), dims="date")
        if config.is_count or business:
            target_scale = pm.Data("target_scale", _need(arrays, "target_scale", "count likelihoods / ROAS priors"))

        intercept = config.prior("intercept").create("intercept")
        baseline = intercept * pt.ones_like(y)
        if config.trend:
            time = pm.Data("time", np.asarray(arrays["time"], dtype=float), dims="date")
            trend = config.prior("trend").create("trend")
            baseline = baseline + trend * time
        if n_four:
            fourier = pm.Data("fourier", np.asarray(arrays["fourier"], dtype=float), dims=("date", "fourier_mode"))
            gamma_f = config.prior("gamma_fourier").create("gamma_fourier", dims="fourier_mode")
            baseline = baseline + pt.dot(fourier, gamma_f)
        if K:
            controls = pm.Data("controls", np.asarray(arrays["controls"], dtype=float), dims=("date", "control"))
            gamma_c = config.prior("gamma_control").create("gamma_control", dims="control")
            baseline = baseline + pt.dot(controls, gamma_c)
        if config.time_varying_intercept is not None:
            from .hsgp import hsgp_process

            spec = config.time_varying_intercept
            phi, sqrt_eig = term_basis_data("intercept_tv", spec, arrays)
            baseline = baseline + hsgp_process(
                "intercept_tv", phi, sqrt_eig, spec.eta_prior, spec.ell_prior, kernel=spec.kernel,
                dims="date", basis_dim=_BASIS_DIM["intercept_tv"],
            )
        if config.is_count:
            baseline = pt.exp(baseline)  # log link: a positive baseline, media stay additive

        # media parameters, in config.media_params order (ROAS / CAC RVs take beta's place)
        media = {}
        for name in config.media_params:
            if name == "beta" and business:
                for ch, (kind, prior) in business.items():
                    media[f"{kind}_{ch}"] = prior.create(f"{kind}_{ch}")
                free_idx = [i for i, ch in enumerate(config.channels) if ch not in business]
                if free_idx:
                    model.add_coord("beta_free_channel", [config.channels[i] for i in free_idx])
                    media["beta_free"] = config.prior("beta").subset(free_idx, C).create(
                        "beta_free", dims="beta_free_channel")
                continue
            media[name] = config.prior(name).create(name, dims="channel")
        ad, sat = config.adstock, config.saturation
        ad_params = {name: media[name] for name in ad.param_names}
        sat_params = {name: media[name] for name in sat.param_names if name in media}

        mult = None
        if tv is not None:
            from .hsgp import positive_multiplier

            f, f_on_basis = media_log_multiplier(config, arrays)
            mult = pm.Deterministic("media_multiplier", positive_multiplier(f, tv.link) * pt.ones_like(x),
                                    dims=("date", "channel"))
            p = tv.varying_param(sat)
        if business:
            # contribution = beta_c * g[t, c], g = the contribution at beta = 1 (adstock is linear)
            unit = {**sat_params, "beta": pt.ones((C,))}
            g = _media_contribution(x, config, ad_params, {**unit, "beta": unit["beta"] * mult} if mult is not None
                                    else unit)
            x_tr = pm.Data("spend_train", _need(arrays, "spend_train", "ROAS / CAC priors"))
            m_tr = pm.Data("mask_train", _need(arrays, "mask_train", "ROAS / CAC priors"))
            spend_scale = pm.Data("spend_scale", _need(arrays, "spend_scale", "ROAS / CAC priors"), dims="channel")
            beta_tr = unit["beta"]
            if mult is not None:
                phi_tr, _ = term_basis_data("media_tv", tv.hsgp, arrays, suffix="_train")
                beta_tr = positive_multiplier(f_on_basis(phi_tr), tv.link) * pt.ones_like(x_tr)
            g_tr = _media_contribution(x_tr, config, ad_params, {**unit, "beta": beta_tr})
            g_sum = pt.sum(g_tr * m_tr[:, None], axis=0)  # (C,) scaled contribution at beta = 1
            spend_tot = pt.sum(x_tr * m_tr[:, None], axis=0) * spend_scale  # (C,) original currency
            per_channel = []
            j = 0
            for i, ch in enumerate(config.channels):
                if ch in business:
                    kind = business[ch][0]
                    rv = media[f"{kind}_{ch}"]
                    # beta per unit of ROAS; 0 for a channel without spend (a brand of a batch that
                    # lacks it: its ROAS / CAC is then sampled from its prior alone)
                    per_channel.append(solve_beta(kind, rv, spend_tot[i], target_scale * g_sum[i], empty=0.0))
                else:
                    per_channel.append(media["beta_free"][j])
                    j += 1
            beta = pm.Deterministic("beta", pt.stack(per_channel), dims="channel")
            if mult is not None:
                pm.Deterministic("beta_t", beta * mult, dims=("date", "channel"))
            contribution = beta * g
        else:
            if mult is not None:
                sat_params[p] = pm.Deterministic(f"{p}_t", sat_params[p] * mult, dims=("date", "channel"))
            contribution = _media_contribution(x, config, ad_params, sat_params)

        contribution = pm.Deterministic("channel_contribution", contribution, dims=("date", "channel"))
        baseline = pm.Deterministic("baseline", baseline, dims="date")
        mu = pm.Deterministic("mu", baseline + contribution.sum(axis=-1), dims="date")

        if config.is_count:
            if config.likelihood == "negative_binomial":
                overdispersion = config.prior("overdispersion").create("overdispersion")
            else:
                overdispersion = pt.constant(0.0)
            pm.CustomDist(
                "y",
                mu,
                overdispersion,
                target_scale,
                mask,
                dist=count_likelihood_dist(config),
                logp=count_masked_logp(config),
                observed=y,
                dims="date",
            )
            return model
        sigma = config.prior("sigma").create("sigma")
        nu = config.prior("nu").create("nu") if config.likelihood == "studentt" else pt.constant(np.inf)
        pm.CustomDist(
            "y",
            mu,
            sigma,
            nu,
            mask,
            dist=likelihood_dist(config),
            logp=masked_logp(config),
            observed=y,
            dims="date",
        )
    return model
