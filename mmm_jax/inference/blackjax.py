"""BlackJAX NUTS with Stan-style window adaptation, driven directly.

PyMC 5.28's ``nuts_sampler="blackjax"`` path breaks on BlackJAX 1.7, so we compose the
warm-up from BlackJAX's own pieces — ``dual_averaging_adaptation`` (step size),
``mass_matrix_adaptation`` (Welford, diagonal or dense) and Stan's window ``build_schedule``
— as an ``(init, update, final)`` triple run inside one ``lax.scan``. Chains are a ``vmap``
inside the scan body, so each chain keeps its own step size and mass matrix; the same
pure functions are what the batch engine vmaps over brands.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..compile import LogDensity, initial_params
from .base import SampleResult, SamplerConfig, bind_data
from .progress import ProgressClock, scan_with_progress

__all__ = ["AdaptState", "window_adaptation", "sample_blackjax", "nuts_chains"]


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


def nuts_chains(logdensity, init_positions, key, cfg: SamplerConfig, progress: bool = True,
                clock: ProgressClock | None = None):
    """Warm up and sample ``cfg.chains`` NUTS chains (vmapped) for one log-density.

    Parameters
    ----------
    logdensity : callable
        ``params (pytree) -> scalar`` log-density on the unconstrained space.
    init_positions : pytree
        Starting points with a leading ``(chains,)`` axis.
    key : PRNG key

    Returns
    -------
    positions : pytree with leading (chains, draws) axes
    info : dict of (chains, draws) arrays
    tuned : (step_size (chains,), inverse_mass_matrix (chains, d[, d]))
    """
    import blackjax
    from blackjax.adaptation.window_adaptation import build_schedule

    kernel = blackjax.nuts.build_kernel()
    a_init, a_update, a_final = window_adaptation(cfg.target_accept, cfg.dense_mass)
    example = jax.tree.map(lambda x: x[0], init_positions)
    flat0, unravel = ravel_pytree(example)
    n_dims = flat0.shape[0]

    def init_chain(pos):
        return blackjax.nuts.init(pos, logdensity), a_init(n_dims)

    states, adapt = jax.vmap(init_chain)(init_positions)
    key_warm, key_draw = jax.random.split(key)

    def warm_step(carry, xs):
        states, adapt = carry
        (stage, is_end), keys = xs

        def one(k, st, ad):
            st, info = kernel(k, st, logdensity, ad.step_size, ad.inverse_mass_matrix, cfg.max_tree_depth)
            ad = a_update(ad, stage, is_end, ravel_pytree(st.position)[0], info.acceptance_rate)
            return st, ad, info.is_divergent

        states, adapt, div = jax.vmap(one)(keys, states, adapt)
        return (states, adapt), div

    if cfg.warmup > 0:
        with jax.ensure_compile_time_eval():
            schedule = np.asarray(build_schedule(cfg.warmup))
        xs = ((jnp.asarray(schedule[:, 0]), jnp.asarray(schedule[:, 1], dtype=bool)),
              jax.random.split(key_warm, (cfg.warmup, cfg.chains)))
        (states, adapt), _ = scan_with_progress(warm_step, (states, adapt), xs, cfg.warmup, "warmup", progress, clock)
    step_size, inv_mass = jax.vmap(a_final)(adapt)

    def draw_step(states, keys):
        def one(k, st, eps, imm):
            st, info = kernel(k, st, logdensity, eps, imm, cfg.max_tree_depth)
            stats = {
                "diverging": info.is_divergent,
                "energy": info.energy,
                "n_steps": info.num_integration_steps,
                "tree_depth": info.num_trajectory_expansions,
                "acceptance_rate": info.acceptance_rate,
                "lp": st.logdensity,
            }
            return st, (st.position, stats)

        return jax.vmap(one)(keys, states, step_size, inv_mass)

    keys = jax.random.split(key_draw, (cfg.draws, cfg.chains))
    _, (positions, stats) = scan_with_progress(draw_step, states, keys, cfg.draws, "sampling", progress, clock)
    # scan stacks draws first: (draws, chains, ...) -> (chains, draws, ...)
    positions = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), positions)
    stats = {k: jnp.swapaxes(v, 0, 1) for k, v in stats.items()}
    stats["step_size"] = jnp.broadcast_to(step_size[:, None], stats["lp"].shape)
    return positions, stats, (step_size, inv_mass)


def sample_blackjax(ld: LogDensity, data: dict | None, *, key: jax.Array, config: SamplerConfig) -> SampleResult:
    """Run :func:`nuts_chains` on a compiled model: one ``jit``, chains vmapped."""
    logdensity = bind_data(ld, data)
    key_init, key_run = jax.random.split(key)
    init = initial_params(ld, key_init, config.chains, config.jitter)

    clock = ProgressClock()
    t0 = time.perf_counter()
    run = jax.jit(lambda init, k: nuts_chains(logdensity, init, k, config, config.progress, clock))
    positions, stats, _ = run(init, key_run)
    jax.block_until_ready(positions)
    t2 = time.perf_counter()
    t1 = clock.get("warmup", t0)
    samples = {k: np.asarray(v) for k, v in positions.items()}
    stats = {k: np.asarray(v) for k, v in stats.items()}
    stats["diverging"] = stats["diverging"].astype(bool)
    return SampleResult(
        samples=samples,
        stats=stats,
        timings={"warmup": t1 - t0, "sampling": t2 - t1, "total": t2 - t0},
        sampler="blackjax",
        config=config._replace(chain_method="vectorized"),
    )
