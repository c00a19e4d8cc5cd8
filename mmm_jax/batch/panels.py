"""Batches of market panels: the market kind of brand for the one batch runner.

>>> from mmm_jax.batch import fit_many                                     # doctest: +SKIP
>>> res = fit_many(df, by="brand", config=market_cfg, out="runs/geo")      # doctest: +SKIP
>>> res.manifest(); res.load("brand_3").roas("national")                   # doctest: +SKIP

:func:`mmm_jax.batch.fit_many` with a config that has market keys runs :func:`panel_kind`: one
joint model is compiled once for a template panel of ``G`` markets x ``T`` weeks (the largest
brand; groups per hierarchy level, nested or crossed, likewise) and the batch sampler runs it
over chunks of brands (sharded over devices, each brand with its own warm-up), as for
single-market brands. A brand with fewer markets, groups or weeks is padded:

* padded weeks (at the end, calendar features continued) and padded markets have ``mask = 0``
  and zero spend/controls/target: they add nothing to the likelihood;
* a padded market's or group's own parameters (its non-centred ``z``, its independent or
  per-market parameters) then appear only in their prior, independent of everything else, so
  dropping them from the draws leaves exactly the posterior of the brand's own, unpadded model
  (tested: the padded log-density is the unpadded one plus those prior terms).

Each brand is written (atomically, with the manifest and resume logic of
:class:`mmm_jax.batch.store.ResultStore`) as the InferenceData that
:meth:`HierarchicalMMM.fit` would produce: per-market and national ROAS, contributions.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..api.markets import HierarchicalMMM
from ..compile import compile_logdensity
from ..config.markets import HierarchicalConfig, load_config
from ..config.model import ConfigError
from ..data.features import fourier_features, pad_inputs
from ..data.lift import lift_digest, lift_sizes, with_lift_sizes
from ..data.panel import PanelScaling
from ..data.validate import DataError
from ..inference.base import SampleResult
from ..model.markets import build_hierarchical_model
from .jobs import nonfinite_draws, write_brand_result
from .run import BatchKind, BatchResult, Job, Template, fit_many, load_brand
from .stack import BrandFailure, brand_seed

__all__ = ["fit_many_hierarchical", "panel_kind", "PanelBrand", "prepare_panel_brand", "pad_panel_arrays",
           "HierarchicalBatchResult", "load_hierarchical_brand", "restore_panel_brand", "template_groups"]


@dataclass(frozen=True, eq=False)
class PanelBrand:
    """One brand's validated, scaled panel (``mmm``: a :class:`HierarchicalMMM`, not yet built)."""

    name: str
    mmm: HierarchicalMMM
    data_hash: str

    @property
    def n_markets(self) -> int:
        return self.mmm.panel.n_markets

    @property
    def n_weeks(self) -> int:
        return len(self.mmm.panel.dates)


def prepare_panel_brand(name: str, frame: pd.DataFrame, config: HierarchicalConfig,
                        lift: pd.DataFrame | None = None, holdout=None) -> PanelBrand | BrandFailure:
    """Validate and scale one brand's long-format panel (and its lift-test rows ``lift``, its
    ``holdout``); bad data -> :class:`BrandFailure`."""
    h = HierarchicalMMM(config)
    try:
        h.prepare(frame, lift_tests=lift if lift is not None and len(lift) else False, holdout=holdout)
    except (DataError, ValueError, KeyError) as err:
        return BrandFailure(name, f"{type(err).__name__}: {err}")
    digest = _panel_hash(h.panel)
    if h.lift_tests is not None:
        digest = hashlib.sha256(digest.encode() + lift_digest(h.lift_tests)).hexdigest()[:16]
    if h.holdout_start is not None:
        digest = hashlib.sha256(f"{digest}|holdout {h.holdout_start.isoformat()}".encode()).hexdigest()[:16]
    return PanelBrand(name, h, digest)


def _panel_hash(p) -> str:
    """Hash of the validated panel (not of the raw frame: a CSV round trip must not look like new data)."""
    digest = hashlib.sha256("|".join([*map(str, p.markets), *map(str, p.dates.asi8)]).encode())
    for x in (p.spend, p.controls, np.nan_to_num(p.target, nan=-1.2345e300), p.observed,
              p.population if p.population is not None else np.zeros(0), p.treatments):
        digest.update(np.ascontiguousarray(x, dtype=float).tobytes())  # no treatments: no bytes, the same hash
    return digest.hexdigest()[:16]


def pad_panel_arrays(b: PanelBrand, n_markets: int, n_weeks: int, n_groups: Mapping[str, int] | None = None,
                     lift: Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
    """``b``'s model inputs padded to ``n_markets`` x ``n_weeks`` by
    :func:`mmm_jax.data.features.pad_inputs` (padding masked, calendar continued).

    ``n_groups``: the template's number of groups per hierarchy level (default: the brand's own).
    Padded markets belong to group 0 of every level (their weeks are masked, so only the prior
    terms of padded groups and markets remain); padded groups' parent is group 0; padded
    markets' target and spend scales are 1; ``lift``: the template's lift sizes (padded tests
    masked; a brand without tests gets masked ones). An input without a layout in
    :func:`~mmm_jax.data.features.input_axes` is refused (``KeyError``)."""
    a, p, s, cfg = b.mmm.arrays, b.mmm.panel, b.mmm.scaling, b.mmm.config
    G, T = a["target"].shape
    if G > n_markets or T > n_weeks:
        raise ValueError(f"brand {b.name!r} ({G} markets x {T} weeks) is larger than the template "
                         f"({n_markets} x {n_weeks})")
    dates = pd.date_range(p.dates[0], periods=n_weeks, freq=pd.Timedelta(days=int(p.freq_days)))
    calendar = {"fourier": fourier_features(dates, cfg.base.seasonality),
                "time": np.asarray((dates - s.t0).days, dtype=float) / s.t_unit_days}
    sizes = {"market": n_markets, "date": n_weeks, **{f"group:{lv}": n for lv, n in (n_groups or {}).items()},
             **(lift or {})}
    return pad_inputs(with_lift_sizes(a, sizes, T), sizes, calendar, markets=True)


def template_groups(brands) -> dict[str, int]:
    """The number of groups per hierarchy level of a template that holds every brand."""
    levels = brands[0].mmm.config.levels
    return {lv: max(len(b.mmm.panel.group_labels[lv]) for b in brands) for lv in levels}


def _template_panel(config: HierarchicalConfig, n_markets: int, n_weeks: int,
                    n_groups: Mapping[str, int] | None = None):
    """Labels of a template panel: ``n_markets`` markets, ``n_groups[level]`` groups per level
    (default: one level, its groups the markets); the group indices are the padded inputs."""
    n_groups = n_groups or {config.levels[0]: n_markets}
    return SimpleNamespace(markets=[f"market_{i}" for i in range(n_markets)], dates=list(range(n_weeks)),
                           group_labels={lv: [f"{lv}_{i}" for i in range(n)] for lv, n in n_groups.items()})


def _slice_to(samples: Mapping, shapes: Mapping) -> dict:
    """Draws (chains, draws, *padded) cut to the brand's own parameter shapes."""
    return {k: np.asarray(v)[(slice(None), slice(None), *(slice(0, n) for n in shapes[k]))]
            for k, v in samples.items()}


#: a batch of market panels is a batch: the same result handle (``load`` gives a HierarchicalMMM)
HierarchicalBatchResult = BatchResult
#: :func:`mmm_jax.batch.load_brand` loads a brand of either kind
load_hierarchical_brand = load_brand


def restore_panel_brand(config: HierarchicalConfig, idata, brand: str) -> HierarchicalMMM:
    """A stored batch brand (its InferenceData, read) as a fitted :class:`HierarchicalMMM` (from
    its draws: ``predict`` / ``crps`` need the brand's data, refit it for those)."""
    return HierarchicalMMM.restore(config, PanelScaling.from_dict(json.loads(idata.posterior.attrs["scaling"])), idata)


def fit_many_hierarchical(data: Any, *, config: HierarchicalConfig | Mapping | str | os.PathLike,
                          **kwargs) -> BatchResult:
    """:func:`mmm_jax.batch.fit_many` for a config with market keys (each brand a market panel);
    the same keywords. Kept as the name of the market-panel batch; ``fit_many`` takes any config."""
    config = load_config(config)
    if not isinstance(config, HierarchicalConfig):
        raise ConfigError("fit_many_hierarchical needs a config with market keys ('market'); "
                          "use mmm_jax.batch.fit_many for single-market brands")
    return fit_many(data, config=config, **kwargs)


def panel_kind(config: HierarchicalConfig, lift: Mapping[str, pd.DataFrame] | None = None,
               holdout=None) -> BatchKind:
    """Market panels: each brand a :class:`HierarchicalMMM`, padded in weeks, markets and groups (and
    lift tests: ``lift`` maps each brand to its rows; ``holdout``: every brand's held-out weeks)."""
    return BatchKind(job_fields=_job_fields, template=_panel_template,
                     prepare=lambda name, frame: prepare_panel_brand(name, frame, config,
                                                                     None if lift is None else lift.get(name), holdout))


def _job_fields(template_weeks: int | None) -> dict:
    return {"kind": "hierarchical", **({} if template_weeks is None else {"template_weeks": int(template_weeks)})}


def _panel_template(pending: list[PanelBrand], ok: list[PanelBrand], job: Job) -> Template:
    G = max(b.n_markets for b in pending)
    T = job.weeks(max(b.n_weeks for b in pending), default=max(b.n_weeks for b in pending))
    n_groups = template_groups(pending)
    lift = lift_sizes([b.mmm.arrays for b in pending])
    template = build_hierarchical_model(job.config, pad_panel_arrays(pending[0], G, T, n_groups, lift),
                                        _template_panel(job.config, G, T, n_groups))
    ld = compile_logdensity(template)

    def stack(filled):
        padded = [pad_panel_arrays(b, G, T, n_groups, lift) for b in filled]  # once per brand, not once per input
        return {k: np.stack([a[k] for a in padded]) for k in ld.data_names}, None

    def postprocess(c, chunk: int) -> int:
        return sum(_write_brand(job, c.members[r], c.rows[r], jax.random.wrap_key_data(jnp.asarray(c.k_pp[r])),
                                c.wall) for r in c.mine)

    return Template(ld, stack=stack, postprocess=postprocess, default_chunk=lambda n, n_dev: n_dev,
                    info={"template": {"markets": G, "weeks": T, "groups": n_groups}})


def _write_brand(job: Job, b: PanelBrand, row, k_pp, wall) -> bool:
    """Build the brand's own model, cut the padding off its draws, post-process and write (never raises)."""
    rec = {**job.record, "n_weeks": b.n_weeks, "data_hash": b.data_hash, "channels": list(b.mmm.channels),
           "wall_s": wall}
    h = b.mmm

    def build():
        h.build_model()
        positions, stats, _ = row
        samples = _slice_to(positions, h.logdensity.param_shapes)
        bad = nonfinite_draws(samples, list(samples))
        if bad:
            return bad
        stats = {k: np.asarray(v) for k, v in stats.items()}
        stats["diverging"] = stats["diverging"].astype(bool)
        result = SampleResult(samples=samples, stats=stats, timings={"sampling_share": wall}, sampler="blackjax",
                              config=job.cfg)
        idata = h.attach(result, key=k_pp, seed=brand_seed(job.seed, b.name), chunk_draws=job.chunk_draws)
        if job.log_likelihood:
            h.add_log_likelihood(samples, chunk_draws=job.chunk_draws)
        return idata

    return write_brand_result(job.store, b.name, rec, build)
