"""BlackJAX NUTS with Stan-style window adaptation, driven directly.

PyMC 5.28's ``nuts_sampler="blackjax"`` path breaks on BlackJAX 1.7, so we compose the
warm-up from BlackJAX's own pieces — ``dual_averaging_adaptation`` (step size),
``mass_matrix_adaptation`` (Welford, diagonal or dense) and Stan's window ``build_schedule``
— as an ``(init, update, final)`` triple run in the same loop as the sampling phase. These are
the pieces ``blackjax.adaptation.window_adaptation.base`` composes; ``base`` itself is deprecated
in BlackJAX 1.7.1, and its successors (``blackjax.window_adaptation``,
``blackjax.staged_adaptation``) run the whole warm-up in one ``run`` call, which cannot be
resumed in chunks, report progress, or share one loop (and one compiled program) with sampling.
:func:`nuts_init` / :func:`nuts_steps` are written for one chain and run it in chunks of
iterations (:mod:`mmm_jax.inference.chunked`: memory stays bounded on CPU devices); chains
come from ``pmap`` (one per device, no lock-step) or ``vmap``, each with its own step size and
mass matrix — the same pure functions the batch engine vmaps over brands.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..compile import LogDensity, initial_params
from .base import SampleResult, SamplerConfig, data_inputs, resolve_chain_method
from .chunked import CHUNK_ITERATIONS, by_device, from_devices, iterate, pmap_chains, run_chunked
from .progress import report_progress
from .until import StopRule
from .warmstart import WarmStart

__all__ = ["AdaptState", "ChainCarry", "window_adaptation", "sample_blackjax", "nuts_init", "nuts_steps", "nuts_chain",
           "tuned_of", "chain_inputs"]


class AdaptState(NamedTuple):
    """Warm-up state of one chain."""

    da_state: tuple
    mm_state: tuple
    step_size: jax.Array
    inverse_mass_matrix: jax.Array


def window_adaptation(target_accept: float, dense_mass: bool):
    """Stan's window adaptation as ``(init, update, final)``.

    ``init(n_dims, initial_step_size=1.0, inverse_mass_matrix=None) -> AdaptState``;
    ``update(state, stage, is_window_end, position_flat, acceptance) -> AdaptState``;
    ``final(state) -> (step_size, inverse_mass_matrix)``. A given ``inverse_mass_matrix`` (a
    refresh) is used until the first slow window ends and replaces it.
    """
    from blackjax.adaptation.mass_matrix import mass_matrix_adaptation
    from blackjax.adaptation.step_size import dual_averaging_adaptation

    mm_init, mm_update, mm_final = mass_matrix_adaptation(is_diagonal_matrix=not dense_mass)
    da_init, da_update, da_final = dual_averaging_adaptation(target_accept)

    def init(n_dims: int, initial_step_size=1.0, inverse_mass_matrix=None) -> AdaptState:
        mm = mm_init(n_dims)
        imm = mm.inverse_mass_matrix if inverse_mass_matrix is None else jnp.asarray(inverse_mass_matrix)
        step = jnp.asarray(initial_step_size, dtype=jnp.result_type(float))
        return AdaptState(da_init(step), mm, step, imm)

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


class ChainCarry(NamedTuple):
    """Everything one NUTS chain carries from one chunk of iterations to the next."""

    state: object  # blackjax HMCState: position, log-density, gradient
    adapt: AdaptState
    key: jax.Array  # the chain's key: iteration i draws with jax.random.split(key, warmup + draws)[i]


def _schedule(cfg: SamplerConfig) -> np.ndarray:
    """Stan's window schedule, ``(warmup + draws, 2)``: (stage, is_window_end) per iteration."""
    from blackjax.adaptation.window_adaptation import build_schedule

    out = np.zeros((cfg.warmup + cfg.draws, 2), dtype=np.int64)
    if cfg.warmup > 0:
        with jax.ensure_compile_time_eval():
            out[: cfg.warmup] = np.asarray(build_schedule(cfg.warmup))
    return out


def nuts_init(logdensity, init_position, key, cfg: SamplerConfig, step_size=None,
              inverse_mass_matrix=None) -> ChainCarry:
    """Start ONE chain at ``init_position`` (unconstrained pytree) with its own adaptation state;
    ``step_size`` and ``inverse_mass_matrix`` (diagonal, ``(d,)``) start it from an earlier
    fit's adaptation (a refresh: the warm-up starts from them)."""
    import blackjax

    a_init, _, a_final = window_adaptation(cfg.target_accept, cfg.dense_mass)
    n_dims = ravel_pytree(init_position)[0].shape[0]
    adapt = a_init(n_dims) if step_size is None else a_init(n_dims, step_size, inverse_mass_matrix)
    if cfg.warmup == 0:
        step_size, imm = a_final(adapt)
        adapt = adapt._replace(step_size=step_size, inverse_mass_matrix=imm)
    return ChainCarry(blackjax.nuts.init(init_position, logdensity), adapt, key)


def nuts_steps(logdensity, carry: ChainCarry, start, n, cfg: SamplerConfig, size: int = CHUNK_ITERATIONS,
               on_step=None):
    """Iterations ``start .. start + n - 1`` of ONE chain (warm-up first, then draws).

    ``start`` and ``n <= size`` may be traced, so one compiled program serves every chunk.
    During warm-up the adaptation state is updated after every transition and frozen at its
    end. ``on_step(steps_done, warmup + draws)`` is a host hook called about 50 times per run.

    Returns ``(carry, (positions, stats))``: pytree and dict of ``(size, ...)`` buffers whose
    first ``n`` rows hold these iterations.
    """
    import blackjax

    kernel = blackjax.nuts.build_kernel()
    _, a_update, a_final = window_adaptation(cfg.target_accept, cfg.dense_mass)
    n_warm, n_total = cfg.warmup, cfg.warmup + cfg.draws
    schedule = _schedule(cfg)
    stage, window_end = jnp.asarray(schedule[:, 0]), jnp.asarray(schedule[:, 1], dtype=bool)
    keys = jax.random.split(carry.key, n_total)

    def finalize(ad: AdaptState) -> AdaptState:
        step_size, imm = a_final(ad)
        return ad._replace(step_size=step_size, inverse_mass_matrix=imm)

    def step(c, i):
        st, ad = c
        st, info = kernel(keys[i], st, logdensity, ad.step_size, ad.inverse_mass_matrix, cfg.max_tree_depth)
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
        if on_step is not None:
            report_progress(i, n_total, on_step, marks=(n_warm,))
        return (st, ad), (st.position, stats)

    (st, ad), buf = iterate(step, (carry.state, carry.adapt), start, n, size)
    return ChainCarry(st, ad, carry.key), buf


def nuts_chain(logdensity, init_position, key, cfg: SamplerConfig, on_step=None):
    """Warm up and sample ONE NUTS chain in one program; ``vmap``/``pmap`` it for chains.

    For long runs on CPU devices prefer :func:`nuts_init` + :func:`nuts_steps` in chunks (as
    :func:`sample_blackjax` and the batch engine do): the same chain, bit for bit when the
    chunks start from the same compiled ``nuts_init`` (an init fused into this one program
    rounds its first gradient differently).

    Returns ``(positions, stats, tuned)``: pytree and dict with a leading ``(draws,)`` axis,
    tuned = ``(step_size (), inverse_mass_matrix (d,) or (d, d))``.
    """
    n_total = cfg.warmup + cfg.draws
    carry = nuts_init(logdensity, init_position, key, cfg)
    carry, (positions, stats) = nuts_steps(logdensity, carry, 0, n_total, cfg, size=n_total, on_step=on_step)
    tail = lambda x: x[cfg.warmup:]  # noqa: E731
    return jax.tree.map(tail, positions), {k: tail(v) for k, v in stats.items()}, tuned_of(carry)


def tuned_of(carry: ChainCarry):
    """``(step_size, inverse_mass_matrix)`` a chain ended its warm-up with."""
    return carry.adapt.step_size, carry.adapt.inverse_mass_matrix


def chain_inputs(ld: LogDensity, key: jax.Array, cfg: SamplerConfig):
    """Per-chain starting points and keys of one fit, from its key (pure; ``vmap`` over brands).

    Returns ``(init, keys)``: init a dict of (chains, ...) unconstrained arrays, keys (chains,).
    The single fit and the batch engine derive both the same way, so brand ``k`` of a batch
    starts exactly where a single fit of brand ``k`` with the same key would.
    """
    key_init, key_run = jax.random.split(key)
    return initial_params(ld, key_init, cfg.chains, cfg.jitter), jax.random.split(key_run, cfg.chains)


def sample_blackjax(ld: LogDensity, data: dict | None, *, key: jax.Array, config: SamplerConfig,
                    start: WarmStart | None = None) -> SampleResult:
    """NUTS on every chain, ``pmap`` (one chain per device) or ``vmap``, in chunks of
    :data:`~mmm_jax.inference.chunked.CHUNK_ITERATIONS` iterations (see
    :mod:`mmm_jax.inference.chunked`); the data are an argument of the compiled programs.
    ``timings["warmup"]`` ends when the last warm-up chunk returns (compilation included).
    ``start``: a warm start (see :func:`mmm_jax.inference.sample`); ``config.until``: draw until
    converged (iteration ``i`` draws with the same key whatever the stopping point)."""
    data = data_inputs(ld, data)
    init, keys = chain_inputs(ld, key, config)
    if start is not None:
        init = {k: jnp.asarray(v) for k, v in start.positions.items()}
    chain_method = resolve_chain_method(config)
    if chain_method == "sequential":
        chain_method = "vectorized"
    n_draws = config.draws if config.until is None else config.max_draws
    run_cfg = config._replace(draws=n_draws)
    warm = start is not None
    tuned0 = (jnp.zeros(config.chains), jnp.zeros((config.chains, 1))) if not warm else (
        jnp.asarray(start.step_size), jnp.asarray(start.inverse_mass_matrix))

    def init_one(pos, k, step_size, imm, d):
        logdensity = lambda p: ld.logp(p, d)  # noqa: E731
        return nuts_init(logdensity, pos, k, run_cfg, *((step_size, imm) if warm else ()))

    size = CHUNK_ITERATIONS

    def steps_one(carry, start_, n, d):
        return nuts_steps(lambda p: ld.logp(p, d), carry, start_, n, run_cfg, size)

    mapped = (init, keys, *tuned0)
    if chain_method == "parallel":  # chains over devices; several on a device run one after another
        init_fn = pmap_chains(init_one, config.chains, 4, 5)
        steps_fn = pmap_chains(steps_one, config.chains, 1, 4)
        mapped = by_device(mapped, config.chains)
    else:
        init_fn = jax.jit(jax.vmap(init_one, in_axes=(0, 0, 0, 0, None)))
        steps_fn = jax.jit(jax.vmap(steps_one, in_axes=(0, None, None, None)))
    to_chains = (lambda t: from_devices(t, config.chains)) if chain_method == "parallel" else (lambda t: t)
    rule = None
    if config.until is not None:
        rule = StopRule(config.until, config.draws, n_draws, lambda out: to_chains(out[0]))

    bar = None
    if config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.warmup + n_draws, desc=f"NUTS ({config.chains} chains, {chain_method})", unit="it")
    t0 = time.perf_counter()
    try:
        draw_axis = 2 if chain_method == "parallel" else 1
        last, (positions, stats), t1 = run_chunked(lambda c, s_, n: steps_fn(c, s_, n, data), init_fn(*mapped, data),
                                                   config.warmup, n_draws, draw_axis=draw_axis, size=size, bar=bar,
                                                   stop=rule, first_check=config.draws)
        positions, stats, adapt = to_chains((positions, stats, jax.device_get(last.adapt)))
    finally:
        if bar is not None:
            bar.close()
    t2 = time.perf_counter()
    samples = {k: np.asarray(v) for k, v in positions.items()}
    stats = {k: np.asarray(v) for k, v in stats.items()}
    stats["diverging"] = stats["diverging"].astype(bool)
    imm = np.asarray(adapt.inverse_mass_matrix)
    return SampleResult(
        samples=samples,
        stats=stats,
        timings={"warmup": t1 - t0, "sampling": t2 - t1, "total": t2 - t0},
        sampler="blackjax",
        config=config._replace(chain_method=chain_method),
        stopped=None if rule is None else rule.summary(samples),
        tuned=(np.asarray(adapt.step_size), imm) if imm.ndim == 2 else None,
    )
