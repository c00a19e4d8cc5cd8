"""What differs between the two supported lines, in one place.

* Python 3.11: PyMC 5.28, PyTensor 2.38, ArviZ 0.23 — results are ``arviz.InferenceData``.
* Python >= 3.12: PyMC 6, PyTensor 3, ArviZ 1 — results are ``xarray.DataTree`` (ArviZ 1 dropped
  ``InferenceData``; a DataTree has the same groups, ``idata.posterior`` etc. work on both).
  PyTensor 3 calls ``Op.infer_shape(node, input_shapes)`` without ``fgraph``, and ``Op.pullback``
  where PyTensor 2 calls ``Op.L_op``.

Everything else in mmm_jax goes through these functions where the lines differ: building and
extending a results object, listing its groups, NetCDF in and out, HDIs, the ArviZ summary and
PSIS-LOO comparison. Outputs keep the 0.x names on both lines (``hdi_3%`` / ``hdi_97%`` in
summaries, ``elpd_loo`` / ``p_loo`` in comparisons), so tables and saved files do not depend on
the line.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping

import arviz as az
import numpy as np
import pandas as pd
import pytensor
import xarray as xr

__all__ = ["ARVIZ_1", "PYTENSOR_3", "pytensor_op", "new_idata", "add_groups", "group_names", "group", "get_group",
           "idata_from_netcdf", "idata_netcdf_bytes", "hdi_array", "hdi_bounds", "summary", "loo_pareto_k",
           "compare_loo"]

#: ArviZ >= 1 (DataTree results), else ArviZ 0.x (InferenceData)
ARVIZ_1 = int(az.__version__.split(".")[0]) >= 1
#: PyTensor >= 3 (``Op.infer_shape`` without ``fgraph``), else PyTensor 2.x
PYTENSOR_3 = int(pytensor.__version__.split(".")[0]) >= 3


def pytensor_op(cls):
    """Class decorator for an ``Op`` written for PyTensor 3 — ``infer_shape(self, node,
    input_shapes)`` and ``pullback(self, inputs, outputs, cotangents)`` — that makes it work on
    PyTensor 2.x too (``infer_shape`` with ``fgraph``; ``L_op`` for the gradient)."""
    if PYTENSOR_3:
        return cls
    if "infer_shape" in cls.__dict__:
        shape = cls.__dict__["infer_shape"]
        cls.infer_shape = lambda self, fgraph, node, input_shapes: shape(self, node, input_shapes)
    if "pullback" in cls.__dict__:
        cls.L_op = cls.__dict__["pullback"]
    return cls


def new_idata(groups: Mapping[str, xr.Dataset]):
    """A results object (InferenceData / DataTree) with ``groups`` (name -> Dataset), in order."""
    if ARVIZ_1:
        return xr.DataTree.from_dict({name: ds for name, ds in groups.items()})
    std = {k: v for k, v in groups.items() if k in _AZ0_GROUPS}
    idata = az.InferenceData(**std)
    extra = {k: v for k, v in groups.items() if k not in std}
    return add_groups(idata, extra) if extra else idata


#: groups ArviZ 0.x knows (others are added with add_groups, which warns about them)
_AZ0_GROUPS = ("posterior", "posterior_predictive", "predictions", "log_likelihood", "log_prior", "sample_stats",
               "prior", "prior_predictive", "sample_stats_prior", "observed_data", "constant_data",
               "predictions_constant_data", "unconstrained_posterior", "unconstrained_prior", "warmup_posterior",
               "warmup_posterior_predictive", "warmup_predictions", "warmup_log_likelihood", "warmup_sample_stats")


def add_groups(idata, groups: Mapping[str, xr.Dataset]):
    """Add (or replace) ``groups`` in ``idata`` in place; returns it."""
    if ARVIZ_1:
        for name, ds in groups.items():
            idata[name] = xr.DataTree(dataset=ds)
        return idata
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ 0.x warns about groups outside its schema
        for name, ds in groups.items():
            if name in idata.groups():
                delattr(idata, name)
            idata.add_groups({name: ds})
    return idata


def group_names(idata) -> list[str]:
    """The names of ``idata``'s groups (``["posterior", "sample_stats", ...]``)."""
    if ARVIZ_1 and isinstance(idata, xr.DataTree):
        return list(idata.children)
    return list(idata.groups())


def group(idata, name: str) -> xr.Dataset:
    """Group ``name`` of ``idata`` as an ``xarray.Dataset`` (KeyError if absent)."""
    if name not in group_names(idata):
        raise KeyError(name)
    g = idata[name]
    return g.to_dataset() if isinstance(g, xr.DataTree) else g


def get_group(idata, name: str) -> xr.Dataset | None:
    """Group ``name`` of ``idata`` as an ``xarray.Dataset``, or None where it has none."""
    return group(idata, name) if idata is not None and name in group_names(idata) else None


def idata_netcdf_bytes(idata) -> bytes:
    """NetCDF-4 bytes, one HDF5 group per results group (uncompressed); both lines read them."""
    buf = io.BytesIO()
    for i, name in enumerate(group_names(idata)):
        group(idata, name).to_netcdf(buf, mode="w" if i == 0 else "a", group=name, engine="h5netcdf")
    return buf.getvalue()


def idata_from_netcdf(path: str):
    """Read a results file written by :func:`idata_netcdf_bytes` (or by either ArviZ line) fully
    into memory."""
    if ARVIZ_1:
        with xr.open_datatree(path, engine="h5netcdf") as tree:
            return new_idata({name: child.to_dataset().load() for name, child in tree.children.items()})
    idata = az.from_netcdf(path)
    idata.load()
    return idata


def hdi_array(x, prob: float) -> np.ndarray:
    """HDI of draws ``x``: (draws,) -> (2,); (chains, draws, *rest) -> (*rest, 2) [lower, upper]."""
    x = np.asarray(x)
    if not ARVIZ_1:
        return np.asarray(az.hdi(x, hdi_prob=prob))
    if x.ndim == 1:
        x = x[None]
    da = xr.DataArray(x, dims=("chain", "draw", *(f"d{i}" for i in range(x.ndim - 2))))
    return np.asarray(az.hdi(da, prob=prob, dim=["chain", "draw"]).transpose(..., "ci_bound").values)


def hdi_bounds(da: xr.DataArray, prob: float) -> tuple[xr.DataArray, xr.DataArray]:
    """(lower, upper) HDI bounds of ``da`` (chain, draw, ...) over chains and draws."""
    if ARVIZ_1:
        h = az.hdi(da, prob=prob, dim=["chain", "draw"])
        return h.sel(ci_bound="lower", drop=True), h.sel(ci_bound="upper", drop=True)
    name = da.name or "x"
    h = az.hdi(da.rename(name), hdi_prob=prob)[name]
    return h.sel(hdi="lower", drop=True), h.sel(hdi="higher", drop=True)


def summary(idata, var_names: list[str], hdi_prob: float) -> pd.DataFrame:
    """ArviZ's summary with 0.x's columns: mean, sd, ``hdi_<lo>%``, ``hdi_<hi>%``, mcse_mean,
    mcse_sd, ess_bulk, ess_tail, r_hat."""
    if not ARVIZ_1:
        return az.summary(idata, var_names=var_names, hdi_prob=hdi_prob)
    table = az.summary(idata, var_names=var_names, ci_kind="hdi", ci_prob=hdi_prob, round_to="none")
    pct = round(hdi_prob * 100)
    lo, hi = f"hdi_{(1 - hdi_prob) / 2:.0%}", f"hdi_{1 - (1 - hdi_prob) / 2:.0%}"
    table = table.rename(columns={f"hdi{pct}_lb": lo, f"hdi{pct}_ub": hi})
    return table[[c for c in ("mean", "sd", lo, hi, "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat")
                  if c in table]]


def loo_pareto_k(idata) -> np.ndarray:
    """PSIS-LOO Pareto k of every observation of ``idata``'s ``log_likelihood`` group."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(az.loo(idata, pointwise=True).pareto_k.values)


def compare_loo(data: Mapping[str, object], scale: str = "log") -> pd.DataFrame:
    """``arviz.compare`` by PSIS-LOO, best first, with 0.x's leading columns (``rank``,
    ``elpd_loo``, ``p_loo``, ``elpd_diff``, ``weight``, ``se``, ``dse``; then each line's own)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not ARVIZ_1:
            return az.compare(dict(data), ic="loo", scale=scale)
        if scale != "log":
            raise ValueError(f"compare: scale={scale!r} needs ArviZ 0.x; ArviZ >= 1 reports the log scale")
        table = az.compare(dict(data), round_to="none")
    table = table.rename(columns={"elpd": "elpd_loo", "p": "p_loo"})
    first = [c for c in ("rank", "elpd_loo", "p_loo", "elpd_diff", "weight", "se", "dse") if c in table]
    return table[first + [c for c in table.columns if c not in first]]
