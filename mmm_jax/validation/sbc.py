"""Simulation-based calibration (SBC) of a model, every simulation a brand of the batch sampler.

For ``i = 1..n``: draw parameters ``theta_i`` and a target ``y_i`` from the prior predictive of
the model built on a template frame (its dates, spend and controls: PyMC's forward sampling of the
same ``pm.Model``), fit ``y_i`` with the same model, and record the rank of every scalar of
``theta_i`` among ``L`` thinned posterior draws. If the sampler and the model's log-density agree
with its generative process, each rank is uniform on ``0..L`` and the central 50% / 90%
posterior intervals contain ``theta_i`` 50% / 90% of the time (Talts et al. 2018).

The simulations run on the scaled data the template defines (the template's scaling is kept, so
the prior the fits use is the prior that generated the data) through the batch engine
(:func:`mmm_jax.batch.engine.make_batch_sampler`: one compiled program, chunks of simulations,
sharded over devices), not through a loop of single fits.

>>> from mmm_jax.validation import sbc                                          # doctest: +SKIP
>>> res = sbc(cfg, df, n=200, chains=2, warmup=300, draws=300, out="runs/sbc")  # doctest: +SKIP
>>> res.coverage          # per scalar parameter: 50% / 90% coverage, rank uniformity test  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from ..api.fitted import model_for
from ..batch.engine import brand_mesh, key_data_for, make_batch_sampler, run_chunk
from ..batch.run import Progress, default_layout
from ..batch.stack import brand_seed
from ..inference.base import SamplerConfig, checked
from ..persist import atomic_write_text, check_output_dir, mark_output_dir

__all__ = ["sbc", "SBCResult", "prior_draws"]


def prior_draws(model, n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``n`` draws of the free parameters (constrained, ``{name: (n, *shape)}``) and of the scaled
    target ``(n, *target_shape)`` from the prior predictive of a built model (``model.model``)."""
    import pymc as pm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = pm.sample_prior_predictive(int(n), model=model.model, random_seed=int(seed))
    prior = idata.prior
    free = [rv.name for rv in model.model.free_RVs]
    theta = {k: np.asarray(prior[k].values)[0] for k in free}
    return theta, np.asarray(idata.prior_predictive["y"].values)[0]


def _scalars(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``{name: (..., *shape)}`` -> ``{"name[i,j]": (...)}`` one entry per scalar component."""
    out = {}
    for name, v in values.items():
        v = np.asarray(v)
        inner = v.shape[1:] if v.ndim else ()
        if not inner:
            out[name] = v
            continue
        for idx in np.ndindex(*inner):
            out[f"{name}[{','.join(map(str, idx))}]"] = v[(slice(None), *idx)]
    return out


@dataclass
class SBCResult:
    """Results of :func:`sbc`.

    Attributes
    ----------
    ranks : DataFrame (simulation x scalar parameter) of ranks in ``0..n_ranks - 1``
    coverage : DataFrame per scalar parameter: ``coverage_50``, ``coverage_90`` (share of
        simulations whose central interval — quantiles of all posterior draws — holds the true
        value), ``rank_chi2_p`` (chi-square
        test of uniform ranks over ``bins`` bins), ``max_ecdf_diff``
    n_ranks : number of possible ranks (thinned posterior draws + 1)
    diagnostics : DataFrame per simulation: ``max_rhat``, ``min_ess_bulk``, ``divergences``
    stats : wall seconds, simulations per minute, settings
    """

    ranks: pd.DataFrame
    coverage: pd.DataFrame
    n_ranks: int
    diagnostics: pd.DataFrame
    stats: dict

    def plot(self, path=None, *, bins: int = 20, title: str | None = None):
        """Rank histograms (with the 99% band of a uniform histogram) per scalar parameter."""
        from ..plots import plot_sbc_ranks

        return plot_sbc_ranks(self, path, bins=bins, title=title)

    def plot_ecdf(self, path=None, *, title: str | None = None):
        """ECDF difference plots (ECDF of the scaled ranks minus the uniform CDF, with a 95%
        simultaneous band) per scalar parameter."""
        from ..plots import plot_sbc_ecdf

        return plot_sbc_ecdf(self, path, title=title)


def sbc(config, df_template: pd.DataFrame, n: int = 100, *, chains: int = 2, warmup: int = 300, draws: int = 300,
        thin: int | None = None, target_accept: float = 0.9, seed: int = 0, chunk_size: int | None = None,
        devices=None, bins: int = 20, out: str | os.PathLike | None = None, overwrite: bool = False,
        progress: bool = True) -> SBCResult:
    """Simulation-based calibration of ``config``'s model on ``df_template``'s design.

    Parameters
    ----------
    config : any config (one brand or markets; lift tests are not part of SBC)
    df_template : the design: dates, spend, controls (and markets); its target only sets the
        scaling (the simulated targets replace it)
    n : simulations (>= 100 for a meaningful coverage check: a 90% interval's coverage over n
        simulations has a standard error of ``sqrt(0.09 / n)``, 3 points at n = 100)
    chains, warmup, draws, target_accept : NUTS settings of every fit (the batch engine's
        BlackJAX window adaptation)
    thin : keep every ``thin``-th draw for the ranks (default: about 100 draws per simulation,
        so that ranks are not inflated by autocorrelation)
    seed : simulation ``i`` uses the prior draw ``i`` of ``seed`` and the sampler seed
        ``brand_seed(seed, f"sim{i}")``
    chunk_size, devices : simulations per compiled call and devices (defaults as in ``fit_many``)
    bins : rank histogram bins for the uniformity test and plot
    out : folder for ``sbc_ranks.csv``, ``sbc_coverage.csv``, ``sbc_diagnostics.csv``,
        ``sbc.json``, ``sbc_ranks.png``, ``sbc_ecdf.png`` (optional): new, empty or an earlier SBC
        output (checked before any work); ``overwrite=True`` also writes into another folder,
        keeping its files
    """
    t0 = time.perf_counter()
    if int(n) < 2:
        raise ValueError(f"n must be >= 2 simulations, got {n}")
    if out is not None:
        out = check_output_dir(out, "sbc", overwrite=overwrite)
    model = model_for(config)
    model.build(df_template, lift_tests=False)
    ld, base = model.logdensity, model.model_inputs()
    theta, y = prior_draws(model, n, seed)
    cfg = checked(SamplerConfig(chains=chains, warmup=warmup, draws=draws, target_accept=target_accept,
                                progress=False))
    thin = int(thin or max(1, (chains * draws) // 100))
    devices = list(jax.devices() if devices is None else devices)
    vmap_group, vmap_chains = default_layout(devices, None, None)
    mesh = brand_mesh(devices[: max(1, min(len(devices), int(n)))])
    chunk = int(chunk_size or 8 * mesh.devices.size)
    bar = Progress(int(n), progress)
    sampler = make_batch_sampler(ld, cfg, chunk, mesh=mesh, on_step=bar.on_step, vmap_group=vmap_group,
                                 vmap_chains=vmap_chains)
    chunk = sampler.chunk_size
    free = [rv.name for rv in model.model.free_RVs]
    constrain = jax.jit(jax.vmap(lambda p: {k: v for k, v in ld.constrain(p, base).items() if k in free}))
    mask = np.asarray(base["mask"])
    ranks, inside50, inside90, diag = [], [], [], []
    n_chunks = -(-int(n) // chunk)
    for c in range(n_chunks):
        bar.chunk(c + 1, n_chunks)
        ids = list(range(c * chunk, min((c + 1) * chunk, int(n))))
        rows = ids + [ids[-1]] * (chunk - len(ids))
        arrays = {k: np.stack([np.asarray(base[k])] * chunk) for k in ld.data_names}
        arrays["target"] = np.stack([np.where(mask > 0, y[i], 0.0) for i in rows])
        out_rows = run_chunk(sampler, arrays, key_data_for([brand_seed(seed, f"sim{i}") for i in rows]))
        for r, i in enumerate(ids):
            positions, st, _ = out_rows[r]
            post = constrain({k: np.asarray(v).reshape((-1, *np.shape(v)[2:])) for k, v in positions.items()})
            post = {k: np.asarray(v).reshape((chains, draws, *np.shape(v)[1:])) for k, v in post.items()}
            truth = _scalars({k: theta[k][i : i + 1] for k in free})
            thinned = _scalars({k: post[k][:, ::thin].reshape((-1, *post[k].shape[2:])) for k in free})
            ranks.append({k: int((thinned[k] < truth[k][0]).sum()) for k in truth})
            every = _scalars({k: post[k].reshape((-1, *post[k].shape[2:])) for k in free})  # intervals: all draws
            q50 = {k: np.quantile(v, [0.25, 0.75]) for k, v in every.items()}
            inside50.append({k: bool(q50[k][0] <= truth[k][0] <= q50[k][1]) for k in truth})
            q90 = {k: np.quantile(v, [0.05, 0.95]) for k, v in every.items()}
            inside90.append({k: bool(q90[k][0] <= truth[k][0] <= q90[k][1]) for k in truth})
            diag.append({"sim": i, **_diagnostics(post, st)})
        bar.advance(len(ids))
    bar.close()
    wall = time.perf_counter() - t0
    ranks_df = pd.DataFrame(ranks)
    ranks_df.index.name = "sim"
    n_ranks = int(np.ceil(draws / thin)) * chains + 1
    coverage = pd.DataFrame({"coverage_50": pd.DataFrame(inside50).mean(),
                             "coverage_90": pd.DataFrame(inside90).mean()})
    coverage["rank_chi2_p"] = [_uniform_p(ranks_df[k].to_numpy(), n_ranks, bins) for k in coverage.index]
    coverage["max_ecdf_diff"] = [_max_ecdf_diff(ranks_df[k].to_numpy(), n_ranks) for k in coverage.index]
    stats = {"n": int(n), "chains": chains, "warmup": warmup, "draws": draws, "thin": thin, "wall_s": wall,
             "simulations_per_min": 60.0 * int(n) / max(wall, 1e-9), "chunk_size": chunk,
             "devices": int(mesh.devices.size), "seed": int(seed)}
    res = SBCResult(ranks_df, coverage, n_ranks, pd.DataFrame(diag), stats)
    if out is not None:
        _write(res, mark_output_dir(out, "sbc"), bins)
    return res


def _diagnostics(post: dict, st: dict) -> dict:
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = az.convert_to_dataset({k: v for k, v in post.items()})
        rhat = az.rhat(ds) if next(iter(post.values())).shape[0] > 1 else None
        ess = az.ess(ds, method="bulk")
    return {"max_rhat": float(max(float(rhat[k].max()) for k in rhat.data_vars)) if rhat is not None else float("nan"),
            "min_ess_bulk": float(min(float(ess[k].min()) for k in ess.data_vars)),
            "divergences": int(np.asarray(st["diverging"]).sum())}


def _uniform_p(ranks: np.ndarray, n_ranks: int, bins: int) -> float:
    """Chi-square p-value of ``ranks`` (integers in 0..n_ranks-1) being uniform, over ``bins`` bins."""
    from scipy import stats

    bins = int(min(bins, n_ranks))
    counts = np.bincount(np.asarray(ranks, dtype=int) * bins // n_ranks, minlength=bins)
    expected = np.bincount(np.arange(n_ranks) * bins // n_ranks, minlength=bins) / n_ranks * len(ranks)
    return float(stats.chisquare(counts, expected).pvalue)


def _max_ecdf_diff(ranks: np.ndarray, n_ranks: int) -> float:
    u = np.sort((ranks + 0.5) / n_ranks)
    grid = np.linspace(0, 1, 201)
    ecdf = np.searchsorted(u, grid, side="right") / len(u)
    return float(np.max(np.abs(ecdf - grid)))


def _write(res: SBCResult, out: Path, bins: int) -> None:
    atomic_write_text(out / "sbc_ranks.csv", res.ranks.to_csv())
    atomic_write_text(out / "sbc_coverage.csv", res.coverage.to_csv(index_label="parameter"))
    atomic_write_text(out / "sbc_diagnostics.csv", res.diagnostics.to_csv(index=False))
    atomic_write_text(out / "sbc.json", json.dumps({"stats": res.stats, "n_ranks": res.n_ranks,
                                                    "coverage": res.coverage.to_dict(orient="index")}, indent=2))
    res.plot(out / "sbc_ranks.png", bins=bins)
    res.plot_ecdf(out / "sbc_ecdf.png")
