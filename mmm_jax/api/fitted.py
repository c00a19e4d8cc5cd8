"""One fitted-model interface, whatever its markets: :class:`FittedModel`, ``model_for(config)``
and ``load(path)``.

A config with market keys gives a :class:`mmm_jax.hierarchical.HierarchicalMMM` (ROAS, CAC,
marginal values, curves and budgets at ``level="market"`` or ``"national"``); one without gives
an :class:`mmm_jax.MMM` (the one-market case of the same model). Both are thin facades over the
same model builder (:func:`mmm_jax.model.build.build_pymc_model`), compile step, per-draw quantities
(:func:`mmm_jax.posterior.results.draw_quantities`) and InferenceData builder, and share
:class:`FittedModel`: ``diagnostics``, ``summary`` and ``save`` (one folder format,
:mod:`mmm_jax.persist`), and the same analysis method names (``roas``, ``cac``,
``contributions``, ``predict``, ``marginal_roas``, ``marginal_cac``, ``response_curves``,
``optimize_budget``; with markets they take ``level="market"`` or ``"national"``).

>>> m = model_for({"date": "date", "target": "sales", "channels": ["tv"]})      # doctest: +SKIP
>>> m.fit(df); m.save("run")                                                   # doctest: +SKIP
>>> load("run").roas()                                                         # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import jax

from ..compat import get_group, group, group_names, hdi_array, new_idata, summary
from ..inference import sample
from ..persist import RunFormatError, output_kind, save_run
from ..posterior.results import check_convergence, diagnostics, free_parameter_names

if TYPE_CHECKING:
    import arviz as az
    import pandas as pd

    from ..config.markets import HierarchicalConfig
    from ..config.model import ModelConfig
    from .markets import HierarchicalMMM
    from .mmm import MMM

__all__ = ["FittedModel", "NotFittedError", "model_for", "load"]

log = logging.getLogger(__name__)


class NotFittedError(RuntimeError):
    """The model has not been fitted (or loaded) yet."""


class FittedModel:
    """What every fitted model (:class:`~mmm_jax.MMM`, :class:`~mmm_jax.hierarchical.HierarchicalMMM`)
    answers the same way. A subclass sets ``kind`` (the saved folder's kind), holds ``config``,
    ``scaling``, ``idata`` and ``fit_settings``, and says which frame it was fitted on
    (:meth:`training_frame`)."""

    kind: ClassVar[str]
    #: posterior quantities that :meth:`summary` lists after the free parameters
    summary_quantities: ClassVar[tuple[str, ...]] = ("roas",)

    def fit(self, df: pd.DataFrame, *, sampler: str = "numpyro", chains: int = 4, warmup: int = 1000,
            draws: int = 1000, target_accept: float = 0.9, seed: int = 0, progress: bool = True,
            chunk_draws: int = 256, lift_tests=None, holdout=None, log_likelihood: bool = False,
            **sampler_kwargs: Any) -> az.InferenceData:
        """Fit and return the labelled InferenceData (also kept as ``self.idata``).

        Parameters
        ----------
        df : DataFrame with the config's date, target, channel and control columns (and the
            market columns for a market model: long format, one row per market and week).
        sampler : {"numpyro", "blackjax", "chees", "meads"}
            NUTS (window adaptation) or BlackJAX many-chain adaptation, see
            :func:`mmm_jax.inference.sample`.
        chains, warmup, draws, target_accept : sampler settings.
        seed : int
            Same seed, same draws.
        progress : bool
            Progress bar while sampling.
        chunk_draws : int
            Draws per post-processing step (bounds its memory; markets: chunk x markets x weeks x
            channels doubles); the results do not depend on it.
        lift_tests : DataFrame, path, None or False
            Lift tests (experiments) that enter the likelihood, columns channel, [market], start,
            end, delta_spend, delta_response, sigma (:mod:`mmm_jax.data.lift`; a bad row raises
            :class:`mmm_jax.DataError` naming it). ``None``: the config's ``lift_tests`` path, if
            any; ``False``: none, whatever the config says. :meth:`lift_test_fit` compares them
            with the fitted model afterwards.
        holdout : int, date or None
            Keep the last weeks out of the likelihood: a number of weeks, or the first held-out
            date. They stay in the model (masked, not dropped: carry-over into them is right),
            scaling is fitted on the training weeks, ROAS and contributions are over the training
            weeks, and :meth:`holdout_metrics` scores the posterior predictive there (CRPS, MAPE,
            50% / 90% interval coverage; also in the InferenceData's attributes).
        log_likelihood : bool
            Add a ``log_likelihood`` group: ``y``, the pointwise log-likelihood of every observed
            week (one brand: dim ``date``; markets: every observed market-week, dim ``obs`` with
            ``market`` and ``date`` coordinates), as densities of the target in original units
            (count likelihoods: probabilities of the counts); held-out weeks are left out. Then
            ``az.loo`` / :func:`mmm_jax.compare` work.
        **sampler_kwargs : further :class:`mmm_jax.inference.SamplerConfig` fields
            (``max_tree_depth``, ``dense_mass``, ``chain_method``).

        With ``until={"rhat": 1.01, "ess": 400}`` (targets ``rhat``, ``ess`` = bulk ESS,
        ``ess_tail``) the sampler draws ``draws`` per chain, then keeps drawing in chunks of 100
        until every free parameter meets the targets or ``max_draws`` per chain (default
        ``max(4 * draws, 2000)``) are drawn; ``fit_settings["stopped"]`` (and the posterior's
        ``until`` attribute) say which target stopped it, after how many draws.

        Warns :class:`mmm_jax.ConvergenceWarning` when max R-hat > 1.01 or there are divergences.
        """
        t0 = time.perf_counter()
        self.build(df, lift_tests=lift_tests, holdout=holdout)
        return self._sample_and_attach(None, time.perf_counter() - t0, sampler=sampler, chains=chains,
                                       warmup=warmup, draws=draws, target_accept=target_accept, seed=seed,
                                       progress=progress, chunk_draws=chunk_draws, log_likelihood=log_likelihood,
                                       **sampler_kwargs)

    def refresh(self, df: pd.DataFrame, *, warmup: int = 200, draws: int | None = None, seed: int | None = None,
                progress: bool = True, chunk_draws: int = 256, lift_tests=None, holdout=None,
                log_likelihood: bool = False, **sampler_kwargs: Any) -> az.InferenceData:
        """Refit on ``df`` — typically the same data with new weeks added — starting from this fit.

        The chains start at this fit's last draws with this fit's step sizes and (diagonal)
        inverse mass matrices (saved with the fit; for fits saved before they were, estimated from
        the draws), so a short warm-up — ``warmup`` (default 200) iterations of the same window
        adaptation, started from them instead of from unit step size and identity — is enough
        (measured: benchmarks/README.md, "Refresh"). The model is built on ``df`` exactly as
        :meth:`fit` builds it (scaling refitted, same config), so the posterior is the one a cold
        fit of ``df`` targets. Sampler, chains, target_accept and tree depth are this fit's;
        ``draws`` (default: this fit's) and ``seed`` (default: this fit's + 1) may change, and
        ``until`` / ``max_draws`` work as in :meth:`fit`. ``lift_tests``, ``holdout``,
        ``log_likelihood``: as in :meth:`fit` (``lift_tests=None``: the config's).

        Raises ``ValueError`` when ``df`` changes the model's parameters (a new channel, control,
        market or basis size): refit with :meth:`fit` then.
        """
        import numpy as np

        from ..inference import warm_start

        self._require_fit()
        fs = self.fit_settings
        sampler = fs.get("sampler", "numpyro")
        if sampler not in ("numpyro", "blackjax"):
            raise ValueError(f"refresh starts NUTS from this fit's adaptation; this fit used sampler {sampler!r} "
                             "(ChEES / MEADS adapt all chains together): refit with fit()")
        fixed = {k: fs[k] for k in ("chains", "target_accept", "max_tree_depth") if k in fs}
        clash = sorted(set(sampler_kwargs) & {*fixed, "sampler", "dense_mass"})
        if clash:
            raise TypeError(f"refresh keeps this fit's {clash}; refit with fit() to change them")
        if fs.get("dense_mass"):
            raise ValueError("refresh carries diagonal mass matrices; this fit used dense_mass=True: refit with fit()")
        t0 = time.perf_counter()
        tuned = fs.get("tuned") or {}
        if "last_positions" in tuned:  # each chain's last draw: (chains, 1, ...) is all warm_start needs
            before = {k: np.asarray(v, dtype=float)[:, None] for k, v in tuned["last_positions"].items()}
        else:  # a fit saved without them: map the stored posterior back
            before = self._unconstrained_draws()
        shapes = {k: v.shape[2:] for k, v in before.items()}
        start = warm_start(before, tuned.get("step_size"), tuned.get("inverse_mass_matrix"))
        self.build(df, lift_tests=lift_tests, holdout=holdout)
        now = dict(self.logdensity.param_shapes)
        changed = sorted(k for k in set(now) | set(shapes) if tuple(now.get(k, ())) != tuple(shapes.get(k, ()))
                         or (k in now) != (k in shapes))
        if changed:
            raise ValueError(f"refresh needs the same parameters as the fit it starts from; {changed} changed shape "
                             f"(before {[shapes.get(k) for k in changed]}, now {[now.get(k) for k in changed]}): "
                             "refit with fit()")
        return self._sample_and_attach(
            start, time.perf_counter() - t0, sampler=sampler, warmup=warmup, draws=int(draws or fs.get("draws", 1000)),
            seed=int(fs.get("seed", 0)) + 1 if seed is None else seed, progress=progress, chunk_draws=chunk_draws,
            log_likelihood=log_likelihood, **fixed, **sampler_kwargs)

    def _sample_and_attach(self, start, build_seconds: float, *, sampler: str, seed: int, chunk_draws: int,
                           log_likelihood: bool, **settings: Any) -> az.InferenceData:
        """Sample the built model (``start``: a warm start or None), post-process, check convergence;
        ``build_seconds``: what building took (recorded in the timings)."""
        t0 = time.perf_counter()
        k_sample, k_pp = jax.random.split(jax.random.key(seed))
        result = sample(self.logdensity, self.model_inputs(), key=k_sample, sampler=sampler, start=start, **settings)
        t1 = time.perf_counter()
        self.attach(result, key=k_pp, seed=seed, chunk_draws=chunk_draws)
        if result.tuned is not None:  # where a refresh starts from (kept in the saved fit's meta.json)
            self.fit_settings["tuned"] = {"step_size": result.tuned[0].tolist(),
                                          "inverse_mass_matrix": result.tuned[1].tolist(),
                                          "last_positions": {k: v[:, -1].tolist() for k, v in result.samples.items()}}
        if start is not None:
            self.fit_settings["refreshed"] = True
        if result.stopped is not None:
            self.fit_settings["stopped"] = result.stopped
            self.idata.posterior.attrs["until"] = json.dumps(result.stopped)
        if log_likelihood:
            self.add_log_likelihood(result.samples, chunk_draws=chunk_draws)
        self.timings = {"build_compile": build_seconds, **result.timings, "postprocess": time.perf_counter() - t1,
                        "wall": time.perf_counter() - t0 + build_seconds}
        for g in group_names(self.idata):
            self.idata[g].attrs["timings"] = json.dumps(self.timings)
        if self.holdout_start is not None:
            self.idata.posterior.attrs["holdout_metrics"] = json.dumps(self.holdout_metrics())
        d = self.diagnostics()
        log.info("%s %s: %s, %d chains x %d draws in %.1f s (build %.1f s, sampling %.1f s, post-processing %.1f s); "
                 "max R-hat %.4f, min bulk ESS %.0f, %d divergences", "refreshed" if start is not None else "fitted",
                 self.kind, sampler, self.idata.posterior.sizes["chain"], self.idata.posterior.sizes["draw"],
                 self.timings["wall"], build_seconds, self.timings.get("total", float("nan")),
                 self.timings["postprocess"], d["max_rhat"], d["min_ess_bulk"], d["divergences"])
        check_convergence(d)
        return self.idata

    def build(self, df: pd.DataFrame, *, lift_tests=None, holdout=None) -> None:
        """Validate and scale ``df`` (and the lift tests and hold-out, see :meth:`fit`), build the
        ``pm.Model`` and compile it (``self.logdensity``)."""
        raise NotImplementedError

    def model_inputs(self) -> dict:
        """The compiled model's data inputs for the training data (after :meth:`build`)."""
        raise NotImplementedError

    def attach(self, result, *, key, seed: int, chunk_draws: int = 256) -> az.InferenceData:
        """Post-process a sampler run of this model (``result``: a
        :class:`~mmm_jax.inference.base.SampleResult` with draws shaped ``(chains, draws, *param)``)
        into ``self.idata`` (also returned); ``key``: the posterior-predictive key; ``seed``:
        recorded as the fit's seed."""
        raise NotImplementedError

    def _require_fit(self) -> None:
        if getattr(self, "idata", None) is None:
            name = type(self).__name__
            raise NotFittedError(f"fit the model ({name}.fit) or load one ({name}.load) first")

    def diagnostics(self) -> dict[str, float]:
        """``{max_rhat, min_ess_bulk, min_ess_tail, divergences, draws}`` over free parameters."""
        self._require_fit()
        return diagnostics(self.idata)

    def summary(self, var_names: list[str] | None = None, hdi_prob: float = 0.94) -> pd.DataFrame:
        """ArviZ summary (mean, sd, HDI, R-hat, bulk/tail ESS) of the free parameters and ROAS
        (and national ROAS where there are markets)."""
        self._require_fit()
        names = var_names or [*free_parameter_names(self.idata),
                              *(n for n in self.summary_quantities if n in self.idata.posterior)]
        return summary(self.idata, names, hdi_prob)

    def add_log_likelihood(self, samples: dict | None = None, *, chunk_draws: int = 256):
        """Add (or replace) the ``log_likelihood`` group (see :meth:`fit`'s ``log_likelihood``) from
        ``samples`` (the sampler's unconstrained draws; default: mapped back from the posterior).
        Returns the group's Dataset."""
        from ..posterior.results import log_likelihood_dataset, pointwise_log_likelihood, set_log_likelihood

        self._require_fit()
        if self.logdensity is None:
            raise NotFittedError("the log-likelihood needs the model rebuilt on its data (fit it, or load a saved fit)")
        if samples is None:
            samples = self._unconstrained_draws()
        data = self.model_inputs()
        ll = pointwise_log_likelihood(self.logdensity, samples, data, target_scale=self.scaling.target_scale,
                                      likelihood=self._likelihood(), batch_size=chunk_draws)
        labels = self._cell_labels()
        ds = log_likelihood_dataset(ll, data["mask"], labels["date"], labels.get("market"))
        set_log_likelihood(self.idata, ds)
        return ds

    def _likelihood(self) -> str:
        raise NotImplementedError

    def _cell_labels(self) -> dict:
        """``{"date": (T,)}`` (and ``"market": (G,)``) labels of the model's target cells."""
        raise NotImplementedError

    def _unconstrained_draws(self) -> dict:
        """The stored posterior mapped back to the sampler's unconstrained variables."""
        raise NotImplementedError

    def prior_predictive(self, df: pd.DataFrame, *, draws: int = 500, seed: int = 0, lift_tests=None):
        """Draws from the prior (PyMC's forward sampling of the same model, built on ``df``).

        Returns an ``InferenceData`` with ``prior`` (the free parameters and deterministics on the
        scaled data, plus ``mu_original`` and ``roas`` — contribution over the data's weeks /
        spend, per channel (and market) — in original units), ``prior_predictive`` (``y``,
        original units: what the model expects the target to look like before seeing it) and
        ``observed_data`` (markets: NaN on the weeks a market does not have). Does not change this
        model (a fitted model stays fitted).
        """
        import warnings

        import numpy as np
        import pymc as pm
        import xarray as xr

        if int(draws) < 1:
            raise ValueError(f"draws must be >= 1, got {draws}")
        other = type(self)(self.config)
        other.build(df, lift_tests=lift_tests)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idata = pm.sample_prior_predictive(int(draws), model=other.model, random_seed=seed)
        ts = np.asarray(other.scaling.target_scale, dtype=float)
        per_cell = ts[:, None] if ts.ndim else ts  # (G, 1) / ()
        prior = group(idata, "prior")
        y = group(idata, "prior_predictive")["y"]
        mask = np.asarray(other.model_inputs()["mask"])
        contrib = prior["channel_contribution"].values * (ts[:, None, None] if ts.ndim else ts)  # (..., [G,] T, C)
        tot = (contrib * mask[..., None]).sum(axis=-2)
        spend = other._spend_totals()
        roas_dims = prior["channel_contribution"].dims[:2] + tuple(d for d in prior["channel_contribution"].dims[2:]
                                                                    if d != "date")
        prior = prior.assign(mu_original=prior["mu"] * per_cell,
                             roas=(roas_dims, tot / np.where(spend > 0, spend, np.nan)))
        live = xr.DataArray(mask > 0, dims=group(idata, "observed_data")["y"].dims)  # markets: weeks a market has
        observed = (group(idata, "observed_data")["y"] * per_cell).where(live)
        return new_idata({"prior": prior, "prior_predictive": xr.Dataset({"y": (y * per_cell).where(live)}),
                          "observed_data": xr.Dataset({"y": observed})})

    def _spend_totals(self):
        """Spend per channel (markets: per market and channel, model channel order) over the
        model's unmasked weeks, original units."""
        raise NotImplementedError

    def holdout_metrics(self) -> dict[str, float]:
        """Scores of the posterior predictive on the fit's held-out weeks (``fit(..., holdout=)``):
        ``{"holdout_start", "n", "crps", "crps_relative", "mape", "coverage_50", "coverage_90"}``
        (:func:`mmm_jax.posterior.metrics.forecast_metrics`; with markets over every market-week)."""
        import numpy as np
        import pandas as pd

        from ..posterior.metrics import forecast_metrics

        self._require_fit()
        start = self.idata.posterior.attrs.get("holdout_start")
        if start is None:
            raise ValueError("this fit has no hold-out weeks (fit(..., holdout=N_weeks or a date))")
        y = self.idata.posterior_predictive["y"]
        hold = pd.DatetimeIndex(y["date"].values) >= pd.Timestamp(start)
        draws = np.moveaxis(y.values, y.dims.index("date"), -1)[..., hold]
        draws = draws.reshape((-1, *draws.shape[2:]))
        obs = np.moveaxis(self.idata.observed_data["y"].values, self.idata.observed_data["y"].dims.index("date"),
                          -1)[..., hold]
        return {"holdout_start": str(pd.Timestamp(start).date()), **forecast_metrics(draws, obs)}

    def lift_test_fit(self, hdi_prob: float = 0.9) -> pd.DataFrame:
        """The fit's lift tests next to the model's prediction of each (original target units).

        One row per test: channel, market, start, end, delta_spend, ``measured``
        (delta_response), ``sigma``, the posterior ``mean`` / ``median`` and HDI of the
        model's lift for the same spend change and weeks, and ``z`` = (mean - measured) / sigma.
        Raises ``ValueError`` when the fit had no lift tests.
        """
        import numpy as np

        from ..data.lift import lift_table_from_constant_data

        self._require_fit()
        tests = lift_table_from_constant_data(get_group(self.idata, "constant_data"))
        if tests is None or "lift_prediction" not in self.idata.posterior:
            raise ValueError("this fit has no lift tests (fit(..., lift_tests=table) or lift_tests: PATH in the "
                             "config)")
        da = self.idata.posterior["lift_prediction"]
        n = len(tests)
        draws = da.values.reshape((-1, da.shape[-1]))[:, :n]
        hdi = hdi_array(da.values[..., :n], hdi_prob)  # (n, 2)
        out = tests.rename(columns={"delta_response": "measured"})
        out["mean"], out["median"] = draws.mean(axis=0), np.median(draws, axis=0)
        out[f"hdi_{(1 - hdi_prob) / 2:.0%}"], out[f"hdi_{1 - (1 - hdi_prob) / 2:.0%}"] = hdi[:, 0], hdi[:, 1]
        out["z"] = (out["mean"] - out["measured"]) / out["sigma"]
        out.index.name = "test"
        return out

    def training_frame(self) -> pd.DataFrame:
        """The training data the model was fitted on (what :meth:`save` writes as ``data.csv``)."""
        raise NotImplementedError

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the fitted model to the directory ``path`` (each file atomically).

        Contents (:mod:`mmm_jax.persist`): ``config.json``, ``scaling.json``, ``data.csv``
        (training data; long format with markets), ``idata.nc`` (InferenceData), ``meta.json``
        (format version, kind, versions, sampler settings, file sizes and hashes). ``path`` must
        be new, empty or an earlier saved model; ``overwrite=True`` also writes into another
        folder (keeping its other files). Else :class:`mmm_jax.persist.OutputDirError`.
        """
        self._require_fit()
        return save_run(path, kind=self.kind, config=self.config.to_dict(), scaling=self.scaling.to_dict(),
                        frame=self.training_frame(), idata=self.idata, fit_settings=self.fit_settings,
                        overwrite=overwrite)


def model_for(config: ModelConfig | HierarchicalConfig | Mapping | str | os.PathLike) -> MMM | HierarchicalMMM:
    """An unfitted model for ``config`` (a config object, a mapping, or a YAML / JSON file):
    :class:`~mmm_jax.hierarchical.HierarchicalMMM` when it has market keys, else :class:`~mmm_jax.MMM`."""
    from ..config.markets import HierarchicalConfig, load_config
    from .markets import HierarchicalMMM
    from .mmm import MMM

    cfg = load_config(config)
    return HierarchicalMMM(cfg) if isinstance(cfg, HierarchicalConfig) else MMM(cfg)


def load(path: str | os.PathLike) -> MMM | HierarchicalMMM:
    """Load a fitted model saved by ``save`` (either kind; format version and file hashes checked).

    Raises :class:`mmm_jax.persist.RunFormatError` naming what ``path`` is when it is not a
    saved fitted model (a batch folder, a budget, not an mmm_jax output).
    """
    from .markets import HierarchicalMMM
    from .mmm import MMM

    found = output_kind(path) if Path(path).is_dir() else None
    if found == "brand":
        return MMM.load(path)
    if found == "markets":
        return HierarchicalMMM.load(path)
    what = "not an mmm_jax output" if found is None else f"an mmm_jax {found} output, not a fitted model"
    hint = " (load a brand with mmm_jax.batch.load_brand(path, brand))" if found == "batch" else ""
    raise RunFormatError(f"{path}: {what}{hint}")
