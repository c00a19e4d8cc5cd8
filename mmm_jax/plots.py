"""Plots people look at: the contribution decomposition, ROAS posteriors, response curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_decomposition", "plot_roas", "plot_response_curves", "plot_cv", "plot_predictive_check",
           "plot_adstock_weights", "plot_sbc_ranks", "plot_sbc_ecdf"]


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg",) and not _has_display():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path, dpi: int):
    """Write ``fig`` as a PNG at ``path`` (then close it) when a path is given; return ``fig``."""
    if path is not None:
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
    return fig


def _has_display() -> bool:
    import os

    return bool(os.environ.get("DISPLAY")) or os.name == "nt"


def plot_decomposition(mmm, path: str | Path | None = None, *, title: str | None = None):
    """Stacked weekly decomposition (baseline, non-media treatments and channels: the columns of
    ``mmm.contributions()``, posterior means) against the target. A negative treatment
    contribution (e.g. a price rise) stacks below zero; the bar chart shows each non-baseline
    component's share of the total.

    Returns the matplotlib Figure; writes a PNG when ``path`` is given.
    """
    plt = _plt()
    contrib = mmm.contributions()
    post = mmm.idata.posterior
    observed = mmm.idata.observed_data["y"].values
    mu = post["mu_original"]
    lo, hi = np.quantile(mu.values.reshape(-1, mu.shape[-1]), [0.05, 0.95], axis=0)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(12, 7.5), height_ratios=(3, 1.2), constrained_layout=True)
    dates = contrib.index
    ax.stackplot(dates, *[contrib[c].values for c in contrib.columns], labels=list(contrib.columns), alpha=0.8)
    ax.plot(dates, observed, color="black", lw=1.2, label="observed")
    ax.fill_between(dates, lo, hi, color="grey", alpha=0.3, label="model mean, 90% interval")
    ax.set_ylabel(mmm.config.target)
    ax.set_title(title or "Contribution decomposition (posterior means)")
    ax.legend(loc="upper left", ncol=min(6, len(contrib.columns) + 2), fontsize=8)
    ax.margins(x=0)
    shares = contrib.drop(columns="baseline").sum() / contrib.sum().sum()
    ax2.barh(shares.index, shares.values * 100, color=[f"C{i + 1}" for i in range(len(shares))])
    ax2.set_xlabel("share of the target explained (%)")
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def plot_roas(mmm, path: str | Path | None = None, *, truth: dict | None = None):
    """ROAS posterior per channel (90% and 50% intervals, median), with the truth if known."""
    plt = _plt()
    roas = mmm.idata.posterior["roas"]
    chans = list(roas["channel"].values)
    v = roas.values.reshape(-1, len(chans))
    q = np.quantile(v, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(chans) + 1.5), constrained_layout=True)
    y = np.arange(len(chans))
    ax.hlines(y, q[0], q[4], lw=1.5, color="C0", label="90% interval")
    ax.hlines(y, q[1], q[3], lw=5, color="C0", label="50% interval")
    ax.plot(q[2], y, "o", color="white", mec="C0", label="median")
    if truth:
        ax.plot([truth[c] for c in chans], y, "x", color="C3", ms=9, label="truth")
    ax.set_yticks(y, chans)
    ax.set_xlabel("ROAS (contribution per unit of spend)")
    ax.legend(fontsize=8)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def plot_response_curves(mmm, path: str | Path | None = None, *, n_points: int = 40, horizon: int = 13,
                         hdi_prob: float = 0.94, max_multiple: float = 1.5, curves: dict | None = None):
    """Each channel's response curve with its HDI band and the current weekly spend.

    x: weekly spend held for ``horizon`` weeks; y: response over the horizon plus carry-over
    (original units), from :meth:`mmm_jax.MMM.response_curves` (pass ``curves`` to reuse a
    result). Returns the matplotlib Figure; writes a PNG when ``path`` is given.
    """
    plt = _plt()
    if curves is None:
        curves = mmm.response_curves(n_points, horizon=horizon, hdi_prob=hdi_prob, max_multiple=max_multiple)
    n = len(curves)
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.4 * rows), squeeze=False, constrained_layout=True)
    for i, (ax, (ch, df)) in enumerate(zip(axes.ravel(), curves.items(), strict=False)):
        prob = df.attrs.get("hdi_prob", hdi_prob)
        ax.fill_between(df["weekly_spend"], df["lower"], df["upper"], color=f"C{i}", alpha=0.25,
                        label=f"{prob:.0%} HDI")
        ax.plot(df["weekly_spend"], df["mean"], color=f"C{i}", label="posterior mean")
        cur = df.attrs.get("current_weekly_spend")
        if cur is not None:
            ax.plot([cur], [np.interp(cur, df["weekly_spend"], df["mean"])], "o", color="black", ms=6,
                    label="current spend")
        ax.set_title(ch)
        ax.set_xlabel(f"weekly spend (held {df.attrs.get('horizon', horizon)} weeks)")
        ax.set_ylabel(f"response ({mmm.config.target})")
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=7)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def plot_cv(cv, path: str | Path | None = None, *, title: str | None = None):
    """Time-slice CV (:class:`mmm_jax.validation.CVResult`): per brand, ROAS per channel by fold
    (mean, 90% HDI) and each fold's relative CRPS with its 50% / 90% interval coverage.

    Returns the matplotlib Figure; writes a PNG when ``path`` is given.
    """
    plt = _plt()
    roas, metrics = cv.roas, cv.metrics
    brands = list(dict.fromkeys(roas["brand"])) if "brand" in roas.columns else [None]
    brands = brands[:6]
    fig, axes = plt.subplots(len(brands), 2, figsize=(12, 3.6 * len(brands)), squeeze=False, constrained_layout=True)
    for row, brand in zip(axes, brands, strict=True):
        r = roas if brand is None else roas[roas["brand"] == brand]
        m = metrics if brand is None else metrics[metrics["brand"] == brand]
        ax, ax2 = row
        channels = list(dict.fromkeys(r["channel"]))
        width = 0.8 / max(len(channels), 1)
        for j, ch in enumerate(channels):
            c = r[r["channel"] == ch].sort_values("fold")
            x = c["fold"].to_numpy() + (j - (len(channels) - 1) / 2) * width
            ax.errorbar(x, c["mean"], yerr=[c["mean"] - c["hdi_5%"], c["hdi_95%"] - c["mean"]], fmt="o", capsize=3,
                        label=ch)
        ax.set_xticks(sorted(r["fold"].unique()))
        ax.set_xlabel("fold (later origin ->)")
        ax.set_ylabel("ROAS (mean, 90% HDI)")
        ax.set_title("ROAS by fold" + ("" if brand is None else f": {brand}"))
        ax.legend(fontsize=8, ncol=2)
        if "crps_relative" in m:
            m = m.sort_values("fold")
            ax2.bar(m["fold"], m["crps_relative"], color="0.6", label="relative CRPS")
            ax2.set_ylabel("CRPS / mean |y|")
            ax3 = ax2.twinx()
            ax3.plot(m["fold"], m["coverage_50"], "o-", color="C0", label="50% coverage")
            ax3.plot(m["fold"], m["coverage_90"], "s-", color="C1", label="90% coverage")
            ax3.axhline(0.5, color="C0", lw=0.8, ls=":")
            ax3.axhline(0.9, color="C1", lw=0.8, ls=":")
            ax3.set_ylim(0, 1.05)
            ax3.set_ylabel("interval coverage")
            h1, l1 = ax2.get_legend_handles_labels()
            h2, l2 = ax3.get_legend_handles_labels()
            ax2.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper left")
        ax2.set_xticks(sorted(r["fold"].unique()))
        ax2.set_xlabel("fold")
        ax2.set_title("hold-out scores")
    fig.suptitle(title or "Time-slice cross-validation")
    return _save(plt, fig, path, 110)


def _weekly_draws(idata, group: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dates, draws (S, T), observed (T,))`` of ``y`` in ``group``, markets summed (a draw of the
    national total; the observed total over the markets that have the week)."""
    y = idata[group]["y"]
    dims = [d for d in y.dims if d not in ("chain", "draw", "date")]
    if dims:
        y = y.sum(dims)
    draws = y.transpose("chain", "draw", "date").values.reshape((-1, y.sizes["date"]))
    obs = idata.observed_data["y"]
    other = [d for d in obs.dims if d != "date"]
    observed = obs.sum(other, min_count=1).values if other else obs.values
    return np.asarray(y["date"].values), draws, np.asarray(observed, dtype=float)


def plot_predictive_check(fitted, path: str | Path | None = None, *, prior=None, title: str | None = None):
    """Posterior predictive check: the observed target against the posterior predictive median and
    50% / 90% bands (markets: summed over markets); with ``prior`` (an InferenceData from
    :meth:`mmm_jax.MMM.prior_predictive`) a second panel shows the prior predictive the same way.
    Held-out weeks (``fit(..., holdout=)``) are shaded. Returns the Figure; writes a PNG when
    ``path`` is given."""
    plt = _plt()
    panels = [("posterior_predictive", fitted.idata, "posterior predictive")]
    if prior is not None:
        panels.append(("prior_predictive", prior, "prior predictive"))
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 3.8 * len(panels)), squeeze=False, constrained_layout=True)
    start = fitted.idata.posterior.attrs.get("holdout_start")
    for ax, (group, idata, label) in zip(axes[:, 0], panels, strict=True):
        dates, draws, observed = _weekly_draws(idata, group)
        q = np.quantile(draws, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
        ax.fill_between(dates, q[0], q[4], color="C0", alpha=0.2, label="90% interval")
        ax.fill_between(dates, q[1], q[3], color="C0", alpha=0.35, label="50% interval")
        ax.plot(dates, q[2], color="C0", lw=1.2, label=f"{label} median")
        ax.plot(dates, observed, color="black", lw=1.0, label="observed")
        if start is not None and group == "posterior_predictive":
            ax.axvspan(np.datetime64(start), dates[-1], color="0.85", zorder=0, label="held out")
        ax.set_title(label)
        ax.legend(fontsize=8, ncol=3)
    fig.suptitle(title or "Predictive check")
    return _save(plt, fig, path, 110)


def plot_adstock_weights(fitted, path: str | Path | None = None, *, hdi_prob: float = 0.9, n_lags: int = 12,
                         title: str | None = None):
    """Adstock (carry-over) weights per channel and lag: posterior mean with the ``hdi_prob`` HDI
    band. Markets with per-market carry-over: the markets' mean weights per draw.
    ``n_lags``: lags shown for the infinite geometric adstock (the finite ones show their window).
    Returns the Figure; writes a PNG when ``path`` is given."""
    from .media.adstock import adstock_weights_jax

    plt = _plt()
    cfg = fitted.config.base if hasattr(fitted.config, "base") else fitted.config
    post = fitted.idata.posterior
    names = cfg.adstock.param_names
    params = {n: np.asarray(post[n].values) for n in names}  # (chains, draws, [G,] C)
    w = np.asarray(adstock_weights_jax(cfg.adstock, params, n_lags))  # (chains, draws, [G,] C, L)
    w = w.reshape((-1, *w.shape[2:]))
    if w.ndim == 4:  # per market: the markets' mean
        w = w.mean(axis=1)
    channels = list(post["channel"].values)
    from .compat import hdi_array

    band = hdi_array(w[None], hdi_prob)  # (C, L, 2)
    lo, hi = band[..., 0], band[..., 1]
    mean = w.mean(axis=0)
    n = len(channels)
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols, 3.1 * rows), squeeze=False, constrained_layout=True)
    lags = np.arange(w.shape[-1])
    for i, (ax, ch) in enumerate(zip(axes.ravel(), channels, strict=False)):
        ax.fill_between(lags, lo[i], hi[i], color=f"C{i}", alpha=0.25, label=f"{hdi_prob:.0%} HDI")
        ax.plot(lags, mean[i], "o-", color=f"C{i}", ms=3, label="posterior mean")
        ax.set_title(ch)
        ax.set_xlabel("lag (weeks)")
        ax.set_ylabel("weight")
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=7)
    fig.suptitle(title or f"Adstock weights ({cfg.adstock.type})")
    return _save(plt, fig, path, 110)


def _grid(plt, n: int, width: float = 3.0, height: float = 2.3):
    cols = min(5, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False,
                             constrained_layout=True)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def plot_sbc_ranks(res, path: str | Path | None = None, *, bins: int = 20, title: str | None = None):
    """SBC rank histograms (:class:`mmm_jax.validation.SBCResult`), one per scalar parameter, with
    the 99% band of a histogram of uniform ranks. Returns the Figure; writes a PNG when ``path``."""
    from scipy import stats

    plt = _plt()
    names = list(res.ranks.columns)
    n = len(res.ranks)
    bins = int(min(bins, res.n_ranks))
    expected = np.bincount(np.arange(res.n_ranks) * bins // res.n_ranks, minlength=bins) / res.n_ranks
    lo, hi = stats.binom.ppf(0.005, n, expected), stats.binom.ppf(0.995, n, expected)
    fig, axes = _grid(plt, len(names))
    for ax, name in zip(axes, names, strict=False):
        counts = np.bincount(res.ranks[name].to_numpy(dtype=int) * bins // res.n_ranks, minlength=bins)
        x = np.arange(bins)
        ax.fill_between(x, lo, hi, step="mid", color="0.85", label="99% band")
        ax.bar(x, counts, width=1.0, color="C0", alpha=0.8)
        cov = res.coverage.loc[name]
        ax.set_title(f"{name}\n50%: {cov['coverage_50']:.0%}  90%: {cov['coverage_90']:.0%}", fontsize=8)
        ax.set_xticks([])
        ax.tick_params(labelsize=7)
    fig.suptitle(title or f"SBC rank histograms ({n} simulations, {res.n_ranks} ranks, {bins} bins)")
    return _save(plt, fig, path, 100)


def plot_sbc_ecdf(res, path: str | Path | None = None, *, title: str | None = None):
    """SBC ECDF-difference plots: ECDF of the scaled ranks minus the uniform CDF per scalar
    parameter, with the simultaneous 95% band of a uniform sample (DKW). Returns the Figure."""
    plt = _plt()
    names = list(res.ranks.columns)
    n = len(res.ranks)
    eps = np.sqrt(np.log(2 / 0.05) / (2 * n))
    grid = np.linspace(0, 1, 201)
    fig, axes = _grid(plt, len(names))
    for ax, name in zip(axes, names, strict=False):
        u = np.sort((res.ranks[name].to_numpy() + 0.5) / res.n_ranks)
        diff = np.searchsorted(u, grid, side="right") / n - grid
        ax.fill_between(grid, -eps, eps, color="0.85")
        ax.plot(grid, diff, color="C0")
        ax.axhline(0, color="black", lw=0.6)
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(title or f"SBC: ECDF of ranks minus uniform ({n} simulations; grey: 95% simultaneous band)")
    return _save(plt, fig, path, 100)
