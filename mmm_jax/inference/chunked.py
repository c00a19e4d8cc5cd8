"""Drive a sampler in chunks of iterations, one compiled program per chunk.

Why: on CPU, when chains run concurrently (host devices through ``pmap``, a jit sharded over
devices, threads), XLA (jax 0.10.2) keeps memory for every while-loop iteration of a program
until that program returns: about 9 kB per leapfrog step and chain, measured at 40 markets x
156 weeks x 5 channels. One program for 10 chains x 3,500 NUTS iterations of ~127 steps asked
for more than 24 GB and was OOM-killed; chunked, memory is bounded by one chunk. The sampler
state (adaptation included) is carried from chunk to chunk, so the draws are those of one run.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["CHUNK_ITERATIONS", "chunk_plan", "iterate", "run_chunked", "chain_layout", "chain_devices",
           "pmap_chains", "by_device", "from_devices"]

#: Sampler iterations per compiled program.
CHUNK_ITERATIONS = 100


def chunk_plan(n_warm: int, n_draws: int, size: int = CHUNK_ITERATIONS, split_at: int | None = None
               ) -> list[tuple[int, int]]:
    """``[(start, n), ...]``: warm-up then draws in chunks of at most ``size`` iterations; no chunk
    spans the end of warm-up, nor draw ``split_at`` (where a stopping rule first looks)."""
    def spans(a, b):
        return [(s, min(size, b - s)) for s in range(a, b, size)]

    cut = n_draws if split_at is None else min(max(int(split_at), 0), n_draws)
    return [*spans(0, n_warm), *((n_warm + s, n) for s, n in spans(0, cut)),
            *((n_warm + s, n) for s, n in spans(cut, n_draws))]


def iterate(step, carry, start, n, size: int):
    """``n`` (<= ``size``; ``start`` and ``n`` may be traced, so one compiled program serves every
    chunk) calls ``carry, out = step(carry, i)`` for ``i = start .. start + n - 1``.

    Returns ``(carry, buffers)``: ``out`` stacked in ``(size, ...)`` buffers, the first ``n`` rows
    filled.
    """
    shapes = jax.eval_shape(step, carry, jnp.zeros((), jnp.int32))[1]
    buf = jax.tree.map(lambda s: jnp.zeros((size, *s.shape), s.dtype), shapes)

    def body(j, c):
        cr, b = c
        cr, out = step(cr, start + j)
        return cr, jax.tree.map(lambda acc, v: acc.at[j].set(v), b, out)

    return jax.lax.fori_loop(0, n, body, (carry, buf))


def run_chunked(step, state, n_warm: int, n_draws: int, draw_axis: int, size: int = CHUNK_ITERATIONS, bar=None,
                stop=None, first_check: int | None = None):
    """Run ``step(state, start, n) -> (state, buffers)`` over every chunk of :func:`chunk_plan`.

    ``buffers`` is a pytree of arrays with ``size`` rows along ``draw_axis``, the first ``n`` filled.
    Each chunk is waited for (one program at a time holds memory). ``stop(draws) -> bool``, if
    given, sees the draws so far (host arrays concatenated along ``draw_axis``) after every draw
    chunk and ends the run early when it returns True (``n_draws`` is then the most draws); a
    chunk ends at draw ``first_check`` so that the first check can come there.
    Returns ``(state, draws, t_warm)``: the draw chunks as host NumPy arrays concatenated along
    ``draw_axis`` (``None`` when ``n_draws == 0``) and ``time.perf_counter()`` when warm-up ended.
    """
    parts = []
    t_warm = time.perf_counter()

    def joined():
        return jax.tree.map(lambda *xs: np.concatenate(xs, axis=draw_axis), *parts) if parts else None

    for start, n in chunk_plan(n_warm, n_draws, size, first_check):
        state, out = step(state, np.int32(start), np.int32(n))
        if start < n_warm:
            jax.block_until_ready(state)
            t_warm = time.perf_counter()
        else:
            parts.append(jax.tree.map(lambda x: np.asarray(x).take(np.arange(n), axis=draw_axis), jax.device_get(out)))
        if bar is not None:
            bar.update(n)
        if stop is not None and start >= n_warm and start + n < n_warm + n_draws:
            draws = joined()
            parts = [draws]
            if stop(draws):
                if bar is not None:  # the run ends here, short of its most draws
                    bar.total = bar.n
                    bar.refresh()
                break
    return state, joined(), t_warm


def chain_layout(n_chains: int, n_devices: int | None = None, cores: int | None = None) -> tuple[int, int]:
    """``(devices, chains per device)`` for ``chain_method="parallel"``.

    Each device runs its chains one after another, so a run takes about ``max(chains per device,
    devices * chains per device / cores)`` chain-lengths: on CPU the host devices share the
    ``cores`` (``os.cpu_count()``); an accelerator is its own compute (``cores = devices``). The
    layout minimising that wins, then the one with the fewest padded chains, then more devices.
    When the devices cannot share the chains evenly the last device's group is padded with copies
    of the last chain (their work is wasted, their draws dropped by :func:`from_devices`): 5 chains
    on 4 host devices of a 2-core CPU run as 3 devices x 2 (one padded) instead of 1 device x 5.
    """
    n = n_devices or jax.local_device_count()
    if cores is None:
        cores = (os.cpu_count() or 1) if jax.default_backend() == "cpu" else n
    options = []
    for d in range(1, min(n, n_chains) + 1):
        per = -(-n_chains // d)
        if (d - 1) * per >= n_chains:  # the last device would get no real chain
            continue
        cost = max(per, d * per / min(cores, d))
        options.append((cost, d * per, -d, d, per))
    _, _, _, d, per = min(options)
    return d, per


def chain_devices(n_chains: int) -> int:
    """Devices that ``chain_method="parallel"`` uses for ``n_chains`` (:func:`chain_layout`)."""
    return chain_layout(n_chains)[0]


def pmap_chains(fn, n_chains: int, n_mapped: int, n_args: int):
    """``fn(*per_chain_args, *shared_args)`` of ONE chain -> the same over all chains, ``pmap``-ed
    over :func:`chain_devices` devices, each device running its chains one after another
    (``lax.map``: no lock-step waiting, no batched control flow).

    Of the ``n_args`` arguments, the first ``n_mapped`` carry a leading ``(devices, chains per
    device)`` pair of axes (see :func:`by_device`); the others go to every chain. Outputs keep
    that pair of axes.
    """

    def local(*args):
        mapped, shared = args[:n_mapped], args[n_mapped:]
        return jax.lax.map(lambda a: fn(*a, *shared), mapped)

    return jax.pmap(local, in_axes=(0,) * n_mapped + (None,) * (n_args - n_mapped),
                    devices=jax.local_devices()[: chain_devices(n_chains)])


def by_device(tree, n_chains: int):
    """Leading ``(chains, ...)`` axes -> ``(devices, chains per device, ...)`` for :func:`pmap_chains`
    (:func:`chain_layout`; padded with copies of the last chain when the split is uneven)."""
    d, per = chain_layout(n_chains)

    def split(x):
        if d * per > n_chains:
            x = jnp.concatenate([x, jnp.repeat(x[-1:], d * per - n_chains, axis=0)])
        return x.reshape((d, per, *x.shape[1:]))

    return jax.tree.map(split, tree)


def from_devices(tree, n_chains: int):
    """Inverse of :func:`by_device`: ``(devices, chains per device, ...)`` -> ``(chains, ...)``,
    padded chains dropped."""
    return jax.tree.map(lambda x: x.reshape((x.shape[0] * x.shape[1], *x.shape[2:]))[:n_chains], tree)
