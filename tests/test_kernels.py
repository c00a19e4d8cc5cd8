"""Adstock and saturation kernels against plain NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad

from mmm_jax.adstock import (
    LAG_MATRIX_MAX_LAGS,
    _adstock_conv_lax,
    adstock_conv,
    adstock_conv_jax,
    adstock_conv_np,
    geometric_adstock,
    geometric_weights,
    geometric_weights_jax,
    geometric_weights_np,
)
from mmm_jax.saturation import logistic_saturation, logistic_saturation_jax, logistic_saturation_np


def brute_force_adstock(x, w):
    """Double loop straight from the definition y[t,c] = sum_l w[c,l] x[t-l,c]."""
    T, C = x.shape
    y = np.zeros_like(x)
    for t in range(T):
        for c in range(C):
            for lag in range(w.shape[1]):
                if t - lag >= 0:
                    y[t, c] += w[c, lag] * x[t - lag, c]
    return y


@pytest.mark.parametrize("T,C,L", [(30, 3, 1), (30, 3, 8), (5, 2, 8), (40, 2, 30), (1, 1, 1)])
def test_conv_matches_reference(rng, T, C, L):
    x = rng.random((T, C))
    w = rng.random((C, L))
    ref = brute_force_adstock(x, w)
    np.testing.assert_allclose(adstock_conv_np(x, w), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(adstock_conv_jax(x, w)), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(_adstock_conv_lax(jnp.asarray(x), jnp.asarray(w))), ref, rtol=1e-10, atol=1e-12)


def test_long_window_uses_lax_conv_and_agrees(rng):
    x = rng.random((100, 2))
    w = rng.random((2, LAG_MATRIX_MAX_LAGS + 5))
    np.testing.assert_allclose(np.asarray(adstock_conv_jax(x, w)), brute_force_adstock(x, w), rtol=1e-10)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.999])
@pytest.mark.parametrize("normalize", [True, False])
def test_geometric_weights(alpha, normalize):
    L = 6
    got = geometric_weights(pt.as_tensor_variable(np.array([alpha, 0.5])), L, normalize).eval()
    ref = np.array([[a**lag for lag in range(L)] for a in (alpha, 0.5)])
    if normalize:
        ref = ref / ref.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    np.testing.assert_allclose(geometric_weights_np([alpha, 0.5], L, normalize), ref, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(geometric_weights_jax(np.array([alpha, 0.5]), L, normalize)), ref, rtol=1e-12)


def test_geometric_adstock_alpha_zero_is_identity_and_l_max_one(rng):
    x = rng.random((20, 3))
    y0 = geometric_adstock(pt.as_tensor_variable(x), pt.as_tensor_variable(np.zeros(3)), 8, True).eval()
    np.testing.assert_allclose(y0, x, rtol=1e-12)
    y1 = geometric_adstock(pt.as_tensor_variable(x), pt.as_tensor_variable(np.full(3, 0.7)), 1, False).eval()
    np.testing.assert_allclose(y1, x, rtol=1e-12)


def test_pytensor_op_perform_grad_and_jax_dispatch(rng):
    x = rng.random((25, 3))
    w = rng.random((3, 5))
    X, W = pt.matrix("x"), pt.matrix("w")
    y = adstock_conv(X, W)
    loss = (y**2).sum()
    grads = pytensor.grad(loss, [X, W])
    f_py = pytensor.function([X, W], [y, *grads])
    f_jax = pytensor.function([X, W], [y, *grads], mode="JAX")
    gx, gw = jax.grad(lambda a, b: (adstock_conv_jax(a, b) ** 2).sum(), argnums=(0, 1))(x, w)
    ref = [brute_force_adstock(x, w), np.asarray(gx), np.asarray(gw)]
    for got in (f_py(x, w), f_jax(x, w)):
        for g, r in zip(got, ref, strict=True):
            np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12)
    verify_grad(adstock_conv, [x, w], rng=np.random.default_rng(0))


def test_logistic_saturation_matches_reference(rng):
    x = np.concatenate([rng.random(50) * 5, [0.0, 1e-9, 50.0]])
    lam = 2.3
    ref = logistic_saturation_np(x, lam)
    np.testing.assert_allclose(logistic_saturation(pt.as_tensor_variable(x), lam).eval(), ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.asarray(logistic_saturation_jax(x, lam)), ref, rtol=1e-12, atol=1e-15)
    assert logistic_saturation_np(0.0, 1.0) == 0.0
    assert np.all(np.diff(ref[:50][np.argsort(x[:50])]) >= 0)  # monotone increasing
    assert np.all(ref <= 1.0) and np.all(ref[:50] < 1.0)
