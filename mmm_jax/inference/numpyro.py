"""NumPyro NUTS on a compiled :class:`~mmm_jax.compile.LogDensity`.

NumPyro's NUTS (``numpyro.infer.hmc.hmc``: its Stan-style window adaptation and its trees) is
driven here in chunks of :data:`CHUNK_ITERATIONS` iterations, one compiled program serving every
chunk, instead of ``MCMC.run``'s single program for the whole run: on CPU devices memory then
stays bounded by one chunk (see :mod:`mmm_jax.inference.chunked`). The kernel state, adaptation
included, is carried from chunk to chunk, so the draws are those of one long run and the same
seed gives the same draws.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from ..compile import LogDensity, initial_params
from .base import SampleResult, SamplerConfig, data_inputs, resolve_chain_method
from .chunked import CHUNK_ITERATIONS, by_device, from_devices, iterate, pmap_chains, run_chunked
from .until import StopRule
from .warmstart import WarmStart

__all__ = ["sample_numpyro", "CHUNK_ITERATIONS"]


def _stats(st):
    return {"diverging": st.diverging, "energy": st.energy, "num_steps": st.num_steps,
            "accept_prob": st.accept_prob, "step_size": st.adapt_state.step_size,
            "potential_energy": st.potential_energy}


def sample_numpyro(ld: LogDensity, data: dict | None, *, key: jax.Array, config: SamplerConfig,
                   start: WarmStart | None = None) -> SampleResult:
    """NUTS with NumPyro's Stan-style window adaptation (``numpyro.infer.hmc.hmc``, its
    functional NUTS: the data are an argument of the compiled programs, not constants).

    ``chain_method="parallel"`` puts one chain per device (``pmap``; on CPU, host devices —
    see :func:`mmm_jax._runtime.set_host_devices`), ``"vectorized"`` runs them in lock-step with
    ``vmap``, ``"sequential"`` one after another. Deterministics are not computed here: the
    loop carries only the unconstrained parameters. ``timings["warmup"]`` ends when the last
    warm-up chunk returns (compilation included). ``start``: a warm start (see
    :func:`mmm_jax.inference.sample`); ``config.until``: draw until converged.
    """
    from numpyro.infer.hmc import hmc

    data = data_inputs(ld, data)
    chain_method = resolve_chain_method(config)
    if config.until is not None and chain_method == "sequential":
        raise ValueError("until (sample until converged) needs the chains together: use chain_method "
                         "'parallel', 'vectorized' or 'auto', not 'sequential'")
    init_kernel, sample_kernel = hmc(potential_fn_gen=lambda d: (lambda p: -ld.logp(p, d)), algo="NUTS")
    n_chains, n_warm = config.chains, config.warmup
    n_draws = config.draws if config.until is None else config.max_draws
    key_init, key_run = jax.random.split(key)
    keys = jax.random.split(key_run, n_chains)
    keys = jax.random.key_data(keys) if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key) else keys  # legacy uint32
    if start is None:
        init = initial_params(ld, key_init, n_chains, config.jitter)
        n_dims = sum(int(np.prod(s, dtype=int)) for s in ld.param_shapes.values())
        step0, imm0 = jnp.ones(n_chains), jnp.ones((n_chains, n_dims))
    else:
        init = {k: jnp.asarray(v) for k, v in start.positions.items()}
        step0, imm0 = jnp.asarray(start.step_size), jnp.asarray(start.inverse_mass_matrix)

    def init_one(k, p, step_size, imm, d):
        k, _ = jax.random.split(k)  # as numpyro.infer.NUTS.init does: same seed, same draws as MCMC
        return init_kernel(p, n_warm, step_size=step_size, inverse_mass_matrix=imm,
                           adapt_mass_matrix=True, dense_mass=config.dense_mass,
                           target_accept_prob=config.target_accept, max_tree_depth=config.max_tree_depth,
                           model_args=(d,), rng_key=k)

    def chunk_one(state, n, d):
        """``n`` (<= CHUNK_ITERATIONS, traced: one program serves every chunk) NUTS iterations."""

        def step(st, i):
            st = sample_kernel(st, model_args=(d,))
            return st, (st.z, _stats(st))

        return iterate(step, state, 0, n, CHUNK_ITERATIONS)

    if start is None and config.dense_mass:
        imm0 = None  # NumPyro starts a dense mass matrix at the identity itself
    mapped = (keys, init, step0, imm0)
    if chain_method == "parallel":  # chains over devices; several on a device run one after another
        init_fn = pmap_chains(init_one, n_chains, 4, 5)
        chunk_fn = pmap_chains(chunk_one, n_chains, 1, 3)
        mapped = by_device(mapped, n_chains)
    elif chain_method == "vectorized":
        init_fn = jax.jit(jax.vmap(init_one, in_axes=(0, 0, 0, 0, None)))
        chunk_fn = jax.jit(jax.vmap(chunk_one, in_axes=(0, None, None)))
    else:  # sequential: one chain at a time, stacked afterwards
        init_fn = jax.jit(init_one)
        chunk_fn = jax.jit(chunk_one)

    # a chunk's buffer: (draws, ...), (chains, draws, ...) or (devices, chains per device, draws, ...)
    draw_axis = {"sequential": 0, "vectorized": 1, "parallel": 2}[chain_method]
    to_chains = (lambda t: from_devices(t, n_chains)) if chain_method == "parallel" else (lambda t: t)
    rule = None
    if config.until is not None:
        rule = StopRule(config.until, config.draws, n_draws, lambda out: to_chains(out[0]))
    bar = None
    if config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=(n_warm + n_draws) * (n_chains if chain_method == "sequential" else 1),
                   desc=f"NUTS ({n_chains} chains, {chain_method})", unit="it")

    def run(state):
        """Warm-up and draws of the chains in ``state``; returns (draws, stats, warm-up end time, state)."""
        state, (z, s), t_warm = run_chunked(lambda st, start_, n: chunk_fn(st, n, data), state, n_warm, n_draws,
                                            draw_axis, CHUNK_ITERATIONS, bar, stop=rule,
                                            first_check=config.draws)
        return z, s, t_warm, state

    t0 = time.perf_counter()
    try:
        if chain_method == "sequential":
            outs = [run(init_fn(*jax.tree.map(lambda x: x[c], mapped), data)) for c in range(n_chains)]
            samples = jax.tree.map(lambda *xs: np.stack(xs), *[o[0] for o in outs])
            extra = jax.tree.map(lambda *xs: np.stack(xs), *[o[1] for o in outs])
            t1 = outs[0][2] if n_chains == 1 else float("nan")
            adapt = jax.tree.map(lambda *xs: np.stack(xs), *[o[3].adapt_state for o in outs])
        else:
            samples, extra, t1, last = run(init_fn(*mapped, data))
            samples, extra, adapt = to_chains((samples, extra, jax.device_get(last.adapt_state)))
    finally:
        if bar is not None:
            bar.close()
    t2 = time.perf_counter()

    n_steps = np.asarray(extra["num_steps"])
    stats = {
        "diverging": np.asarray(extra["diverging"], dtype=bool),
        "energy": np.asarray(extra["energy"]),
        "n_steps": n_steps,
        "tree_depth": np.floor(np.log2(np.maximum(n_steps, 1))).astype(int) + 1,
        "step_size": np.asarray(extra["step_size"]),
        "acceptance_rate": np.asarray(extra["accept_prob"]),
        "lp": -np.asarray(extra["potential_energy"]),
    }
    samples = {k: np.asarray(v) for k, v in samples.items()}
    imm = np.asarray(adapt.inverse_mass_matrix)
    return SampleResult(
        samples=samples,
        stats=stats,
        timings={"warmup": t1 - t0, "sampling": t2 - t1, "total": t2 - t0},
        sampler="numpyro",
        config=config._replace(chain_method=chain_method),
        stopped=None if rule is None else rule.summary(samples),
        tuned=(np.asarray(adapt.step_size), imm) if imm.ndim == 2 else None,
    )
