"""HSGP module: basis, spectral densities, approximation error, PyMC builders, compiled logp."""

import jax
import jax.numpy as jnp
import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
from mmm_jax.config.model import ConfigError, Prior
from mmm_jax.model.hsgp import (
    HSGPSpec,
    hsgp_basis,
    hsgp_basis_data,
    hsgp_covariance,
    hsgp_domain,
    hsgp_eval,
    hsgp_hierarchical,
    hsgp_max_error,
    hsgp_process,
    kernel_covariance,
    positive_multiplier,
    spectral_density,
    sqrt_spectral_density,
    suggest_hsgp_params,
)

from mmm_jax.compile import compile_logdensity

T_WEEKS = np.linspace(0.0, 1.0, 156)  # 156 weeks, time scaled to [0, 1] as in the MMM


# ---------------------------------------------------------------------------- basis


def test_basis_formula_domain_and_forecast_rows():
    phi, se = hsgp_basis(T_WEEKS, 10, c=2.0)
    centre, L = hsgp_domain(T_WEEKS, 2.0)
    assert (centre, L) == (0.5, 1.0)
    assert phi.shape == (156, 10) and se.shape == (10,)
    np.testing.assert_allclose(se, np.arange(1, 11) * np.pi / (2 * L))
    np.testing.assert_allclose(phi[:, 2], np.sin(se[2] * (T_WEEKS - centre + L)) / np.sqrt(L), rtol=1e-14)
    # forecasting: same centre and L -> the training rows are unchanged
    t_ext = np.linspace(0.0, 1.25, 196)
    phi_ext, se_ext = hsgp_basis(t_ext, 10, L=L, centre=centre)
    np.testing.assert_allclose(phi_ext[: len(T_WEEKS)], hsgp_basis(t_ext[:156], 10, L=L, centre=centre)[0])
    np.testing.assert_array_equal(se_ext, se)
    # zero at the boundary, refused beyond it
    np.testing.assert_allclose(hsgp_basis([centre - L, centre + L], 10, L=L, centre=centre)[0], 0.0, atol=1e-14)
    with pytest.raises(ValueError, match="beyond the boundary"):
        hsgp_basis([0.0, 1.6], 10, L=L, centre=centre)
    with pytest.raises(ValueError, match="exactly one"):
        hsgp_basis(T_WEEKS, 10)
    with pytest.raises(ValueError, match="c: must be > 1"):
        hsgp_basis(T_WEEKS, 10, c=1.0)


def test_basis_orthonormal_on_the_domain():
    """int_{-L}^{L} phi_j phi_k dt = delta_jk (trapezoid rule, 40 001 points)."""
    centre, L = hsgp_domain(T_WEEKS, 1.7)
    grid = np.linspace(centre - L, centre + L, 40_001)
    phi, _ = hsgp_basis(grid, 40, L=L, centre=centre)
    w = np.full(grid.size, grid[1] - grid[0])
    w[[0, -1]] *= 0.5
    gram = (phi * w[:, None]).T @ phi
    np.testing.assert_allclose(gram, np.eye(40), atol=1e-9)


# ---------------------------------------------------------------------------- spectral densities


@pytest.mark.parametrize("kernel", ["expquad", "matern52"])
def test_spectral_density_numpy_jax_pytensor_agree(kernel):
    omega = np.linspace(0.0, 200.0, 301)[:, None]
    eta = np.array([0.1, 0.5, 2.0])
    ell = np.array([0.03, 0.2, 1.5])
    ref = spectral_density(omega, eta, ell, kernel)
    got_jax = spectral_density(jnp.asarray(omega), jnp.asarray(eta), jnp.asarray(ell), kernel, xp=jnp)
    got_pt = spectral_density(pt.as_tensor(omega), pt.as_tensor(eta), pt.as_tensor(ell), kernel, xp="pytensor").eval()
    np.testing.assert_allclose(np.asarray(got_jax), ref, rtol=1e-13, atol=1e-300)  # XLA flushes denormals
    np.testing.assert_allclose(got_pt, ref, rtol=1e-13, atol=1e-300)
    for xp, args in [("numpy", (omega, eta, ell)), ("jax", tuple(map(jnp.asarray, (omega, eta, ell))))]:
        sq = np.asarray(sqrt_spectral_density(*args, kernel, xp=xp))
        np.testing.assert_allclose(sq**2, ref, rtol=1e-12, atol=1e-300)
    sq_pt = sqrt_spectral_density(pt.as_tensor(omega), eta, ell, kernel, xp=pt).eval()
    np.testing.assert_allclose(sq_pt**2, ref, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("kernel", ["expquad", "matern52"])
def test_spectral_density_is_the_kernels_fourier_transform(kernel):
    """k(r) = (1/pi) int_0^inf S(w) cos(w r) dw, checked by quadrature."""
    eta, ell = 0.7, 0.3
    w = np.linspace(0.0, 4000.0, 800_001)
    s = spectral_density(w, eta, ell, kernel)
    r = np.array([0.0, 0.1, 0.3, 0.7])
    k = np.trapezoid(s[None, :] * np.cos(np.outer(r, w)), w, axis=1) / np.pi
    np.testing.assert_allclose(k, kernel_covariance(r, [0.0], eta, ell, kernel)[:, 0], atol=1e-6)


def test_sqrt_spectral_density_gradient_finite_where_s_underflows():
    g = jax.grad(lambda ell: jnp.sum(sqrt_spectral_density(jnp.linspace(0, 500, 50), 1.0, ell, xp=jnp)))(3.0)
    assert np.isfinite(float(g))


# ---------------------------------------------------------------------------- approximation error

# Max |phi diag(S) phi^T - K_exact| / eta^2 on the 156-week grid (time in [0, 1], S = 0.5),
# over 41 lengthscales evenly spaced in the range, measured with this code:
#   kernel    m   c    ell range     measured   bound asserted
#   expquad   20  2.0  [0.10, 0.30]  3.9e-3     5e-3
#   expquad   30  2.0  [0.10, 0.30]  3.9e-3     5e-3   (boundary-limited: more m does not help)
#   expquad   36  4.0  [0.10, 0.62]  4.7e-3     6e-3   (HSGPSpec defaults)
#   expquad   40  3.0  [0.10, 0.50]  3.4e-4     5e-4
#   matern52  40  2.0  [0.10, 0.30]  1.6e-2     2e-2
#   matern52  40  3.0  [0.10, 0.50]  8.6e-3     1e-2
#   matern52  60  4.0  [0.10, 0.50]  5.3e-3     7e-3
ERROR_BOUNDS = [
    ("expquad", 20, 2.0, (0.10, 0.30), 5e-3),
    ("expquad", 30, 2.0, (0.10, 0.30), 5e-3),
    ("expquad", 36, 4.0, (0.10, 0.62), 6e-3),
    ("expquad", 40, 3.0, (0.10, 0.50), 5e-4),
    ("matern52", 40, 2.0, (0.10, 0.30), 2e-2),
    ("matern52", 40, 3.0, (0.10, 0.50), 1e-2),
    ("matern52", 60, 4.0, (0.10, 0.50), 7e-3),
]


@pytest.mark.parametrize("kernel,m,c,ell_range,bound", ERROR_BOUNDS)
def test_hsgp_covariance_within_stated_bound(kernel, m, c, ell_range, bound):
    """phi diag(S) phi^T vs the exact kernel on the weekly grid: max-abs error <= bound * eta^2
    for every lengthscale in the range (numbers in ERROR_BOUNDS' table above)."""
    eta = 0.7
    phi, se = hsgp_basis(T_WEEKS, m, c=c)
    worst = 0.0
    for ell in np.linspace(*ell_range, 41):
        approx = hsgp_covariance(phi, se, eta, ell, kernel)
        exact = kernel_covariance(T_WEEKS, T_WEEKS, eta, ell, kernel)
        worst = max(worst, float(np.max(np.abs(approx - exact))))
    assert worst <= bound * eta**2, f"{kernel} m={m} c={c}: {worst / eta**2:.3g} eta^2 > {bound}"
    # too few basis functions for the shortest lengthscale is visibly worse
    assert hsgp_max_error(T_WEEKS, 5, c, ell_range[0], kernel) > 10 * bound


# Ranges (time in [0, 1]) -> suggested (m, c) and measured max error / eta^2 (21 lengthscales):
#   range          expquad                 matern52
#   [0.10, 0.30]   m=18  c=2.05  5.9e-3    m=33 c=2.46  8.4e-3
#   [0.10, 0.62]   m=35  c=3.97  5.6e-3    m=68 c=5.08  8.5e-3
#   [0.20, 0.50]   m=14  c=3.20  5.8e-3    m=28 c=4.10  7.8e-3
#   [0.02, 0.10]   m=60  c=1.35  5.6e-3    m=97 c=1.45  8.6e-3
#   [0.30, 1.00]   m=19  c=6.40  5.0e-3    m=37 c=8.20  8.1e-3
#   0.05           m=21  c=1.20  7.4e-3    m=33 c=1.23  1.04e-2
#   0.25           m=7   c=1.88  2.7e-3    m=12 c=2.13  8.8e-3
SUGGEST_RANGES = [(0.1, 0.3), (0.1, 0.62), (0.2, 0.5), (0.02, 0.1), (0.3, 1.0), (0.05, 0.05), (0.25, 0.25)]


@pytest.mark.parametrize("kernel", ["expquad", "matern52"])
def test_suggested_params_meet_the_error_threshold(kernel):
    """suggest_hsgp_params -> (m, c) with covariance error <= 1.25% of eta^2 over the range."""
    for lo, hi in SUGGEST_RANGES:
        m, c = suggest_hsgp_params(T_WEEKS, lo, hi, kernel)
        err = hsgp_max_error(T_WEEKS, m, c, np.linspace(lo, hi, 21), kernel)
        assert err <= 0.0125, (kernel, lo, hi, m, c, err)


@pytest.mark.parametrize("kernel", ["expquad", "matern52"])
def test_suggested_params_against_pymc(kernel):
    """Same rule as PyMC where the paper's c = a_c ell_max / S binds (m rounded up, not down);
    where PyMC's c = 1.2 floor binds, ours adds boundary margin and PyMC's error is large."""
    for lo, hi in [(0.1, 0.62), (0.2, 0.5), (0.3, 1.0), (0.1, 0.5)]:
        m, c = suggest_hsgp_params((0.0, 1.0), lo, hi, kernel)
        m_pm, c_pm = pm.gp.hsgp_approx.approx_hsgp_hyperparams([0.0, 1.0], [lo, hi], kernel)
        assert c == pytest.approx(c_pm, rel=1e-12)
        assert m in (m_pm, m_pm + 1)
    lo, hi = 0.02, 0.1
    m, c = suggest_hsgp_params(T_WEEKS, lo, hi, kernel)
    m_pm, c_pm = pm.gp.hsgp_approx.approx_hsgp_hyperparams([0.0, 1.0], [lo, hi], kernel)
    assert c_pm == 1.2 and c > c_pm
    ells = np.linspace(lo, hi, 21)
    assert hsgp_max_error(T_WEEKS, m_pm, c_pm, ells, kernel) > 0.1
    assert hsgp_max_error(T_WEEKS, m, c, ells, kernel) < 0.01


def test_suggest_rejects_bad_input():
    with pytest.raises(ValueError, match="lengthscales"):
        suggest_hsgp_params((0, 1), 0.5, 0.1)
    with pytest.raises(ValueError, match="kernel"):
        suggest_hsgp_params((0, 1), 0.1, 0.2, "matern32")
    with pytest.raises(ValueError, match="no range"):
        suggest_hsgp_params([1.0, 1.0], 0.1)


# ---------------------------------------------------------------------------- PyMC models


def small_model(rng, *, T=40, m=12, c=2.0, per_group=True, link="exp", ell_delta="prior", zero_sum=False):
    t = np.linspace(0.0, 1.0, T)
    x = rng.gamma(2.0, 0.3, size=(T, 3))
    y = rng.normal(0.6, 0.2, size=T)
    with pm.Model(coords={"date": range(T), "channel": ["a", "b", "c"]}) as model:
        phi, se = hsgp_basis_data("gp", t, m, c=c, dims=("date", "basis"))
        spend = pm.Data("spend", x, dims=("date", "channel"))
        target = pm.Data("target", y, dims="date")
        base = hsgp_process(
            "baseline_gp", phi, se, Prior("HalfNormal", sigma=0.3), Prior("InverseGamma", alpha=5.0, beta=1.0),
            kernel="matern52", dims="date", basis_dim="basis",
        )
        f = hsgp_hierarchical(
            "media_tv", phi, se,
            eta_global=Prior("HalfNormal", sigma=0.2),
            ell_global=Prior("InverseGamma", alpha=5.0, beta=1.0),
            eta_delta=Prior("HalfNormal", sigma=0.1),
            ell_delta=Prior("InverseGamma", alpha=5.0, beta=1.0) if ell_delta == "prior" else None,
            group_dim="channel", per_group_params=per_group, zero_sum=zero_sum, dims=("date", "channel"),
            basis_dim="basis",
        )
        mult = pm.Deterministic("media_multiplier", positive_multiplier(f, link), dims=("date", "channel"))
        beta = pm.HalfNormal("beta", 1.0, dims="channel")
        intercept = pm.Normal("intercept", 0.0, 1.0)
        mu = intercept + base + (beta * spend * mult).sum(axis=-1)
        pm.Normal("y", mu, pm.HalfNormal("sigma", 0.5), observed=target, dims="date")
    return model, t


@pytest.mark.parametrize(
    "per_group,link,ell_delta,zero_sum",
    [(True, "exp", "prior", False), (False, "softplus", None, False), (False, "exp", "prior", True)],
    ids=["own-exp", "shared-softplus", "zero-sum"],
)
def test_compiled_logp_equals_pymc(rng, per_group, link, ell_delta, zero_sum):
    model, _ = small_model(rng, per_group=per_group, link=link, ell_delta=ell_delta, zero_sum=zero_sum)
    names = {v.name for v in model.free_RVs}
    assert {"gp_phi", "gp_sqrt_eig"} <= {v.name for v in model.data_vars}
    assert ("media_tv_delta_ell" in names) == (ell_delta == "prior")
    assert model["media_tv_delta_z"].eval().shape == (12, 3)
    assert model["media_tv_delta_eta"].eval().shape == ((3,) if per_group else ())
    ld = compile_logdensity(model)
    # PyMC's own log-density (Python-mode ops: same graph, compiles in half the time)
    logp, dlogp = model.compile_logp(mode="FAST_COMPILE"), model.compile_dlogp(mode="FAST_COMPILE")
    jlogp, jgrad = jax.jit(ld.logp), jax.jit(jax.grad(ld.logp))
    for _ in range(10):
        p = {n: rng.normal(scale=1.0, size=s) for n, s in ld.param_shapes.items()}
        ref = logp(p)
        assert np.isfinite(ref)
        np.testing.assert_allclose(float(jlogp(p, ld.default_data)), ref, rtol=1e-8)
        g = jgrad(p, ld.default_data)
        flat = np.concatenate([np.ravel(g[v.name]) for v in model.value_vars])
        np.testing.assert_allclose(flat, dlogp(p), rtol=1e-6, atol=1e-8)
    # the constrained outputs hold the processes; hsgp_eval reproduces them from the draws
    out = jax.jit(ld.constrain)(p, ld.default_data)
    phi, se = ld.default_data["gp_phi"], ld.default_data["gp_sqrt_eig"]
    g_eta, g_ell, g_z = out["media_tv_global_eta"], out["media_tv_global_ell"], out["media_tv_global_z"]
    f_global = hsgp_eval(phi, se, g_eta, g_ell, g_z, xp=jnp)
    ell_d = out["media_tv_delta_ell"] if ell_delta == "prior" else out["media_tv_global_ell"]
    delta = jax.jit(hsgp_eval)(phi, se, out["media_tv_delta_eta"], ell_d, out["media_tv_delta_z"])
    np.testing.assert_allclose(out["media_tv"], np.asarray(f_global)[:, None] + delta, rtol=1e-10, atol=1e-12)
    mult = positive_multiplier(np.asarray(out["media_tv"]), link)
    np.testing.assert_allclose(out["media_multiplier"], mult, rtol=1e-10)
    assert ld.dims["media_tv"] == ("date", "channel") and ld.dims["baseline_gp"] == ("date",)
    if zero_sum:  # the deviations sum to 0 over the channels: the global path is their average
        np.testing.assert_allclose(np.asarray(out["media_tv_delta_z"]).sum(-1), 0.0, atol=1e-12)
        np.testing.assert_allclose(np.asarray(out["media_tv"]).mean(-1), np.asarray(f_global), atol=1e-12)


def test_zero_sum_needs_shared_deviation_parameters(rng):
    with pytest.raises(ValueError, match="zero_sum needs deviation amplitude and lengthscale shared"):
        small_model(rng, per_group=True, zero_sum=True)


def test_basis_is_a_data_input(rng):
    """A new basis (here c = 3 instead of 2: other phi and sqrt_eig) changes logp exactly as
    pm.set_data + compile_logp does, with one trace of the jitted function."""
    model, t = small_model(rng)
    ld = compile_logdensity(model)
    traces = []

    def counted(p, d):
        traces.append(1)
        return ld.logp(p, d)

    f = jax.jit(counted)
    p = {n: rng.normal(size=s) for n, s in ld.param_shapes.items()}
    before = float(f(p, ld.default_data))
    phi3, se3 = hsgp_basis(t, 12, c=3.0)
    data3 = {**ld.default_data, "gp_phi": phi3, "gp_sqrt_eig": se3}
    after = float(f(p, data3))
    with model:
        pm.set_data({"gp_phi": phi3, "gp_sqrt_eig": se3})
    assert abs(after - before) > 1e-3
    np.testing.assert_allclose(after, model.compile_logp(mode="FAST_COMPILE")(p), rtol=1e-8)
    assert len(traces) == 1


def test_hierarchical_prior_variance(rng):
    """Prior draws: var f[t, c] = eta_global^2 + eta_delta^2, cov(f[t, c], f[t, c']) = eta_global^2.

    Fixed amplitudes (0.3, 0.4) and, second, HalfNormal amplitude priors with the same scales
    (E eta^2 = sigma^2); 4000 draws, checked within 4 Monte Carlo standard errors of the mean
    over interior weeks (|t - centre| <= 0.4, where the approximation's variance is exact to
    < 0.4% for ell = 0.2, m = 20, c = 2)."""
    T, n = 60, 4000
    t = np.linspace(0.0, 1.0, T)
    phi, se = hsgp_basis(t, 20, c=2.0)
    inner = np.abs(t - 0.5) <= 0.4
    # the approximation itself, exactly: diag(phi S phi^T) ~= eta^2
    diag = np.einsum("tm,m,tm->t", phi, spectral_density(se, 1.0, 0.2), phi)
    assert np.max(np.abs(diag[inner] - 1.0)) < 4e-3
    for amplitudes in ["fixed", "prior"]:
        with pm.Model(coords={"channel": list("abc")}):
            if amplitudes == "fixed":
                eg, ed = 0.3, 0.4
            else:
                eg, ed = Prior("HalfNormal", sigma=0.3), Prior("HalfNormal", sigma=0.4)
            f = hsgp_hierarchical(
                "tv", phi, se, eta_global=eg, ell_global=0.2, eta_delta=ed, ell_delta=0.2,
                kernel="expquad", group_dim="channel", per_group_params=True,
            )
            draws = pm.draw(f, draws=n, random_seed=rng)  # (n, T, C)
        assert draws.shape == (n, T, 3)
        fi = draws[:, inner, :]
        checks = {
            "var": (fi**2, 0.3**2 + 0.4**2),  # per channel
            "cov": (fi[..., 0] * fi[..., 1], 0.3**2),  # across channels: the shared process
        }
        for name, (prod, expected) in checks.items():
            per_draw = prod.mean(axis=1)  # mean over interior weeks, one value per draw (and channel)
            est = per_draw.mean(axis=0)
            se_mc = per_draw.std(axis=0, ddof=1) / np.sqrt(n)
            assert np.all(np.abs(est - expected) <= 4 * se_mc), (amplitudes, name, est, expected, se_mc)


def test_positive_multiplier_links():
    f = np.linspace(-3, 3, 61)
    for link in ["exp", "softplus"]:
        y = positive_multiplier(f, link)
        assert np.all(y > 0)
        assert positive_multiplier(np.array(0.0), link) == pytest.approx(1.0)
        h = 1e-6  # slope 1 at 0: eta means the same relative change for small f
        slope = (positive_multiplier(np.array(h), link) - positive_multiplier(np.array(-h), link)) / (2 * h)
        assert slope == pytest.approx(1.0, rel=1e-6)
        y_jax = jax.jit(positive_multiplier, static_argnums=1)(jnp.asarray(f), link)
        np.testing.assert_allclose(np.asarray(y_jax), y, rtol=1e-13)
        np.testing.assert_allclose(positive_multiplier(pt.as_tensor(f), link).eval(), y, rtol=1e-13)
    # softplus grows linearly, exp does not
    assert positive_multiplier(np.array(10.0), "softplus") < 25 < positive_multiplier(np.array(10.0), "exp")
    with pytest.raises(ValueError, match="link"):
        positive_multiplier(f, "sigmoid")


def test_hsgp_spec():
    spec = HSGPSpec()
    assert HSGPSpec.from_dict(spec.to_dict()) == spec
    # the defaults fit their own lengthscale prior's 95% range
    assert hsgp_max_error(T_WEEKS, spec.m, spec.c, np.linspace(0.098, 0.616, 21), spec.kernel) < 6e-3
    s2 = HSGPSpec.suggest(T_WEEKS, 0.1, 0.3, "matern52", eta_prior={"dist": "HalfNormal", "sigma": 0.1})
    assert (s2.m, s2.c) == suggest_hsgp_params(T_WEEKS, 0.1, 0.3, "matern52")
    assert s2.eta_prior == Prior("HalfNormal", sigma=0.1)
    phi, se = s2.basis(T_WEEKS)
    assert phi.shape == (156, s2.m)
    for bad, match in [({"m": 0}, "hsgp.m"), ({"c": 1.0}, "hsgp.c"), ({"kernel": "rbf"}, "hsgp.kernel")]:
        with pytest.raises(ConfigError, match=match):
            HSGPSpec(**bad)
    with pytest.raises(ConfigError, match="unknown keys"):
        HSGPSpec.from_dict({"m": 10, "L": 2.0})
