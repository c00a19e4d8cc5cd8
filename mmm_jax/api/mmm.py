"""The friendly facade: ``MMM(config).fit(df)`` and what to ask of the fit.

The facade only wires the pure pieces together — validate -> scale -> ``pm.Model`` ->
compiled log-density -> sampler -> InferenceData — and keeps the labels (pandas, xarray)
at the edges.

>>> from mmm_jax import MMM, ModelConfig                         # doctest: +SKIP
>>> from mmm_jax.datasets import load_example                   # doctest: +SKIP
>>> df, truth = load_example()                                  # doctest: +SKIP
>>> mmm = MMM(ModelConfig(date="date", target="sales",
...                       channels=["tv", "search", "social", "display"],
...                       controls=["price_index"]))            # doctest: +SKIP
>>> idata = mmm.fit(df, chains=4, draws=1000, seed=0)            # doctest: +SKIP
>>> mmm.roas()                                                   # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from typing import Any

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from ..compat import get_group
from ..compile import LogDensity, compile_logdensity, unconstrained_draws
from ..config.model import ModelConfig
from ..data.features import Scaling, fit_model_scaling, model_arrays
from ..data.holdout import holdout_split, mask_holdout, training_weeks
from ..data.lift import brand_lift, lift_constant_data, lift_table_for, lift_table_from_constant_data
from ..data.validate import MMMData, validate_frame
from ..model.build import build_pymc_model
from ..persist import read_run
from ..posterior.results import posterior_quantities, to_inference_data
from ..posterior.tables import posterior_table
from .fitted import FittedModel, NotFittedError

__all__ = ["MMM", "NotFittedError"]

class MMM(FittedModel):
    """A single-brand marketing mix model (the one-market case of the model).

    Parameters
    ----------
    config : ModelConfig or dict
    """

    def __init__(self, config: ModelConfig | dict):
        self.config = config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config)
        self.idata: az.InferenceData | None = None
        self.data: MMMData | None = None
        self.scaling: Scaling | None = None
        self.model = None
        self.logdensity: LogDensity | None = None
        self.fit_settings: dict[str, Any] = {}
        self.lift_tests: pd.DataFrame | None = None  # the checked lift tests of the fit (build)
        self.holdout_start: pd.Timestamp | None = None  # first held-out week of the fit (build)

    # ------------------------------------------------------------------ building blocks
    def validate(self, df: pd.DataFrame, *, require_target: bool = True) -> MMMData:
        """Check ``df`` against the config; raises :class:`mmm_jax.DataError`."""
        c = self.config
        return validate_frame(
            df,
            date=c.date,
            target=c.target,
            channels=c.channels,
            controls=c.controls,
            min_length=c.adstock.l_max,
            require_target=require_target,
            outlier_factor=c.outlier_factor,
            treatments=c.treatments,
        )

    def build(self, df: pd.DataFrame, *, lift_tests=None, holdout=None) -> None:
        """Validate, scale, build the ``pm.Model`` and compile it (no sampling).

        Count likelihoods need a target of integers >= 0 (:class:`mmm_jax.DataError`
        otherwise). HSGP terms get their basis domain fixed on the training window
        (``scaling.hsgp``). ``lift_tests``, ``holdout``: see :meth:`fit`.
        """
        self.data = self.validate(df)
        n = holdout_split(self.data.dates, holdout, min_train=max(2, self.config.adstock.l_max))
        self.holdout_start = None if n == self.data.n_periods else pd.Timestamp(self.data.dates[n])
        self.scaling = fit_model_scaling(self.config, training_weeks(self.data, n))
        arrays = mask_holdout(model_arrays(self.config, self.data, self.scaling), n)
        table = None if lift_tests is False else lift_table_for(lift_tests, self.config)
        self.lift_tests = None
        if table is not None:
            self.lift_tests, lift = brand_lift(table, self.config, self.data, self.scaling)
            arrays.update(lift)
        self.model = build_pymc_model(self.config, arrays, dates=self.data.dates)
        self.logdensity = compile_logdensity(self.model)
        self._arrays = arrays

    # ------------------------------------------------------------------ fitting (FittedModel.fit)
    def model_inputs(self) -> dict:
        return self._arrays

    def attach(self, result, *, key, seed: int, chunk_draws: int = 256) -> az.InferenceData:
        if self.logdensity is None:
            raise RuntimeError("build the model first (MMM.build)")
        self.fit_settings = {"sampler": result.sampler, "seed": seed, **result.config._asdict()}
        self.idata = self._to_idata(result, key, chunk_draws)
        return self.idata

    def _to_idata(self, result, key, chunk_draws: int = 256) -> az.InferenceData:
        d, c = self.data, self.config
        coords = {"date": d.dates, "channel": list(c.channels)}
        for k, v in self.logdensity.coords.items():
            if k not in coords:
                coords[k] = v
        const = {
            "spend": (("date", "channel"), d.spend),
            "spend_scaled": (("date", "channel"), self._arrays["spend"]),
            "mask": (("date",), self._arrays["mask"]),
        }
        if c.controls:
            coords["control"] = list(c.controls)
            const["controls"] = (("date", "control"), d.control_values)
        if c.treatments:
            coords["treatment"] = list(c.treatments)
            const["treatments"] = (("date", "treatment"), d.treatment_values)  # original units
        if self.lift_tests is not None:
            const.update(lift_constant_data(self.lift_tests))
        extra = {} if self.holdout_start is None else {"holdout_start": self.holdout_start.isoformat()}
        free = [n for n in self.logdensity.output_names if n in self.model.named_vars and n in
                {rv.name for rv in self.model.free_RVs}]
        return to_inference_data(
            result,
            self.logdensity,
            self._arrays,
            coords=coords,
            target_scale=self.scaling.target_scale,
            spend=d.spend,
            target=d.target,
            likelihood=c.likelihood,
            key=key,
            constant_data=const,
            batch_size=chunk_draws,
            attrs={
                "config": c.to_json(),
                "scaling": json.dumps(self.scaling.to_dict()),
                "free_parameters": json.dumps(free),
                "seed": self.fit_settings.get("seed", 0),
                **extra,
            },
        )

    # ------------------------------------------------------------------ results
    def roas(self, hdi_prob: float = 0.9) -> pd.DataFrame:
        """ROAS per channel (total contribution / total spend): mean, median, HDI."""
        return self._channel_table("roas", hdi_prob)

    def total_contribution(self, hdi_prob: float = 0.9) -> pd.DataFrame:
        """Total contribution per channel over the fitted weeks, original units."""
        return self._channel_table("total_contribution", hdi_prob)

    def cac(self, hdi_prob: float = 0.9) -> pd.DataFrame:
        """Cost of acquisition per channel: spend / incremental response over the fitted weeks.

        For a count target (new customers) this is the cost per incremental customer; for
        revenue it is ``1 / ROAS``. Per posterior draw ``spend_c / total_contribution_c``
        (original units), summarised by mean, median and HDI.
        """
        self._require_fit()
        post = self.idata.posterior
        cd = self.idata.constant_data
        spend = (cd["spend"] * cd["mask"]).sum("date")
        da = (spend / post["total_contribution"]).rename("cac")
        return self._channel_table(da, hdi_prob)

    def _channel_table(self, name, hdi_prob: float) -> pd.DataFrame:
        self._require_fit()
        da = self.idata.posterior[name] if isinstance(name, str) else name
        return posterior_table(da, hdi_prob)

    def contributions(self) -> pd.DataFrame:
        """Posterior-mean weekly decomposition in original units (rows: dates): ``baseline``, one
        column per non-media treatment (what it added against its lowest level; any sign), then
        one column per channel. The columns sum to the posterior mean of ``mu_original``."""
        self._require_fit()
        post = self.idata.posterior
        df = post["channel_contribution_original"].mean(("chain", "draw")).to_pandas()
        if "treatment_contribution_original" in post:
            tr = post["treatment_contribution_original"].mean(("chain", "draw")).to_pandas()
            for j, name in enumerate(tr.columns):
                df.insert(j, name, tr[name].to_numpy())
        df.insert(0, "baseline", post["baseline_original"].mean(("chain", "draw")).values)
        df.index.name = "date"
        return df

    def predict(self, df: pd.DataFrame, *, seed: int = 0, include_noise: bool = True) -> xr.Dataset:
        """Posterior predictions on new data, on the training scale.

        ``df`` needs the date, channel, control and treatment columns (the target is optional:
        rows without it are forecasts). Put the history first so that carry-over from past spend
        (and treatments, with ``treatment_carryover``) is counted. Treatments are scaled with the
        fit's references (values beyond the training range extrapolate linearly).

        Returns
        -------
        xarray.Dataset with ``y`` (chain, draw, date) — with observation noise when
        ``include_noise`` — ``mu`` (the mean), ``channel_contribution`` (chain, draw, date,
        channel), ``baseline`` and, with treatments, ``treatment_contribution`` (chain, draw,
        date, treatment), all in original units.
        """
        self._require_fit()
        new = self.validate(df, require_target=False)
        try:
            arrays = model_arrays(self.config, new, self.scaling, train=self._arrays)
        except ValueError as err:
            if "boundary" not in str(err):
                raise
            raise ValueError(
                f"predict: the dates reach beyond the HSGP domain fixed at fit time ({err}); refit with a "
                "larger boundary factor c (time_varying_intercept / time_varying_media) to forecast further"
            ) from None
        samples = self._unconstrained_samples()
        q = posterior_quantities(
            self.logdensity,
            samples,
            arrays,
            target_scale=self.scaling.target_scale,
            spend=new.spend,
            likelihood=self.config.likelihood,
            key=jax.random.key(seed) if include_noise else None,
        )
        coords = {"chain": np.arange(q["mu"].shape[0]), "draw": np.arange(q["mu"].shape[1]),
                  "date": new.dates, "channel": list(self.config.channels)}
        out = {
            "mu": (("chain", "draw", "date"), q["mu_original"]),
            "channel_contribution": (("chain", "draw", "date", "channel"), q["channel_contribution_original"]),
            "baseline": (("chain", "draw", "date"), q["baseline_original"]),
        }
        if "treatment_contribution_original" in q:
            coords["treatment"] = list(self.config.treatments)
            out["treatment_contribution"] = (("chain", "draw", "date", "treatment"),
                                             q["treatment_contribution_original"])
        out["y"] = (("chain", "draw", "date"), q["y"] if include_noise else q["mu_original"])
        return xr.Dataset(out, coords=coords)

    def crps(self, df: pd.DataFrame, holdout_start=None, *, seed: int = 0) -> pd.DataFrame:
        """CRPS of the posterior predictive on the weeks from ``holdout_start`` on (original units).

        ``df``: history and the weeks to score, with the target (used for scoring only). Default
        ``holdout_start``: the fit's hold-out start, else the first week after the fitted weeks.
        Returns one row per scored week: ``date``, ``observed``, ``mean`` (posterior predictive)
        and ``crps``.
        """
        from ..posterior.metrics import crps_samples

        self._require_fit()
        start = self._score_start(holdout_start)
        c = self.config
        dates = pd.to_datetime(df[c.date])
        hold = (dates >= start).to_numpy()
        if not hold.any():
            raise ValueError(f"crps: no week of df is on or after {start.date()}")
        fcast = df.copy()
        fcast.loc[hold, c.target] = np.nan
        y = self.predict(fcast, seed=seed)["y"].values  # (chains, draws, T)
        draws = y.reshape((-1, y.shape[-1]))[:, hold]
        obs = pd.to_numeric(df.loc[hold, c.target], errors="coerce").to_numpy(float)
        return pd.DataFrame({"date": dates[hold].to_numpy(), "observed": obs, "mean": draws.mean(axis=0),
                             "crps": crps_samples(draws, obs)})

    def _score_start(self, holdout_start) -> pd.Timestamp:
        if holdout_start is not None:
            return pd.Timestamp(holdout_start)
        if self.holdout_start is not None:
            return self.holdout_start
        return pd.Timestamp(self.data.dates[-1]) + pd.Timedelta(days=1)

    def _likelihood(self) -> str:
        return self.config.likelihood

    def _spend_totals(self) -> np.ndarray:
        return (self.data.spend * self._arrays["mask"][:, None]).sum(axis=0)

    def _cell_labels(self) -> dict:
        return {"date": self.data.dates}

    def _unconstrained_draws(self) -> dict:
        return self._unconstrained_samples()

    def _unconstrained_samples(self) -> dict[str, np.ndarray]:
        """The stored constrained posterior mapped back to the unconstrained value variables."""
        return unconstrained_draws(self.model, self.idata.posterior)

    # ------------------------------------------------------------------ acquisition metrics
    def _response_draws(self, levels: np.ndarray, horizon: int, max_draws: int | None, seed: int,
                        recent_weeks: int | None):
        from ..budget.curves import marginal_responses
        from ..budget.response import response_params_from_mmm

        if int(horizon) != horizon or horizon < 1:
            raise ValueError(f"horizon must be a positive number of weeks, got {horizon!r}")
        params, static = response_params_from_mmm(self, max_draws=max_draws, seed=seed, recent_weeks=recent_weeks)
        fn = jax.jit(marginal_responses, static_argnames=("spec", "horizon"))
        r, dr = fn(jnp.asarray(levels, dtype=float), params, spec=static["spec"], horizon=int(horizon))
        return np.asarray(r), np.asarray(dr)

    def _current_weekly_spend(self, horizon: int) -> np.ndarray:
        return np.asarray(self.data.spend[-int(horizon):], dtype=float).mean(axis=0)

    def _marginal_table(self, spend_levels, horizon, hdi_prob, max_draws, seed, recent_weeks, inverse: bool):
        from ..budget.curves import marginal_table, spend_level_grid

        self._require_fit()
        channels = list(self.config.channels)
        levels = spend_level_grid(spend_levels, channels, self._current_weekly_spend(horizon))
        _, dr = self._response_draws(levels, horizon, max_draws, seed, recent_weeks)  # (n, S, C)
        return marginal_table([{"channel": c} for c in channels], levels, dr, hdi_prob, inverse=inverse)

    def marginal_roas(self, spend_levels=None, *, horizon: int = 13, hdi_prob: float = 0.9,
                      max_draws: int | None = 1000, seed: int = 0, recent_weeks: int | None = None) -> pd.DataFrame:
        """Marginal ROAS per channel at weekly spend levels.

        The return (target units per unit of currency) of one more unit of spend at a level
        ``s`` per week held for ``horizon`` weeks after the data, carry-over included:
        ``d response / d (s * horizon)``, exact per posterior draw (see
        :mod:`mmm_jax.budget.curves`). For count targets it is customers per unit of currency.

        Parameters
        ----------
        spend_levels : None, number, 1-d sequence, (n, C) array or {channel: levels}
            Weekly spend (original currency). ``None``: each channel's mean weekly spend over
            the last ``horizon`` weeks.
        horizon : int
            Weeks the level is held.
        hdi_prob : float
        max_draws : int or None
            Posterior draws used (random subset).
        recent_weeks : int, optional
            Time-varying media: weeks whose average effectiveness is used (see
            :func:`mmm_jax.budget.response_params_from_mmm`).

        Returns
        -------
        DataFrame with one row per (level, channel): ``channel``, ``weekly_spend``, ``mean``,
        ``median`` and the HDI bounds.
        """
        return self._marginal_table(spend_levels, horizon, hdi_prob, max_draws, seed, recent_weeks, inverse=False)

    def marginal_cac(self, spend_levels=None, *, horizon: int = 13, hdi_prob: float = 0.9,
                     max_draws: int | None = 1000, seed: int = 0, recent_weeks: int | None = None) -> pd.DataFrame:
        """Marginal CAC per channel at weekly spend levels: the cost of one more unit of response
        (one more customer for count targets), ``1 / marginal ROAS`` per draw. Same parameters
        and columns as :meth:`marginal_roas`; infinite where the curve is flat."""
        return self._marginal_table(spend_levels, horizon, hdi_prob, max_draws, seed, recent_weeks, inverse=True)

    def response_curves(self, n_points: int = 40, *, max_multiple: float = 1.5, horizon: int = 13,
                        hdi_prob: float = 0.94, max_draws: int | None = 1000, seed: int = 0,
                        recent_weeks: int | None = None) -> dict[str, pd.DataFrame]:
        """Per-channel response curves with HDI bands.

        For each channel, weekly spend from 0 to ``max_multiple`` x its largest weekly spend in
        the data, held for ``horizon`` weeks; the response is the contribution over the horizon
        plus carry-over (original units), as the budget optimiser counts it.

        Returns
        -------
        dict channel -> DataFrame with columns ``weekly_spend``, ``total_spend``
        (= weekly_spend x horizon), ``mean``, ``lower``, ``upper`` (HDI of the response),
        ``roas_mean`` (response / total spend) and ``mroas_mean`` (marginal ROAS); the frame's
        ``attrs["current_weekly_spend"]`` is the mean weekly spend of the last ``horizon`` weeks.
        """
        from ..budget.curves import curve_frame

        self._require_fit()
        if n_points < 2:
            raise ValueError(f"n_points must be >= 2, got {n_points}")
        channels = list(self.config.channels)
        top = max_multiple * np.asarray(self.data.spend, dtype=float).max(axis=0)
        levels = np.linspace(0.0, 1.0, n_points)[:, None] * top[None, :]
        r, dr = self._response_draws(levels, horizon, max_draws, seed, recent_weeks)  # (n, S, C)
        current = self._current_weekly_spend(horizon)
        return {ch: curve_frame(levels[:, j], r[:, :, j], dr[:, :, j], horizon, hdi_prob, current[j])
                for j, ch in enumerate(channels)}

    def optimize_budget(self, total: float, horizon: int = 13, **kwargs: Any):
        """Optimal split of ``total`` over the next ``horizon`` weeks; see
        :func:`mmm_jax.budget.optimize_budget` for the objectives and constraints."""
        self._require_fit()
        from ..budget import optimize_budget

        return optimize_budget(self, total, horizon, **kwargs)

    # ------------------------------------------------------------------ persistence
    kind = "brand"

    def training_frame(self) -> pd.DataFrame:
        """The validated training data (date, target, channel, control and treatment columns)."""
        self._require_fit()
        return self.data.to_frame()

    @classmethod
    def load(cls, path: str | os.PathLike) -> MMM:
        """Load a model written by :meth:`save`; predictions match the saved model's.

        Raises :class:`mmm_jax.persist.RunFormatError` for a multi-market run or a newer format.
        """
        run = read_run(path, "brand")
        config = ModelConfig.from_dict(run["config"])
        df = run["frame"]
        df[config.date] = pd.to_datetime(df[config.date])
        return cls.restore(config, df, Scaling.from_dict(run["scaling"]), run["idata"],
                           run["meta"].get("fit_settings", {}))

    @classmethod
    def restore(cls, config: ModelConfig, df: pd.DataFrame, scaling: Scaling, idata: az.InferenceData,
                fit_settings: dict | None = None) -> MMM:
        """A fitted model from its parts: rebuilt on its training data ``df`` with the stored
        ``scaling`` and posterior ``idata`` (what :meth:`load` and the batch's ``load`` use)."""
        self = cls(config)
        table = lift_table_from_constant_data(get_group(idata, "constant_data"))
        self.build(df, lift_tests=False if table is None else table, holdout=idata.posterior.attrs.get("holdout_start"))
        self.scaling = scaling
        self.idata = idata
        self.fit_settings = dict(fit_settings or {})
        return self
