"""BlackJAX NUTS with Stan-style window adaptation, driven directly.

PyMC 5.28's ``nuts_sampler="blackjax"`` path breaks on BlackJAX 1.7, so we compose the
warm-up from BlackJAX's own pieces — ``dual_averaging_adaptation`` (step size),
``mass_matrix_adaptation`` (Welford, diagonal or dense) and Stan's window ``build_schedule``
— as an ``(init, update, final)`` triple run inside one ``lax.scan`` together with the
sampling phase. :func:`nuts_chain` is written for one chain; chains come from ``pmap`` (one
per device, no lock-step) or ``vmap``, each with its own step size and mass matrix — the
same pure function the batch engine vmaps over brands.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..compile import LogDensity, initial_params
from .base import SampleResult, SamplerConfig, bind_data, resolve_chain_method
from .progress import ProgressClock, scan_with_progress

__all__ = ["AdaptState", "window_adaptation", "sample_blackjax", "nuts_chain", "chain_inputs"]


class AdaptState(NamedTuple):
    """Warm-up state of one chain."""

    da_state: tuple
    mm_state: tuple
    step_size: jax.Array
    inverse_mass_matrix: jax.Array


def window_adaptation(target_accept: float, dense_mass: bool):
    """Stan's window adaptation as ``(init, update, final)``.

    ``init(n_dims) -> AdaptState``; ``update(state, stage, is_window_end, position_flat,
    acceptance) -> AdaptState``; ``final(state) -> (step_size, inverse_mass_matrix)``.
    """
    from blackjax.adaptation.mass_matrix import mass_matrix_adaptation
    from blackjax.adaptation.step_size import dual_averaging_adaptation

    mm_init, mm_update, mm_final = mass_matrix_adaptation(is_diagonal_matrix=not dense_mass)
    da_init, da_update, da_final = dual_averaging_adaptation(target_accept)

    def init(n_dims: int, initial_step_size: float = 1.0) -> AdaptState:
        mm = mm_init(n_dims)
        return AdaptState(da_init(initial_step_size), mm, jnp.asarray(initial_step_size), mm.inverse_mass_matrix)

    def update(state: AdaptState, stage, is_window_end, position_flat, acceptance) -> AdaptState:
        da = da_update(state.da_state, acceptance)
        # slow windows (stage 1) also accumulate the covariance
        mm = jax.lax.cond(stage == 1, lambda m: mm_update(m, position_flat), lambda m: m, state.mm_state)
        step = jnp.exp(da.log_step_size)
        new = AdaptState(da, mm, step, state.inverse_mass_matrix)

        def end_window(s: AdaptState) -> AdaptState:
            m = mm_final(s.mm_state)
            d = da_init(da_final(s.da_state))
            return AdaptState(d, m, jnp.exp(d.log_step_size), m.inverse_mass_matrix)

        return jax.lax.cond(is_window_end, end_window, lambda s: s, new)

    def final(state: AdaptState):
        return da_final(state.da_state), state.inverse_mass_matrix

    return init, update, final


def nuts_chain(logdensity, init_position, key, cfg: SamplerConfig, progress: bool = True,
               clock: ProgressClock | None = None, on_step=None):
    """Warm up and sample ONE NUTS chain; ``vmap``/``pmap`` it for chains, brands or both.

    Parameters
    ----------
    logdensity : callable
        ``params (pytree) -> scalar`` log-density on the unconstrained space.
    init_position : pytree
        Starting point (unconstrained).
    key : PRNG key
    cfg : SamplerConfig
        ``warmup``, ``draws``, ``target_accept``, ``max_tree_depth``, ``dense_mass``.
    progress, clock, on_step
        Progress reporting, see :func:`mmm_jax.inference.progress.scan_with_progress`.

    Returns
    -------
    positions : pytree, leading (draws,) axis
    stats : dict of (draws,) arrays
    tuned : (step_size (), inverse_mass_matrix (d,) or (d, d))

    Warm-up and sampling are one ``lax.scan`` so the NUTS kernel is compiled once: during
    warm-up the adaptation state is updated after every transition and frozen at its end.
    """
    import blackjax
    from blackjax.adaptation.window_adaptation import build_schedule

    kernel = blackjax.nuts.build_kernel()
    a_init, a_update, a_final = window_adaptation(cfg.target_accept, cfg.dense_mass)
    n_dims = ravel_pytree(init_position)[0].shape[0]
    state = blackjax.nuts.init(init_position, logdensity)
    adapt = a_init(n_dims)

    n_warm, n_total = cfg.warmup, cfg.warmup + cfg.draws
    with jax.ensure_compile_time_eval():
        schedule = np.zeros((n_total, 2), dtype=np.int64)
        if n_warm > 0:
            schedule[:n_warm] = np.asarray(build_schedule(n_warm))
    stage = jnp.asarray(schedule[:, 0])
    window_end = jnp.asarray(schedule[:, 1], dtype=bool)

    def finalize(ad: AdaptState) -> AdaptState:
        step_size, imm = a_final(ad)
        return ad._replace(step_size=step_size, inverse_mass_matrix=imm)

    if n_warm == 0:
        adapt = finalize(adapt)

    def step(carry, xs):
        st, ad = carry
        i, k = xs
        st, info = kernel(k, st, logdensity, ad.step_size, ad.inverse_mass_matrix, cfg.max_tree_depth)
        ad = jax.lax.cond(
            i < n_warm,
            lambda a: a_update(a, stage[i], window_end[i], ravel_pytree(st.position)[0], info.acceptance_rate),
            lambda a: a,
            ad,
        )
        ad = jax.lax.cond(i == n_warm - 1, finalize, lambda a: a, ad)
        stats = {
            "diverging": info.is_divergent,
            "energy": info.energy,
            "n_steps": info.num_integration_steps,
            "tree_depth": info.num_trajectory_expansions,
            "acceptance_rate": info.acceptance_rate,
            "lp": st.logdensity,
            "step_size": ad.step_size,
        }
        return (st, ad), (st.position, stats)

    keys = jax.random.split(key, n_total)
    (state, adapt), (positions, stats) = scan_with_progress(
        step, (state, adapt), (jnp.arange(n_total), keys), n_total, "NUTS", progress, clock, marks={"warmup": n_warm},
        on_step=on_step,
    )
    positions = jax.tree.map(lambda x: x[n_warm:], positions)
    stats = {k: v[n_warm:] for k, v in stats.items()}
    return positions, stats, (adapt.step_size, adapt.inverse_mass_matrix)


def chain_inputs(ld: LogDensity, key: jax.Array, cfg: SamplerConfig):
    """Per-chain starting points and keys of one fit, from its key (pure; ``vmap`` over brands).

    Returns ``(init, keys)``: init a dict of (chains, ...) unconstrained arrays, keys (chains,).
    The single fit and the batch engine derive both the same way, so brand ``k`` of a batch
    starts exactly where a single fit of brand ``k`` with the same key would.
    """
    key_init, key_run = jax.random.split(key)
    return initial_params(ld, key_init, cfg.chains, cfg.jitter), jax.random.split(key_run, cfg.chains)


def sample_blackjax(ld: LogDensity, data: dict | None, *, key: jax.Array, config: SamplerConfig) -> SampleResult:
    """Run :func:`nuts_chain` for every chain: ``pmap`` (one chain per device) or ``vmap``."""
    logdensity = bind_data(ld, data)
    init, keys = chain_inputs(ld, key, config)
    chain_method = resolve_chain_method(config)
    if chain_method == "sequential":
        chain_method = "vectorized"

    clock = ProgressClock()

    def one(pos, k):
        return nuts_chain(logdensity, pos, k, config, config.progress, clock)

    t0 = time.perf_counter()
    if chain_method == "parallel":
        devices = jax.local_devices()[: config.chains]
        positions, stats, _ = jax.pmap(one, devices=devices)(init, keys)
    else:
        positions, stats, _ = jax.jit(jax.vmap(one))(init, keys)
    jax.block_until_ready(positions)
    t2 = time.perf_counter()
    t1 = clock.get("warmup", float("nan"))
    samples = {k: np.asarray(v) for k, v in positions.items()}
    stats = {k: np.asarray(v) for k, v in stats.items()}
    stats["diverging"] = stats["diverging"].astype(bool)
    return SampleResult(
        samples=samples,
        stats=stats,
        timings={"warmup": t1 - t0, "sampling": t2 - t1, "total": t2 - t0},
        sampler="blackjax",
        config=config._replace(chain_method=chain_method),
    )
