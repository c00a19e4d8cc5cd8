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
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import arviz as az
import jax
import numpy as np
import pandas as pd
import xarray as xr

from .compile import LogDensity, compile_logdensity
from .config import ModelConfig
from .data import MMMData, validate_frame
from .features import Scaling, design_arrays, fit_scaling
from .inference import sample
from .model import build_pymc_model
from .results import (
    check_convergence,
    diagnostics,
    posterior_quantities,
    to_inference_data,
)

__all__ = ["MMM", "NotFittedError"]

_FORMAT_VERSION = 1


class NotFittedError(RuntimeError):
    """The model has not been fitted (or loaded) yet."""


class MMM:
    """A single-brand marketing mix model.

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
        )

    def build(self, df: pd.DataFrame) -> None:
        """Validate, scale, build the ``pm.Model`` and compile it (no sampling)."""
        self.data = self.validate(df)
        self.scaling = fit_scaling(self.data)
        arrays = design_arrays(self.data, self.scaling, self.config.seasonality)
        self.model = build_pymc_model(self.config, arrays, dates=self.data.dates)
        self.logdensity = compile_logdensity(self.model)
        self._arrays = arrays

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        df: pd.DataFrame,
        *,
        sampler: str = "numpyro",
        chains: int = 4,
        warmup: int = 1000,
        draws: int = 1000,
        target_accept: float = 0.9,
        seed: int = 0,
        progress: bool = True,
        **sampler_kwargs: Any,
    ) -> az.InferenceData:
        """Fit by NUTS and return the labelled InferenceData (also kept as ``self.idata``).

        Parameters
        ----------
        df : DataFrame with the config's date, target, channel and control columns.
        sampler : {"numpyro", "blackjax"}
        chains, warmup, draws, target_accept : NUTS settings.
        seed : int
            Same seed, same draws.
        **sampler_kwargs : further :class:`mmm_jax.inference.SamplerConfig` fields
            (``max_tree_depth``, ``dense_mass``, ``chain_method``).
        """
        t0 = time.perf_counter()
        self.build(df)
        t_build = time.perf_counter() - t0
        key = jax.random.key(seed)
        k_sample, k_pp = jax.random.split(key)
        result = sample(
            self.logdensity,
            self._arrays,
            key=k_sample,
            sampler=sampler,
            chains=chains,
            warmup=warmup,
            draws=draws,
            target_accept=target_accept,
            progress=progress,
            **sampler_kwargs,
        )
        self.fit_settings = {"sampler": sampler, "seed": seed, **result.config._asdict()}
        t1 = time.perf_counter()
        self.idata = self._to_idata(result, k_pp)
        timings = {"build_compile": t_build, **result.timings, "postprocess": time.perf_counter() - t1}
        timings["wall"] = time.perf_counter() - t0
        for g in self.idata.groups():
            self.idata[g].attrs["timings"] = json.dumps(timings)
        self.timings = timings
        check_convergence(self.diagnostics())
        return self.idata

    def _to_idata(self, result, key) -> az.InferenceData:
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
            attrs={
                "config": c.to_json(),
                "scaling": json.dumps(self.scaling.to_dict()),
                "free_parameters": json.dumps(free),
                "seed": self.fit_settings.get("seed", 0),
            },
        )

    # ------------------------------------------------------------------ results
    def _require_fit(self):
        if self.idata is None:
            raise NotFittedError("fit the model (MMM.fit) or load one (MMM.load) first")

    def diagnostics(self) -> dict[str, float]:
        """``{max_rhat, min_ess_bulk, min_ess_tail, divergences, draws}`` over free parameters."""
        self._require_fit()
        return diagnostics(self.idata)

    def summary(self, var_names: list[str] | None = None, hdi_prob: float = 0.94) -> pd.DataFrame:
        """ArviZ summary (mean, sd, HDI, R-hat, bulk/tail ESS) of the free parameters and ROAS."""
        self._require_fit()
        from .results import free_parameter_names

        names = var_names or [*free_parameter_names(self.idata), "roas"]
        return az.summary(self.idata, var_names=names, hdi_prob=hdi_prob)

    def roas(self, hdi_prob: float = 0.9) -> pd.DataFrame:
        """ROAS per channel (total contribution / total spend): mean, median, HDI."""
        return self._channel_table("roas", hdi_prob)

    def total_contribution(self, hdi_prob: float = 0.9) -> pd.DataFrame:
        """Total contribution per channel over the fitted weeks, original units."""
        return self._channel_table("total_contribution", hdi_prob)

    def _channel_table(self, name: str, hdi_prob: float) -> pd.DataFrame:
        self._require_fit()
        da = self.idata.posterior[name]
        hdi = az.hdi(da, hdi_prob=hdi_prob)[name]
        lo, hi = f"hdi_{(1 - hdi_prob) / 2:.0%}", f"hdi_{1 - (1 - hdi_prob) / 2:.0%}"
        return pd.DataFrame(
            {
                "mean": da.mean(("chain", "draw")).values,
                "median": da.median(("chain", "draw")).values,
                lo: hdi.sel(hdi="lower").values,
                hi: hdi.sel(hdi="higher").values,
            },
            index=pd.Index(da["channel"].values, name="channel"),
        )

    def contributions(self) -> pd.DataFrame:
        """Posterior-mean weekly decomposition in original units: baseline + one column per channel."""
        self._require_fit()
        post = self.idata.posterior
        df = post["channel_contribution_original"].mean(("chain", "draw")).to_pandas()
        df.insert(0, "baseline", post["baseline_original"].mean(("chain", "draw")).values)
        df.index.name = "date"
        return df

    def predict(self, df: pd.DataFrame, *, seed: int = 0, include_noise: bool = True) -> xr.Dataset:
        """Posterior predictions on new data, on the training scale.

        ``df`` needs the date, channel and control columns (the target is optional: rows
        without it are forecasts). Put the history first so that carry-over from past spend
        is counted.

        Returns
        -------
        xarray.Dataset with ``y`` (chain, draw, date) — with observation noise when
        ``include_noise`` — ``mu`` (the mean), ``channel_contribution`` (chain, draw, date,
        channel) and ``baseline``, all in original units.
        """
        self._require_fit()
        new = self.validate(df, require_target=False)
        arrays = design_arrays(new, self.scaling, self.config.seasonality)
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
        out["y"] = (("chain", "draw", "date"), q["y"] if include_noise else q["mu_original"])
        return xr.Dataset(out, coords=coords)

    def _unconstrained_samples(self) -> dict[str, np.ndarray]:
        """Map the stored constrained posterior back to the unconstrained value variables."""
        post = self.idata.posterior
        out = {}
        for rv in self.model.free_RVs:
            value = self.model.rvs_to_values[rv]
            tr = self.model.rvs_to_transforms.get(rv)
            x = post[rv.name].values
            if tr is None:
                out[value.name] = x
            else:
                out[value.name] = _backward_transform(tr, x)
        return out

    def optimize_budget(self, total: float, horizon: int = 13, **kwargs: Any):
        """Optimal split of ``total`` over the next ``horizon`` weeks; see
        :func:`mmm_jax.budget.optimize_budget` for the objectives and constraints."""
        self._require_fit()
        from .budget import optimize_budget

        return optimize_budget(self, total, horizon, **kwargs)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted model to the directory ``path`` (atomically: temp dir + rename).

        Contents: ``config.json``, ``scaling.json``, ``data.csv`` (training data),
        ``idata.nc`` (InferenceData), ``meta.json`` (versions, sampler settings).
        """
        self._require_fit()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            (tmp / "config.json").write_text(self.config.to_json())
            (tmp / "scaling.json").write_text(json.dumps(self.scaling.to_dict(), indent=2))
            self.data.to_frame().to_csv(tmp / "data.csv", index=False)
            self.idata.to_netcdf(str(tmp / "idata.nc"))
            meta = {
                "format_version": _FORMAT_VERSION,
                "fit_settings": self.fit_settings,
                "versions": json.loads(self.idata.posterior.attrs.get("versions", "{}")),
            }
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
            if path.exists():
                old = path.with_name(f".{path.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                path.rename(old)
                tmp.rename(path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> MMM:
        """Load a model written by :meth:`save`; predictions match the saved model's."""
        path = Path(path)
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"{path} is not a saved mmm_jax model (no config.json)")
        self = cls(ModelConfig.from_dict(json.loads((path / "config.json").read_text())))
        df = pd.read_csv(path / "data.csv", parse_dates=[self.config.date])
        self.build(df)
        self.scaling = Scaling.from_dict(json.loads((path / "scaling.json").read_text()))
        self.idata = az.from_netcdf(str(path / "idata.nc"))
        self.idata.load()
        meta = json.loads((path / "meta.json").read_text())
        self.fit_settings = meta.get("fit_settings", {})
        return self


def _backward_transform(transform, x: np.ndarray) -> np.ndarray:
    """Constrained -> unconstrained for PyMC's transforms (evaluated with PyTensor)."""
    import pytensor.tensor as pt

    v = pt.tensor(dtype="float64", shape=(None,) * x.ndim)
    return transform.forward(v).eval({v: x})
