"""Adstock (carry-over) kernels.

Every finite-window adstock is a causal, per-channel convolution of spend with a weight
vector: ``y[t, c] = sum_{l=0}^{L-1} w[c, l] * x[t - l, c]`` (``x[s] = 0`` for ``s < 0``).
The family only changes how ``w`` is built (geometric ``alpha**l``; delayed and Weibull
forms come in the model library).

The convolution is one PyTensor ``Op`` (:data:`adstock_conv`) with three faces:

* ``perform`` (NumPy) and a symbolic gradient, so the model runs under PyMC's own backend
  (``model.compile_logp()``, ``pm.sample``);
* a JAX dispatch to :func:`adstock_conv_jax`, a depthwise ``lax.conv_general_dilated``
  (vectorised over time and channels, differentiable by JAX itself);
* :func:`adstock_conv_np`, the plain NumPy reference used by the tests.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytensor.scalar as ps
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.jax.dispatch import jax_funcify

__all__ = [
    "AdstockConv",
    "adstock_conv",
    "adstock_conv_jax",
    "adstock_conv_np",
    "lag_matrix",
    "geometric_weights",
    "geometric_weights_np",
    "geometric_weights_jax",
    "geometric_adstock",
]


# --------------------------------------------------------------------------- references
def adstock_conv_np(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Plain NumPy causal convolution. ``x`` (T, C), ``w`` (C, L) -> (T, C)."""
    x = np.asarray(x)
    w = np.asarray(w)
    T, C = x.shape
    L = w.shape[-1]
    out = np.zeros(np.broadcast_shapes(x.shape), dtype=np.result_type(x, w))
    for lag in range(min(L, T)):
        out[lag:] += w[:, lag] * x[: T - lag]
    return out


def _adstock_wgrad_np(x: np.ndarray, g: np.ndarray, n_lags: int) -> np.ndarray:
    """d(sum(g * conv(x, w)))/dw: ``gw[c, l] = sum_t g[t, c] x[t - l, c]``. -> (C, L)."""
    T, C = x.shape
    gw = np.zeros((C, n_lags), dtype=np.result_type(x, g))
    for lag in range(min(n_lags, T)):
        gw[:, lag] = np.sum(g[lag:] * x[: T - lag], axis=0)
    return gw


def geometric_weights_np(alpha: np.ndarray, l_max: int, normalize: bool = True) -> np.ndarray:
    """Geometric weights ``alpha**l``, l = 0..l_max-1. ``alpha`` (C,) -> (C, l_max)."""
    w = np.asarray(alpha, dtype=float)[..., None] ** np.arange(l_max)
    if normalize:
        w = w / w.sum(axis=-1, keepdims=True)
    return w


def geometric_weights_jax(alpha, l_max: int, normalize: bool = True):
    """Geometric weights in JAX (same as :func:`geometric_weights_np`). ``alpha`` (C,) -> (C, l_max)."""
    alpha = jnp.asarray(alpha)
    w = alpha[..., None] ** jnp.arange(l_max, dtype=alpha.dtype)
    if normalize:
        w = w / jnp.sum(w, axis=-1, keepdims=True)
    return w


# --------------------------------------------------------------------------- JAX kernel
#: Windows up to this length use the lag-matrix kernel; longer ones use ``lax.conv``.
LAG_MATRIX_MAX_LAGS = 24


def lag_matrix(x, n_lags: int):
    """Lagged copies of ``x`` (T, C): ``out[t, l, c] = x[t - l, c]`` (0 before the start) -> (T, L, C).

    A single gather with a static index; when ``x`` is a constant of the traced program (a
    single brand's data closed over by the sampler), XLA folds it away entirely.
    """
    T = x.shape[0]
    idx = np.arange(T)[:, None] - np.arange(n_lags)[None, :]
    valid = jnp.asarray(idx >= 0)[..., None]
    return jnp.where(valid, x[np.clip(idx, 0, None)], jnp.zeros((), x.dtype))


def adstock_conv_jax(x: jax.Array, w: jax.Array) -> jax.Array:
    """Causal per-channel convolution in JAX. ``x`` (T, C), ``w`` (C, L) -> (T, C).

    Short windows (``L <= 24``): the Toeplitz form — a lag matrix (T, L, C) contracted with
    the weights in one ``einsum``; with the data constant it is a single small contraction per
    gradient (measured 15 us vs 28 us for shifted slices, full model gradient, 156 x 4 x 8,
    2-core CPU). Long windows: one depthwise ``lax.conv_general_dilated``. Differentiable in
    both arguments and ``vmap``-able over leading batch axes.
    """
    x = jnp.asarray(x)
    w = jnp.asarray(w, dtype=x.dtype)
    L = w.shape[-1]
    if L <= LAG_MATRIX_MAX_LAGS:
        return jnp.einsum("tlc,cl->tc", lag_matrix(x, L), w, precision=jax.lax.Precision.HIGHEST)
    return _adstock_conv_lax(x, w)


def _adstock_conv_lax(x: jax.Array, w: jax.Array) -> jax.Array:
    """Depthwise ``lax.conv_general_dilated`` form of :func:`adstock_conv_jax`."""
    T, C = x.shape
    L = w.shape[-1]
    lhs = x.T[None]  # (1, C, T)  (batch, feature, time)
    rhs = w[:, None, ::-1]  # (C, 1, L)  conv is a correlation: flip for a convolution
    out = jax.lax.conv_general_dilated(
        lhs,
        rhs,
        window_strides=(1,),
        padding=[(L - 1, 0)],
        feature_group_count=C,
        dimension_numbers=("NCH", "OIH", "NCH"),
        precision=jax.lax.Precision.HIGHEST,
    )
    return out[0].T


def _adstock_wgrad_jax(x: jax.Array, g: jax.Array, n_lags: int) -> jax.Array:
    _, vjp = jax.vjp(lambda w: adstock_conv_jax(x, w), jnp.zeros((x.shape[1], n_lags), x.dtype))
    return vjp(g)[0]


# --------------------------------------------------------------------------- PyTensor Ops
class AdstockConv(Op):
    """PyTensor Op: causal per-channel convolution ``(x (T, C), w (C, L)) -> (T, C)``."""

    __props__ = ()

    def make_node(self, x, w):
        x = pt.as_tensor_variable(x)
        w = pt.as_tensor_variable(w)
        if x.type.ndim != 2 or w.type.ndim != 2:
            raise TypeError(f"adstock_conv expects x (T, C) and w (C, L); got ndim {x.ndim}, {w.ndim}")
        dtype = ps.upcast(x.dtype, w.dtype)
        out = pt.tensor(dtype=dtype, shape=x.type.shape)
        return Apply(self, [x, w], [out])

    def perform(self, node, inputs, output_storage):
        x, w = inputs
        output_storage[0][0] = adstock_conv_np(x, w).astype(node.outputs[0].dtype)

    def infer_shape(self, fgraph, node, input_shapes):
        return [input_shapes[0]]

    def L_op(self, inputs, outputs, output_grads):
        x, w = inputs
        (g,) = output_grads
        # d/dx: the adjoint of a causal convolution is the same convolution run backwards in time.
        gx = self(g[::-1], w)[::-1]
        gw = _adstock_wgrad(x, g, w.shape[-1])
        return [gx.astype(x.dtype), gw.astype(w.dtype)]


class _AdstockWeightGrad(Op):
    """Gradient of :class:`AdstockConv` w.r.t. the weights: ``(x, g, L) -> (C, L)``."""

    __props__ = ()

    def make_node(self, x, g, n_lags):
        x = pt.as_tensor_variable(x)
        g = pt.as_tensor_variable(g)
        n_lags = pt.as_tensor_variable(n_lags)
        dtype = ps.upcast(x.dtype, g.dtype)
        return Apply(self, [x, g, n_lags], [pt.tensor(dtype=dtype, shape=(x.type.shape[1], None))])

    def perform(self, node, inputs, output_storage):
        x, g, n_lags = inputs
        output_storage[0][0] = _adstock_wgrad_np(x, g, int(n_lags)).astype(node.outputs[0].dtype)

    def infer_shape(self, fgraph, node, input_shapes):
        return [(input_shapes[0][1], node.inputs[2])]


adstock_conv = AdstockConv()
_adstock_wgrad = _AdstockWeightGrad()


@jax_funcify.register(AdstockConv)
def _jax_funcify_adstock(op, **kwargs):
    return adstock_conv_jax


@jax_funcify.register(_AdstockWeightGrad)
def _jax_funcify_adstock_wgrad(op, node=None, **kwargs):
    # The number of lags must be static for JAX: read it from the graph when it is a constant.
    n_lags_var = node.inputs[2] if node is not None else None
    static = None
    if n_lags_var is not None:
        try:
            static = int(pt.get_underlying_scalar_constant_value(n_lags_var))
        except Exception:  # noqa: BLE001 - not constant: fall back to the shape of nothing
            static = None

    def wgrad(x, g, n_lags):
        return _adstock_wgrad_jax(x, g, static if static is not None else int(n_lags))

    return wgrad


# --------------------------------------------------------------------------- weight builders
def geometric_weights(alpha, l_max: int, normalize: bool = True):
    """Symbolic geometric weights. ``alpha`` (C,) in (0, 1) -> (C, l_max)."""
    lags = pt.arange(l_max, dtype=alpha.dtype if hasattr(alpha, "dtype") else "float64")
    w = pt.power(pt.as_tensor_variable(alpha)[:, None], lags[None, :])
    if normalize:
        w = w / pt.sum(w, axis=-1, keepdims=True)
    return w


def geometric_adstock(x, alpha, l_max: int, normalize: bool = True):
    """Geometric adstock of ``x`` (T, C) with decay ``alpha`` (C,): PyTensor graph -> (T, C)."""
    return adstock_conv(x, geometric_weights(alpha, l_max, normalize))
