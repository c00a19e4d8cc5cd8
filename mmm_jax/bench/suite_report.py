"""What the sampler suite reports from its runs: ESS/s ratios against the reference samplers,
the speed options against their baseline (float32 against float64 by posterior means), the
Markdown table and the plot."""

from __future__ import annotations

import math
from pathlib import Path

from .report import fmt

__all__ = ["REFERENCES", "cell_key", "markdown", "plot", "posterior_agreement", "ratios", "speed_comparisons"]

REFERENCES = ("pymc-default", "pmm-numpyro")
F32_AGREE_Z = 4.0  # |mean32 - mean64| / combined MCSE below this for every free scalar = "agree"


def cell_key(weeks, channels, chains, hsgp) -> str:
    """The key of a grid cell: ``T<weeks>_C<channels>_ch<chains>_<hsgp>``."""
    return f"T{weeks}_C{channels}_ch{chains}_{hsgp}"


def ratios(results: dict) -> dict:
    """Per cell: ESS/s of each of our samplers / ESS/s of each reference (same cell, same run)."""
    out = {}
    cells = {}
    for r in results.values():
        if r.get("status") == "ok" and r["variant"] == "default":
            cells.setdefault(cell_key(**r["cell"]), {})[r["sampler"]] = r
    for ck, by in cells.items():
        for s, r in by.items():
            if s in REFERENCES:
                continue
            for ref in REFERENCES:
                if ref in by and by[ref].get("ess_per_s") and r.get("ess_per_s"):
                    out.setdefault(ck, {}).setdefault(s, {})[ref] = r["ess_per_s"] / by[ref]["ess_per_s"]
    return out


def speed_comparisons(results: dict, a) -> dict:
    """Speed-option rows against their baseline run."""
    if not a.speed_options:
        return {}
    t, c = a.speed_cell
    base_id = f"{cell_key(t, c, min(a.chains), 'off')}/{a.speed_sampler}"
    base = results.get(base_id, {})
    out = {"baseline": base_id}
    if base.get("status") != "ok":
        out["note"] = "baseline run missing or failed"
        return out
    for rid, r in results.items():
        if not rid.startswith(base_id + "+") or r.get("status") != "ok":
            continue
        v = r["variant"]
        row = {
            "wall_ratio": r["wall_s"] / base["wall_s"],
            "ess_per_s_ratio": (r["ess_per_s"] or 0) / base["ess_per_s"] if base.get("ess_per_s") else None,
            "compile_s": r.get("compile_s"),
            "baseline_compile_s": base.get("compile_s"),
        }
        if v == "float32":
            row.update(posterior_agreement(base.get("posterior"), r.get("posterior")))
        out[v] = row
    return out


def posterior_agreement(p64: dict | None, p32: dict | None) -> dict:
    """Largest |mean32 - mean64| in units of the combined Monte Carlo standard error and of the sd."""
    if not p64 or not p32:
        return {"agree": None}
    z_max, d_sd_max, worst = 0.0, 0.0, None
    for v, m in p64.items():
        if v not in p32:
            continue
        for i, (a_, b_) in enumerate(zip(m["mean"], p32[v]["mean"])):
            sd = m["sd"][i]
            mcse2 = (sd**2) / max(m["ess_bulk"][i], 1.0) + (p32[v]["sd"][i] ** 2) / max(p32[v]["ess_bulk"][i], 1.0)
            z = abs(a_ - b_) / math.sqrt(mcse2) if mcse2 > 0 else 0.0
            if z > z_max:
                z_max, worst = z, f"{v}[{i}]"
            if sd > 0:
                d_sd_max = max(d_sd_max, abs(a_ - b_) / sd)
    return {"max_z": z_max, "max_z_param": worst, "max_diff_in_sd": d_sd_max, "agree": z_max < F32_AGREE_Z}


def markdown(rep: dict) -> str:
    """The suite's report as Markdown: one row per grid run, the speed options, the skipped runs."""
    cfg, results = rep["config"], rep["runs"]
    rat = rep["ratios"]
    lines = [
        f"**bench_suite** — {rep['device']}; {cfg['warmup']} warm-up + {cfg['draws']} draws per chain; "
        f"target_accept {cfg['target_accept']}; seed {cfg['seed']}; PMM controls "
        f"{'as given' if cfg['pmm_controls_as_given'] else 'standardised (like ours)'}; {rep['created_utc']}",
        "",
        "ESS = min bulk ESS over all free parameters; ESS/s = that ÷ wall s (data frame → posterior, "
        "compile included); ESS/grad = that ÷ leapfrog steps of the sampling phase (all chains); "
        "× pymc / × pmm = ESS/s ratio against pymc-default / pmm-numpyro in the same cell.",
        "",
    ]
    head = ["cell (T×C, chains, hsgp)", "sampler", "wall s", "compile s", "warm-up s", "sampling s", "min ESS",
            "median ESS", "ESS/s", "ESS/1k grad", "max R-hat", "div", "peak MB", "× pymc", "× pmm"]
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join(["---", "---"] + ["---:"] * (len(head) - 2)) + "|"]
    for rid, r in results.items():
        if r.get("variant") != "default":
            continue
        cell = r["cell"]
        ck = cell_key(**cell)
        label = f"{cell['weeks']}×{cell['channels']}, {cell['chains']}, {cell['hsgp']}"
        if r.get("status") != "ok":
            why = (r.get("error") or "").replace("|", "/").splitlines()[:1]
            lines.append(f"| {label} | {r['sampler']} | {r.get('status')}: {why[0][:80] if why else ''} |"
                         + " |" * (len(head) - 3))
            continue
        rr = rat.get(ck, {}).get(r["sampler"], {})
        epg = r.get("ess_per_grad")
        row = [label, r["sampler"], fmt(r["wall_s"]), fmt(r.get("compile_s")), fmt(r.get("warmup_s")),
               fmt(r.get("sampling_s")), fmt(r["min_ess_bulk"], 0), fmt(r.get("median_ess_bulk"), 0),
               fmt(r["ess_per_s"], 2), fmt(epg * 1000 if epg else None, 2), fmt(r["max_rhat"], 3),
               str(r.get("divergences")), fmt(r.get("peak_mem_mb"), 0),
               fmt(rr.get("pymc-default"), 2) + ("×" if "pymc-default" in rr else ""),
               fmt(rr.get("pmm-numpyro"), 2) + ("×" if "pmm-numpyro" in rr else "")]
        lines.append("| " + " | ".join(row) + " |")
    sp = rep.get("speed", {})
    if sp:
        lines += ["", f"Speed options (baseline `{sp.get('baseline')}`: float64, no persistent cache, diagonal mass "
                      f"matrix, default chain layout):", ""]
        lines += ["| option | wall s | compile s | ESS/s | ESS/s ÷ baseline | note |", "|---|---:|---:|---:|---:|---|"]
        base = results.get(sp.get("baseline"), {})
        if base.get("status") == "ok":
            lines.append(f"| baseline | {fmt(base['wall_s'])} | {fmt(base.get('compile_s'))} | "
                         f"{fmt(base['ess_per_s'], 2)} | 1.00 | |")
        for rid, r in results.items():
            if r.get("variant") in (None, "default") or not rid.startswith(str(sp.get("baseline")) + "+"):
                continue
            if r.get("status") != "ok":
                lines.append(f"| {r['variant']} | {r.get('status')} | | | | {(r.get('error') or '')[:80]} |")
                continue
            row = sp.get(r["variant"], {})
            note = ""
            if r["variant"] == "float32":
                if row.get("agree") is None:
                    note = "no posterior to compare"
                else:
                    note = (f"posterior means {'agree' if row['agree'] else 'DIFFER'}: max |Δmean| = "
                            f"{row['max_z']:.1f} MCSE ({row['max_diff_in_sd']:.2f} sd) at {row['max_z_param']}")
            if r["variant"].startswith("cache"):
                cd = r.get("compile_detail") or {}
                note = (f"XLA compile {fmt(cd.get('backend_compile_s'), 2)} s; cache loads "
                        f"{fmt(cd.get('cache_retrieval_s'), 2)} s")
            lines.append(f"| {r['variant']} | {fmt(r['wall_s'])} | {fmt(r.get('compile_s'))} | "
                         f"{fmt(r['ess_per_s'], 2)} | {fmt(row.get('ess_per_s_ratio'), 2)} | {note} |")
    noisy = {k: v["other_cpu_share"] for k, v in results.items() if (v.get("other_cpu_share") or 0) > 0.05}
    if noisy:
        lines += ["", f"**Other processes used more than 5 % of the machine during {len(noisy)} of {len(results)} "
                      f"runs (worst {max(noisy.values()):.0%}); those timings are pessimistic.**"]
    if rep.get("skipped"):
        lines += ["", "Skipped:", ""] + [f"- `{k}`: {v}" for k, v in rep["skipped"].items()]
    return "\n".join(lines) + "\n"


def plot(rep: dict, path: Path) -> bool:
    """ESS/s and ESS per gradient against problem size, one line per sampler; False without
    matplotlib or without a successful run."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    series: dict[tuple, list] = {}
    for r in rep["runs"].values():
        if r.get("status") != "ok" or r.get("variant") != "default":
            continue
        c = r["cell"]
        series.setdefault((r["sampler"], c["chains"], c["hsgp"]), []).append(
            (c["weeks"] * c["channels"], f"{c['weeks']}×{c['channels']}", r["ess_per_s"], r.get("ess_per_grad")))
    if not series:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for (s, chains, h), pts in sorted(series.items()):
        pts.sort()
        x = [p[0] for p in pts]
        lab = f"{s} ({chains} ch{', hsgp' if h == 'on' else ''})"
        axes[0].plot(x, [p[2] for p in pts], "o-", label=lab)
        axes[1].plot(x, [(p[3] or float("nan")) * 1000 for p in pts], "o-", label=lab)
    for ax, yl in zip(axes, ("min bulk ESS per second (wall, compile included)", "min bulk ESS per 1,000 gradients")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("problem size: weeks × channels")
        ax.set_ylabel(yl)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"bench_suite — {rep['device']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
