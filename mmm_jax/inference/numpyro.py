"""NumPyro NUTS on a compiled :class:`~mmm_jax.compile.LogDensity`.

NumPyro's kernel (``numpyro.infer.NUTS``: its Stan-style window adaptation and its trees) is
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
from .base import SampleResult, SamplerConfig, bind_data, resolve_chain_method
from .chunked import CHUNK_ITERATIONS, by_device, from_devices, iterate, pmap_chains, run_chunked

__all__ = ["sample_numpyro", "CHUNK_ITERATIONS"]


def _stats(st):
    return {"diverging": st.diverging, "energy": st.energy, "num_steps": st.num_steps,
            "accept_prob": st.accept_prob, "step_size": st.adapt_state.step_size,
            "potential_energy": st.potential_energy}


def sample_numpyro(ld: LogDensity, data: dict | None, *, key: jax.Array, config: SamplerConfig) -> SampleResult:
    """NUTS with NumPyro's Stan-style window adaptation.

    ``chain_method="parallel"`` puts one chain per device (``pmap``; on CPU, host devices —
    see :func:`mmm_jax._runtime.set_host_devices`), ``"vectorized"`` runs them in lock-step with
    ``vmap``, ``"sequential"`` one after another. Deterministics are not computed here: the
    loop carries only the unconstrained parameters. ``timings["warmup"]`` ends when the last
    warm-up chunk returns (compilation included).
    """
    from numpyro.infer import NUTS

    logdensity = bind_data(ld, data)
    chain_method = resolve_chain_method(config)
    kernel = NUTS(
        potential_fn=lambda p: -logdensity(p),
        target_accept_prob=config.target_accept,
        max_tree_depth=config.max_tree_depth,
        dense_mass=config.dense_mass,
    )
    n_chains, n_warm = config.chains, config.warmup
    key_init, key_run = jax.random.split(key)
    init = initial_params(ld, key_init, n_chains, config.jitter)
    keys = jax.random.split(key_run, n_chains)
    keys = jax.random.key_data(keys) if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key) else keys  # legacy uint32

    def init_one(k, p):
        return kernel.init(k, n_warm, p, model_args=(), model_kwargs={})

    def chunk_one(state, n):
        """``n`` (<= CHUNK_ITERATIONS, traced: one program serves every chunk) NUTS iterations."""

        def step(st, i):
            st = kernel.sample(st, (), {})
            return st, (st.z, _stats(st))

        return iterate(step, state, 0, n, CHUNK_ITERATIONS)

    if chain_method == "parallel":  # chains over devices; several on a device run one after another
        init_fn = pmap_chains(init_one, n_chains, 2, 2)
        chunk_fn = pmap_chains(chunk_one, n_chains, 1, 2)
        keys, init = by_device((keys, init), n_chains)
    elif chain_method == "vectorized":
        init_fn = jax.jit(jax.vmap(init_one))
        chunk_fn = jax.jit(jax.vmap(chunk_one, in_axes=(0, None)))
    else:  # sequential: one chain at a time, stacked afterwards
        init_fn = jax.jit(init_one)
        chunk_fn = jax.jit(chunk_one)

    # a chunk's buffer: (draws, ...), (chains, draws, ...) or (devices, chains per device, draws, ...)
    draw_axis = {"sequential": 0, "vectorized": 1, "parallel": 2}[chain_method]
    bar = None
    if config.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=(n_warm + config.draws) * (n_chains if chain_method == "sequential" else 1),
                   desc=f"NUTS ({n_chains} chains, {chain_method})", unit="it")

    def run(state):
        """Warm-up and draws of the chains in ``state``; returns (draws, stats, warm-up end time)."""
        _, (z, s), t_warm = run_chunked(lambda st, start, n: chunk_fn(st, n), state, n_warm, config.draws,
                                        draw_axis, CHUNK_ITERATIONS, bar)
        return z, s, t_warm

    t0 = time.perf_counter()
    try:
        if chain_method == "sequential":
            outs = [run(init_fn(keys[c], {k: v[c] for k, v in init.items()})) for c in range(n_chains)]
            samples = jax.tree.map(lambda *xs: np.stack(xs), *[o[0] for o in outs])
            extra = jax.tree.map(lambda *xs: np.stack(xs), *[o[1] for o in outs])
            t1 = outs[0][2] if n_chains == 1 else float("nan")
        else:
            samples, extra, t1 = run(init_fn(keys, init))
            if chain_method == "parallel":
                samples, extra = from_devices((samples, extra), n_chains)
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
    return SampleResult(
        samples=samples,
        stats=stats,
        timings={"warmup": t1 - t0, "sampling": t2 - t1, "total": t2 - t0},
        sampler="numpyro",
        config=config._replace(chain_method=chain_method),
    )
