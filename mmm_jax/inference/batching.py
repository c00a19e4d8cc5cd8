"""How a gradient is evaluated for many chains stepped together (ChEES, MEADS).

BlackJAX's many-chain samplers step every chain at once with ``jax.vmap``. On CPU a vmapped
gradient of a large model costs more per chain than one chain's gradient: XLA fuses the batched
program differently (it recomputes the mean and the likelihood chain inside several full-size
fusions). Measured on the hierarchical model, 40 markets x 156 weeks x 5 channels, 1 core, 5
chains: 606-751 us per chain vmapped, 385-412 us one chain at a time; at 20 markets the two are
even, and at 2-8 markets vmap wins (40 vs 66 us, 135 vs 168 us).

:func:`sequential_gradients` keeps the sampler's code as it is (``vmap`` over chains) and gives
it a log-density whose *value and gradient*, when vmapped, run chain after chain (``lax.map``)
inside each of ``groups`` groups: the groups stay a vmapped axis, so a chain axis sharded over
``groups`` devices stays sharded and each device maps over its own chains.
"""

from __future__ import annotations

import jax
from jax.custom_batching import custom_vmap

__all__ = ["GRADIENT_BATCHING", "MAP_MIN_DATA_SIZE", "resolve_gradient_batching", "sequential_gradients"]

GRADIENT_BATCHING = ("auto", "vmap", "map")
#: ``auto`` maps on CPU when the model's data hold at least this many numbers (the 40-market model
#: above holds 50,700 numbers; 20 markets, where vmap and map are even, 25,740).
MAP_MIN_DATA_SIZE = 40_000


def resolve_gradient_batching(setting: str, data: dict) -> str:
    """``"vmap"`` or ``"map"`` for ``setting`` in :data:`GRADIENT_BATCHING` and the model's data."""
    if setting not in GRADIENT_BATCHING:
        raise ValueError(f"gradient_batching {setting!r}; allowed: {list(GRADIENT_BATCHING)}")
    if setting != "auto":
        return setting
    size = sum(int(getattr(v, "size", 1)) for v in data.values())
    return "map" if jax.default_backend() == "cpu" and size >= MAP_MIN_DATA_SIZE else "vmap"


def sequential_gradients(logdensity, groups: int = 1):
    """``logdensity`` (flat ``x`` (dim,) -> scalar), with the same values and gradients, whose
    ``value_and_grad`` under ``vmap`` over a batch of ``n`` points runs ``groups`` vmapped groups
    of ``n / groups`` points evaluated one after another (one group when ``groups`` does not
    divide ``n``)."""
    value_and_grad = jax.value_and_grad(logdensity)

    @custom_vmap
    def vg(x):
        return value_and_grad(x)

    @vg.def_vmap
    def _vg_batched(axis_size, in_batched, x):
        if not in_batched[0]:
            return vg(x), (False, False)
        g = groups if groups > 0 and axis_size % groups == 0 else 1
        xs = x.reshape((g, axis_size // g, *x.shape[1:]))
        v, grad = jax.vmap(lambda xg: jax.lax.map(value_and_grad, xg))(xs)
        return (v.reshape((axis_size,)), grad.reshape(x.shape)), (True, True)

    @jax.custom_vjp
    def ld(x):
        return logdensity(x)

    def _fwd(x):
        return vg(x)

    def _bwd(grad, ct):
        return (ct * grad,)

    ld.defvjp(_fwd, _bwd)
    return ld
