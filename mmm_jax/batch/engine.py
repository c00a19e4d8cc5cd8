"""The batched sampler: compiled programs that fit a chunk of brands, sharded over devices.

:func:`make_batch_sampler` takes the template model's :class:`~mmm_jax.compile.LogDensity`
and returns ``run(data, keys)`` for a stack of brands (:func:`finish_chunk` turns its output
into per-brand draws, stats and tuned step size / mass matrix):

* per brand: the same pure functions as a single BlackJAX fit — starting points and chain
  keys from :func:`~mmm_jax.inference.blackjax.chain_inputs`, then
  :func:`~mmm_jax.inference.blackjax.nuts_init` and :func:`~mmm_jax.inference.blackjax.nuts_steps`
  (window adaptation with the brand's own step size and mass matrix, then sampling) vmapped
  over chains, in chunks of iterations (one program start, one program per chunk, dispatched
  without waiting; device memory stays bounded by a chunk);
* over brands: ``vmap``; over devices: ``jax.shard_map`` on a one-axis ``Mesh`` ("brand"),
  so each device runs its own brands' while-loops (lock-step only within a device);
* across hosts: the same mesh over ``jax.devices()`` after ``jax.distributed.initialize()``;
  inputs are built with ``jax.make_array_from_callback`` and each process reads back only
  its addressable shards.

Vectorised NUTS runs each transition until the slowest member of the vmapped group has
finished its trajectory; :func:`lockstep_waste` measures the leapfrog steps spent waiting.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ..compile import LogDensity
from ..inference.base import SamplerConfig
from ..inference.blackjax import chain_inputs, nuts_init, nuts_steps, tuned_of
from ..inference.chunked import CHUNK_ITERATIONS, chunk_plan

__all__ = ["BatchSampler", "make_batch_sampler", "lockstep_waste", "brand_mesh"]


class BatchSampler(NamedTuple):
    """A compiled batch sampler for chunks of ``chunk_size`` brands on ``mesh``."""

    run: object  # (data dict of (B, ...) arrays, key data (B, 2) uint32) -> (parts, tuned), see finish_chunk
    mesh: Mesh
    chunk_size: int
    group: int  # brands vmapped together on a device (1: none)
    vmap_chains: bool


def brand_mesh(devices=None) -> Mesh:
    """A one-axis mesh named ``"brand"`` over ``devices`` (default: every device, all hosts)."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.asarray(devices), ("brand",))


def _chains(fn, vmap_chains: bool):
    """Apply ``fn`` to each chain of a brand: ``vmap`` (lock-step) or ``lax.map`` (one after another)."""
    if vmap_chains:
        return jax.vmap(fn)
    return lambda *args: jax.lax.map(lambda a: fn(*a), args)


def _brand_init(ld: LogDensity, cfg: SamplerConfig, vmap_chains: bool):
    """One brand: ``(data, key_data) -> ChainCarry`` of its chains (leading chain axis)."""

    def init(data, key_data):
        pos, keys = chain_inputs(ld, jax.random.wrap_key_data(key_data), cfg)
        return _chains(lambda p, k: nuts_init(lambda q: ld.logp(q, data), p, k, cfg), vmap_chains)(pos, keys)

    return init


def _brand_steps(ld: LogDensity, cfg: SamplerConfig, size: int, on_step, vmap_chains: bool):
    """One brand: ``(carry, data, start, n) -> (carry, (positions, stats))``, buffers (chains, size, ...)."""

    def steps(carry, data, start, n):
        def one(c):
            return nuts_steps(lambda q: ld.logp(q, data), c, start, n, cfg, size, on_step)

        return _chains(one, vmap_chains)(carry)

    return steps


def _grouped(fn, group: int):
    """Apply ``fn`` to a stack of brands (every argument has a leading brand axis): vmap over
    groups of ``group`` brands, ``lax.map`` across groups (``group = 1``: brands one after
    another; ``group`` = all: one vmap)."""

    def run(*args):
        n = jax.tree.leaves(args)[0].shape[0]
        if group == 1:
            # no vmap at all: even a size-1 vmap turns NUTS's while loops and conds into their
            # batched forms (both branches of every cond, selects on the whole state), measured
            # at about 45% more CPU per chain on CPU devices
            return jax.lax.map(lambda a: fn(*a), args)
        if group >= n:
            return jax.vmap(fn)(*args)
        if n % group:
            raise ValueError(f"{n} brands per device is not a multiple of the vmap group {group}")
        split = jax.tree.map(lambda x: x.reshape((n // group, group, *x.shape[1:])), args)
        out = jax.lax.map(lambda a: jax.vmap(fn)(*a), split)
        return jax.tree.map(lambda x: x.reshape((n, *x.shape[2:])), out)

    return run


def make_batch_sampler(
    ld: LogDensity,
    cfg: SamplerConfig,
    chunk_size: int,
    mesh: Mesh | None = None,
    on_step=None,
    vmap_group: int | None = None,
    vmap_chains: bool = True,
) -> BatchSampler:
    """Compile-once batch sampler.

    Parameters
    ----------
    ld : LogDensity
        The template model (data are inputs).
    cfg : SamplerConfig
        NUTS settings shared by every brand.
    chunk_size : int
        Brands per call; rounded up to a multiple of the number of devices in ``mesh``.
    mesh : Mesh, optional
        From :func:`brand_mesh` (default: all devices).
    on_step : callable, optional
        Host progress hook ``on_step(steps_done, n_steps)``.
    vmap_group : int, optional
        Brands vmapped together on a device (lock-step); groups run one after another.
        Default: all brands of the device's shard (accelerators), see :func:`default_layout`.
    vmap_chains : bool
        Vmap a brand's chains (True) or run them one after another (False).

    ``run(data, key_data)`` dispatches one program that starts every chain, then one program per
    :data:`~mmm_jax.inference.chunked.CHUNK_ITERATIONS` iterations (the same compiled program
    each time; the chains' state stays on the devices), without waiting: device memory stays
    bounded by one chunk of iterations (:mod:`mmm_jax.inference.chunked`). It returns
    ``(parts, tuned)``: parts a list of ``(positions, stats, n)``, buffers (B, chains, size, ...)
    of which the first ``n`` draws count; :func:`finish_chunk` joins them.
    """
    mesh = mesh or brand_mesh()
    n_dev = mesh.devices.size
    chunk_size = int(-(-max(1, chunk_size) // n_dev) * n_dev)
    per_device = chunk_size // n_dev
    group = per_device if vmap_group is None else max(1, min(int(vmap_group), per_device))
    while per_device % group:
        group -= 1
    size = CHUNK_ITERATIONS
    brand = P("brand")
    init = jax.jit(jax.shard_map(_grouped(_brand_init(ld, cfg, vmap_chains), group), mesh=mesh,
                                 in_specs=(brand, brand), out_specs=brand, check_vma=False))
    steps_one = _brand_steps(ld, cfg, size, on_step, vmap_chains)

    def steps_local(carry, data, start, n):
        return _grouped(lambda c, d: steps_one(c, d, start, n), group)(carry, data)

    steps = jax.jit(jax.shard_map(steps_local, mesh=mesh, in_specs=(brand, brand, P(), P()), out_specs=brand,
                                  check_vma=False))

    def run(data, key_data):
        carry = init(data, key_data)
        parts = []
        for start, n in chunk_plan(cfg.warmup, cfg.draws, size):
            carry, out = steps(carry, data, np.int32(start), np.int32(n))
            if start >= cfg.warmup:
                parts.append((*out, n))
        return parts, tuned_of(carry)

    return BatchSampler(run, mesh, chunk_size, group, vmap_chains)


def put_sharded(x: np.ndarray, mesh: Mesh) -> jax.Array:
    """Place a host array (leading brand axis) on ``mesh``; works on one host or many."""
    x = np.asarray(x)
    sharding = NamedSharding(mesh, P("brand"))
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def local_rows(arr: jax.Array) -> dict[int, np.ndarray]:
    """``{brand row: host array}`` for the shards this process can read (all, on one host)."""
    out = {}
    for shard in arr.addressable_shards:
        start = shard.index[0].start or 0
        data = np.asarray(shard.data)
        for i in range(data.shape[0]):
            out[start + i] = data[i]
    return out


def start_chunk(sampler: BatchSampler, arrays: dict, key_data: np.ndarray):
    """Dispatch one chunk without waiting (JAX runs it asynchronously); see :func:`finish_chunk`.

    ``arrays`` (B, ...) and ``key_data`` (B, 2) with B == chunk_size.
    """
    mesh = sampler.mesh
    data = {k: put_sharded(v, mesh) for k, v in arrays.items()}
    keys = put_sharded(key_data, mesh)
    return sampler.run(data, keys)


def finish_chunk(outputs):
    """Wait for a dispatched chunk; host NumPy ``{row: (positions, stats, tuned)}`` for the rows
    this process owns (all rows on a single host); positions and stats (chains, draws, ...)."""
    parts, tuned = outputs
    jax.block_until_ready(tuned)

    def rows_of(tree):  # {name: {row: array}} of one pytree of (B, ...) global arrays
        return {k: local_rows(v) for k, v in tree.items()}

    joined = []
    for i in range(2):  # positions, then stats: each part's first n draws, joined along the draw axis
        per_part = [(rows_of(p[i]), p[2]) for p in parts]
        joined.append({k: {r: np.concatenate([pp[k][r][:, :n] for pp, n in per_part], axis=1) for r in per_part[0][0][k]}
                       for k in per_part[0][0]})
    tuned_rows = [local_rows(t) for t in tuned]
    pos_rows, stat_rows = joined
    rows = sorted(next(iter(stat_rows.values())))
    return {
        r: (
            {k: v[r] for k, v in pos_rows.items()},
            {k: v[r] for k, v in stat_rows.items()},
            tuple(t[r] for t in tuned_rows),
        )
        for r in rows
    }


def run_chunk(sampler: BatchSampler, arrays: dict, key_data: np.ndarray):
    """Sample one chunk and wait: ``finish_chunk(start_chunk(...))``."""
    return finish_chunk(start_chunk(sampler, arrays, key_data))


def lockstep_waste(n_steps: np.ndarray, group_sizes: list[int], chains_in_lockstep: bool = True) -> float:
    """Fraction of leapfrog work spent waiting in vectorised NUTS.

    Parameters
    ----------
    n_steps : (B, chains, draws) integration steps of each transition.
    group_sizes : brands per lock-step group (one group per device), summing to B.
    chains_in_lockstep : whether a brand's chains are vmapped too (else they run one after
        another, so only the group's brands wait for each other, chain by chain).

    Within a group every transition costs ``max`` over its members (brands x chains); the
    useful work is the sum. Returns ``1 - useful / paid`` (0 = no waste).
    """
    n_steps = np.asarray(n_steps, dtype=float)
    useful = paid = 0.0
    start = 0
    for g in group_sizes:
        block = n_steps[start : start + g]
        start += g
        sets = [block.reshape(-1, block.shape[-1])] if chains_in_lockstep else [block[:, c] for c in range(block.shape[1])]
        for members in sets:  # (members, draws)
            useful += members.sum()
            paid += members.max(axis=0).sum() * members.shape[0]
    return float(1.0 - useful / paid) if paid > 0 else 0.0


def key_data_for(seeds: list[int]) -> np.ndarray:
    """Raw key data (B, 2) uint32 of ``jax.random.key(seed)`` for each brand seed."""
    return np.stack([np.asarray(jax.random.key_data(jax.random.key(int(s)))) for s in seeds])


__all__ += ["put_sharded", "local_rows", "run_chunk", "start_chunk", "finish_chunk", "key_data_for"]
