"""Hilbert-space approximate Gaussian processes (HSGP) in one dimension (time).

A stationary GP ``f ~ GP(0, k)`` on ``[centre - L, centre + L]`` is approximated by ``m``
eigenfunctions of the Laplacian with Dirichlet boundaries (Solin & Särkkä 2020;
Riutort-Mayol et al. 2022, "Practical Hilbert space approximate Bayesian Gaussian processes
for probabilistic programming")::

    phi_j(t)  = L**-0.5 * sin(sqrt(lambda_j) * (t - centre + L))       j = 1..m
    lambda_j  = (j * pi / (2 L))**2
    f(t)      = sum_j phi_j(t) * sqrt(S(sqrt(lambda_j))) * z_j,         z_j ~ N(0, 1)

where ``S`` is the kernel's spectral density, so ``cov f ~= phi diag(S) phi^T``. The basis
``phi`` (T, m) depends only on the inputs, ``m`` and ``L``: it is precomputed with NumPy and
enters a ``pm.Model`` as a ``pm.Data`` container (:func:`hsgp_basis_data`), so each
log-density evaluation costs one ``(T, m) @ (m,)`` matmul, and
:func:`mmm_jax.compile.compile_logdensity` turns the basis into a function input. Forecasting
evaluates the basis at later times with the *same* ``centre`` and ``L``
(:func:`hsgp_domain`); the approximation only holds inside ``[centre - L, centre + L]``
(the prior variance falls to 0 at the boundary), so choose ``c`` to cover the forecast horizon.

Units: ``t``, ``L``, ``centre`` and the lengthscale ``ell`` share one unit (in the MMM,
time scaled to [0, 1] over the training window, so ``ell = 0.1`` is ~16 weeks of a 156-week
window). ``omega`` is angular frequency in radians per unit of ``t``. ``eta`` is the marginal
standard deviation of ``f`` (the kernel is ``eta**2 * k(r / ell)`` with ``k(0) = 1``).

Kernels (1-D, ``r = |t - t'|``):

* ``"expquad"``: ``k = eta^2 exp(-r^2 / (2 ell^2))``,
  ``S(w) = eta^2 sqrt(2 pi) ell exp(-ell^2 w^2 / 2)``;
* ``"matern52"``: ``k = eta^2 (1 + a + a^2/3) exp(-a)``, ``a = sqrt(5) r / ell``,
  ``S(w) = eta^2 (16/3) (5/ell^2)^(5/2) (5/ell^2 + w^2)^-3``.

The model uses ``sqrt(S)`` computed in closed form (:func:`sqrt_spectral_density`), not
``sqrt`` of ``S``: ``S`` underflows to 0 for high frequencies and long lengthscales, where
``sqrt``'s gradient would be infinite.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config.model import ConfigError, Prior

__all__ = [
    "KERNELS",
    "LINKS",
    "HSGPSpec",
    "hsgp_domain",
    "hsgp_basis",
    "hsgp_basis_data",
    "spectral_density",
    "sqrt_spectral_density",
    "kernel_covariance",
    "hsgp_covariance",
    "hsgp_max_error",
    "suggest_hsgp_params",
    "hsgp_process",
    "hsgp_hierarchical",
    "positive_multiplier",
    "hsgp_eval",
]

#: Supported kernels.
KERNELS = ("expquad", "matern52")
#: Links of :func:`positive_multiplier`.
LINKS = ("exp", "softplus")

# Riutort-Mayol et al. (2022), section 4.2.4 (same constants as
# ``pymc.gp.hsgp_approx.approx_hsgp_hyperparams``): c >= max(a_c * ell_max / S, 1.2) and
# m >= a_m * c / (ell_min / S), S the half-range of the inputs.
_RULES = {"expquad": (3.2, 1.75), "matern52": (4.1, 2.65)}
_C_MIN = 1.2
# Boundary margin L - S >= b * ell_max. The Dirichlet boundary pins the process to 0 at +-L;
# for a 1% covariance error at the window's ends the margin must be about 1.6 ell (ExpQuad)
# and 2.0 ell (Matern-5/2), measured with m large. The paper's rule gives less where its
# c = 1.2 floor binds (ell_max / S < 0.375 resp. 0.29; e.g. ell_max / S = 0.2: error 0.14).
_MARGIN = {"expquad": 1.75, "matern52": 2.25}


def _check_kernel(kernel: str) -> str:
    k = str(kernel).lower()
    if k not in KERNELS:
        raise ValueError(f"kernel: {kernel!r} is not available; allowed: {list(KERNELS)}")
    return k


def _module(xp):
    """Array module from a module or a name ("numpy", "jax", "pytensor")."""
    if isinstance(xp, str):
        name = xp.lower()
        if name in ("numpy", "np"):
            return np
        if name in ("jax", "jnp"):
            import jax.numpy as jnp

            return jnp
        if name in ("pytensor", "pt"):
            import pytensor.tensor as pt

            return pt
        raise ValueError(f"xp: {xp!r}; use 'numpy', 'jax' or 'pytensor' (or the module)")
    return xp


def _infer_module(x):
    """``pytensor.tensor`` for PyTensor variables, ``jax.numpy`` for JAX arrays, else NumPy."""
    from pytensor.graph.basic import Variable

    if isinstance(x, Variable):
        return _module("pytensor")
    if type(x).__module__.startswith(("jax", "jaxlib")):
        return _module("jax")
    return np


# --------------------------------------------------------------------------------------
# Basis (NumPy, precomputed data)
# --------------------------------------------------------------------------------------


def hsgp_domain(t, c: float, centre: float | None = None) -> tuple[float, float]:
    """Centre and boundary of the approximation for inputs ``t``.

    Parameters
    ----------
    t : array_like, shape (T,)
        Inputs (e.g. scaled time); the training window, or training + forecast window.
    c : float
        Boundary factor, ``c > 1`` (``>= 1.2`` recommended).
    centre : float, optional
        Default: the midpoint ``(min t + max t) / 2``.

    Returns
    -------
    centre : float
    L : float
        ``c * max|t - centre|`` (same unit as ``t``). Store both to evaluate the basis at
        new inputs (forecasts) with :func:`hsgp_basis`.
    """
    t = np.asarray(t, dtype=float).ravel()
    if t.size == 0 or not np.all(np.isfinite(t)):
        raise ValueError("t: need at least one finite input")
    if not c > 1.0:
        raise ValueError(f"c: must be > 1, got {c!r}")
    if centre is None:
        centre = 0.5 * (float(t.min()) + float(t.max()))
    half = float(np.max(np.abs(t - centre)))
    if half <= 0.0:
        raise ValueError("t: inputs span no range; cannot set the boundary L from c")
    return float(centre), float(c) * half


def hsgp_basis(
    t,
    m: int,
    *,
    L: float | None = None,
    c: float | None = None,
    centre: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Laplacian eigenfunctions on ``[centre - L, centre + L]`` evaluated at ``t``.

    Parameters
    ----------
    t : array_like, shape (T,)
        Inputs, any unit (the lengthscale uses the same unit).
    m : int
        Number of basis functions.
    L : float, optional
        Half-width of the domain. Give either ``L`` or ``c`` (``L = c * max|t - centre|``).
        For forecasts pass the training ``L`` and ``centre`` (see :func:`hsgp_domain`).
    c : float, optional
        Boundary factor, used when ``L`` is not given.
    centre : float, optional
        Default: midpoint of ``t``.

    Returns
    -------
    phi : np.ndarray, shape (T, m)
        ``phi[i, j] = L**-0.5 * sin(sqrt_eig[j] * (t_i - centre + L))``; orthonormal on the
        domain (``int phi_j phi_k dt = delta_jk``).
    sqrt_eig : np.ndarray, shape (m,)
        ``sqrt(lambda_j) = j pi / (2 L)``, angular frequencies (radians per unit of ``t``).

    Raises
    ------
    ValueError
        If an input lies outside ``[centre - L, centre + L]`` (the approximation is void there).
    """
    t = np.asarray(t, dtype=float).ravel()
    if not (isinstance(m, int | np.integer) and not isinstance(m, bool) and m >= 1):
        raise ValueError(f"m: must be a positive integer, got {m!r}")
    if (L is None) == (c is None):
        raise ValueError("give exactly one of L (boundary) or c (boundary factor)")
    if L is None:
        centre, L = hsgp_domain(t, c, centre)
    else:
        L = float(L)
        if not L > 0:
            raise ValueError(f"L: must be > 0, got {L!r}")
        if centre is None:
            centre = 0.5 * (float(t.min()) + float(t.max()))
    x = t - centre
    if np.any(np.abs(x) > L * (1 + 1e-12)):
        raise ValueError(
            f"t: inputs reach |t - centre| = {np.max(np.abs(x)):.4g} beyond the boundary L = {L:.4g}; "
            "the HSGP approximation does not hold there (choose a larger c or L)"
        )
    sqrt_eig = np.arange(1, int(m) + 1, dtype=float) * (np.pi / (2.0 * L))
    phi = np.sin(np.outer(x + L, sqrt_eig)) / np.sqrt(L)
    return phi, sqrt_eig


def hsgp_basis_data(
    name: str,
    t,
    m: int,
    *,
    L: float | None = None,
    c: float | None = None,
    centre: float | None = None,
    dims: tuple[str, str] | None = None,
):
    """Register the basis as ``pm.Data`` in the current model (so it is a compiled input).

    Creates ``f"{name}_phi"`` (T, m) and ``f"{name}_sqrt_eig"`` (m,). Both are data: a
    dataset with another window (another ``L``) needs no recompilation, and forecasting is
    ``pm.set_data`` / a new ``data`` dict with :func:`hsgp_basis` at the new times and the
    training ``centre`` and ``L``.

    Parameters
    ----------
    name : str
    t, m, L, c, centre
        As :func:`hsgp_basis`.
    dims : (str, str), optional
        e.g. ``("date", "hsgp_basis")``; a missing basis coordinate is added as ``0..m-1``.

    Returns
    -------
    phi, sqrt_eig : pytensor shared variables (``pm.Data``)
    """
    import pymc as pm

    phi, sqrt_eig = hsgp_basis(t, m, L=L, c=c, centre=centre)
    eig_dims = None
    if dims is not None:
        model = pm.modelcontext(None)
        if dims[1] not in model.coords:
            model.add_coord(dims[1], list(range(m)))
        eig_dims = (dims[1],)
    return (
        pm.Data(f"{name}_phi", phi, dims=dims),
        pm.Data(f"{name}_sqrt_eig", sqrt_eig, dims=eig_dims),
    )


# --------------------------------------------------------------------------------------
# Spectral densities and kernels (NumPy / JAX / PyTensor)
# --------------------------------------------------------------------------------------


def spectral_density(omega, eta, ell, kernel: str = "expquad", *, xp=np):
    """Spectral density ``S(omega)`` of a 1-D stationary kernel.

    Parameters
    ----------
    omega : array, angular frequency (radians per unit of ``t``), any shape
    eta : array, amplitude (marginal sd of the process), broadcastable with ``omega``
    ell : array, lengthscale (unit of ``t``), broadcastable with ``omega``
    kernel : {"expquad", "matern52"}
    xp : module or {"numpy", "jax", "pytensor"}
        Array module; the same formula serves NumPy, ``jax.numpy`` and ``pytensor.tensor``.

    Returns
    -------
    array, broadcast shape; ``int S(omega) d omega / (2 pi) = eta**2``.
    """
    kernel, xp = _check_kernel(kernel), _module(xp)
    if kernel == "expquad":
        return eta**2 * math.sqrt(2.0 * math.pi) * ell * xp.exp(-0.5 * (ell * omega) ** 2)
    a = 5.0 / ell**2
    return eta**2 * (16.0 / 3.0) * a**2.5 / (a + omega**2) ** 3


def sqrt_spectral_density(omega, eta, ell, kernel: str = "expquad", *, xp=np):
    """``sqrt(spectral_density(...))`` in closed form (finite gradients when ``S`` underflows).

    Same parameters and shapes as :func:`spectral_density`; returns ``eta * sqrt(S / eta**2)``.
    """
    kernel, xp = _check_kernel(kernel), _module(xp)
    if kernel == "expquad":
        return eta * (2.0 * math.pi) ** 0.25 * xp.sqrt(ell) * xp.exp(-0.25 * (ell * omega) ** 2)
    a = 5.0 / ell**2
    return eta * math.sqrt(16.0 / 3.0) * a**1.25 / (a + omega**2) ** 1.5


def kernel_covariance(t1, t2, eta: float, ell: float, kernel: str = "expquad") -> np.ndarray:
    """Exact kernel covariance matrix (NumPy).

    Parameters
    ----------
    t1 : array_like, shape (T1,)
    t2 : array_like, shape (T2,)
    eta, ell : float
    kernel : {"expquad", "matern52"}

    Returns
    -------
    np.ndarray, shape (T1, T2)
    """
    kernel = _check_kernel(kernel)
    r = np.abs(np.asarray(t1, dtype=float)[:, None] - np.asarray(t2, dtype=float)[None, :])
    if kernel == "expquad":
        return eta**2 * np.exp(-0.5 * (r / ell) ** 2)
    a = math.sqrt(5.0) * r / ell
    return eta**2 * (1.0 + a + a * a / 3.0) * np.exp(-a)


def hsgp_covariance(phi, sqrt_eig, eta: float, ell: float, kernel: str = "expquad") -> np.ndarray:
    """Covariance of the approximation, ``phi diag(S(sqrt_eig)) phi^T`` (NumPy), shape (T, T)."""
    phi = np.asarray(phi, dtype=float)
    s = spectral_density(np.asarray(sqrt_eig, dtype=float), eta, ell, kernel)
    return (phi * s) @ phi.T


def hsgp_max_error(t, m: int, c: float, ell, kernel: str = "expquad", centre: float | None = None) -> float:
    """Largest ``max_ij |K_hsgp - K_exact| / eta**2`` over the lengthscales ``ell`` (NumPy).

    Parameters
    ----------
    t : array_like, shape (T,)
        Grid to check on (the error is largest at the ends of the window).
    m, c : basis size and boundary factor
    ell : float or array_like of lengthscales (unit of ``t``)
    kernel : {"expquad", "matern52"}

    Returns
    -------
    float
        Error relative to the prior variance (scale-free: the error is ``eta**2`` times it).
    """
    t = np.asarray(t, dtype=float).ravel()
    phi, sqrt_eig = hsgp_basis(t, m, c=c, centre=centre)
    return max(
        float(np.max(np.abs(hsgp_covariance(phi, sqrt_eig, 1.0, e, kernel) - kernel_covariance(t, t, 1.0, e, kernel))))
        for e in np.atleast_1d(np.asarray(ell, dtype=float))
    )


def suggest_hsgp_params(
    x,
    ell_lower: float,
    ell_upper: float | None = None,
    kernel: str = "expquad",
) -> tuple[int, float]:
    """Basis size ``m`` and boundary factor ``c`` for a lengthscale range.

    Riutort-Mayol et al. (2022), section 4.2.4, with ``S`` the half-range of the inputs:
    ``c = max(a_c * ell_upper / S, 1.2)`` (large ``c`` for long lengthscales) and
    ``m = ceil(a_m * c / (ell_lower / S))`` (many functions for short ones), with
    ``(a_c, a_m) = (3.2, 1.75)`` for ExpQuad and ``(4.1, 2.65)`` for Matérn-5/2 — the
    constants of ``pymc.gp.hsgp_approx.approx_hsgp_hyperparams`` (which truncates ``m``;
    here it is rounded up).

    One addition: ``c >= 1 + b * ell_upper / S`` with ``b = 1.75`` (ExpQuad), ``2.25``
    (Matérn-5/2), i.e. a margin of ``b`` lengthscales between the data and the boundary.
    Without it the paper's ``c >= 1.2`` floor leaves too little room for short ranges: for
    lengthscales in [0.04, 0.2] S the covariance error at the window's ends is 0.14 eta^2;
    with it the error stays about 1% of eta^2 (see ``tests/test_hsgp.py``).

    Parameters
    ----------
    x : array_like
        Inputs, or a ``(min, max)`` pair; include the forecast horizon.
    ell_lower, ell_upper : float
        Plausible lengthscale range (e.g. the 2.5% and 97.5% prior quantiles), unit of ``x``;
        ``ell_upper`` defaults to ``ell_lower``.
    kernel : {"expquad", "matern52"}

    Returns
    -------
    m : int
    c : float
    """
    kernel = _check_kernel(kernel)
    x = np.asarray(x, dtype=float).ravel()
    S = 0.5 * (float(x.max()) - float(x.min()))
    if not S > 0:
        raise ValueError("x: inputs span no range")
    ell_upper = ell_lower if ell_upper is None else ell_upper
    if not 0 < ell_lower <= ell_upper:
        raise ValueError(f"lengthscales: need 0 < ell_lower <= ell_upper, got {ell_lower!r}, {ell_upper!r}")
    a_c, a_m = _RULES[kernel]
    c = max(a_c * ell_upper / S, _C_MIN, 1.0 + _MARGIN[kernel] * ell_upper / S)
    m = int(math.ceil(a_m * c * S / ell_lower - 1e-9))
    return m, float(c)


# --------------------------------------------------------------------------------------
# PyMC builders
# --------------------------------------------------------------------------------------


def _static_len(x) -> int:
    """Length of the last axis of a NumPy array, pm.Data container or tensor with static shape."""
    if hasattr(x, "get_value"):
        return int(np.shape(x.get_value())[-1])
    shape = getattr(getattr(x, "type", None), "shape", None)
    if shape is not None:
        if shape[-1] is None:
            raise ValueError("cannot infer the basis size m from a tensor without static shape; pass pm.Data")
        return int(shape[-1])
    return int(np.shape(x)[-1])


def _param(value, name: str, *, dims=None, shape=None):
    """A Prior becomes a named RV in the current model; numbers and tensors pass through."""
    import pytensor.tensor as pt

    if isinstance(value, Prior):
        if dims is not None:
            return value.create(name, dims=dims)
        if shape is not None:
            return value.create(name, shape=shape)
        return value.create(name)
    if isinstance(value, int | float | list | tuple | np.ndarray | np.number):
        return pt.as_tensor_variable(np.asarray(value, dtype=float))
    return value


def _add_basis_coord(basis_dim: str | None, m: int) -> None:
    if basis_dim is None:
        return
    import pymc as pm

    model = pm.modelcontext(None)
    if basis_dim not in model.coords:
        model.add_coord(basis_dim, list(range(m)))


def hsgp_process(
    name: str,
    phi,
    sqrt_eig,
    eta,
    ell,
    *,
    kernel: str = "expquad",
    dims: str | Sequence[str] | None = None,
    basis_dim: str | None = None,
    deterministic: bool = True,
):
    """One HSGP inside a ``pm.Model``, non-centred: ``f = phi @ (sqrt(S(sqrt_eig)) * z)``.

    Parameters
    ----------
    name : str
        Prefix of the variables: ``{name}_eta``, ``{name}_ell`` (when given as priors),
        ``{name}_z`` (m,) ~ N(0, 1); ``{name}`` is the Deterministic ``f`` (T,).
    phi : pm.Data or array, shape (T, m)
        Basis from :func:`hsgp_basis` / :func:`hsgp_basis_data`.
    sqrt_eig : pm.Data or array, shape (m,)
    eta, ell : Prior, float or tensor
        Amplitude (marginal sd of ``f``) and lengthscale (unit of the basis inputs). A
        :class:`mmm_jax.config.model.Prior` is created as ``{name}_eta`` / ``{name}_ell``.
    kernel : {"expquad", "matern52"}
    dims : str or tuple, optional
        Dims of ``f`` (e.g. ``"date"``).
    basis_dim : str, optional
        Coordinate name for ``z`` (added as ``0..m-1`` if missing).
    deterministic : bool
        Register ``f`` as ``pm.Deterministic(name, ...)``.

    Returns
    -------
    f : TensorVariable, shape (T,)
    """
    import pymc as pm
    import pytensor.tensor as pt

    kernel = _check_kernel(kernel)
    m = _static_len(sqrt_eig)
    eta_ = _param(eta, f"{name}_eta")
    ell_ = _param(ell, f"{name}_ell")
    _add_basis_coord(basis_dim, m)
    z = pm.Normal(f"{name}_z", 0.0, 1.0, dims=basis_dim) if basis_dim else pm.Normal(f"{name}_z", 0.0, 1.0, shape=m)
    w = sqrt_spectral_density(pt.as_tensor_variable(sqrt_eig), eta_, ell_, kernel, xp=pt) * z
    f = pt.dot(pt.as_tensor_variable(phi), w)
    if deterministic:
        f = pm.Deterministic(name, f, dims=dims)
    return f


def hsgp_hierarchical(
    name: str,
    phi,
    sqrt_eig,
    *,
    eta_global,
    ell_global,
    eta_delta,
    ell_delta=None,
    kernel: str = "expquad",
    delta_kernel: str | None = None,
    group_dim: str | None = None,
    n_groups: int | None = None,
    per_group_params: bool = False,
    zero_sum: bool = False,
    dims: Sequence[str] | None = None,
    basis_dim: str | None = None,
    deterministic: bool = True,
):
    """Hierarchical HSGP: ``f[t, c] = f_global(t) + delta_c(t)``, every term an HSGP.

    ``f_global`` is shared by all groups (channels); ``delta_c`` are independent HSGPs, one
    per group, on the same basis. Marginally ``var f[t, c] ~= eta_global**2 + eta_delta_c**2``
    and ``cov(f[t, c], f[t, c']) ~= eta_global**2`` for ``c != c'``: ``eta_delta`` is how much
    channels differ from the common path.

    Parameters
    ----------
    name : str
        Prefix. Variables: ``{name}_global_eta``, ``{name}_global_ell``, ``{name}_global_z``
        (m,); ``{name}_delta_eta``, ``{name}_delta_ell`` (scalar, or (C,) with
        ``per_group_params``), ``{name}_delta_z`` (m, C). Deterministics: ``{name}_global``
        (T,) and ``{name}`` (T, C).
    phi : pm.Data or array, shape (T, m)
    sqrt_eig : pm.Data or array, shape (m,)
    eta_global, ell_global : Prior, float or tensor
        Amplitude and lengthscale of the shared process.
    eta_delta : Prior, float or tensor
        Amplitude of the per-group deviations.
    ell_delta : Prior, float, tensor or None
        Lengthscale of the deviations; ``None`` reuses the global lengthscale.
    kernel : {"expquad", "matern52"}
    delta_kernel : str, optional
        Kernel of the deviations (default: ``kernel``).
    group_dim : str, optional
        Coordinate of the groups (e.g. ``"channel"``). Give ``group_dim`` or ``n_groups``.
    n_groups : int, optional
    per_group_params : bool
        If True, priors for ``eta_delta`` / ``ell_delta`` are created with one value per group
        (their own amplitude and lengthscale); otherwise one value shared by all groups.
        Tensors of shape () or (C,) are used as given either way.
    zero_sum : bool
        If True, the deviations' coefficients ``{name}_delta_z`` are a ``pm.ZeroSumNormal``
        over the groups, so (with deviation amplitude and lengthscale shared by the groups)
        ``sum_c delta_c(t) = 0``: ``f_global`` is the groups' average and the split between
        the shared path and the deviations is identified by the data, not only by the priors
        (no ridge ``f_global + s, delta_c - s`` in the posterior). Each deviation's variance is
        then ``eta_delta**2 * (1 - 1 / C)``. Needs ``per_group_params=False`` and scalar
        ``eta_delta`` / ``ell_delta``.
    dims : (str, str), optional
        Dims of ``f``, e.g. ``("date", "channel")``.
    basis_dim : str, optional
        Coordinate name for the basis axis of the ``z`` variables.
    deterministic : bool
        Register ``{name}_global`` and ``{name}``.

    Returns
    -------
    f : TensorVariable, shape (T, C)
    """
    import pymc as pm
    import pytensor.tensor as pt

    kernel = _check_kernel(kernel)
    delta_kernel = _check_kernel(delta_kernel or kernel)
    m = _static_len(sqrt_eig)
    if group_dim is not None:
        n = len(pm.modelcontext(None).coords[group_dim])
        if n_groups is not None and n_groups != n:
            raise ValueError(f"n_groups={n_groups} but coordinate {group_dim!r} has {n} labels")
        n_groups = n
    if n_groups is None or n_groups < 1:
        raise ValueError("give group_dim (a model coordinate) or n_groups >= 1")

    f_global = hsgp_process(
        f"{name}_global",
        phi,
        sqrt_eig,
        eta_global,
        ell_global,
        kernel=kernel,
        dims=dims[0] if dims is not None else None,
        basis_dim=basis_dim,
        deterministic=deterministic,
    )
    if ell_delta is None:
        ell_delta = pm.modelcontext(None)[f"{name}_global_ell"] if isinstance(ell_global, Prior) else ell_global
    group_kw = {}
    if per_group_params:
        group_kw = {"dims": group_dim} if group_dim is not None else {"shape": n_groups}
    eta_d = _param(eta_delta, f"{name}_delta_eta", **group_kw)
    ell_d = _param(ell_delta, f"{name}_delta_ell", **group_kw)
    if zero_sum and per_group_params:
        raise ValueError("zero_sum needs deviation amplitude and lengthscale shared by the groups (per_group_params=False)")
    if zero_sum and any(getattr(v, "ndim", 0) > 0 for v in (eta_d, ell_d)):
        raise ValueError("zero_sum needs scalar eta_delta and ell_delta")
    shape_kw = {"dims": (basis_dim, group_dim)} if basis_dim is not None and group_dim is not None \
        else {"shape": (m, n_groups)}
    if zero_sum:
        z = pm.ZeroSumNormal(f"{name}_delta_z", sigma=1.0, n_zerosum_axes=1, **shape_kw)
    else:
        z = pm.Normal(f"{name}_delta_z", 0.0, 1.0, **shape_kw)
    sqrt_eig_t = pt.as_tensor_variable(sqrt_eig)
    # (m, 1) frequencies against () or (C,) parameters -> (m, 1) or (m, C) weights.
    sd = sqrt_spectral_density(sqrt_eig_t[:, None], eta_d, ell_d, delta_kernel, xp=pt)
    delta = pt.dot(pt.as_tensor_variable(phi), sd * z)
    f = f_global[:, None] + delta
    if deterministic:
        f = pm.Deterministic(name, f, dims=dims)
    return f


def positive_multiplier(f, link: str = "exp", *, xp=None):
    """Map a zero-mean process to a positive multiplier that equals 1 at ``f = 0``.

    * ``"exp"`` (default): ``exp(f)``. ``f`` is the log-multiplier, so ``eta`` is the sd of
      the log (``eta = 0.2``: about +-20%), the median multiplier is 1 (the mean is
      ``exp(eta**2 / 2)``), and products factorise:
      ``exp(f_global + delta_c) = exp(f_global) * exp(delta_c)`` — the hierarchical
      decomposition is one of relative changes. Grows exponentially for large ``f``.
    * ``"softplus"``: ``softplus(2 ln2 f) / ln2``: also 1 with slope 1 at ``f = 0`` (so
      ``eta`` means the same for small ``f``), but only linear growth (``~2 f``) for large
      ``f``: safer with wide amplitude priors; it does not factorise.

    Parameters
    ----------
    f : array or tensor, any shape
    link : {"exp", "softplus"}
    xp : module or name, optional
        Default: from ``f`` (PyTensor variable, JAX array, else NumPy).

    Returns
    -------
    array or tensor, shape of ``f``, > 0
    """
    if link not in LINKS:
        raise ValueError(f"link: {link!r} is not available; allowed: {list(LINKS)}")
    xp = _infer_module(f) if xp is None else _module(xp)
    if link == "exp":
        return xp.exp(f)
    ln2 = math.log(2.0)
    x = 2.0 * ln2 * f
    if xp is np:
        sp = np.logaddexp(0.0, x)
    elif hasattr(xp, "softplus"):  # pytensor.tensor
        sp = xp.softplus(x)
    else:  # jax.numpy
        sp = xp.logaddexp(0.0, x)
    return sp / ln2


def hsgp_eval(phi, sqrt_eig, eta, ell, z, kernel: str = "expquad", *, xp=None):
    """Evaluate an HSGP for given parameters (NumPy or JAX), e.g. posterior draws at new times.

    Parameters
    ----------
    phi : array, shape (T, m)
        Basis at the times wanted (for forecasts: training ``centre`` and ``L``).
    sqrt_eig : array, shape (m,)
    eta, ell : array, shape () or (C,)
    z : array, shape (m,) or (m, C)
    kernel : {"expquad", "matern52"}
    xp : module or name, optional
        Default: ``jax.numpy`` if ``z`` is a JAX array (works under ``jit`` / ``vmap``), else NumPy.

    Returns
    -------
    array, shape (T,) or (T, C)
    """
    xp = _infer_module(z) if xp is None else _module(xp)
    sqrt_eig = xp.asarray(sqrt_eig)
    if xp.ndim(z) == 2:
        sqrt_eig = sqrt_eig[:, None]
    return xp.asarray(phi) @ (sqrt_spectral_density(sqrt_eig, eta, ell, kernel, xp=xp) * z)


# --------------------------------------------------------------------------------------
# Spec
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HSGPSpec:
    """What defines one HSGP term (plain data, for a model configuration).

    Defaults suit time scaled to [0, 1] over the training window: ``InverseGamma(5, 1)`` puts
    95% of the lengthscale between 0.10 and 0.62 of the window (15 to 96 weeks of 156), and
    ``m = 36, c = 4`` (what :func:`suggest_hsgp_params` gives for that range, rounded up)
    approximate the ExpQuad covariance there within 0.005 eta^2; ``L = 2`` leaves room for
    forecasts. The amplitude ``HalfNormal(0.2)`` is about +-20% for a log-multiplier.

    Parameters
    ----------
    m : int
        Basis size.
    c : float
        Boundary factor (> 1).
    kernel : {"expquad", "matern52"}
    ell_prior, eta_prior : Prior
    """

    m: int = 36
    c: float = 4.0
    kernel: str = "expquad"
    ell_prior: Prior = field(default_factory=lambda: Prior("InverseGamma", alpha=5.0, beta=1.0))
    eta_prior: Prior = field(default_factory=lambda: Prior("HalfNormal", sigma=0.2))

    def __post_init__(self):
        if not (isinstance(self.m, int) and not isinstance(self.m, bool) and self.m >= 1):
            raise ConfigError(f"hsgp.m: must be a positive integer, got {self.m!r}")
        if not (isinstance(self.c, int | float) and self.c > 1.0):
            raise ConfigError(f"hsgp.c: must be a number > 1 (>= 1.2 recommended), got {self.c!r}")
        if str(self.kernel).lower() not in KERNELS:
            raise ConfigError(f"hsgp.kernel: {self.kernel!r} is not available; allowed: {list(KERNELS)}")
        for key in ("ell_prior", "eta_prior"):
            if not isinstance(getattr(self, key), Prior):
                object.__setattr__(self, key, Prior.from_dict(getattr(self, key), key=f"hsgp.{key}"))

    def basis(self, t, centre: float | None = None, L: float | None = None):
        """:func:`hsgp_basis` with this spec's ``m`` and ``c`` (or an explicit training ``L``)."""
        if L is not None:
            return hsgp_basis(t, self.m, L=L, centre=centre)
        return hsgp_basis(t, self.m, c=self.c, centre=centre)

    @classmethod
    def suggest(cls, x, ell_lower: float, ell_upper: float | None = None, kernel: str = "expquad", **priors: Any):
        """A spec with ``m`` and ``c`` from :func:`suggest_hsgp_params`."""
        m, c = suggest_hsgp_params(x, ell_lower, ell_upper, kernel)
        return cls(m=m, c=c, kernel=kernel, **priors)

    def to_dict(self) -> dict[str, Any]:
        return {
            "m": self.m,
            "c": self.c,
            "kernel": self.kernel,
            "ell_prior": self.ell_prior.to_dict(),
            "eta_prior": self.eta_prior.to_dict(),
        }

    @classmethod
    def from_dict(cls, d) -> HSGPSpec:
        if isinstance(d, HSGPSpec):
            return d
        d = dict(d)
        unknown = set(d) - {"m", "c", "kernel", "ell_prior", "eta_prior"}
        if unknown:
            raise ConfigError(f"hsgp: unknown keys {sorted(unknown)}; allowed: m, c, kernel, ell_prior, eta_prior")
        return cls(**d)
