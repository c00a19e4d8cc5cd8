"""``HierarchicalMMM``: fit the joint multi-market model and ask it per market or nationally.

>>> from mmm_jax import ModelConfig                                          # doctest: +SKIP
>>> from mmm_jax.hierarchical import HierarchicalConfig, HierarchicalMMM     # doctest: +SKIP
>>> cfg = HierarchicalConfig(ModelConfig(date="date", target="sales", channels=["tv", "search"]),
...                          market="geo")                                    # doctest: +SKIP
>>> h = HierarchicalMMM(cfg); h.fit(df_long, chains=4, draws=1000)             # doctest: +SKIP
>>> h.roas("market"); h.roas("national"); h.contributions()                    # doctest: +SKIP

Posterior quantities are computed after sampling, in chunks of draws of fixed size (one compiled
program, memory bounded by ``chunk_draws x markets x weeks x channels``): per-draw parameters,
ROAS and totals are kept; weekly contributions are reduced to their posterior mean and sd on
the fly (the full (draws, markets, weeks, channels) array is never held; peers run out of GPU
memory exactly there).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from ..compat import get_group
from ..compile import LogDensity, compile_logdensity, unconstrained_draws
from ..config.markets import HierarchicalConfig
from ..data.holdout import holdout_split, mask_holdout, training_weeks
from ..data.lift import lift_constant_data, lift_table_for, lift_table_from_constant_data, panel_lift
from ..data.panel import PanelData, PanelScaling, fit_panel_scaling, panel_arrays, validate_panel
from ..model.markets import build_hierarchical_model
from ..persist import read_run
from ..posterior.metrics import crps_samples
from ..posterior.results import draw_quantities, to_inference_data
from ..posterior.tables import posterior_table, summary_contributions
from .fitted import FittedModel
from .market_analysis import marginal_frame, response_curve_frames

if TYPE_CHECKING:
    import pymc as pm

#: dims of the post-processed quantities of the markets model (the rest come from the model)
MARKET_DIMS = {"total_contribution": ("market", "channel"), "roas": ("market", "channel"),
               "roas_national": ("channel",), "y": ("market", "date"), "mu_original": ("market", "date")}

__all__ = ["HierarchicalMMM"]


class HierarchicalMMM(FittedModel):
    """A multi-market MMM with partial pooling (the same model as :class:`mmm_jax.MMM`, with markets).

    Parameters
    ----------
    config : HierarchicalConfig or dict
    """

    def __init__(self, config: HierarchicalConfig | dict):
        self.config = config if isinstance(config, HierarchicalConfig) else HierarchicalConfig.from_dict(config)
        self.idata: az.InferenceData | None = None
        self.panel: PanelData | None = None
        self.frame: pd.DataFrame | None = None
        self.fit_settings: dict[str, Any] = {}
        self.model: pm.Model | None = None  # set by build_model
        self.logdensity: LogDensity | None = None
        self.lift_tests: pd.DataFrame | None = None  # the checked lift tests of the fit (prepare)
        self.holdout_start: pd.Timestamp | None = None  # first held-out week of the fit (prepare)

    # ------------------------------------------------------------------ build / fit
    def prepare(self, df: pd.DataFrame, *, lift_tests=None, holdout=None) -> None:
        """Validate and scale ``df`` (and the lift tests and hold-out, see :meth:`fit`) into the
        model inputs (``panel``, ``scaling``, ``arrays``, ``lift_tests``, ``holdout_start``), no model."""
        self.panel = validate_panel(df, self.config)
        self.frame = _training_frame(df, self.config)
        n = holdout_split(self.panel.dates, holdout, min_train=max(2, self.config.base.adstock.l_max))
        self.holdout_start = None if n == len(self.panel.dates) else pd.Timestamp(self.panel.dates[n])
        self.scaling = fit_panel_scaling(training_weeks(self.panel, n), self.config)
        self.arrays = mask_holdout(panel_arrays(self.panel, self.scaling, self.config), n)
        table = None if lift_tests is False else lift_table_for(lift_tests, self.config.base)
        self.lift_tests = None
        if table is not None:
            self.lift_tests, lift = panel_lift(table, self.config, self.panel, self.scaling)
            self.arrays.update(lift)

    def build(self, df: pd.DataFrame, *, lift_tests=None, holdout=None) -> None:
        """Validate, scale, build the joint ``pm.Model`` and compile it. A lift test names its
        market (``market``: the hierarchy's labels joined with "/"); a national channel's test may
        leave it empty (the spend change then applies in every market)."""
        self.prepare(df, lift_tests=lift_tests, holdout=holdout)
        self.build_model()

    def build_model(self) -> None:
        """Build the joint ``pm.Model`` from the prepared inputs (see :meth:`prepare`) and compile it."""
        if self.panel is None:
            raise RuntimeError("prepare the data first (HierarchicalMMM.prepare or build)")
        self.model = build_hierarchical_model(self.config, self.arrays, self.panel)
        self.logdensity = compile_logdensity(self.model)

    @property
    def channels(self) -> list[str]:
        return [*self.config.local_channels, *self.config.national_channels]

    def model_inputs(self) -> dict:
        return self.arrays

    # ------------------------------------------------------------------ post-processing
    def _quantities(self, samples: dict, arrays: dict, data: PanelData, key, chunk_draws: int,
                    keep_mu: bool = False) -> tuple:
        """Per-draw small quantities + streamed mean/sd of weekly contributions: ``(q, mean, sd)``
        with ``mean`` / ``sd`` (G, T, C) of the channels' contributions and, with treatments,
        ``q["_treatment_mean"]`` / ``q["_treatment_sd"]`` (G, T, J), original units."""
        ld, cfg = self.logdensity, self.config
        ts = jnp.asarray(self.scaling.target_scale)
        free = [rv.name for rv in self.model.free_RVs]
        loc_idx = [cfg.base.channels.index(c) for c in cfg.local_channels]
        nat_idx = [cfg.base.channels.index(c) for c in cfg.national_channels]
        order = loc_idx + nat_idx
        observed = arrays["mask"] > 0
        spend = data.spend[:, :, order]  # (G, T, C) original units, model channel order
        spend_tot = (spend * observed[:, :, None]).sum(axis=1)  # (G, C)
        nat_tot = spend_tot.sum(axis=0)
        if nat_idx:
            any_obs = observed.any(axis=0)
            first = np.argmax(observed, axis=0)
            series = spend[first, np.arange(spend.shape[1])]  # (T, C)
            nat_tot[len(loc_idx):] = (series[:, len(loc_idx):] * any_obs[:, None]).sum(axis=0)
        spend_tot_j = jnp.asarray(spend_tot)
        nat_tot_j = jnp.asarray(nat_tot)
        data_j = {k: jnp.asarray(arrays[k]) for k in ld.data_names}
        weekly = ("channel_contribution", "baseline", "mu", "channel_contribution_original", "baseline_original",
                  "treatment_contribution", "treatment_contribution_original")
        drop = weekly if keep_mu else (*weekly, "mu_original")
        J = len(cfg.base.treatments)

        def per_draw(params, k):
            q = draw_quantities(ld, params, data_j, k, target_scale=ts, total_spend=spend_tot_j,
                                likelihood=cfg.base.likelihood, national_spend=nat_tot_j)
            # weekly contributions are streamed (mean / sd), not kept per draw: channels, then treatments
            weekly_c = q["channel_contribution_original"]
            if J:
                weekly_c = jnp.concatenate([weekly_c, q["treatment_contribution_original"]], axis=-1)
            return {n: v for n, v in q.items() if n not in drop}, weekly_c

        @jax.jit
        def chunk(params, keys, w):
            res, contrib = jax.vmap(per_draw)(params, keys)
            wc = contrib * w[:, None, None, None]
            return res, wc.sum(axis=0), (wc * contrib).sum(axis=0)

        first = next(iter(samples.values()))
        n_chains, n_draws = first.shape[:2]
        S = n_chains * n_draws
        flat = {k: np.asarray(v).reshape((S, *v.shape[2:])) for k, v in samples.items()}
        keys = np.asarray(jax.random.key_data(jax.random.split(key, S)))
        B = int(min(chunk_draws, S))
        outs, csum, csq = [], 0.0, 0.0
        for s0 in range(0, S, B):
            idx = np.arange(s0, s0 + B) % S  # the last chunk wraps round; its extra rows get weight 0
            n_real = min(B, S - s0)
            w = (np.arange(B) < n_real).astype(float)
            res, s1, s2 = chunk({k: jnp.asarray(v[idx]) for k, v in flat.items()},
                                jax.random.wrap_key_data(jnp.asarray(keys[idx])), jnp.asarray(w))
            outs.append({k: np.asarray(v)[:n_real] for k, v in res.items()})
            csum = csum + np.asarray(s1)
            csq = csq + np.asarray(s2)
        q = {k: np.concatenate([o[k] for o in outs]).reshape((n_chains, n_draws, *outs[0][k].shape[1:]))
             for k in outs[0]}
        mean = csum / S
        sd = np.sqrt(np.maximum(csq / S - mean**2, 0.0))
        q["_free"] = free
        if J:  # the last J components are the treatments
            q["_treatment_mean"], q["_treatment_sd"] = mean[..., -J:], sd[..., -J:]
            mean, sd = mean[..., :-J], sd[..., :-J]
        return q, mean, sd

    def attach(self, result, *, key, seed: int, chunk_draws: int = 256) -> az.InferenceData:
        """See :meth:`FittedModel.attach`; the samples are for :attr:`logdensity`'s (unpadded)
        parameters. Used by :meth:`fit` and by the batch engine, which samples many brands in one program."""
        if self.logdensity is None:
            raise RuntimeError("build the model first (HierarchicalMMM.build or build_model)")
        self.fit_settings = {"sampler": result.sampler, "seed": int(seed), **result.config._asdict()}
        self.idata = self._to_idata(result, key, chunk_draws)
        return self.idata

    def _to_idata(self, result, key, chunk_draws: int) -> az.InferenceData:
        q, mean, sd = self._quantities(result.samples, self.arrays, self.panel, key, chunk_draws)
        free = q.pop("_free")
        coords = {**self.logdensity.coords, "channel": self.channels, "market": self.panel.markets,
                  "date": self.panel.dates}
        summ = xr.Dataset(
            {"contribution_mean": (("market", "date", "channel"), mean),
             "contribution_sd": (("market", "date", "channel"), sd)},
            coords={"market": self.panel.markets, "date": self.panel.dates, "channel": self.channels},
        )
        if "_treatment_mean" in q:  # the treatments' weekly contributions, over their own dim
            dims = ("market", "date", "treatment")
            summ = summ.assign({"treatment_contribution_mean": (dims, q.pop("_treatment_mean")),
                                "treatment_contribution_sd": (dims, q.pop("_treatment_sd"))})
            summ = summ.assign_coords(treatment=list(self.config.base.treatments))
        return to_inference_data(
            result, self.logdensity, self.arrays, coords=coords, target_scale=None, spend=None,
            target=self.panel.target, likelihood=self.config.base.likelihood, key=key, quantities=q,
            fixed_dims=MARKET_DIMS, y_dims=("market", "date"), extra_groups={"contribution_summary": summ},
            constant_data=None if self.lift_tests is None else lift_constant_data(self.lift_tests),
            attrs={"created_by": "mmm_jax.hierarchical", "config": self.config.to_json(),
                   "scaling": json.dumps(self.scaling.to_dict()), "free_parameters": json.dumps(free),
                   "seed": int(self.fit_settings.get("seed", 0)),
                   **({} if self.holdout_start is None else {"holdout_start": self.holdout_start.isoformat()})},
        )

    # ------------------------------------------------------------------ results
    kind = "markets"
    summary_quantities = ("roas", "roas_national")

    def _require_data(self, what: str):
        """``what`` needs the training panel (absent for a brand loaded from a batch's draws)."""
        self._require_fit()
        if self.panel is None:
            raise RuntimeError(f"{what} needs the training data: this model holds only its draws (a batch brand); "
                               "fit it with HierarchicalMMM.fit, or load a run written by HierarchicalMMM.save")

    def roas(self, level: str = "market", hdi_prob: float = 0.9) -> pd.DataFrame:
        """ROAS per market and channel (``level="market"``) or rolled up nationally (total
        contribution over all markets / total spend; ``level="national"``)."""
        return self._table(self._roas_draws(level), hdi_prob)

    def cac(self, level: str = "market", hdi_prob: float = 0.9) -> pd.DataFrame:
        """Cost per unit of incremental response (spend / contribution over the fitted weeks, per
        draw) per market and channel, or nationally; for a count target (new customers) the cost
        per incremental customer."""
        return self._table((1.0 / self._roas_draws(level)).rename("cac"), hdi_prob)

    def total_contribution(self, level: str = "market", hdi_prob: float = 0.9) -> pd.DataFrame:
        """Total contribution over the fitted weeks (original units) per market and channel
        (``level="market"``) or summed over the markets draw by draw (``level="national"``)."""
        tot = self._posterior(level, "total_contribution")
        return self._table(tot if level == "market" else tot.sum("market").rename("total_contribution"), hdi_prob)

    def _roas_draws(self, level: str) -> xr.DataArray:
        return self._posterior(level, "roas" if level == "market" else "roas_national")

    def _posterior(self, level: str, name: str) -> xr.DataArray:
        self._require_fit()
        if level not in ("market", "national"):
            raise ValueError(f"level must be 'market' or 'national', got {level!r}")
        return self.idata.posterior[name]

    def _table(self, da: xr.DataArray, hdi_prob: float) -> pd.DataFrame:
        return posterior_table(da, hdi_prob)

    def contributions(self) -> pd.DataFrame:
        """Posterior mean (and sd) of weekly contributions, original units, long format: columns
        ``contribution_mean`` and ``contribution_sd``, one row per (market, date, channel). A model
        with non-media treatments has one row per (market, date, component) instead: the channels,
        then the treatments (what each added against its lowest level; any sign)."""
        self._require_fit()
        return summary_contributions(get_group(self.idata, "contribution_summary"))

    def predict(self, df: pd.DataFrame, *, seed: int = 0, max_draws: int | None = None,
                chunk_draws: int = 256) -> xr.Dataset:
        """Posterior predictive on new data (same markets; history first so carry-over counts).

        Returns ``y`` (with noise) and ``mu`` (chain, draw, market, date) in original units.
        """
        self._require_data("predict")
        new = validate_panel(df, self.config, require_target=False, markets=self.panel.markets)
        arrays = panel_arrays(new, self.scaling, self.config, train=self.arrays)  # beta solved on the fitted weeks
        arrays["mask"] = np.where(new.observed, 1.0, 0.0)  # totals over the new weeks
        samples = self._unconstrained(max_draws)
        q, _, _ = self._quantities(samples, arrays, new, jax.random.key(seed), chunk_draws, keep_mu=True)
        coords = {"chain": np.arange(q["y"].shape[0]), "draw": np.arange(q["y"].shape[1]),
                  "market": self.panel.markets, "date": new.dates}
        return xr.Dataset({"y": (("chain", "draw", "market", "date"), q["y"]),
                           "mu": (("chain", "draw", "market", "date"), q["mu_original"])}, coords=coords)

    def crps(self, df: pd.DataFrame, holdout_start=None, *, seed: int = 0) -> pd.DataFrame:
        """CRPS of the posterior predictive on the weeks from ``holdout_start`` on.

        ``df``: history and hold-out rows with the target (the hold-out targets are only used
        for scoring). Default ``holdout_start``: the fit's hold-out start, else the first week
        after the fitted weeks. Returns one row per market and hold-out week (column ``crps``).
        """
        self._require_data("crps")
        b = self.config.base
        if holdout_start is None:
            holdout_start = self.holdout_start or pd.Timestamp(self.panel.dates[-1]) + pd.Timedelta(days=1)
        hold = pd.to_datetime(df[b.date]) >= pd.Timestamp(holdout_start)
        truth = df.loc[hold, [*self.config.levels, b.date, b.target]].copy()
        fcast = df.copy()
        fcast.loc[hold, b.target] = np.nan
        pred = self.predict(fcast, seed=seed)
        y = pred["y"].stack(sample=("chain", "draw")).transpose("sample", "market", "date")
        from ..data.panel import market_keys

        truth["market"] = market_keys(truth, self.config.levels).to_numpy()
        truth["date"] = pd.to_datetime(truth[b.date])
        sel = y.sel(market=xr.DataArray(truth["market"].to_numpy()), date=xr.DataArray(truth["date"].to_numpy()))
        truth["crps"] = crps_samples(sel.values, truth[b.target].to_numpy(float))
        return truth[["market", "date", "crps"]].reset_index(drop=True)

    # ------------------------------------------------------------------ marginal values, curves, budget
    def marginal_roas(self, spend_levels=None, *, level: str = "national", horizon: int = 13, hdi_prob: float = 0.9,
                      max_draws: int | None = 1000, seed: int = 0, recent_weeks: int | None = None) -> pd.DataFrame:
        """Marginal ROAS per channel (``level="national"``) or per market and channel
        (``level="market"``) at national weekly spend levels.

        ``spend_levels``: national weekly spend per channel, as for :meth:`mmm_jax.MMM.marginal_roas`
        (``None``: the mean of the last ``horizon`` weeks); a local channel's level is split over
        the markets by their current shares (see :mod:`mmm_jax.api.market_analysis`). Returns one
        row per (level, [market,] channel): ``weekly_spend`` (national, or the market's share),
        ``mean``, ``median`` and the HDI bounds.
        """
        self._require_data("marginal_roas")
        return marginal_frame(self, spend_levels, level=level, horizon=horizon, hdi_prob=hdi_prob,
                              max_draws=max_draws, seed=seed, recent_weeks=recent_weeks, inverse=False)

    def marginal_cac(self, spend_levels=None, *, level: str = "national", horizon: int = 13, hdi_prob: float = 0.9,
                     max_draws: int | None = 1000, seed: int = 0, recent_weeks: int | None = None) -> pd.DataFrame:
        """Marginal CAC (``1 / marginal ROAS`` per draw); parameters and columns as :meth:`marginal_roas`."""
        self._require_data("marginal_cac")
        return marginal_frame(self, spend_levels, level=level, horizon=horizon, hdi_prob=hdi_prob,
                              max_draws=max_draws, seed=seed, recent_weeks=recent_weeks, inverse=True)

    def response_curves(self, n_points: int = 40, *, level: str = "national", max_multiple: float = 1.5,
                        horizon: int = 13, hdi_prob: float = 0.94, max_draws: int | None = 1000, seed: int = 0,
                        recent_weeks: int | None = None) -> dict:
        """Response curves with HDI bands: ``{channel: DataFrame}`` (national: the sum over markets)
        or ``{(market, channel): DataFrame}``; national weekly spend from 0 to ``max_multiple`` x its
        largest weekly value, split by current shares. Columns as :meth:`mmm_jax.MMM.response_curves`."""
        self._require_data("response_curves")
        return response_curve_frames(self, n_points, level=level, max_multiple=max_multiple, horizon=horizon,
                                     hdi_prob=hdi_prob, max_draws=max_draws, seed=seed, recent_weeks=recent_weeks)

    def optimize_budget(self, total: float, horizon: int = 13, **kwargs: Any):
        """Split ``total`` over every market x local channel for the next ``horizon`` weeks
        (:func:`mmm_jax.budget.portfolio.optimize_portfolio`; constraints keyed by ``(market, channel)``;
        national channels keep their current spend). National totals per channel:
        ``plan.table.groupby(level="channel").sum()``."""
        self._require_data("optimize_budget")
        from ..budget.portfolio import optimize_portfolio

        return optimize_portfolio(self, total, horizon, **kwargs)

    # ------------------------------------------------------------------ persistence
    def training_frame(self) -> pd.DataFrame:
        """The long-format training data (levels, population, date, target, channels, controls, treatments)."""
        self._require_data("save")
        return self.frame

    @classmethod
    def load(cls, path) -> HierarchicalMMM:
        """Load a model written by :meth:`save` (rebuilt on its training data; ``predict`` and
        ``crps`` work as after ``fit``)."""
        run = read_run(path, "markets")
        config = HierarchicalConfig.from_dict(run["config"])
        df = run["frame"]
        df[config.base.date] = pd.to_datetime(df[config.base.date])
        for level in config.levels:  # labels are strings, whatever a CSV round trip made of them
            df[level] = df[level].astype(str)
        return cls.restore(config, PanelScaling.from_dict(run["scaling"]), run["idata"], df,
                           run["meta"].get("fit_settings", {}))

    @classmethod
    def restore(cls, config: HierarchicalConfig, scaling: PanelScaling, idata: az.InferenceData,
                df: pd.DataFrame | None = None, fit_settings: dict | None = None) -> HierarchicalMMM:
        """A fitted model from its parts: the stored ``scaling`` and posterior ``idata``, rebuilt on
        its training data ``df`` when given (then ``predict``, ``crps``, marginal values, curves
        and budgets work; without it ``roas``, ``cac``, ``contributions`` and ``diagnostics``)."""
        self = cls(config)
        if df is not None:
            table = lift_table_from_constant_data(get_group(idata, "constant_data"))
            self.build(df, lift_tests=False if table is None else table,
                       holdout=idata.posterior.attrs.get("holdout_start"))
        self.scaling = scaling
        self.idata = idata
        self.fit_settings = dict(fit_settings or {})
        return self

    def _likelihood(self) -> str:
        return self.config.base.likelihood

    def _spend_totals(self) -> np.ndarray:
        b = self.config.base
        order = [b.channels.index(c) for c in self.channels]
        spend = self.panel.spend[:, :, order]  # (G, T, C) original units, model channel order
        return (spend * (self.arrays["mask"] > 0)[:, :, None]).sum(axis=1)

    def _cell_labels(self) -> dict:
        return {"date": self.panel.dates, "market": self.panel.markets}

    def _unconstrained_draws(self) -> dict:
        return self._unconstrained(None)

    def _unconstrained(self, max_draws: int | None) -> dict:
        """The stored posterior mapped back to the sampler's unconstrained variables."""
        return unconstrained_draws(self.model, self.idata.posterior, max_draws)


def _training_frame(df: pd.DataFrame, config: HierarchicalConfig) -> pd.DataFrame:
    """The columns of ``df`` the model reads (levels, population, date, target, channels, controls,
    treatments)."""
    b = config.base
    cols = [*config.levels, *([config.population] if config.population else []), b.date, b.target,
            *b.channels, *b.controls, *b.treatments]
    return df[[c for c in dict.fromkeys(cols) if c in df.columns]].reset_index(drop=True)
