"""Many-chain adaptation from BlackJAX: ChEES-HMC and MEADS.

Both warm up *all* chains together from cross-chain statistics, so every chain takes the
same number of gradient steps per iteration: no lock-step waste under ``vmap``, which is
what makes them suit GPUs and large chain counts (64+). Everything here is BlackJAX's own
code; this module only wires it to a :class:`~mmm_jax.compile.LogDensity` and to the
:class:`~mmm_jax.inference.base.SampleResult` contract.

``sampler="chees"``
    ``blackjax.chees_adaptation`` (Hoffman, Radul & Sountsov 2021): jittered HMC whose
    step size is tuned by dual averaging on the harmonic-mean acceptance of the ensemble and
    whose trajectory length maximises the ChEES criterion with Adam; a diagonal mass matrix
    is estimated from the ensemble over the last half of warm-up
    (``mass_matrix_estimation="diagonal"``). Sampling then runs
    ``blackjax.dynamic_hmc`` with the tuned step size, mass matrix and trajectory length
    (the number of leapfrog steps of draw ``i`` is ``ceil(h_i * L)``, ``h_i`` a Halton
    sequence shared by all chains).
``sampler="meads"``
    ``blackjax.meads_adaptation`` (Hoffman & Sountsov 2022) + ``blackjax.ghmc``: generalised
    HMC with one leapfrog step per transition, persistent momentum and cross-fold
    adaptation of step size, damping and a diagonal scale. One GHMC step is a poor draw on
    its own, so ``thinning`` GHMC steps (default 10) make one stored draw, and warm-up runs
    ``warmup * thinning`` adaptation steps: the gradient budget per draw is comparable to
    NUTS. Needs ``chains`` divisible by 4 (MEADS's folds) and at least 16: each fold
    estimates its scales from its own chains, so 4 chains in all give nonsense (64+ is
    what MEADS is for).

Statistics, per stored draw (chains, draws): ``diverging``, ``energy`` (Hamiltonian at the
proposal), ``n_steps`` (leapfrog steps, i.e. gradient evaluations, for that draw: ChEES's
jittered trajectory length; MEADS: ``thinning``), ``step_size``, ``acceptance_rate``
(Metropolis acceptance probability; MEADS: mean over the ``thinning`` steps), ``lp``.
``tree_depth`` has no meaning for HMC without trees and is 0. ``diverging`` for MEADS is
true if any of the draw's GHMC steps diverged. ``warmup_n_steps`` (repeated over draws)
is the number of gradient evaluations each chain spent in warm-up.

Chains run vectorised on one device (``vmap``); ``chain_method="parallel"`` shards the
chain axis over the local devices instead (``jax.sharding``; cross-chain statistics become
all-reduces), which needs ``chains`` divisible by the device count.

``gradient_batching`` (:mod:`mmm_jax.inference.batching`): BlackJAX steps the chains with
``vmap``; with ``"map"`` (``auto`` on CPU for models with large data) the log-density's value
and gradient still run chain after chain on each device, because XLA's batched gradient of a
large model costs up to twice as much per chain on CPU.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..compile import LogDensity
from .base import SampleResult, SamplerConfig, bind_data
from .batching import resolve_gradient_batching, sequential_gradients
from .blackjax import chain_inputs
from .progress import ProgressClock, scan_with_progress

__all__ = ["sample_chees", "sample_meads", "chees_run", "meads_run", "CHEES_LEARNING_RATE", "MEADS_THINNING"]

#: Adam learning rate of the trajectory-length optimiser (the ChEES paper uses 0.025).
CHEES_LEARNING_RATE = 0.025
#: Initial step size of ChEES's dual averaging.
CHEES_INITIAL_STEP_SIZE = 0.1
#: GHMC steps per stored MEADS draw.
MEADS_THINNING = 10


def _resolve_chain_method(cfg: SamplerConfig) -> str:
    """``auto``/``vectorized``/``sequential`` -> vectorized; ``parallel`` -> sharded over devices."""
    method = cfg.chain_method
    if method not in ("auto", "parallel", "vectorized", "sequential"):
        raise ValueError(f"chain_method {method!r}; allowed: auto, parallel, vectorized, sequential")
    if method != "parallel":
        return "vectorized"
    # the devices that divide the chains evenly (all of them when they do)
    return "parallel" if _sharded_devices(cfg.chains) > 1 else "vectorized"


def _sharded_devices(chains: int) -> int:
    """The most local devices that divide ``chains`` evenly."""
    n_dev = jax.local_device_count()
    return max(d for d in range(1, n_dev + 1) if chains % d == 0)


def _chain_sharding(cfg: SamplerConfig):
    """A 1-D mesh over as many local devices as divide ``chains``."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    n_use = _sharded_devices(cfg.chains)
    mesh = Mesh(np.asarray(jax.local_devices()[:n_use]), ("chain",))
    return NamedSharding(mesh, PartitionSpec("chain")), n_use


def _mark(clock: ProgressClock | None, name: str, anchor):
    """Record on the host when ``anchor`` has been computed (idempotent: the first call wins)."""
    if clock is None:
        return

    def _cb(_):
        clock.setdefault(name, time.perf_counter())

    jax.debug.callback(_cb, jnp.sum(anchor))


def chees_run(logdensity, init_positions, key, cfg: SamplerConfig, progress: bool = False,
              clock: ProgressClock | None = None):
    """ChEES warm-up + jittered-HMC sampling of ALL chains (pure; ``jit`` it).

    Parameters
    ----------
    logdensity : params -> scalar, unconstrained space
    init_positions : pytree with a leading (chains,) axis
    key : PRNG key
    cfg : SamplerConfig
        ``chains, warmup, draws, target_accept`` (the dual-averaging target for the
        harmonic mean of the chains' acceptance probabilities), ``max_tree_depth``
        (caps the trajectory at ``2**max_tree_depth`` leapfrog steps, like NUTS).

    Returns
    -------
    positions : pytree, leading (chains, draws)
    stats : dict of (chains, draws) arrays
    tuned : dict with ``step_size``, ``inverse_mass_matrix``, ``n_leapfrog`` (mean
        trajectory length in steps) and ``warmup_n_steps`` (gradient evaluations of the
        whole warm-up, all chains).
    """
    import blackjax
    import optax
    from blackjax.mcmc import dynamic_hmc

    if cfg.dense_mass:
        raise ValueError("sampler='chees' adapts a diagonal mass matrix only; use dense_mass=False")
    n_chains = cfg.chains
    key_warm, key_sample = jax.random.split(key)
    warm = blackjax.chees_adaptation(
        logdensity,
        n_chains,
        target_acceptance_rate=cfg.target_accept,
        max_leapfrog_steps=2**cfg.max_tree_depth,
        mass_matrix_estimation="diagonal",
        adaptation_info_fn=_chees_info,
    )
    n_warm = max(cfg.warmup, 1)  # BlackJAX needs at least one adaptation step
    (states, params), winfo = warm.run(
        key_warm, init_positions, CHEES_INITIAL_STEP_SIZE, optax.adam(CHEES_LEARNING_RATE), n_warm,
        max_sampling_steps=cfg.draws,
    )
    _mark(clock, "warmup", states.logdensity)
    kernel = dynamic_hmc.build_kernel(
        next_random_arg_fn=params["next_random_arg_fn"],
        integration_steps_fn=params["integration_steps_fn"],
    )
    step_size = params["step_size"]
    imm = params["inverse_mass_matrix"]
    steps_params = params["integration_steps_params"]

    def one_chain(k, st):
        return kernel(k, st, logdensity, step_size, imm, steps_params)

    def step(st, k):
        keys = jax.random.split(k, n_chains)
        st, info = jax.vmap(one_chain)(keys, st)
        stats = {
            "diverging": info.is_divergent,
            "energy": info.energy,
            "n_steps": info.num_integration_steps,
            "tree_depth": jnp.zeros_like(info.num_integration_steps),
            "acceptance_rate": info.acceptance_rate,
            "lp": st.logdensity,
            "step_size": jnp.broadcast_to(step_size, info.acceptance_rate.shape),
        }
        return st, (st.position, stats)

    keys = jax.random.split(key_sample, cfg.draws)
    _, (positions, stats) = scan_with_progress(step, states, keys, cfg.draws, "ChEES-HMC", progress, clock)
    # scan stacks draws first: (draws, chains, ...) -> (chains, draws, ...)
    positions = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), positions)
    stats = {k: jnp.swapaxes(v, 0, 1) for k, v in stats.items()}
    tuned = {
        "step_size": step_size,
        "inverse_mass_matrix": imm,
        "n_leapfrog": steps_params[0],
        "warmup_n_steps": jnp.sum(winfo._wrapped_info if hasattr(winfo, "_wrapped_info") else winfo) if cfg.warmup > 0 else jnp.zeros((), int),  # per chain
    }
    return positions, stats, tuned


def _chees_info(state, info, adaptation_state):
    """Keep only the gradient count of each warm-up step (per chain; all chains take the same)."""
    return jnp.max(info.num_integration_steps)


def meads_run(logdensity, init_positions, key, cfg: SamplerConfig, progress: bool = False,
              clock: ProgressClock | None = None, thinning: int = MEADS_THINNING):
    """MEADS warm-up + GHMC sampling of ALL chains (pure; ``jit`` it).

    ``warmup * thinning`` adaptation steps, then ``draws`` stored draws of ``thinning``
    GHMC steps each. Returns like :func:`chees_run`.
    """
    import blackjax
    from blackjax.mcmc import ghmc

    if cfg.dense_mass:
        raise ValueError("sampler='meads' adapts a diagonal scale only; use dense_mass=False")
    n_chains = cfg.chains
    if n_chains % 4 or n_chains < 16:
        raise ValueError(
            f"sampler='meads' needs chains divisible by 4 (its folds) and at least 16 (each fold estimates "
            f"scales from its own chains; 64+ recommended), got {n_chains}"
        )
    key_warm, key_sample = jax.random.split(key)
    warm = blackjax.meads_adaptation(logdensity, n_chains, adaptation_info_fn=_meads_info)
    n_warm = max(cfg.warmup * thinning, 1)
    (states, params), _ = warm.run(key_warm, init_positions, n_warm)
    _mark(clock, "warmup", states.logdensity)
    kernel = ghmc.build_kernel()

    def one_chain(k, st):
        return kernel(k, st, logdensity, params["step_size"], params["momentum_inverse_scale"], params["alpha"],
                      params["delta"])

    def one_draw(st, k):
        def inner(s, kk):
            s, info = jax.vmap(one_chain)(jax.random.split(kk, n_chains), s)
            return s, (info.is_divergent, info.acceptance_rate, info.energy)

        st, (div, acc, energy) = jax.lax.scan(inner, st, jax.random.split(k, thinning))
        stats = {
            "diverging": jnp.any(div, axis=0),
            "energy": energy[-1],
            "n_steps": jnp.full((n_chains,), thinning),
            "tree_depth": jnp.zeros((n_chains,), int),
            "acceptance_rate": jnp.mean(acc, axis=0),
            "lp": st.logdensity,
            "step_size": jnp.broadcast_to(params["step_size"], (n_chains,)),
        }
        return st, (st.position, stats)

    keys = jax.random.split(key_sample, cfg.draws)
    _, (positions, stats) = scan_with_progress(one_draw, states, keys, cfg.draws, "MEADS-GHMC", progress, clock)
    positions = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), positions)
    stats = {k: jnp.swapaxes(v, 0, 1) for k, v in stats.items()}
    tuned = {
        "step_size": params["step_size"],
        "alpha": params["alpha"],
        "delta": params["delta"],
        "warmup_n_steps": jnp.asarray(n_warm if cfg.warmup > 0 else 0),  # per chain
    }
    return positions, stats, tuned


def _meads_info(state, info, adaptation_state):
    return jnp.zeros((), jnp.int32)


def _run(name: str, run_fn, ld: LogDensity, data: dict | None, key: jax.Array, config: SamplerConfig) -> SampleResult:
    logdensity_tree = bind_data(ld, data)
    init_tree, _ = chain_inputs(ld, key, config)
    # BlackJAX's ensemble means assume (chains, dim) leaves (a (chains, G, C) leaf fails in
    # chees_adaptation's weighted_empirical_mean): sample one flat vector per chain instead
    _, unravel = ravel_pytree(jax.tree.map(lambda v: v[0], init_tree))
    init = jax.vmap(lambda t: ravel_pytree(t)[0])(init_tree)

    def logdensity(x):
        return logdensity_tree(unravel(x))

    key_run = jax.random.fold_in(key, 1)
    chain_method = _resolve_chain_method(config)
    n_groups = 1
    if chain_method == "parallel":
        sharding, n_groups = _chain_sharding(config)
        init = jax.device_put(init, sharding)  # jit partitions the chain axis like its input
    batching = resolve_gradient_batching(config.gradient_batching, ld.default_data if data is None else data)
    if batching == "map":  # one gradient program per chain, chains one after another on each device
        logdensity = sequential_gradients(logdensity, n_groups)
    clock = ProgressClock()

    def program(pos, k):
        return run_fn(logdensity, pos, k, config, config.progress, clock)

    fn = jax.jit(program)
    t0 = time.perf_counter()
    positions, stats, tuned = fn(init, key_run)
    jax.block_until_ready((positions, stats))
    t2 = time.perf_counter()
    t1 = clock.get("warmup", float("nan"))
    positions = jax.vmap(jax.vmap(unravel))(positions)  # (chains, draws, dim) -> named (chains, draws, ...)
    samples = {k: np.asarray(v) for k, v in positions.items()}
    stats = {k: np.asarray(v) for k, v in stats.items()}
    stats["diverging"] = stats["diverging"].astype(bool)
    # the warm-up's gradient evaluations per chain, repeated over draws (a per-run constant)
    tuned = {k: np.asarray(v) for k, v in tuned.items()}
    stats["warmup_n_steps"] = np.full(stats["lp"].shape, int(tuned["warmup_n_steps"]))
    return SampleResult(
        samples=samples,
        stats=stats,
        timings={"warmup": t1 - t0, "sampling": t2 - t1, "total": t2 - t0},
        sampler=name,
        config=config._replace(chain_method=chain_method, gradient_batching=batching),
    )


def sample_chees(ld: LogDensity, data: dict | None, *, key: jax.Array, config: SamplerConfig) -> SampleResult:
    """ChEES-HMC on every chain at once; see the module docstring."""
    return _run("chees", chees_run, ld, data, key, config)


def sample_meads(ld: LogDensity, data: dict | None, *, key: jax.Array, config: SamplerConfig) -> SampleResult:
    """MEADS (GHMC) on every chain at once; see the module docstring."""
    return _run("meads", meads_run, ld, data, key, config)
