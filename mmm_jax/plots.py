"""Plots people look at: the contribution decomposition, ROAS posteriors, response curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_decomposition", "plot_roas", "plot_response_curves", "plot_cv"]


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg",) and not _has_display():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _has_display() -> bool:
    import os

    return bool(os.environ.get("DISPLAY")) or os.name == "nt"


def plot_decomposition(mmm, path: str | Path | None = None, *, title: str | None = None):
    """Stacked weekly decomposition (baseline + channels, posterior means) against the target.

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
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig
