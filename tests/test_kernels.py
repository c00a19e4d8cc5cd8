"""Adstock and saturation kernels against plain NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad

from mmm_jax.media.adstock import (
    LAG_MATRIX_MAX_LAGS,
    _adstock_conv_lax,
    adstock_conv,
    adstock_conv_jax,
    adstock_conv_logp_jax,
    adstock_conv_np,
    geometric_adstock,
    geometric_weights,
    geometric_weights_jax,
    geometric_weights_np,
)
from mmm_jax.media.saturation import logistic_saturation, logistic_saturation_jax, logistic_saturation_np


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


@pytest.mark.parametrize("T,C,L", [(25, 3, 5), (40, 7, 1), (6, 2, 9), (30, 200, 8)])
def test_logp_adstock_kernel_values_and_gradients(rng, T, C, L):
    """The log-density's kernel (custom reverse rule) vs NumPy and JAX autodiff of the plain kernel.

    Covers l_max = 1, a window longer than the series, and many columns; also under ``vmap``.
    """
    x, w, g = rng.random((T, C)), rng.random((C, L)), rng.normal(size=(T, C))
    np.testing.assert_allclose(np.asarray(adstock_conv_logp_jax(x, w)), brute_force_adstock(x, w), rtol=1e-12, atol=1e-12)
    ref = jax.vjp(adstock_conv_jax, jnp.asarray(x), jnp.asarray(w))[1](jnp.asarray(g))
    got = jax.vjp(adstock_conv_logp_jax, jnp.asarray(x), jnp.asarray(w))[1](jnp.asarray(g))
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-11, atol=1e-11)
    xs, ws = rng.random((3, T, C)), rng.random((3, C, L))
    f = jax.vmap(jax.grad(lambda a, b: jnp.sum(jnp.sin(adstock_conv_logp_jax(a, b))), argnums=(0, 1)))
    f_ref = jax.vmap(jax.grad(lambda a, b: jnp.sum(jnp.sin(adstock_conv_jax(a, b))), argnums=(0, 1)))
    for a, b in zip(f(xs, ws), f_ref(xs, ws), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-11)


def test_logistic_saturation_matches_reference(rng):
    x = np.concatenate([rng.random(50) * 5, [0.0, 1e-9, 50.0]])
    lam = 2.3
    ref = logistic_saturation_np(x, lam)
    np.testing.assert_allclose(logistic_saturation(pt.as_tensor_variable(x), lam).eval(), ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.asarray(logistic_saturation_jax(x, lam)), ref, rtol=1e-12, atol=1e-15)
    assert logistic_saturation_np(0.0, 1.0) == 0.0
    assert np.all(np.diff(ref[:50][np.argsort(x[:50])]) >= 0)  # monotone increasing
    assert np.all(ref <= 1.0) and np.all(ref[:50] < 1.0)


# =========================================================================== model library
from mmm_jax.config.model import DelayedAdstock, GeometricAdstock, WeibullAdstock  # noqa: E402

from mmm_jax.media.adstock import (  # noqa: E402
    apply_adstock,
    apply_adstock_jax,
    apply_adstock_np,
    delayed_weights,
    delayed_weights_jax,
    delayed_weights_np,
    geometric_recursion,
    geometric_recursion_jax,
    geometric_recursion_np,
    geometric_recursion_scan_jax,
    infinite_geometric_adstock,
    weibull_weights,
    weibull_weights_jax,
    weibull_weights_np,
)
from mmm_jax.media.saturation import (  # noqa: E402
    SATURATION_PARAMS,
    hill_saturation,
    hill_saturation_jax,
    hill_saturation_np,
    media_response,
    media_response_jax,
    media_response_np,
    michaelis_menten_saturation,
    michaelis_menten_saturation_jax,
    michaelis_menten_saturation_np,
    tanh_saturation,
    tanh_saturation_jax,
    tanh_saturation_np,
)


def three_ways(pt_fn, jax_fn, np_fn, *args):
    """Evaluate a PyTensor, a JAX and a NumPy form on the same arguments."""
    got_pt = pt_fn(*[pt.as_tensor_variable(np.asarray(a, dtype=float)) for a in args]).eval()
    return got_pt, np.asarray(jax_fn(*args)), np_fn(*args)


@pytest.mark.parametrize("l_max", [1, 2, 9])
@pytest.mark.parametrize("normalize", [True, False])
def test_delayed_weights_boundaries(l_max, normalize):
    # theta = 0 (peak at lag 0), a peak inside the window, one beyond it; alpha -> 0 and -> 1
    alpha = np.array([1e-12, 0.3, 0.6, 1 - 1e-9, 0.5])
    theta = np.array([0.0, 0.0, 2.5, 4.0, 30.0])
    ref = np.array([[a ** ((lag - th) ** 2) for lag in range(l_max)] for a, th in zip(alpha, theta, strict=True)])
    if normalize:
        ref = ref / ref.sum(1, keepdims=True)
    for got in three_ways(lambda a, t: delayed_weights(a, t, l_max, normalize),
                          lambda a, t: delayed_weights_jax(a, t, l_max, normalize),
                          lambda a, t: delayed_weights_np(a, t, l_max, normalize), alpha, theta):
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-300)
    if l_max > 3:
        assert np.argmax(ref[2]) in (2, 3)  # the peak sits at theta = 2.5
        assert np.all(np.diff(ref[4]) > 0)  # peak beyond the window: still rising at its end
    np.testing.assert_allclose(ref[3] / ref[3].max(), 1.0, rtol=1e-6)  # alpha -> 1: flat
    np.testing.assert_allclose(ref[0], np.eye(1, l_max)[0], atol=1e-12)  # alpha -> 0, theta = 0: lag 0 only


def weibull_by_hand(k, lam, l_max, kind):
    """Weibull weights straight from the formulas (no SciPy): survival products / min-max density."""
    t = np.arange(1, l_max + 1, dtype=float)
    if kind == "cdf":
        surv = np.exp(-((t[:-1] / lam) ** k))
        return np.cumprod(np.concatenate([[1.0], surv]))
    if l_max == 1:
        return np.ones(1)
    dens = (k / lam) * (t / lam) ** (k - 1) * np.exp(-((t / lam) ** k))
    return (dens - dens.min()) / (dens.max() - dens.min())


@pytest.mark.parametrize("kind", ["cdf", "pdf"])
@pytest.mark.parametrize("l_max", [1, 2, 12])
@pytest.mark.parametrize("normalize", [True, False])
def test_weibull_weights_against_references(kind, l_max, normalize):
    # moderate and extreme shapes / scales
    k = np.array([0.05, 0.5, 1.0, 2.0, 8.0, 1.5, 30.0])
    lam = np.array([1.0, 0.3, 2.0, 5.0, 6.0, 200.0, 0.5])
    got = three_ways(lambda a, b: weibull_weights(a, b, l_max, kind, normalize),
                     lambda a, b: weibull_weights_jax(a, b, l_max, kind, normalize),
                     lambda a, b: weibull_weights_np(a, b, l_max, kind, normalize), k, lam)
    ref = got[2]
    assert ref.shape == (7, l_max) and np.all(np.isfinite(ref)) and np.all(ref >= 0)
    for g in got[:2]:
        np.testing.assert_allclose(g, ref, rtol=1e-10, atol=1e-14)
    # the SciPy reference agrees with the hand-written formulas where the density does not underflow
    for c in range(5):
        hand = weibull_by_hand(k[c], lam[c], l_max, kind)
        if normalize:
            hand = hand / hand.sum()
        np.testing.assert_allclose(ref[c], hand, rtol=1e-9, atol=1e-14)
    if normalize:
        np.testing.assert_allclose(ref.sum(1), 1.0, rtol=1e-12)
    elif kind == "cdf":
        np.testing.assert_allclose(ref[:, 0], 1.0)  # survival form starts at 1, decreasing
        assert np.all(np.diff(ref, axis=1) <= 1e-15)
    elif l_max > 1:
        np.testing.assert_allclose(ref.max(1), 1.0)  # min-max scaled density peaks at 1
        np.testing.assert_allclose(ref.min(1), 0.0, atol=1e-300)
    if kind == "pdf" and l_max == 12:
        assert np.argmax(ref[4]) > 2  # shape 8, scale 6: the effect peaks weeks later


@pytest.mark.parametrize("alpha", [0.0, 1e-10, 0.4, 0.9, 1 - 1e-7])
def test_infinite_geometric_scan_vs_loop_and_long_window(rng, alpha):
    T, C = 300, 3
    x = rng.random((T, C)) * (rng.random((T, C)) > 0.3)
    a = np.array([alpha, 0.5, 0.95])
    loop = np.zeros_like(x)  # the textbook loop, written here
    for c in range(C):
        acc = 0.0
        for t in range(T):
            acc = x[t, c] + a[c] * acc
            loop[t, c] = acc
    np.testing.assert_allclose(geometric_recursion_np(x, a), loop, rtol=1e-13)
    np.testing.assert_allclose(np.asarray(geometric_recursion_jax(x, a)), loop, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(np.asarray(geometric_recursion_scan_jax(x, a)), loop, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(geometric_recursion(x, a).eval(), loop, rtol=1e-13)
    # a finite window as long as the series is the same thing
    w = geometric_weights_np(a, T, normalize=False)
    np.testing.assert_allclose(np.asarray(adstock_conv_jax(x, w)), loop, rtol=1e-10, atol=1e-12)
    # normalised: weights (1 - alpha) alpha**l sum to 1 over an infinite window
    got = infinite_geometric_adstock(pt.as_tensor_variable(x), pt.as_tensor_variable(a), True).eval()
    np.testing.assert_allclose(got, (1 - a) * loop, rtol=1e-12)
    const = infinite_geometric_adstock(pt.as_tensor_variable(np.ones((2000, 1))), pt.as_tensor_variable([0.9]), True)
    np.testing.assert_allclose(const.eval()[-1, 0], 1.0, rtol=1e-12)


def test_infinite_geometric_alpha_one_is_cumsum_and_vmaps(rng):
    x = rng.random((50, 2))
    np.testing.assert_allclose(np.asarray(geometric_recursion_jax(x, np.ones(2))), np.cumsum(x, 0), rtol=1e-12)
    batch = rng.random((4, 50, 2))
    alphas = rng.uniform(0.1, 0.9, (4, 2))
    vm = jax.vmap(geometric_recursion_jax)(batch, alphas)
    for b in range(4):
        np.testing.assert_allclose(np.asarray(vm[b]), geometric_recursion_np(batch[b], alphas[b]), rtol=1e-11)


def test_geometric_recursion_op_gradients(rng):
    x = rng.random((40, 3))
    a = np.array([0.2, 0.7, 0.97])
    verify_grad(geometric_recursion, [x, a], rng=np.random.default_rng(1))
    X, A = pt.matrix("x"), pt.vector("a")
    y = geometric_recursion(X, A)
    loss = (pt.sin(y) * pt.arange(40)[:, None]).sum()
    grads = pytensor.grad(loss, [X, A])
    f_py = pytensor.function([X, A], [y, *grads])
    f_jax = pytensor.function([X, A], [y, *grads], mode="JAX")
    ref_g = jax.grad(lambda x_, a_: (jnp.sin(geometric_recursion_scan_jax(x_, a_)) * jnp.arange(40)[:, None]).sum(),
                     argnums=(0, 1))(x, a)
    ref = [geometric_recursion_np(x, a), *map(np.asarray, ref_g)]
    for got in (f_py(x, a), f_jax(x, a)):
        for g, r in zip(got, ref, strict=True):
            np.testing.assert_allclose(g, r, rtol=1e-9, atol=1e-12)
    # second derivative through the Op's own gradient graph (the gradient uses the Op itself)
    h = pytensor.function([X, A], pytensor.grad(grads[1].sum(), A))(x, a)
    h_ref = jax.grad(lambda a_: jax.grad(lambda b: (jnp.sin(geometric_recursion_jax(x, b)) *
                                                    jnp.arange(40)[:, None]).sum())(a_).sum())(a)
    np.testing.assert_allclose(h, np.asarray(h_ref), rtol=1e-8)


ADSTOCK_CONFIGS = [
    GeometricAdstock(l_max=5, normalize=True),
    GeometricAdstock(l_max=1, normalize=False),
    GeometricAdstock(infinite=True, normalize=True),
    GeometricAdstock(infinite=True, normalize=False),
    DelayedAdstock(l_max=7, normalize=False),
    WeibullAdstock(l_max=30, kind="cdf"),
    WeibullAdstock(l_max=6, kind="pdf", normalize=False),
]
ADSTOCK_VALUES = {"alpha": [0.3, 0.8], "theta": [0.0, 2.2], "weibull_shape": [0.7, 2.5], "weibull_scale": [1.5, 4.0]}


@pytest.mark.parametrize("cfg", ADSTOCK_CONFIGS, ids=repr)
def test_apply_adstock_three_backends(rng, cfg):
    x = rng.random((45, 2))
    params = {n: np.array(ADSTOCK_VALUES[n]) for n in cfg.param_names}
    ref = apply_adstock_np(x, cfg, params)
    got_pt = apply_adstock(pt.as_tensor_variable(x), cfg, {k: pt.as_tensor_variable(v) for k, v in params.items()})
    np.testing.assert_allclose(got_pt.eval(), ref, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(np.asarray(apply_adstock_jax(x, cfg, params)), ref, rtol=1e-10, atol=1e-13)
    assert ref.shape == x.shape and np.all(ref >= 0)


def test_saturation_curves_against_references(rng):
    x = np.concatenate([[0.0, 1e-12, 1e-3], rng.random(40) * 3, [50.0, 1e4]])
    S, c0, K, s = 0.4, 1.7, 0.6, 2.3
    for got in three_ways(tanh_saturation, tanh_saturation_jax, tanh_saturation_np, x, S, c0):
        np.testing.assert_allclose(got, S * np.tanh(x / (S * c0)), rtol=1e-12, atol=1e-300)
    for got in three_ways(hill_saturation, hill_saturation_jax, hill_saturation_np, x, K, s):
        np.testing.assert_allclose(got, x**s / (x**s + K**s), rtol=1e-12, atol=1e-300)
    for got in three_ways(michaelis_menten_saturation, michaelis_menten_saturation_jax,
                          michaelis_menten_saturation_np, x, K):
        np.testing.assert_allclose(got, x / (K + x), rtol=1e-12, atol=1e-300)
    # interpretable parameters: tanh slope at 0 is 1/cac0 and the ceiling is S; K is the half point
    eps = 1e-7
    assert tanh_saturation_np(eps, S, c0) / eps == pytest.approx(1 / c0, rel=1e-6)
    assert tanh_saturation_np(1e6, S, c0) == pytest.approx(S, rel=1e-12)
    assert hill_saturation_np(K, K, s) == pytest.approx(0.5) and michaelis_menten_saturation_np(K, K) == 0.5
    assert float(jax.grad(tanh_saturation_jax)(0.0, S, c0)) == pytest.approx(1 / c0, rel=1e-12)


@pytest.mark.parametrize("slope", [0.4, 1.0, 3.0])
def test_hill_gradients_are_finite_at_zero(slope):
    """x**s at x = 0 has an infinite (s < 1) slope and log(0) poisons d/ds, d/dK: both forms give 0."""
    x = np.array([0.0, 0.0, 0.5, 2.0])
    X, K, Sl = pt.vector("x"), pt.scalar("K"), pt.scalar("s")
    y = hill_saturation(X, K, Sl).sum()
    g_pt = pytensor.function([X, K, Sl], pytensor.grad(y, [X, K, Sl]))(x, 0.7, slope)
    g_jax = jax.grad(lambda a, b, c: hill_saturation_jax(a, b, c).sum(), argnums=(0, 1, 2))(x, 0.7, slope)
    for g_a, g_b in zip(g_pt, g_jax, strict=True):
        assert np.all(np.isfinite(g_a)) and np.all(np.isfinite(np.asarray(g_b)))
        np.testing.assert_allclose(g_a, np.asarray(g_b), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(np.asarray(g_jax[0])[:2], 0.0)
    # away from 0 the gradient is the textbook one (central differences on the NumPy reference)
    h = 1e-6
    fd = (hill_saturation_np(x[2:] + h, 0.7, slope) - hill_saturation_np(x[2:] - h, 0.7, slope)) / (2 * h)
    np.testing.assert_allclose(np.asarray(g_jax[0])[2:], fd, rtol=1e-6)


@pytest.mark.parametrize("kind", sorted(SATURATION_PARAMS))
def test_media_response_three_backends(rng, kind):
    x = np.vstack([np.zeros((1, 3)), rng.random((20, 3)) * 2])
    values = {"beta": [0.2, 0.5, 1.0], "lam": [0.5, 2.0, 6.0], "sat_level": [0.1, 0.4, 1.2],
              "cac0": [0.3, 1.0, 4.0], "half_sat": [0.2, 0.6, 1.5], "slope": [0.6, 1.0, 3.0]}
    params = {n: np.array(values[n]) for n in SATURATION_PARAMS[kind]}
    ref = media_response_np(kind, x, params)
    got = media_response(kind, pt.as_tensor_variable(x), {k: pt.as_tensor_variable(v) for k, v in params.items()})
    np.testing.assert_allclose(got.eval(), ref, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(np.asarray(media_response_jax(kind, x, params)), ref, rtol=1e-12, atol=1e-300)
    np.testing.assert_array_equal(ref[0], 0.0)  # no spend, no response
    assert np.all(np.diff(ref[np.argsort(x[:, 0]), 0]) >= 0)  # increasing in spend
    with pytest.raises(ValueError, match="unknown saturation type"):
        media_response_np("gompertz", x, params)
