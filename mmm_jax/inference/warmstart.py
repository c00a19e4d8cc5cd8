"""Warm starts: begin a fit where an earlier fit of the same model ended (a refresh).

A refresh (:meth:`mmm_jax.api.fitted.FittedModel.refresh`) refits a model on extended data. Its
chains start from the earlier fit's last draws, with the earlier warm-up's step sizes and
diagonal inverse mass matrices, so its window adaptation starts where the earlier one ended and
a short warm-up (200 iterations by default) suffices. (Keeping the mass matrix fixed and
re-tuning the step size only was tried: one of four seeds then diverged 108 times.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

__all__ = ["WarmStart", "warm_start", "flat_variance"]


class WarmStart(NamedTuple):
    """Where each chain starts and what adaptation it starts from.

    positions : dict[str, (chains, ...)] unconstrained starting points.
    step_size : (chains,) NUTS step sizes.
    inverse_mass_matrix : (chains, d) diagonal inverse mass matrices over the parameters
        flattened in sorted-name order (``jax.flatten_util.ravel_pytree`` of the dict, as NumPyro
        and BlackJAX flatten them).
    """

    positions: dict
    step_size: np.ndarray
    inverse_mass_matrix: np.ndarray


def flat_variance(samples: Mapping) -> np.ndarray:
    """``(chains, d)`` per-chain variances of ``samples`` (``{name: (chains, draws, ...)}``), the
    parameters flattened in sorted-name order."""
    cols = [np.asarray(samples[k], dtype=float) for k in sorted(samples)]
    flat = np.concatenate([c.reshape(*c.shape[:2], -1) for c in cols], axis=2)
    return flat.var(axis=1)


def warm_start(samples: Mapping, step_size=None, inverse_mass_matrix=None, chains: int | None = None) -> WarmStart:
    """A :class:`WarmStart` from an earlier fit's unconstrained draws ``{name: (chains, draws, ...)}``.

    Each chain starts at its last draw. ``step_size`` ``(chains,)`` / ``inverse_mass_matrix``
    ``(chains, d)``: what the earlier warm-up ended with, when known; else the chains' draw
    variances (what a window adaptation estimates) and a step size of 0.5 (the warm-up adapts
    both). ``chains``: the new fit's chains (default: as many as before); more chains than before
    reuse the earlier chains' states in turn.
    """
    names = sorted(samples)
    n_before = np.shape(samples[names[0]])[0]
    n = int(chains or n_before)
    pick = np.arange(n) % n_before
    positions = {k: np.asarray(samples[k])[pick, -1] for k in names}
    if inverse_mass_matrix is None:
        inverse_mass_matrix = flat_variance(samples)
    imm = np.asarray(inverse_mass_matrix, dtype=float)
    if imm.ndim != 2:
        raise ValueError(f"inverse_mass_matrix must be (chains, d) diagonals, got shape {imm.shape}")
    imm = np.maximum(imm, 1e-8)[pick % imm.shape[0]]
    step = np.full(n_before, 0.5) if step_size is None else np.asarray(step_size, dtype=float).reshape(-1)
    return WarmStart(positions, step[pick % step.shape[0]], imm)
