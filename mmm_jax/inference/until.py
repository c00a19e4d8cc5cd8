"""Sample until converged: the stopping rule a sampler checks between chunks of draws.

``until={"rhat": 1.01, "ess": 400}`` asks for every free parameter's rank-normalised split
R-hat <= 1.01 and bulk ESS >= 400 (``"ess_tail"`` adds a tail-ESS target). The rule is checked
on the unconstrained draws: rank-normalised R-hat and bulk / tail ESS do not change under the
elementwise monotone transforms that map them to the constrained free parameters, so the fit's
``diagnostics()`` reports the same numbers (up to rounding).
"""

from __future__ import annotations

import logging

from collections.abc import Mapping

import numpy as np

__all__ = ["TARGETS", "check_until", "default_max_draws", "convergence", "StopRule"]

log = logging.getLogger(__name__)

#: what ``until`` may ask for: the largest R-hat, the smallest bulk ESS, the smallest tail ESS
TARGETS = ("rhat", "ess", "ess_tail")


def check_until(until: Mapping | None) -> dict | None:
    """``until`` as a plain dict of floats, or a ValueError naming the key or value at fault."""
    if until is None:
        return None
    if not isinstance(until, Mapping) or not until:
        raise ValueError(f"until must be a dict with keys from {list(TARGETS)}, e.g. {{'rhat': 1.01, 'ess': 400}}; "
                         f"got {until!r}")
    unknown = [k for k in until if k not in TARGETS]
    if unknown:
        raise ValueError(f"until: unknown target(s) {unknown}; allowed: {list(TARGETS)}")
    out = {k: float(v) for k, v in until.items()}
    if "rhat" in out and not out["rhat"] > 1.0:
        raise ValueError(f"until['rhat'] must be > 1 (e.g. 1.01), got {out['rhat']}")
    for k in ("ess", "ess_tail"):
        if k in out and not out[k] > 0:
            raise ValueError(f"until[{k!r}] must be > 0, got {out[k]}")
    return out


def default_max_draws(draws: int) -> int:
    """Draws per chain at most when ``until`` is given without ``max_draws``."""
    return max(4 * int(draws), 2000)


def _as_matrix(samples: Mapping) -> np.ndarray:
    """``{name: (chains, draws, ...)}`` -> ``(chains, draws, k)`` over every scalar parameter."""
    cols = [np.asarray(v, dtype=float).reshape(*np.shape(v)[:2], -1) for v in samples.values()]
    return np.concatenate(cols, axis=2)


def convergence(samples: Mapping, tail: bool = False) -> dict:
    """``{max_rhat, min_ess_bulk[, min_ess_tail]}`` of ``samples`` (``{name: (chains, draws, ...)}``)."""
    import arviz as az

    x = _as_matrix(samples)
    ds = az.convert_to_dataset({"x": x})
    out = {"max_rhat": float(np.nanmax(az.rhat(ds)["x"].values)),
           "min_ess_bulk": float(np.nanmin(az.ess(ds, method="bulk")["x"].values))}
    if tail:
        out["min_ess_tail"] = float(np.nanmin(az.ess(ds, method="tail")["x"].values))
    return out


class StopRule:
    """``rule(draws) -> bool`` for :func:`mmm_jax.inference.chunked.run_chunked`'s ``stop``.

    ``positions_of(draws)`` turns a chunk loop's draws into ``{name: (chains, draws, ...)}``.
    No check before ``min_draws`` draws per chain. After the run, :meth:`summary` says what
    stopped it: ``"converged"`` (every target met) or ``"max_draws"``.
    """

    def __init__(self, until: Mapping, min_draws: int, max_draws: int, positions_of):
        self.until = check_until(until)
        self.min_draws, self.max_draws = int(min_draws), int(max_draws)
        self.positions_of = positions_of
        self.last: dict | None = None
        self.met = False
        self.checks = 0

    def __call__(self, draws) -> bool:
        z = self.positions_of(draws)
        n = next(iter(z.values())).shape[1]
        if n < self.min_draws:
            return False
        self.checks += 1
        self.last = {"draws": int(n), **convergence(z, tail="ess_tail" in self.until)}
        self.met = self._met(self.last)
        if self.met:
            log.info("until: targets %s met after %d draws per chain (max R-hat %.4f, min bulk ESS %.0f)",
                     self.until, n, self.last["max_rhat"], self.last["min_ess_bulk"])
        elif n < self.max_draws:
            log.info("until: after %d draws per chain max R-hat %.4f, min bulk ESS %.0f (targets %s): drawing on",
                     n, self.last["max_rhat"], self.last["min_ess_bulk"], self.until)
        return self.met

    def _met(self, d: dict) -> bool:
        u = self.until
        return (d["max_rhat"] <= u.get("rhat", np.inf) and d["min_ess_bulk"] >= u.get("ess", 0.0)
                and d.get("min_ess_tail", np.inf) >= u.get("ess_tail", 0.0))

    def summary(self, samples: Mapping) -> dict:
        """What stopped the run whose final draws are ``samples`` (``{name: (chains, draws, ...)}``)."""
        n = next(iter(samples.values())).shape[1]
        if self.last is None or self.last["draws"] != n:
            self.last = {"draws": int(n), **convergence(samples, tail="ess_tail" in self.until)}
            self.met = self._met(self.last)
        return {"stopped_by": "converged" if self.met else "max_draws", "until": dict(self.until),
                "max_draws": self.max_draws, "checks": self.checks, **self.last}
