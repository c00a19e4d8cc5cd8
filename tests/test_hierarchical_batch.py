"""The hierarchical model through the batch engine: padding is exact, brands are isolated, reruns resume."""

from __future__ import annotations

import json

import jax
import numpy as np
import pandas as pd
import pytest

from mmm_jax import ModelConfig
from mmm_jax.batch.panels import _template_panel, fit_many_hierarchical, pad_panel_arrays, prepare_panel_brand
from mmm_jax.compile import compile_logdensity
from mmm_jax.hierarchical import HierarchicalConfig, build_hierarchical_model, simulate_panel


def _config(base_kw=None, **kw):
    base = ModelConfig(date="date", target="sales", channels=("tv", "search"), controls=["price_index"],
                       saturation="tanh", **(base_kw or {}))
    return HierarchicalConfig(base, market="market", **kw)


def _brand(n_markets, weeks, seed):
    df, _ = simulate_panel(n_markets, weeks, 2, seed=seed, n_short=1, short_weeks=weeks // 2)
    return df


def _check_padding(cfg, b, G, T, n_groups, rng):
    """Padded log-density - the brand's own: constant in the brand's parameters (padded entries
    held fixed), and equal to the prior terms of the padded entries written out by hand."""
    from scipy import stats

    data_big = pad_panel_arrays(b, G, T, n_groups)
    big = compile_logdensity(build_hierarchical_model(cfg, data_big, _template_panel(cfg, G, T, n_groups)))
    own = compile_logdensity(build_hierarchical_model(cfg, b.mmm.arrays, b.mmm.panel))
    pad_vals = {k: np.asarray(rng.normal(size=s) * 0.5) for k, s in big.param_shapes.items()}
    diffs = []
    for _ in range(4):
        p_own = {k: rng.normal(size=s) * 0.5 for k, s in own.param_shapes.items()}
        p_big = {}
        for k, s in big.param_shapes.items():
            v = pad_vals[k].copy()
            v[tuple(slice(0, n) for n in own.param_shapes[k])] = p_own[k]
            p_big[k] = v
        diffs.append(float(big.logp(p_big, data_big)) - float(own.logp(p_own, b.mmm.arrays)))
    assert np.ptp(diffs) < 1e-8 * max(1.0, abs(diffs[0])), diffs
    expected = 0.0
    for k, s in big.param_shapes.items():
        keep = np.zeros(s, bool)
        keep[tuple(slice(0, n) for n in own.param_shapes[k])] = True
        v = pad_vals[k][~keep]
        if not v.size:
            continue
        if "_z_" in k or k == "intercept_tv_delta_z" or k == "intercept":  # N(0, 1): deviations, independent intercept
            expected += stats.norm.logpdf(v).sum()
        elif k == "sigma_log__":  # independent: HalfNormal(0.5) on the log scale, with the Jacobian
            expected += (stats.halfnorm.logpdf(np.exp(v), scale=0.5) + v).sum()
        else:
            raise AssertionError(f"unexpected padded parameter {k}")
    assert diffs[0] == pytest.approx(expected, rel=1e-9, abs=1e-8)


@pytest.mark.parametrize("pooling", [{}, {"intercept": "independent", "sigma": "pooled"}, {"intercept_tv": "pooled"}])
def test_padding_adds_only_prior_terms_of_padded_markets(pooling, rng):
    """Padded log-density = the brand's own log-density + terms of the padded entries alone.

    With the padded entries held fixed, the difference must not change when the brand's own
    parameters change (any leak of padded weeks/markets into the likelihood would show), and it
    equals the prior log-density of the padded entries, written out by hand.
    """
    cfg = _config(pooling=pooling, base_kw={"time_varying_intercept": {"m": 5}} if "intercept_tv" in pooling else None)
    _check_padding(cfg, prepare_panel_brand("b", _brand(3, 40, seed=1), cfg), 5, 52, None, rng)


def test_batch_of_panels_isolates_bad_brand_and_resumes(tmp_path):
    cfg = _config()
    a = _brand(3, 40, seed=1)
    b = _brand(4, 52, seed=2)
    bad = _brand(2, 40, seed=3)
    bad.loc[5, "tv"] = -1.0  # negative spend
    df = pd.concat([a.assign(brand="a"), b.assign(brand="b"), bad.assign(brand="bad")], ignore_index=True)
    res = fit_many_hierarchical(df, by="brand", config=cfg, out=tmp_path / "runs", chains=2, warmup=150, draws=100,
                                seed=3, progress=False)
    m = res.manifest().set_index("brand")
    assert m.loc["a", "status"] == "done" and m.loc["b", "status"] == "done"
    assert m.loc["bad", "status"] == "failed" and "tv" in m.loc["bad", "error"]
    assert res.stats["template"] == {"markets": 4, "weeks": 52, "groups": {"market": 4}}
    h = res.load("a")
    roas = h.roas("market")
    assert set(roas.index.get_level_values("market")) == set(a["market"].unique())  # padding dropped
    assert np.isfinite(roas["mean"]).all() and (roas["mean"] > 0).all()
    assert h.idata.posterior["intercept_z_market"].shape[-1] == 3
    assert h.idata.posterior["sat_level"].dims == ("chain", "draw", "channel")  # shared by default (tanh)
    assert np.isfinite(h.roas("national")["mean"]).all()
    assert (h.cac("national")["mean"] > 0).all()
    with pytest.raises(RuntimeError, match="marginal_roas needs the training data"):
        h.marginal_roas()
    # rerun through the command line (a hierarchical config file routes to the hierarchical batch):
    # nothing to do; the same brands, each once
    from mmm_jax.cli import main
    from mmm_jax.hierarchical import HierarchicalBatchResult

    (tmp_path / "cfg.json").write_text(cfg.to_json())
    df.to_csv(tmp_path / "panels.csv", index=False)
    rc = main(["batch", str(tmp_path / "panels.csv"), "--by", "brand", "--config", str(tmp_path / "cfg.json"),
               "--out", str(tmp_path / "runs"), "--chains", "2", "--warmup", "150", "--draws", "100", "--seed", "3",
               "--no-progress"])
    assert rc == 0
    again = HierarchicalBatchResult(tmp_path / "runs", {})
    assert sorted(again.manifest()["brand"]) == ["a", "b", "bad"]
    last = json.loads((tmp_path / "runs" / "last_run.json").read_text())
    assert last["fitted"] == 0 and last["skipped"] == 2


def test_accelerator_layout_vmapped_brands_and_chains(tmp_path):
    """The layout accelerators use (brands x chains in one vmap), here on CPU: both brands fit, and
    a brand's draws do not depend on the batch it ran in (the same per-brand key and padding)."""
    cfg = _config()
    a, b = _brand(3, 40, seed=1), _brand(3, 40, seed=2)
    df = pd.concat([a.assign(brand="a"), b.assign(brand="b")], ignore_index=True)
    kw = dict(config=cfg, chains=2, warmup=100, draws=50, seed=5, progress=False, vmap_group=2, vmap_chains=True)
    both = fit_many_hierarchical(df, by="brand", out=tmp_path / "both", chunk_size=2, devices=jax.devices()[:1], **kw)
    assert both.stats["fitted"] == 2
    alone = fit_many_hierarchical(a.assign(brand="a"), by="brand", out=tmp_path / "alone", chunk_size=2,
                                  devices=jax.devices()[:1], **kw)
    x = both.load("a").idata.posterior["intercept_mu"].values
    y = alone.load("a").idata.posterior["intercept_mu"].values
    np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-8)


def _levels_brand(n_markets, weeks, seed, crossed):
    df = _brand(n_markets, weeks, seed)
    idx = df["market"].map({m: i for i, m in enumerate(sorted(df["market"].unique()))})
    if crossed:  # geo x product: a market is one combination
        df["geo"], df["product"] = "g" + (idx // 2).astype(str), "p" + (idx % 2).astype(str)
    else:
        df["region"] = np.where(idx < 2, "east", "west")
    return df


@pytest.mark.parametrize("crossed", [False, True], ids=["nested", "crossed"])
def test_padding_of_hierarchy_levels_adds_only_prior_terms(crossed, rng):
    """Multi-level brands in a batch: markets *and* groups of every level padded. The padded
    log-density minus the brand's own does not move with the brand's parameters, and equals the
    prior terms of the padded entries: Normal(0, 1) group deviations, the padded markets' sigma."""
    from mmm_jax.batch.panels import template_groups

    levels = ("geo", "product") if crossed else ("region", "market")
    cfg = _config().__class__(_config().base, market=levels, crossed=crossed)
    small = prepare_panel_brand("s", _levels_brand(2, 30, 1, crossed), cfg)
    large = prepare_panel_brand("l", _levels_brand(5, 40, 2, crossed), cfg)
    n_groups = template_groups([small, large])
    assert n_groups[levels[0]] > len(small.mmm.panel.group_labels[levels[0]])
    assert pad_panel_arrays(small, 5, 40, n_groups)[f"group_index_{levels[0]}"].dtype == np.int64
    _check_padding(cfg, small, large.n_markets, large.n_weeks, n_groups, rng)


def test_batch_of_nested_panels_fits_each_brand_with_its_own_groups(tmp_path):
    cfg = _config().__class__(_config().base, market=("region", "market"))
    df = pd.concat([_levels_brand(2, 30, 1, False).assign(brand="s"), _levels_brand(5, 40, 2, False).assign(brand="l")])
    res = fit_many_hierarchical(df, by="brand", config=cfg, out=tmp_path / "b", chains=2, warmup=40, draws=30,
                                seed=3, progress=False)
    m = res.manifest().set_index("brand")
    assert (m["status"] == "done").all(), m["error"].tolist()
    assert res.stats["template"]["groups"] == {"region": 2, "market": 5}
    for brand, n in (("s", 2), ("l", 5)):
        post = res.load(brand).idata.posterior
        assert post.sizes["market"] == n and post.sizes["market_group"] == n
        assert post["intercept"].shape[2:] == (n,) and np.isfinite(post["roas"].values).all()


@pytest.mark.parametrize("bad", [{"target_accept": 1.5}, {"chains": 0}, {"warmup": -1}])
def test_bad_sampler_settings_are_refused_before_any_work(bad, tmp_path):
    from mmm_jax.batch import fit_many

    df = _brand(2, 40, seed=1).assign(brand="x")
    with pytest.raises(ValueError, match="target_accept|chains >= 1"):
        fit_many_hierarchical(df, by="brand", config=_config(), out=tmp_path / "h", progress=False, **bad)
    with pytest.raises(ValueError, match="target_accept|chains >= 1"):
        fit_many(df.drop(columns="market"), by="brand", config=_config().base, out=tmp_path / "s", progress=False,
                 **bad)
    assert not (tmp_path / "h").exists() and not (tmp_path / "s").exists()


def test_fit_many_takes_a_market_config_and_loads_market_brands(tmp_path):
    """One front door: ``fit_many`` with market keys fits panels (template_weeks honoured, each
    brand loads as a HierarchicalMMM); ``fit_many_hierarchical`` refuses a config without markets."""
    from mmm_jax.api.markets import HierarchicalMMM
    from mmm_jax.batch import fit_many, load_brand
    from mmm_jax.config import ConfigError

    df = pd.concat([_brand(2, 30, seed=1).assign(brand="s"), _brand(3, 36, seed=2).assign(brand="l")])
    res = fit_many(df, by="brand", config=_config().to_dict(), out=tmp_path / "b", chains=2, warmup=30, draws=20,
                   seed=3, progress=False, template_weeks=40, chunk_draws=7)
    m = res.manifest().set_index("brand")
    assert (m["status"] == "done").all(), m["error"].tolist()
    assert res.stats["template"] == {"markets": 3, "weeks": 40, "groups": {"market": 3}}
    h = load_brand(tmp_path / "b", "s")
    assert isinstance(h, HierarchicalMMM) and h.idata.posterior.sizes["market"] == 2
    assert h.idata.observed_data.sizes["date"] == 30 and np.isfinite(h.roas("national")["mean"]).all()
    with pytest.raises(ValueError, match="template_weeks=20 is shorter"):
        fit_many(df, by="brand", config=_config(), out=tmp_path / "short", template_weeks=20, progress=False)
    with pytest.raises(ConfigError, match="market keys"):
        fit_many_hierarchical(df, by="brand", config=_config().base, out=tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()
