"""NumPyro NUTS on a compiled :class:`~mmm_jax.compile.LogDensity`."""

from __future__ import annotations

import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from ..compile import LogDensity, initial_params
from .base import SampleResult, SamplerConfig, bind_data, resolve_chain_method

__all__ = ["sample_numpyro"]

_EXTRA = ("diverging", "energy", "num_steps", "accept_prob", "adapt_state.step_size", "potential_energy")


def sample_numpyro(ld: LogDensity, data: dict | None, *, key: jax.Array, config: SamplerConfig) -> SampleResult:
    """NUTS with NumPyro's Stan-style window adaptation; chains run together.

    ``chain_method="parallel"`` puts one chain per device (``pmap``; on CPU, host devices —
    see :func:`mmm_jax.set_host_devices`), ``"vectorized"`` runs them in lock-step with
    ``vmap``. Deterministics are not computed here: the loop carries only the
    unconstrained parameters.
    """
    from numpyro.infer import MCMC, NUTS

    logdensity = bind_data(ld, data)
    chain_method = resolve_chain_method(config)
    kernel = NUTS(
        potential_fn=lambda p: -logdensity(p),
        target_accept_prob=config.target_accept,
        max_tree_depth=config.max_tree_depth,
        dense_mass=config.dense_mass,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*There are not enough devices.*")
        mcmc = MCMC(
            kernel,
            num_warmup=config.warmup,
            num_samples=config.draws,
            num_chains=config.chains,
            chain_method=chain_method,
            progress_bar=config.progress,
            jit_model_args=False,
        )
    key_init, key_run = jax.random.split(key)
    init = initial_params(ld, key_init, config.chains, config.jitter)
    if config.chains == 1:
        init = {k: v[0] for k, v in init.items()}
    # numpyro wants legacy uint32 keys
    run_key = jax.random.key_data(key_run) if jnp.issubdtype(key_run.dtype, jax.dtypes.prng_key) else key_run

    t0 = time.perf_counter()
    if config.split_timing and config.warmup > 0:
        # Profiling mode: warm-up and sampling as two programs (each compiled separately).
        mcmc.warmup(run_key, init_params=init, extra_fields=_EXTRA, collect_warmup=False)
        jax.block_until_ready(mcmc.post_warmup_state)
        t1 = time.perf_counter()
        mcmc.run(mcmc.post_warmup_state.rng_key, extra_fields=_EXTRA)
    else:
        # One program for warm-up + sampling: the NUTS kernel is compiled once.
        mcmc.run(run_key, init_params=init, extra_fields=_EXTRA)
        t1 = float("nan")
    samples = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(samples)
    t2 = time.perf_counter()

    extra = mcmc.get_extra_fields(group_by_chain=True)
    n_steps = np.asarray(extra["num_steps"])
    stats = {
        "diverging": np.asarray(extra["diverging"], dtype=bool),
        "energy": np.asarray(extra["energy"]),
        "n_steps": n_steps,
        "tree_depth": np.floor(np.log2(np.maximum(n_steps, 1))).astype(int) + 1,
        "step_size": np.asarray(extra["adapt_state.step_size"]),
        "acceptance_rate": np.asarray(extra["accept_prob"]),
        "lp": -np.asarray(extra["potential_energy"]),
    }
    samples = {k: np.asarray(v) for k, v in samples.items()}
    if config.chains == 1 and any(v.shape[:1] != (1,) for v in stats.values()):
        stats = {k: v.reshape(1, -1) for k, v in stats.items()}
    return SampleResult(
        samples=samples,
        stats=stats,
        timings={"warmup": t1 - t0, "sampling": t2 - t1, "total": t2 - t0},  # nan unless split_timing
        sampler="numpyro",
        config=config._replace(chain_method=chain_method),
    )
