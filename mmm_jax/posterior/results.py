"""From raw sampler output to a labelled ArviZ ``InferenceData``.

Deterministics (contributions, baseline, mean) are computed after sampling by one compiled,
vectorised program over blocks of draws (:func:`map_draws`: memory bounded by a block, one
program for every draw count), then converted to original units and labelled with (chain,
draw, date, channel).
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import warnings
from collections.abc import Mapping

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ..compat import add_groups, group, new_idata
from ..compile import LogDensity
from ..inference.base import SampleResult
from ..model.build import nb_alpha
from ..model.likelihood import COUNT_LIKELIHOODS, predictive_draw

__all__ = [
    "ConvergenceWarning",
    "posterior_quantities",
    "pointwise_log_likelihood",
    "map_draws",
    "log_likelihood_dataset",
    "cell_log_likelihood",
    "set_log_likelihood",
    "draw_quantities",
    "to_inference_data",
    "diagnostics",
    "check_convergence",
    "package_versions",
    "RHAT_MAX",
]

RHAT_MAX = 1.01
_PACKAGES = ("mmm_jax", "jax", "jaxlib", "numpyro", "blackjax", "pymc", "pytensor", "arviz", "numpy", "pandas")


class ConvergenceWarning(UserWarning):
    """The sampler did not converge (R-hat above threshold or divergent transitions)."""


def package_versions() -> dict[str, str]:
    """Versions of the packages that produce a result (recorded in every result)."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["jax_backend"] = jax.default_backend()
    out["jax_x64"] = str(bool(jax.config.jax_enable_x64))
    return out


def posterior_quantities(
    ld: LogDensity,
    samples: Mapping[str, np.ndarray],
    data: Mapping[str, np.ndarray],
    *,
    target_scale: float,
    spend: np.ndarray,
    likelihood: str,
    key: jax.Array | None = None,
    batch_size: int = 256,
) -> dict[str, np.ndarray]:
    """Constrained parameters, deterministics and original-unit quantities for every draw.

    Parameters
    ----------
    samples : dict of (chains, draws, ...) unconstrained arrays
    data : the model's data inputs (scaled), as used for fitting or new data
    target_scale : float
        Multiplies scaled target quantities back to original units.
    spend : (T, C) original-unit spend (for ROAS)
    likelihood : str
        Likelihood family for the posterior predictive.
    key : PRNG key, optional
        If given, also draws ``y`` from the posterior predictive (original units).

    Returns
    -------
    dict of arrays with leading (chains, draws):
        every output of ``ld.constrain``; ``channel_contribution_original`` (T, C),
        ``baseline_original`` (T,), ``mu_original`` (T,), [``treatment_contribution_original``
        (T, J), with treatments], ``total_contribution`` (C,),
        ``roas`` (C,); and ``y`` (T,) when ``key`` is given.
    """
    data = {n: jnp.asarray(data[n]) for n in ld.data_names}
    n_chains, n_draws, flat = _flat_draws(samples)
    total_spend = jnp.sum(jnp.asarray(spend) * data["mask"][:, None], axis=0)
    impl = None if key is None else jax.random.key_impl(key)
    keys = None if key is None else np.asarray(jax.random.key_data(jax.random.split(key, n_chains * n_draws)))

    def block(blk, data, total_spend, ts):
        params, key_data = blk
        keys_b = None if key_data is None else jax.random.wrap_key_data(key_data, impl=impl)
        return jax.vmap(lambda p, k: draw_quantities(ld, p, data, k, target_scale=ts, total_spend=total_spend,
                                                     likelihood=likelihood))(params, keys_b)

    res = map_draws(block, (flat, keys), (data, total_spend, jnp.asarray(target_scale, dtype=float)),
                    n_chains * n_draws, batch_size)
    return {k: np.asarray(v).reshape((n_chains, n_draws, *v.shape[1:])) for k, v in res.items()}


def _flat_draws(samples: Mapping[str, np.ndarray]) -> tuple[int, int, dict[str, np.ndarray]]:
    """(chains, draws, ...) arrays -> (chains, draws, {name: (chains * draws, ...) host array})."""
    first = next(iter(samples.values()))
    n_chains, n_draws = first.shape[:2]
    return n_chains, n_draws, {k: np.asarray(v).reshape((n_chains * n_draws, *np.shape(v)[2:]))
                               for k, v in samples.items()}


def map_draws(block, per_draw, shared: tuple, n: int, batch_size: int):
    """``block(per_draw_block, *shared)`` over ``n`` draws in blocks of ``batch_size`` (the last one
    padded with copies of the last draw, dropped again): ONE compiled program of a fixed block
    shape serves every draw count, so runs of any length (``until``) and any data of the same
    shapes (``shared`` are arguments, not constants) load it from the persistent compilation
    cache. ``per_draw`` leaves are host arrays with a leading ``(n,)`` axis: padding and blocks are
    cut in NumPy (eager JAX ops would compile a program per draw count and block). Returns the
    outputs stacked along a leading ``(n,)`` axis (host NumPy arrays)."""
    b = max(1, int(batch_size))
    n_blocks = -(-n // b)
    pad = n_blocks * b - n

    def padded(x):
        x = np.asarray(x)
        return np.concatenate([x, np.repeat(x[-1:], pad, axis=0)]) if pad else x

    per_draw = jax.tree.map(padded, per_draw)
    fn = jax.jit(block)
    outs = [jax.device_get(fn(jax.tree.map(lambda x, i=i: x[i * b:(i + 1) * b], per_draw), *shared))
            for i in range(n_blocks)]
    return jax.tree.map(lambda *xs: np.concatenate(xs)[:n], *outs)


def draw_quantities(ld: LogDensity, params, data, key=None, *, target_scale, total_spend, likelihood: str,
                    national_spend=None) -> dict:
    """:func:`posterior_quantities` for ONE draw (pure JAX; ``vmap``/``lax.map`` it).

    The same function serves one brand and markets; shapes are ``[G]``-prefixed for markets:

    ``params``: unconstrained values of one draw; ``data``: scaled inputs (``mask`` (T,) or
    (G, T)); ``target_scale``: () or (G,) original units per scaled unit; ``total_spend``:
    (C,) or (G, C) original-unit spend over the unmasked weeks; ``national_spend``: (C,)
    national spend (markets only), adds ``roas_national`` (C,); ``key``: draws ``y`` when given.

    Returns every output of ``ld.constrain`` (less the ``__`` transformed parameters) plus
    ``channel_contribution_original`` ([G,] T, C), ``baseline_original`` / ``mu_original``
    ([G,] T), ``treatment_contribution_original`` ([G,] T, J; a model with treatments),
    ``total_contribution`` / ``roas`` ([G,] C) and ``y`` ([G,] T), in the target's original units
    (scaled x ``target_scale``).
    """
    ts = jnp.asarray(target_scale)
    mask = data["mask"]
    out = ld.constrain(params, data)
    contrib = out["channel_contribution"] * ts[..., None, None]
    q = {n: v for n, v in out.items() if not (n in ld.param_names and n.endswith("__"))}
    q["channel_contribution_original"] = contrib
    q["baseline_original"] = out["baseline"] * ts[..., None]
    q["mu_original"] = out["mu"] * ts[..., None]
    if "treatment_contribution" in out:
        q["treatment_contribution_original"] = out["treatment_contribution"] * ts[..., None, None]
    tot = jnp.sum(contrib * mask[..., None], axis=-2)
    q["total_contribution"] = tot
    q["roas"] = tot / jnp.where(total_spend > 0, total_spend, jnp.nan)
    if national_spend is not None:
        q["roas_national"] = tot.sum(axis=0) / jnp.where(national_spend > 0, national_spend, jnp.nan)
    if key is not None:
        if likelihood in COUNT_LIKELIHOODS:
            alpha = None
            if "overdispersion" in out:
                alpha = jnp.broadcast_to(nb_alpha(out["overdispersion"]), ts.shape)
            q["y"] = predictive_draw(key, likelihood, out["mu"] * ts[..., None], alpha=alpha)
        else:
            sigma = jnp.broadcast_to(out["sigma"], ts.shape)
            nu = out.get("nu")
            if nu is not None:
                nu = jnp.broadcast_to(nu, ts.shape)
            q["y"] = predictive_draw(key, likelihood, out["mu"], sigma, nu) * ts[..., None]
    return q


def pointwise_log_likelihood(ld: LogDensity, samples: Mapping[str, np.ndarray], data: Mapping[str, np.ndarray], *,
                             target_scale, likelihood: str, batch_size: int = 256) -> np.ndarray:
    """``log p(y | draw)`` of every observed target cell, per draw: (chains, draws, [G,] T).

    Continuous likelihoods are turned into densities of the target in original units
    (``- log target_scale`` per cell), so that ELPDs of models with other scalings compare; count
    likelihoods are probabilities of the counts already. Masked cells (padding, hold-out) are 0.
    Computed in ``lax.map`` batches of ``batch_size`` draws (memory: one batch of cells at a time
    plus the result).
    """
    data = {n: jnp.asarray(data[n]) for n in ld.data_names}
    n_chains, n_draws, flat = _flat_draws(samples)

    def block(f, data, ts):
        return jax.vmap(lambda params: cell_log_likelihood(ld, params, data, ts, likelihood))(f)

    ll = map_draws(block, flat, (data, jnp.asarray(target_scale, dtype=float)), n_chains * n_draws, batch_size)
    return ll.reshape((n_chains, n_draws, *ll.shape[1:]))


def log_likelihood_dataset(ll: np.ndarray, mask: np.ndarray, dates, markets=None) -> xr.Dataset:
    """The ``log_likelihood`` group of :func:`pointwise_log_likelihood`'s ``ll`` ((chains, draws,
    [G,] T)), the observed cells only (``mask > 0``): dim ``date`` for one brand, ``obs`` (with
    ``market`` and ``date`` coordinates) for markets."""
    keep = np.asarray(mask) > 0
    coords = {"chain": np.arange(ll.shape[0]), "draw": np.arange(ll.shape[1])}
    if keep.ndim == 1:
        return xr.Dataset({"y": (("chain", "draw", "date"), ll[..., keep])},
                          coords={**coords, "date": np.asarray(dates)[keep]})
    g, t = np.nonzero(keep)
    return xr.Dataset({"y": (("chain", "draw", "obs"), ll[:, :, g, t])},
                      coords={**coords, "obs": np.arange(len(g)), "market": ("obs", np.asarray(markets)[g]),
                              "date": ("obs", np.asarray(dates)[t])})


def set_log_likelihood(idata: az.InferenceData, ds: xr.Dataset) -> None:
    """Add (or replace) ``idata``'s ``log_likelihood`` group."""
    add_groups(idata, {"log_likelihood": ds})


def cell_log_likelihood(ld: LogDensity, params, data, target_scale, likelihood: str):
    """One draw's log-likelihood of every target cell ([G,] T), original units (see
    :func:`pointwise_log_likelihood`); pure JAX."""
    shift = 0.0 if likelihood in COUNT_LIKELIHOODS else jnp.log(jnp.asarray(target_scale, dtype=float))[..., None]
    return ld.pointwise_loglik(params, data)["y"] - shift * data["mask"]


#: dims of the post-processed quantities of the single-brand model (the rest come from the model)
BRAND_DIMS = {
    "channel_contribution_original": ("date", "channel"),
    "treatment_contribution_original": ("date", "treatment"),
    "baseline_original": ("date",),
    "mu_original": ("date",),
    "total_contribution": ("channel",),
    "roas": ("channel",),
    "y": ("date",),
}


def dims_for(name: str, ld: LogDensity, shape: tuple, fixed: dict = BRAND_DIMS) -> list[str]:
    """InferenceData dims ``["chain", "draw", ...]`` for a quantity of trailing ``shape``.

    ``fixed`` names the dims of quantities computed after sampling; others take the model's
    dims, and a shape that matches neither gets ``<name>_dim_<i>``.
    """
    dims = fixed.get(name) or ld.dims.get(name) or ()
    if len(dims) != len(shape):
        dims = tuple(f"{name}_dim_{i}" for i in range(len(shape)))
    return ["chain", "draw", *dims]


def to_inference_data(
    result: SampleResult,
    ld: LogDensity,
    data: Mapping[str, np.ndarray],
    *,
    coords: Mapping[str, list],
    target_scale: float,
    spend: np.ndarray,
    target: np.ndarray | None,
    likelihood: str,
    key: jax.Array,
    constant_data: Mapping[str, tuple[tuple[str, ...], np.ndarray]] | None = None,
    attrs: Mapping[str, object] | None = None,
    quantities: Mapping[str, np.ndarray] | None = None,
    fixed_dims: Mapping[str, tuple[str, ...]] = BRAND_DIMS,
    y_dims: tuple[str, ...] = ("date",),
    extra_groups: Mapping[str, xr.Dataset] | None = None,
    batch_size: int = 256,
) -> az.InferenceData:
    """Labelled InferenceData with posterior, posterior_predictive, sample_stats, data groups:
    the one builder for one brand, markets and batches.

    Scaled-unit deterministics keep their model names (``channel_contribution``,
    ``baseline``, ``mu``); original-unit ones end in ``_original``; ``roas`` and
    ``total_contribution`` are per channel over the fitted (unmasked) weeks. ``quantities``
    (per-draw arrays with leading (chains, draws), incl. ``y``: the output of
    :func:`posterior_quantities`, or the markets' own) skips computing them here (the batch
    engine computes them for many brands at once). ``fixed_dims``: dims of the quantities
    computed after sampling (:func:`dims_for`); ``y_dims``: dims of the target (markets:
    ``("market", "date")``); ``extra_groups``: further groups (e.g. contribution summaries);
    ``batch_size``: draws per vectorised step of :func:`posterior_quantities` (memory only).
    """
    if quantities is None:
        q = posterior_quantities(
            ld, result.samples, data, target_scale=target_scale, spend=spend, likelihood=likelihood, key=key,
            batch_size=batch_size,
        )
    else:
        q = dict(quantities)
    n_chains, n_draws = next(iter(q.values())).shape[:2]
    base_coords = {"chain": np.arange(n_chains), "draw": np.arange(n_draws), **{k: list(v) for k, v in coords.items()}}
    y_pp = q.pop("y")
    post = xr.Dataset({name: (dims_for(name, ld, v.shape[2:], fixed_dims), v) for name, v in q.items()})
    post = post.assign_coords({d: base_coords[d] for d in post.dims if d in base_coords})
    y_dims = tuple(y_dims)
    pp = xr.Dataset({"y": (("chain", "draw", *y_dims), y_pp)},
                    coords={k: base_coords[k] for k in ("chain", "draw", *y_dims)})
    ss = xr.Dataset(
        {k: (("chain", "draw"), np.asarray(v)) for k, v in result.stats.items()},
        coords={"chain": base_coords["chain"], "draw": base_coords["draw"]},
    )
    groups = {"posterior": post, "posterior_predictive": pp, "sample_stats": ss}
    if target is not None:
        groups["observed_data"] = xr.Dataset({"y": (y_dims, np.asarray(target))},
                                             coords={k: base_coords[k] for k in y_dims})
    if constant_data:
        cd = xr.Dataset(
            {k: (dims, np.asarray(v)) for k, (dims, v) in constant_data.items()},
        )
        cd = cd.assign_coords({d: base_coords[d] for d in cd.dims if d in base_coords})
        groups["constant_data"] = cd
    meta = {
        "created_by": "mmm_jax",
        "sampler": result.sampler,
        "sampler_config": json.dumps(result.config._asdict()),
        "timings": json.dumps(result.timings),
        "versions": json.dumps(package_versions()),
    }
    meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in (attrs or {}).items()})
    for g in groups.values():
        g.attrs.update(meta)
    return new_idata({**groups, **dict(extra_groups or {})})


def diagnostics(idata: az.InferenceData, var_names: list[str] | None = None) -> dict[str, float]:
    """Max R-hat, min bulk/tail ESS over the free parameters, and the divergence count."""
    names = var_names or free_parameter_names(idata)
    post = group(idata, "posterior")[names]
    rhat = az.rhat(post)
    ess_bulk = az.ess(post, method="bulk")
    ess_tail = az.ess(post, method="tail")

    def _max(ds):
        return float(max(np.nanmax(ds[v].values) for v in ds.data_vars))

    def _min(ds):
        return float(min(np.nanmin(ds[v].values) for v in ds.data_vars))

    return {
        "max_rhat": _max(rhat),
        "min_ess_bulk": _min(ess_bulk),
        "min_ess_tail": _min(ess_tail),
        "divergences": int(idata.sample_stats["diverging"].values.sum()),
        "draws": int(post.sizes["chain"] * post.sizes["draw"]),
    }


def free_parameter_names(idata: az.InferenceData) -> list[str]:
    """Names of the model's free parameters stored in ``idata.attrs['free_parameters']``."""
    names = json.loads(idata.posterior.attrs.get("free_parameters", "[]"))
    return [n for n in names if n in idata.posterior] or [
        n for n in idata.posterior.data_vars if "date" not in idata.posterior[n].dims
    ]


def check_convergence(diag: Mapping[str, float], rhat_max: float = RHAT_MAX) -> list[str]:
    """Warn (``ConvergenceWarning``) when R-hat > ``rhat_max`` or there are divergences."""
    problems = []
    if not np.isfinite(diag["max_rhat"]) or diag["max_rhat"] > rhat_max:
        problems.append(f"max R-hat {diag['max_rhat']:.3f} > {rhat_max} (chains disagree: run longer or reparametrise)")
    if diag["divergences"] > 0:
        problems.append(
            f"{diag['divergences']} divergent transitions of {diag['draws']} draws "
            "(raise target_accept, e.g. 0.95, or tighten priors)"
        )
    for p in problems:
        warnings.warn(p, ConvergenceWarning, stacklevel=3)
    return problems
