"""The MMM as a ``pm.Model``.

On scaled data (see :mod:`mmm_jax.data.features`)::

    y_t ~ Likelihood(mu_t, sigma[, nu])            for weeks with mask_t = 1
    mu_t = baseline_t [+ sum_j treatment_j(t)] + sum_c media_c(spend)_t
    baseline_t = intercept + trend * time_t + fourier_t @ gamma_fourier + controls_t @ gamma_control
                 [+ holidays_t @ gamma_holiday]    (holidays / events: 0/1 features)
                 [+ day_of_week_t @ gamma_weekday] (day of week, daily data)
                 [+ f_intercept(t)]                (time_varying_intercept: an HSGP)

Non-media treatments (``treatments``: promotions, price changes, scaled to [0, 1] by
:func:`mmm_jax.data.features.scaled_treatments`) add ``treatment_j(t) = gamma_treatment_j * z_j(t)``
(signed), or with ``treatment_carryover`` ``gamma_treatment_j * adstock(z_j, alpha_treatment_j)(t)``
(geometric, the media's ``l_max``, weights summing to 1); they are reported as
``treatment_contribution``, apart from the baseline, so that baseline + treatments + channels = mu.

Count likelihoods (Poisson, negative binomial) use a log link on the baseline and keep the
media additive: ``baseline_t = exp(<the linear predictor above>)``, and the count
``n_t = target_t * target_scale`` (an integer) has mean ``target_scale * mu_t``; the count
log-probability is evaluated on the integer counts (``target_scale`` is a data input), so
contributions stay in units of the target and CAC = spend / contribution.

Time-varying media (``time_varying_media``): one saturation parameter ``p`` (``beta``;
``cac0`` for tanh) becomes ``p[t, c] = p_c * multiplier[t, c]`` with the positive HSGP
multiplier of :func:`mmm_jax.model.hsgp.positive_multiplier` (shared, or hierarchical per channel).

ROAS / CAC priors: ``beta_c = ROAS_c * spend_c / (target_scale * sum_t g[t, c])`` on the
training window, ``g`` the channel's contribution at ``beta = 1``.

    media_c = response(adstock(spend_c))       (adstock_first, the default)
            = adstock(response(spend_c))       (adstock_first = False)

with the adstock family of ``config.adstock`` (:func:`mmm_jax.media.adstock.apply_adstock`) and the
response (saturation times its coefficient) of ``config.saturation``
(:func:`mmm_jax.media.saturation.media_response`).

Every data array is a ``pm.Data`` container, so :func:`mmm_jax.compile.compile_logdensity`
can turn it into a function input (HSGP bases included). Deterministics
(``channel_contribution``, ``baseline``, ``mu``; ``treatment_contribution``; ``media_multiplier``, ``<p>_t``,
``intercept_tv``; ``beta`` under ROAS priors) are part of the model graph and are evaluated
after sampling in one vectorised pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..config.model import COUNT_LIKELIHOODS, GeometricAdstock, ModelConfig, Prior
from ..data.features import WEEKDAYS
from ..data.lift import LIFT_INPUTS
from ..media.adstock import apply_adstock
from ..media.saturation import media_response
from .pooling import Markets, hyper_location, link_of, mode_of, parameter, to_link

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
    "lift_prediction",
]

#: Basis coordinate names of the HSGP terms.
_BASIS_DIM = {"intercept_tv": "intercept_tv_basis", "media_tv": "media_tv_basis"}
#: Prior of the per-market deviations' amplitude of a pooled HSGP intercept (scaled target units).
INTERCEPT_TV_DELTA_ETA = Prior("HalfNormal", sigma=0.1)
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
        from ..data.features import hsgp_basis_for

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


def _spend_columns(x, x_nat, config: ModelConfig, G: int, n_nat: int):
    """Every media column of local spend ``x`` (G, T, C_local; one brand: (T, C), returned as is) and
    national spend ``x_nat`` (T, C_nat) as one (T, C * G) matrix, channel-major. ``G`` and ``n_nat``
    are static (the reshapes need concrete sizes)."""
    if x.ndim == 2:  # one brand: the columns are the channels
        return x
    T, C = x.shape[1], len(config.channels)
    # all (channel, market) series as columns of one (T, C * G) matrix, channel-major: the sum
    # over channels is then a sum of contiguous (T, G) blocks (a reduction over a short minor
    # axis, market-major, measured 4x slower on CPU)
    xa = pt.concatenate([x, pt.broadcast_to(x_nat[None], (G, T, n_nat))], axis=-1) if n_nat else x
    return xa.dimshuffle(1, 2, 0).reshape((T, C * G))


def _column_saturation(config: ModelConfig, sat_p: dict, mult, G: int) -> dict:
    """The saturation parameters per column: ``sat_p`` (flat (C * G,)) with the varying parameter of
    time-varying media times the multiplier ``mult`` (T, C) -> (T, C * G); ``mult`` None: as is."""
    sat_p = dict(sat_p)
    if mult is not None:
        p = config.time_varying_media.varying_param(config.saturation)
        sat_p[p] = sat_p[p][None, :] * (pt.repeat(mult, G, axis=1) if G > 1 else mult)  # (T, C * G)
    return sat_p


def _response(cols, config: ModelConfig, ad_p: dict, sat_p: dict):
    """Media response of spend columns ``cols`` (T, M) with per-column parameters ((M,) or (T, M))."""
    ad, sat = config.adstock, config.saturation
    if config.adstock_first:
        return media_response(sat.type, apply_adstock(cols, ad, ad_p), sat_p)
    return apply_adstock(media_response(sat.type, cols, sat_p), ad, ad_p)


def _media_columns(x, x_nat, config: ModelConfig, ad_p, sat_p, mult, G: int, n_nat: int):
    """Media contributions (T, C * G), channel-major columns, of local spend ``x`` (G, T, C_local;
    one brand: (T, C)) and national spend ``x_nat`` (T, C_nat, or None when ``n_nat == 0``);
    ``ad_p`` / ``sat_p`` flat (C * G,) channel-major; ``mult`` (T, C) the HSGP media multiplier
    of the varying parameter, or None."""
    cols = _spend_columns(x, x_nat, config, G, n_nat)
    return _response(cols, config, ad_p, _column_saturation(config, sat_p, mult, G))


def lift_prediction(config: ModelConfig, cols, base, ad_p: dict, sat_p: dict, beta_cols, lift: dict):
    """The model's lift of every test, (N,) in units of ``lift_ref`` (see :mod:`mmm_jax.data.lift`).

    ``cols`` (T, C * G) the spend columns, ``base`` (T, C * G) their response as fitted (before
    ``beta_cols`` (C * G,), the solved beta of ROAS / CAC priors, or None), ``ad_p`` / ``sat_p``
    the per-column parameters (``sat_p`` with the media multiplier applied); ``lift``: the
    ``lift_*`` inputs. Per perturbed column ``m``: the response with the spend raised by
    ``lift_delta[m]`` on the test's weeks minus the fitted response, summed over those weeks."""
    idx, window = lift["lift_column"], lift["lift_window"]
    pert = cols[:, idx] + lift["lift_delta"][None, :] * window
    take = {k: v[..., idx] for k, v in sat_p.items()}
    diff = ((_response(pert, config, {k: v[idx] for k, v in ad_p.items()}, take) - base[:, idx]) * window).sum(axis=0)
    if beta_cols is not None:
        diff = diff * beta_cols[idx]
    return pt.dot(lift["lift_weight"], diff)


def _lift_likelihood(config: ModelConfig, pred, lift: dict) -> None:
    """``lift_observed ~ Normal(pred, lift_sigma)`` or the gamma form on absolute values
    (:data:`mmm_jax.data.lift.LIFT_LIKELIHOODS`), times ``lift_mask`` (padded tests add 0)."""
    pm.Deterministic("lift_prediction", pred * lift["lift_ref"], dims="lift_test")
    gamma = config.lift_likelihood == "gamma"

    def logp(value, mu, sigma, mask):
        live = mask > 0
        if gamma:  # masked entries get a harmless point (0 observed / 0 mean would give nan gradients)
            v, m = pt.switch(live, pt.abs(value), 1.0), pt.switch(live, pt.abs(mu), 1.0)
            return pt.switch(live, pm.logp(pm.Gamma.dist(mu=m, sigma=sigma), v), 0.0)
        return mask * pm.logp(pm.Normal.dist(mu, sigma), value)

    def dist(mu, sigma, mask, size):
        if gamma:
            return pm.Gamma.dist(mu=pt.abs(mu) + 1e-12, sigma=sigma, size=size)
        return pm.Normal.dist(mu, sigma, size=size)

    pm.CustomDist("lift", pred, lift["lift_sigma"], lift["lift_mask"], dist=dist, logp=logp,
                  observed=lift["lift_observed"], dims="lift_test")


def _business_variables(config: ModelConfig, channels: tuple, markets: Markets | None) -> tuple[dict, object]:
    """The free variables of ROAS / CAC priors, created in the model's variable order (at ``beta``'s
    place): ``roas_<c>`` / ``cac_<c>`` per channel with such a prior (in the config's order), then
    the location of the other channels' ``beta`` (``beta_free``, shared; ``beta_mu``, pooled) over
    ``beta_free_channel``, or None. Returns ``({channel: rv}, free_location)``."""
    business = config.business_priors
    rvs = {ch: p.create(f"{kind}_{ch}") for ch, (kind, p) in business.items()}
    free = [i for i, ch in enumerate(channels) if ch not in business]
    if not free:
        return rvs, None
    pm.modelcontext(None).add_coord("beta_free_channel", [channels[i] for i in free])
    prior = config.prior("beta")
    if mode_of(markets, "beta") == "pooled":
        m, s = hyper_location(prior)
        return rvs, pm.Normal("beta_mu", m, s, dims="beta_free_channel")
    base_idx = [config.channels.index(channels[i]) for i in free]
    return rvs, prior.subset(base_idx, len(config.channels)).create("beta_free", dims="beta_free_channel")


def _business_beta(config: ModelConfig, channels: tuple, markets: Markets | None, G: int, variables,
                   unit_total, spend_total):
    """``beta`` (G, C) under ROAS / CAC priors ((C,) for one brand), from the variables of
    :func:`_business_variables`.

    ``roas_<c>`` (``cac_<c>``) is the (national) ROAS (CAC) of channel ``c`` over the training
    weeks when every market has the location ``b_c`` of ``beta``: ``b_c = roas_c * spend_total[c]
    / unit_total[c]`` (``unit_total``: the contribution in original units at ``beta = 1``, summed
    over markets; contribution is linear in ``beta``). ``b_c`` is ``beta[c]`` itself (shared: one
    brand, or markets sharing beta) or replaces ``beta_mu[c]`` (pooled: the markets' betas vary
    around it). Channels without a ROAS / CAC prior keep their ``beta`` prior (``beta_free`` /
    ``beta_mu`` over ``beta_free_channel``). A channel without spend in the training weeks has
    ``b_c = 0`` (shared; its ROAS / CAC is then sampled from its prior alone) or ``1`` (pooled).
    """
    business = config.business_priors
    rvs, free_loc = variables
    prior = config.prior("beta")
    mode = mode_of(markets, "beta")
    link = link_of(prior) if mode == "pooled" else "identity"
    loc, j = [], 0
    for i, ch in enumerate(channels):
        if ch in business:
            empty = 1.0 if mode == "pooled" else 0.0
            loc.append(to_link(link, solve_beta(business[ch][0], rvs[ch], spend_total[i], unit_total[i], empty=empty)))
        else:
            loc.append(free_loc[j])
            j += 1
    loc = pt.stack(loc)
    if mode == "shared":
        beta = pm.Deterministic("beta", loc, dims="channel")
        return beta if markets is None else pt.broadcast_to(beta[None, :], (G, len(channels)))
    beta, _ = parameter("beta", prior, markets, ("channel",), mu=loc)
    return beta


def _treatment_contribution(config: ModelConfig, data, create, per_market, one: bool, G: int):
    """The ``treatment_contribution`` deterministic: (T, J) one brand, (G, T, J) markets (scaled
    units). ``gamma_treatment`` (and ``alpha_treatment`` with ``treatment_carryover``) are created
    by ``create`` per their pooling; with carry-over each (market, treatment) series goes through
    the geometric adstock (:func:`mmm_jax.media.adstock.apply_adstock`, the media's ``l_max``,
    normalised weights) as one column of a (T, G * J) matrix, market-major."""
    z = data("treatments", "treatments", "date", "treatment")  # (T, J) / (G, T, J)
    gamma, per_g = create("gamma_treatment", ("treatment",))
    if config.treatment_carryover:
        J = len(config.treatments)
        alpha, per_a = create("alpha_treatment", ("treatment",))
        ad = GeometricAdstock(l_max=config.adstock.l_max, normalize=True)
        if one:
            z = apply_adstock(z, ad, {"alpha": alpha})
        else:
            cols = z.dimshuffle(1, 0, 2).reshape((z.shape[1], G * J))  # column g * J + j
            a_cols = alpha.reshape((G * J,)) if per_a else pt.tile(alpha, G)
            z = apply_adstock(cols, ad, {"alpha": a_cols}).reshape((z.shape[1], G, J)).dimshuffle(1, 0, 2)
    out = z * gamma if one else z * per_market(gamma, per_g)[:, None, :]
    return pm.Deterministic("treatment_contribution", out,
                            dims=("date", "treatment") if one else ("market", "date", "treatment"))


def _media_prior(config: ModelConfig, name: str, order: list[int]) -> Prior:
    """The prior of media parameter ``name`` with per-channel values in the model's channel order."""
    prior = config.prior(name)
    return prior if order == list(range(len(order))) else prior.subset(order, len(order))


def build_pymc_model(
    config: ModelConfig,
    arrays: dict[str, np.ndarray],
    *,
    dates: Sequence | None = None,
    markets: Markets | None = None,
) -> pm.Model:
    """Build the PyMC model: one brand (``markets=None``) or several markets.

    One brand is the one-market case of the same model: every parameter ``"shared"``, no
    national channels; its data keep the brand's shapes (no market axis) and dims.

    Parameters
    ----------
    config : ModelConfig
    arrays : dict
        Scaled inputs. One brand (:func:`mmm_jax.data.features.design_arrays` /
        :func:`~mmm_jax.data.features.model_arrays`): spend (T, C), controls (T, K), fourier
        (T, 2n), time (T,), target (T,), mask (T,), [holidays (T, H)], [day_of_week (T, 6)],
        [treatments (T, J)]. Markets (:func:`mmm_jax.data.panel.panel_arrays`): spend (G, T, C_local),
        national_spend (T, C_nat), controls (G, T, K), target (G, T), mask (G, T), fourier,
        time, [treatments (G, T, J)]. Plus, when the config uses them: ``target_scale`` (() / (G,)), ``spend_scale``
        ((C,) / (G, C), model channel order), HSGP bases ``*_phi`` (T, m) / ``*_sqrt_eig``
        (m,), training copies ``spend_train``, [``national_spend_train``], ``mask_train``,
        ``media_tv_phi_train``. A missing HSGP basis is computed from ``time`` on the domain of
        the unmasked weeks.
    dates : sequence, optional
        Labels for the ``date`` dimension (defaults to ``0..T-1``).
    markets : Markets, optional
        Market labels, hierarchy and pooling (:mod:`mmm_jax.model.pooling`); the model's channel
        order is then the local channels, then the national ones.

    Returns
    -------
    pm.Model
        Free variables: intercept, [trend], [gamma_fourier], [gamma_control], [gamma_holiday], [gamma_weekday],
        [intercept_tv_eta, intercept_tv_ell, intercept_tv_z], [gamma_treatment, alpha_treatment], the
        media parameters of the chosen families (``config.media_params``, each per channel; e.g. beta, alpha, lam;
        under ROAS / CAC priors ``roas_<channel>`` / ``cac_<channel>`` and ``beta_free`` replace
        ``beta``), [media_tv_* HSGP variables], sigma, [nu] (Normal / StudentT) or
        [overdispersion] (negative binomial); with markets, pooled parameters add their
        ``_mu`` / ``_sd_<level>`` / ``_z_<level>`` variables. Deterministics (with markets, a
        leading ``market`` dim): channel_contribution (date, channel), baseline (date), mu
        (date) — all in scaled units — and, when used, treatment_contribution (date, treatment;
        scaled units, not part of ``baseline``), intercept_tv (date), media_multiplier
        (date, channel), ``<p>_t`` (date, channel; one brand), beta (channel), pooled parameters
        (market, ...). A pooled HSGP intercept (markets, ``pooling: {intercept_tv: pooled}``) is
        ``intercept_tv[t, g] = intercept_tv_global(t) + delta_g(t)`` (date, market), the
        deviations' amplitude ~ :data:`INTERCEPT_TV_DELTA_ETA`.
    """
    one = markets is None
    national = () if one else tuple(markets.national)
    channels = (*(c for c in config.channels if c not in national), *national)
    order = [config.channels.index(c) for c in channels]
    C, n_nat = len(channels), len(national)
    spend = np.asarray(arrays["spend"], dtype=float)
    if one and (spend.ndim != 2 or spend.shape[1] != C):
        raise ValueError(f"spend has shape {spend.shape}; the config lists {C} channels (expected (T, {C}))")
    G = 1 if one else markets.size
    T = spend.shape[-2]
    K = len(config.controls)
    J = len(config.treatments)
    n_four = 2 * config.seasonality
    coords = {"date": list(dates) if dates is not None else list(range(T)), "channel": list(channels)}
    if not one:
        coords["market"] = list(markets.labels)
        for level in markets.levels:
            coords[f"{level}_group"] = list(markets.group_labels[level])
    if K:
        coords["control"] = list(config.controls)
    if "lift_column" in arrays:
        coords["lift_test"] = list(range(len(arrays["lift_observed"])))
    holidays = config.holiday_names
    if holidays:
        coords["holiday"] = list(holidays)
    if config.day_of_week:
        coords["weekday"] = list(WEEKDAYS)
    if J:
        coords["treatment"] = list(config.treatments)
    if n_four:
        coords["fourier_mode"] = [f"{f}{k}" for k in range(1, config.seasonality + 1) for f in ("sin", "cos")]
    business = config.business_priors
    tv = config.time_varying_media
    # one brand: data with dims (date, ...); markets: no dims, so that the lengths stay free (forecasts)
    dims = (lambda *d: d) if one else (lambda *d: None)

    def data(name, why=None, *d):
        value = _need(arrays, name, why) if why else np.asarray(arrays[name], dtype=float)
        return pm.Data(name, value, dims=dims(*d) if d else None)

    def per_market(v, per):  # (G, ...) view of a parameter
        return v if per else pt.shape_padleft(v)

    def create(name, d=()):
        prior = _media_prior(config, name, order) if d == ("channel",) else config.prior(name)
        return parameter(name, prior, markets, d)

    with pm.Model(coords=coords) as model:
        # one brand: baseline (T,), media columns (T, C); markets: baseline (G, T), columns (T, C * G)
        x = data("spend", None, "date", "channel")
        y = data("target", None, "date")
        mask = data("mask", None, "date")
        x_nat = None if one else data("national_spend")
        if not one:  # the market -> group indices are inputs (panel_arrays makes them; a batch pads them)
            def index(name):
                return pm.Data(name, np.asarray(_need(arrays, name, "the market hierarchy"), dtype=np.int64))

            parents = [lvl for lvl in markets.levels[1:] if f"group_parent_{lvl}" in arrays] if markets.centered else []
            markets = markets._replace(groups={lvl: index(f"group_index_{lvl}") for lvl in markets.levels},
                                       parents={lvl: index(f"group_parent_{lvl}") for lvl in parents})

        def scaled(v, per, t):  # coefficient v (scalar per market) times a (T,) series
            return v * t if one else per_market(v, per)[:, None] * t[None, :]

        icpt, per = create("intercept")
        baseline = scaled(icpt, per, pt.ones_like(y if one else y[0]))
        if config.trend:
            time = data("time", None, "date")
            tr, per = create("trend")
            baseline = baseline + scaled(tr, per, time)
        if n_four:
            fourier = data("fourier", None, "date", "fourier_mode")
            gf, per = create("gamma_fourier", ("fourier_mode",))
            baseline = baseline + (pt.dot(fourier, gf) if one else pt.dot(per_market(gf, per), fourier.T))
        if K:
            ctl = data("controls", None, "date", "control")  # (T, K) / (G, T, K)
            gc, per = create("gamma_control", ("control",))
            baseline = baseline + (pt.dot(ctl, gc) if one else (ctl * per_market(gc, per)[:, None, :]).sum(axis=-1))
        if holidays:
            hol = data("holidays", "holidays", "date", "holiday")  # (T, H), the same for every market
            gh, per = create("gamma_holiday", ("holiday",))
            baseline = baseline + (pt.dot(hol, gh) if one else pt.dot(per_market(gh, per), hol.T))
        if config.day_of_week:
            dow = data("day_of_week", "day_of_week", "date", "weekday")  # (T, 6), the same for every market
            gw, per = create("gamma_weekday", ("weekday",))
            baseline = baseline + (pt.dot(dow, gw) if one else pt.dot(per_market(gw, per), dow.T))
        if config.time_varying_intercept is not None:
            from .hsgp import hsgp_process

            spec = config.time_varying_intercept
            phi, sqrt_eig = term_basis_data("intercept_tv", spec, arrays)
            if mode_of(markets, "intercept_tv") == "pooled":  # a shared path plus one deviation per market
                from .hsgp import hsgp_hierarchical

                f = hsgp_hierarchical(
                    "intercept_tv", phi, sqrt_eig, eta_global=spec.eta_prior, ell_global=spec.ell_prior,
                    eta_delta=INTERCEPT_TV_DELTA_ETA, kernel=spec.kernel, group_dim="market", dims=("date", "market"),
                    basis_dim=_BASIS_DIM["intercept_tv"])
                baseline = baseline + f.T
            else:  # one process for all markets
                f = hsgp_process("intercept_tv", phi, sqrt_eig, spec.eta_prior, spec.ell_prior, kernel=spec.kernel,
                                 dims="date", basis_dim=_BASIS_DIM["intercept_tv"])
                baseline = baseline + (f if one else f[None, :])
        if config.is_count:
            baseline = pt.exp(baseline)  # log link: a positive baseline, media stay additive
        treated = _treatment_contribution(config, data, create, per_market, one, G) if J else None

        ts = None
        if config.is_count or business:
            ts = data("target_scale", "count likelihoods / ROAS priors")
        media = {}  # (C,) or (G, C) per media parameter, model channel order
        for name in config.media_params:
            if name == "beta" and business:  # beta is solved below, once the unit contribution is known
                business_vars = _business_variables(config, channels, markets)
                continue
            v, per = create(name, ("channel",))
            media[name] = v if per or one else v[None, :]
        # flat (C * G,) channel-major columns
        flat = {k: (v if one else pt.broadcast_to(v, (G, C)).T.reshape((C * G,))) for k, v in media.items()}
        ad, sat = config.adstock, config.saturation
        ad_p = {n: flat[n] for n in ad.param_names}
        mult = None
        if tv is not None:
            from .hsgp import positive_multiplier

            f, f_on_basis = media_log_multiplier(config, arrays)
            mult = pm.Deterministic("media_multiplier", positive_multiplier(f, tv.link) * pt.ones((x.shape[-2], C)),
                                    dims=("date", "channel"))
        if business:
            # contribution = beta[g, c] * unit[g, t, c] (adstock is linear): the unit response on the
            # training weeks fixes beta's location from the ROAS / CAC priors
            why = "ROAS / CAC priors"
            flat["beta"] = pt.ones((C * G,))
            x_tr = data("spend_train", why)  # (T0, C) / (G, T0, C_local)
            m_tr = data("mask_train", why)  # (T0,) / (G, T0)
            s_scale = pm.Data("spend_scale", _need(arrays, "spend_scale", why), dims="channel" if one else None)
            xn_tr = None if one else data("national_spend_train", why)
            mult_tr = None
            if tv is not None:
                phi_tr, _ = term_basis_data("media_tv", tv.hsgp, arrays, suffix="_train")
                mult_tr = positive_multiplier(f_on_basis(phi_tr), tv.link) * pt.ones((x_tr.shape[-2], C))
            unit_tr = _media_columns(x_tr, xn_tr, config, ad_p, {n: flat[n] for n in sat.param_names}, mult_tr, G,
                                     n_nat)
            if one:
                unit_total = (unit_tr * m_tr[:, None]).sum(axis=0) * ts  # (C,) original units, at beta = 1
                spend_tot = (x_tr * m_tr[:, None]).sum(axis=0) * s_scale  # (C,) original currency
            else:
                unit_sum = (unit_tr.reshape((-1, C, G)) * m_tr.T[:, None, :]).sum(axis=0)  # (C, G) scaled
                unit_total = (unit_sum * ts[None, :]).sum(axis=1)
                n_loc = C - n_nat
                spend_tot = (x_tr * m_tr[:, :, None] * s_scale[:, None, :n_loc]).sum(axis=(0, 1))
                if n_nat:
                    nat_tot = (xn_tr * m_tr.max(axis=0)[:, None] * s_scale[0, n_loc:][None, :]).sum(axis=0)
                    spend_tot = pt.concatenate([spend_tot, nat_tot])
            beta = _business_beta(config, channels, markets, G, business_vars, unit_total, spend_tot)
            media["beta"] = beta
        if mult is not None and one:  # the varying parameter over time, for reporting (markets: p and the
            p = tv.varying_param(sat)  # multiplier; a (market, date, channel) copy per draw would be large)
            pm.Deterministic(f"{p}_t", media[p] * mult, dims=("date", "channel"))
        cols = _spend_columns(x, x_nat, config, G, n_nat)
        sat_cols = _column_saturation(config, {n: flat[n] for n in sat.param_names}, mult, G)
        out = _response(cols, config, ad_p, sat_cols)  # (T, C * G), at beta = 1 under ROAS / CAC priors
        if "lift_column" in arrays:
            lift = {n: pm.Data(n, np.asarray(arrays[n], dtype=np.int64 if n == "lift_column" else float))
                    for n in LIFT_INPUTS}
            beta_cols = None
            if business:
                beta_cols = beta if one else beta.T.reshape((C * G,))
            _lift_likelihood(config, lift_prediction(config, cols, out, ad_p, sat_cols, beta_cols, lift), lift)
        if one:
            if business:
                out = out * beta
            contribution = pm.Deterministic("channel_contribution", out, dims=("date", "channel"))
            baseline = pm.Deterministic("baseline", baseline, dims="date")
            total = baseline if treated is None else baseline + treated.sum(axis=-1)
            mu = pm.Deterministic("mu", total + contribution.sum(axis=-1), dims="date")
            y_dims = "date"
        else:
            out = out.reshape((-1, C, G))
            if business:
                out = out * beta.T[None, :, :]
            pm.Deterministic("channel_contribution", out.dimshuffle(2, 0, 1), dims=("market", "date", "channel"))
            baseline = pm.Deterministic("baseline", baseline, dims=("market", "date"))
            summed = out[:, 0]  # (T, G); unrolled: one fused add on CPU (a Sum over axis 1 became a slower reduction)
            for j in range(1, C):
                summed = summed + out[:, j]
            if treated is not None:
                summed = summed + treated.sum(axis=-1).T
            mu = pm.Deterministic("mu", baseline + summed.T, dims=("market", "date"))
            y_dims = ("market", "date")

        def lik_param(name):  # scalar (one brand) or (G, T)
            v, per = create(name)
            return v if one else per_market(v, per)[:, None] * pt.ones_like(y)

        if config.is_count:
            if config.likelihood == "negative_binomial":
                od = lik_param("overdispersion")
            else:
                od = pt.constant(0.0)
            pm.CustomDist("y", mu, od, ts if one else ts[:, None], mask, dist=count_likelihood_dist(config),
                          logp=count_masked_logp(config), observed=y, dims=y_dims)
            return model
        sigma = lik_param("sigma")
        nu = lik_param("nu") if config.likelihood == "studentt" else pt.constant(np.inf)
        pm.CustomDist("y", mu, sigma, nu, mask, dist=likelihood_dist(config), logp=masked_logp(config), observed=y,
                      dims=y_dims)
    return model
