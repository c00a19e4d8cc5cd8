"""Compile a ``pm.Model`` into pure JAX functions whose data are inputs.

PyMC's own JAX path (``pymc.sampling.jax.get_jaxified_logp``) bakes every ``pm.Data``
container into the program as a constant, so one compiled program serves one dataset.
Here each data container is swapped for a fresh symbolic input before the graph is handed
to PyTensor's JAX backend, which gives

* ``logp(params, data) -> scalar``: joint log-density on the unconstrained space
  (log-Jacobians included), ``params`` a dict of unconstrained value arrays;
* ``constrain(params, data) -> dict``: every free variable on its natural scale plus every
  ``pm.Deterministic``;
* ``pointwise_loglik(params, data) -> dict``: elementwise log-likelihood of observed vars;

all pure, ``jit``-able and ``vmap``-able over chains, draws or a leading axis of datasets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pymc as pm
from pymc.sampling.jax import get_jaxified_graph
from pytensor.graph.replace import graph_replace

__all__ = ["LogDensity", "compile_logdensity", "initial_params", "unconstrained_draws"]


class LogDensity(NamedTuple):
    """A compiled model. All functions are pure JAX.

    Attributes
    ----------
    logp : (params, data) -> scalar
    constrain : (params, data) -> dict[str, Array]
    pointwise_loglik : (params, data) -> dict[str, Array]
    param_names : tuple of str
        Unconstrained value-variable names (e.g. ``"alpha_logodds__"``).
    param_shapes : dict[str, tuple]
    data_names : tuple of str
        Names of the data inputs (the model's ``pm.Data`` containers).
    default_data : dict[str, np.ndarray]
        The data the model was built with.
    output_names : tuple of str
        Keys of ``constrain``'s result.
    dims : dict[str, tuple]
        Dimension names of each output (from the model's ``dims``).
    coords : dict[str, list]
        Coordinate labels of the model.
    initial_point : dict[str, np.ndarray]
        PyMC's initial point on the unconstrained space.
    """

    logp: Callable
    constrain: Callable
    pointwise_loglik: Callable
    param_names: tuple
    param_shapes: dict
    data_names: tuple
    default_data: dict
    output_names: tuple
    dims: dict
    coords: dict
    initial_point: dict


def _as_fn(jax_fn, n_params: int, names_in: tuple, data_names: tuple, out_names: tuple | None):
    def fn(params, data):
        args = [params[n] for n in names_in] + [data[n] for n in data_names]
        out = jax_fn(*args)
        if out_names is None:
            return out[0]
        return dict(zip(out_names, out, strict=True))

    return fn


def _lazy(make: Callable) -> Callable:
    """``fn(params, data)`` that calls ``make()`` once, on its first call, to build itself."""
    built: list = []

    def fn(params, data):
        if not built:
            built.append(make())
        return built[0](params, data)

    return fn


def compile_logdensity(model: pm.Model) -> LogDensity:
    """Turn ``model`` into a :class:`LogDensity` with its ``pm.Data`` containers as inputs.

    Parameters
    ----------
    model : pm.Model
        Any PyMC model; its ``pm.Data`` containers become the ``data`` argument.

    Examples
    --------
    >>> ld = compile_logdensity(model)                          # doctest: +SKIP
    >>> jax.jit(ld.logp)(params, ld.default_data)               # doctest: +SKIP
    >>> jax.vmap(ld.logp, in_axes=(None, 0))(params, batched)   # doctest: +SKIP
    """
    data_vars = list(model.data_vars)
    data_names = tuple(v.name for v in data_vars)
    data_inputs = [v.type(name=f"{v.name}_input") for v in data_vars]
    replace = dict(zip(data_vars, data_inputs, strict=True))

    value_vars = list(model.value_vars)
    param_names = tuple(v.name for v in value_vars)

    def jaxify(outputs):
        outs = graph_replace(outputs, replace, strict=False)
        return get_jaxified_graph(inputs=value_vars + data_inputs, outputs=outs)

    logp_jax = jaxify([model.logp()])
    # Constrained free variables and deterministics (drop the "*_log__"-style value vars).
    out_vars = [v for v in model.unobserved_value_vars if v.name not in param_names or v.name in model.named_vars]
    out_vars = [v for v in out_vars if not (v.name.endswith("__") and v.name in param_names)]
    output_names = tuple(v.name for v in out_vars)
    constrain_jax = jaxify(out_vars)
    obs = list(model.observed_RVs)

    logp = _as_fn(logp_jax, len(value_vars), param_names, data_names, None)
    constrain = _as_fn(constrain_jax, len(value_vars), param_names, data_names, output_names)
    if obs:  # built on first use: only model comparison needs it, and building it costs ~0.3 s of PyTensor
        pointwise = _lazy(lambda: _as_fn(jaxify(model.logp(obs, sum=False)), len(value_vars), param_names,
                                         data_names, tuple(v.name for v in obs)))
    else:

        def pointwise(params, data):
            return {}

    ip = model.initial_point()
    dims = {name: tuple(model.named_vars_to_dims.get(name, ())) for name in output_names}
    for v in obs:
        dims[v.name] = tuple(model.named_vars_to_dims.get(v.name, ()))
    return LogDensity(
        logp=logp,
        constrain=constrain,
        pointwise_loglik=pointwise,
        param_names=param_names,
        param_shapes={n: tuple(np.shape(ip[n])) for n in param_names},
        data_names=data_names,
        default_data={v.name: np.asarray(v.get_value()) for v in data_vars},
        output_names=output_names,
        dims=dims,
        coords={k: list(v) for k, v in model.coords.items()},
        initial_point={n: np.asarray(ip[n]) for n in param_names},
    )


def initial_params(ld: LogDensity, key: jax.Array, n_chains: int, jitter: float = 1.0) -> dict:
    """Per-chain starting points: PyMC's initial point + ``Uniform(-jitter, jitter)`` noise.

    Returns a dict of arrays with a leading ``(n_chains,)`` axis (unconstrained space).
    """
    keys = jax.random.split(key, len(ld.param_names))
    out = {}
    for k, name in zip(keys, ld.param_names, strict=True):
        base = jnp.asarray(ld.initial_point[name], dtype=jnp.result_type(float))
        noise = jax.random.uniform(k, (n_chains, *base.shape), minval=-jitter, maxval=jitter, dtype=base.dtype)
        out[name] = base[None] + noise
    return out


def unconstrained_draws(model: pm.Model, posterior, max_draws: int | None = None) -> dict[str, np.ndarray]:
    """Stored constrained draws (``posterior[name]``: (chains, draws, ...)) of the model's free
    variables mapped back to its unconstrained value variables (PyMC's transforms).

    ``max_draws`` keeps the first ``max_draws // chains`` draws of every chain.
    """
    import pytensor.tensor as pt

    out = {}
    for rv in model.free_RVs:
        value = model.rvs_to_values[rv]
        tr = model.rvs_to_transforms.get(rv)
        x = np.asarray(posterior[rv.name].values if hasattr(posterior[rv.name], "values") else posterior[rv.name])
        if max_draws is not None:
            x = x[:, : max(1, max_draws // x.shape[0])]
        if tr is not None:
            v = pt.tensor(dtype="float64", shape=(None,) * x.ndim)
            x = tr.forward(v).eval({v: x})
        out[value.name] = x
    return out
