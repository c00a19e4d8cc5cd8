"""Command line: ``mmm-jax demo``, ``mmm-jax fit DATA.csv --config CONFIG.yaml --out DIR``,
``mmm-jax batch DATA --by brand --config CONFIG.yaml --out DIR``,
``mmm-jax optimize RUN_DIR --total ... --horizon ... --objective cvar --alpha 0.1``,
``mmm-jax bench [--full] [--pmm-python PY]`` (sampler benchmark suite)."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
import warnings
from pathlib import Path

from .persist import (
    RunFormatError,
    atomic_write_bytes,
    atomic_write_text,
    check_output_dir,
    is_storage_error,
    mark_output_dir,
    netcdf_bytes,
    output_kind,
)

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``mmm-jax fit: error: ...``, exit 2) instead of usage + error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_at_least(lo: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be at least {lo}, got {v}")
        return v

    return parse


def _float_in(lo: float, hi: float, *, lo_open: bool = True, hi_open: bool = False):
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        ok = math.isfinite(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
        if not ok:
            raise argparse.ArgumentTypeError(f"must be in {'(' if lo_open else '['}{lo:g}, {hi:g}"
                                             f"{')' if hi_open else ']'}, got {text}")
        return v

    return parse


def _positive_float(text: str) -> float:
    return _float_in(0.0, math.inf, hi_open=True)(text)


def _pair(text: str) -> tuple[str, float]:
    """``NAME=VALUE`` (``--lock``) with a finite, non-negative value."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected CHANNEL=VALUE, got {text!r}")
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name}: expected a number after '=', got {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"{name}: spend must be finite and >= 0, got {value}")
    return name, v


def _bound(text: str) -> tuple[str, tuple[float, float]]:
    """``NAME=LO:HI`` (``--bound``) with finite 0 <= LO <= HI."""
    name, sep, rest = text.partition("=")
    lo, sep2, hi = rest.partition(":")
    if not sep or not sep2 or not name:
        raise argparse.ArgumentTypeError(f"expected CHANNEL=LO:HI, got {text!r}")
    try:
        a, b = float(lo), float(hi)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name}: expected numbers LO:HI, got {rest!r}") from None
    if not (math.isfinite(a) and math.isfinite(b) and 0 <= a <= b):
        raise argparse.ArgumentTypeError(f"{name}: bounds must be finite with 0 <= LO <= HI, got {rest}")
    return name, (a, b)


def _sampler_args(p: argparse.ArgumentParser, draws: int = 1000,
                  samplers=("numpyro", "blackjax", "chees", "meads")) -> None:
    p.add_argument("--sampler", choices=list(samplers), default=samplers[0],
                   help=("NUTS (numpyro, blackjax) or BlackJAX many-chain adaptation (chees: ChEES-HMC; "
                         "meads: GHMC, needs >= 16 chains)") if len(samplers) > 1
                   else "the batch engine vmaps BlackJAX NUTS over brands")
    p.add_argument("--chains", type=_int_at_least(1), default=4)
    p.add_argument("--warmup", type=_int_at_least(0), default=1000)
    p.add_argument("--draws", type=_int_at_least(1), default=draws)
    p.add_argument("--target-accept", type=_float_in(0.0, 1.0, hi_open=True), default=0.9)
    p.add_argument("--seed", type=_int_at_least(0), default=0)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _calibration_args(p: argparse.ArgumentParser, *, batch: bool) -> None:
    """``--lift-tests``, ``--holdout`` and ``--log-likelihood`` of ``fit`` (one model) and ``batch`` (every brand)."""
    p.add_argument("--lift-tests", default=None, metavar="PATH",
                   help="lift tests (CSV/Parquet: channel, [market], start, end, delta_spend, delta_response, sigma"
                   + (", and the --by column" if batch else "") + ") entering the likelihood; default: the config's "
                   "lift_tests")
    whose = "every brand's" if batch else "the"
    p.add_argument("--holdout", type=_holdout, default=None, metavar="WEEKS|DATE",
                   help=f"keep {whose} last WEEKS (or the weeks from DATE on) out of the likelihood and score them")
    p.add_argument("--log-likelihood", action="store_true", help=f"store {whose} pointwise log-likelihood (for LOO)")


def _holdout(text: str):
    """``--holdout``: a number of weeks or a date."""
    return int(text) if text.strip().isdigit() else text


def _fit_kwargs(a) -> dict:
    return dict(
        sampler=a.sampler,
        chains=a.chains,
        warmup=a.warmup,
        draws=a.draws,
        target_accept=a.target_accept,
        seed=a.seed,
        progress=not a.no_progress,
        **_until_kwargs(a),
    )


def _until_kwargs(a) -> dict:
    until = getattr(a, "until", None)
    return {} if until is None else {"until": until, "max_draws": a.max_draws}


def _until(text: str) -> dict:
    """``--until rhat=1.01,ess=400``: the convergence targets (see mmm_jax.inference.until)."""
    from .inference.until import check_until

    out = {}
    for part in filter(None, (x.strip() for x in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected NAME=VALUE[,...], e.g. rhat=1.01,ess=400; got {part!r}") \
                from None
        if not sep:
            raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {part!r}")
    try:
        return check_until(out)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _until_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--until", type=_until, default=None, metavar="rhat=1.01,ess=400",
                   help="after --draws, keep drawing (chunks of 100) until every free parameter meets these targets "
                        "(rhat, ess = bulk ESS, ess_tail)")
    p.add_argument("--max-draws", type=_int_at_least(1), default=None,
                   help="with --until: most draws per chain (default max(4 x draws, 2000))")


def _print_diagnostics(mmm) -> None:
    d = mmm.diagnostics()
    t = mmm.timings
    print(
        f"\nmax R-hat {d['max_rhat']:.4f} | min bulk ESS {d['min_ess_bulk']:.0f} | "
        f"min tail ESS {d['min_ess_tail']:.0f} | divergences {d['divergences']} / {d['draws']}"
    )
    if math.isfinite(t["warmup"]):
        nuts = f"warmup {t['warmup']:.1f}s (incl. JIT) + sampling {t['sampling']:.1f}s"
    else:
        nuts = f"JIT + warmup + sampling {t['total']:.1f}s"
    print(
        f"time: build {t['build_compile']:.1f}s + {nuts} + post-processing {t['postprocess']:.1f}s "
        f"= {t['wall']:.1f}s; min bulk ESS/s {d['min_ess_bulk'] / max(t['wall'], 1e-9):.1f}"
    )


def cmd_demo(a) -> int:
    import pandas as pd

    from . import MMM, ModelConfig
    from .datasets import EXAMPLE_CHANNELS, EXAMPLE_CONTROLS, EXAMPLE_DATE, EXAMPLE_TARGET, load_example
    from .plots import plot_decomposition, plot_roas

    t0 = time.perf_counter()
    out = mark_output_dir(check_output_dir(a.out, "demo", overwrite=a.overwrite), "demo")
    df, truth = load_example()
    cfg = ModelConfig(
        date=EXAMPLE_DATE, target=EXAMPLE_TARGET, channels=EXAMPLE_CHANNELS, controls=EXAMPLE_CONTROLS,
        seasonality=2, trend=True,
    )
    print(f"mmm_jax demo: {len(df)} weeks, channels {list(EXAMPLE_CHANNELS)}, control {list(EXAMPLE_CONTROLS)}")
    mmm = MMM(cfg)
    mmm.fit(df, **_fit_kwargs(a))
    table = mmm.roas(hdi_prob=0.9)
    table.insert(0, "true_roas", [truth["roas"][c] for c in table.index])
    table["covered"] = (table["true_roas"] >= table.iloc[:, 3]) & (table["true_roas"] <= table.iloc[:, 4])
    print("\nROAS per channel: estimated (posterior) vs true")
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 120):
        print(table.to_string())
    _print_diagnostics(mmm)
    atomic_write_bytes(out / "idata.nc", netcdf_bytes(mmm.idata))
    plot_decomposition(mmm, out / "decomposition.png", title="mmm_jax demo: contribution decomposition")
    plot_roas(mmm, out / "roas.png", truth=truth["roas"])
    table.to_csv(out / "roas.csv")
    print(f"\nwrote {out / 'idata.nc'}, {out / 'decomposition.png'}, {out / 'roas.png'}, {out / 'roas.csv'}")
    print(f"demo finished in {time.perf_counter() - t0:.1f}s")
    return 0


def cmd_fit(a) -> int:
    from . import MMM
    from .api.markets import HierarchicalMMM
    from .config.markets import HierarchicalConfig, load_config
    from .data.validate import read_table

    cfg = load_config(a.config)
    kind = "markets" if isinstance(cfg, HierarchicalConfig) else "brand"
    check_output_dir(a.out, kind, overwrite=a.overwrite,
                     inputs=[a.data, a.config, *([a.lift_tests] if a.lift_tests else [])])  # before any work
    df = read_table(a.data)
    model = HierarchicalMMM(cfg) if isinstance(cfg, HierarchicalConfig) else MMM(cfg)
    model.fit(df, lift_tests=a.lift_tests, holdout=a.holdout, log_likelihood=a.log_likelihood, **_fit_kwargs(a))
    return _write_fit(model, a)


def cmd_refresh(a) -> int:
    from .api.fitted import load
    from .data.validate import DataError, read_table
    from .persist import output_kind

    kind = output_kind(a.run) if Path(a.run).is_dir() else None
    check_output_dir(a.out, kind or "brand", overwrite=a.overwrite, inputs=[a.data])  # before any work
    model = load(a.run)
    df = read_table(a.data)
    try:
        model.refresh(df, warmup=a.warmup, draws=a.draws, seed=a.seed, progress=not a.no_progress,
                      lift_tests=a.lift_tests, holdout=a.holdout, log_likelihood=a.log_likelihood,
                      **_until_kwargs(a))
    except ValueError as err:  # the data change the model's parameters, or the fit cannot be refreshed
        if isinstance(err, DataError):
            raise
        raise DataError(f"{a.run}: {err}") from None
    return _write_fit(model, a)


def _write_fit(model, a) -> int:
    """Save a fitted model to ``a.out`` with its tables, plots and diagnostics (``fit``, ``refresh``)."""
    from .api.markets import HierarchicalMMM
    from .plots import plot_decomposition, plot_roas

    out = model.save(a.out, overwrite=a.overwrite)
    _write_lift_fit(model, out)
    report = {**model.diagnostics(), "timings": model.timings, **_holdout_report(model)}
    if "stopped" in model.fit_settings:
        report["until"] = model.fit_settings["stopped"]
    if isinstance(model, HierarchicalMMM):  # markets: one joint model
        for level in ("market", "national"):
            model.roas(level).to_csv(out / f"roas_{level}.csv")
        model.contributions().to_csv(out / "contributions.csv")
        (out / "diagnostics.json").write_text(json.dumps(report, indent=2))
        print(model.roas("national").to_string())
        _print_diagnostics(model)
        print(f"\nwrote {out}/ (model, idata.nc, roas_market.csv, roas_national.csv, contributions.csv)")
        return 0
    model.summary().to_csv(out / "summary.csv")
    model.roas().to_csv(out / "roas.csv")
    model.contributions().to_csv(out / "contributions.csv")
    plot_decomposition(model, out / "decomposition.png")
    plot_roas(model, out / "roas.png")
    (out / "diagnostics.json").write_text(json.dumps(report, indent=2))
    print(model.roas().to_string())
    _print_diagnostics(model)
    print(f"\nwrote {out}/ (model, idata.nc, summary.csv, roas.csv, contributions.csv, decomposition.png)")
    return 0


def _holdout_report(fitted) -> dict:
    """``{"holdout": metrics}`` of a fit with held-out weeks (printed), else ``{}``."""
    if fitted.holdout_start is None:
        return {}
    m = fitted.holdout_metrics()
    print(f"\nhold-out from {m['holdout_start']} ({m['n']} cells): CRPS {m['crps']:.4g} "
          f"({m['crps_relative']:.1%} of mean |y|), MAPE {m['mape']:.1%}, coverage 50% {m['coverage_50']:.0%}, "
          f"90% {m['coverage_90']:.0%}")
    return {"holdout": m}


def _write_lift_fit(fitted, out: Path) -> None:
    """``lift_tests.csv``: each lift test next to the fitted model's lift (when the fit had tests)."""
    if fitted.lift_tests is None:
        return
    table = fitted.lift_test_fit()
    table.to_csv(out / "lift_tests.csv")
    print("\nlift tests: measured vs model (z = (model - measured) / sigma)")
    print(table[["channel", "start", "end", "delta_spend", "measured", "sigma", "mean", "z"]].to_string())


def cmd_cv(a) -> int:
    import pandas as pd

    from .data.validate import read_table
    from .validation import time_slice_cv

    df = read_table(a.data)
    cv = time_slice_cv(df, a.config, folds=a.folds, horizon=a.horizon, out=a.out, by=a.by, chains=a.chains,
                       warmup=a.warmup, draws=a.draws, target_accept=a.target_accept, seed=a.seed,
                       progress=not a.no_progress, overwrite=a.overwrite, lift_tests=a.lift_tests)
    out = Path(a.out)
    cv.plot(out / "cv.png")
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 140):
        print(cv.metrics.to_string(index=False))
        print("\nROAS across folds (mean of the folds' posterior means, sd across folds)")
        print(cv.stability().to_string())
    st = cv.stats
    print(f"\n{len(cv.metrics)} folds in one batch: {st.get('wall_s', float('nan')):.1f} s")
    print(f"wrote {out / 'cv_metrics.csv'}, {out / 'cv_roas.csv'}, {out / 'cv.png'} and the folds' fits "
          f"({out / 'brands'}/fold_<k>.nc)")
    return 0


def cmd_sbc(a) -> int:
    import pandas as pd

    from .data.validate import read_table
    from .persist import check_output_dir
    from .validation import sbc

    if a.data is None:
        from .datasets import load_example

        df = load_example()[0]
    else:
        df = read_table(a.data)
    out = check_output_dir(a.out, "sbc", overwrite=a.overwrite, inputs=[p for p in (a.data, a.config) if p])
    res = sbc(a.config, df, n=a.n, chains=a.chains, warmup=a.warmup, draws=a.draws, target_accept=a.target_accept,
              seed=a.seed, out=out, overwrite=a.overwrite, progress=not a.no_progress)
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 140):
        print(res.coverage.to_string())
    cov = res.coverage
    off = cov[((cov["coverage_50"] - 0.5).abs() > 0.05) | ((cov["coverage_90"] - 0.9).abs() > 0.05)]
    st = res.stats
    print(f"\n{st['n']} simulations in {st['wall_s']:.1f} s ({st['simulations_per_min']:.1f} per minute); "
          f"{len(off)} of {len(cov)} scalar parameters with a coverage more than 5 points off "
          f"(standard error at n = {st['n']}: {100 * (0.25 / st['n']) ** 0.5:.1f} points at 50%, "
          f"{100 * (0.09 / st['n']) ** 0.5:.1f} at 90%)")
    print(f"wrote {out}/ (sbc_coverage.csv, sbc_ranks.csv, sbc_diagnostics.csv, sbc.json, sbc_ranks.png, sbc_ecdf.png)")
    return 0


def cmd_optimize(a) -> int:
    from .api.fitted import load
    from .budget import BudgetError

    found = output_kind(a.run_dir) if Path(a.run_dir).is_dir() else None
    if found not in ("brand", "batch", "markets"):
        what = "not an mmm_jax output" if found is None else f"an mmm_jax {found} output"
        raise RunFormatError(f"{a.run_dir}: {what}; give a folder written by `mmm-jax fit` or `mmm-jax batch`")
    batch = found == "batch"
    units = found != "brand"  # constraints keyed BRAND/CHANNEL or MARKET/CHANNEL
    if a.flighting and units:
        raise BudgetError("--flighting plans one single-market model (a directory from `mmm-jax fit` "
                          f"without market keys); {a.run_dir} is a {found} output")
    locked, bounds = dict(a.lock or []), dict(a.bound or [])
    if units:
        unit = "BRAND" if batch else "MARKET"

        def key(name):
            if "/" not in name:
                raise BudgetError(f"in a {found} directory, name units as {unit}/CHANNEL, got {name!r}")
            return tuple(name.rsplit("/", 1))

        locked = {key(k): v for k, v in locked.items()}
        bounds = {key(k): v for k, v in bounds.items()}
    out_path = Path(a.out) if a.out else Path(a.run_dir) / "budget"
    check_output_dir(out_path, "budget", overwrite=a.overwrite)
    mmm = None if batch else load(a.run_dir)  # checked (format, file hashes) before anything is written
    out = mark_output_dir(out_path, "budget")
    if a.flighting:
        from .budget.portfolio import optimize_flighting

        fp = optimize_flighting(mmm, a.total, a.horizon, objective=a.objective, alpha=a.alpha,
                                risk_aversion=a.risk_aversion, locked=locked or None,
                                max_history_multiple=a.max_history_multiple, max_draws=a.draws, seed=a.seed)
        fp.plan.to_csv(out / "flighting.csv")
        (out / "flighting.json").write_text(fp.to_json())
        fp.plot(out / "flighting.png")
        print(fp.plan.round(2).to_string())
        s = fp.summary
        print(f"\nexpected response {s['expected_response']:,.0f} vs best flat plan {s['flat_expected_response']:,.0f} "
              f"(gain {s['gain_over_flat']:,.0f}, P(gain > 0) = {s['p_gain_positive']:.2f})")
        print(f"wrote {out / 'flighting.csv'}, {out / 'flighting.json'}, {out / 'flighting.png'}")
        return 0
    kw = dict(objective=a.objective, alpha=a.alpha, risk_aversion=a.risk_aversion, min_mroas=a.min_mroas,
              bounds_pct=a.bounds_pct, max_history_multiple=a.max_history_multiple, max_draws=a.draws, seed=a.seed)
    if batch:  # one total over every brand x channel of a `mmm-jax batch` directory
        from .budget.portfolio import optimize_portfolio

        plan = optimize_portfolio(a.run_dir, a.total, a.horizon, bounds=bounds or None, locked=locked or None, **kw)
    else:  # one brand, or every market x local channel of a multi-market model
        plan = mmm.optimize_budget(a.total, a.horizon, bounds=bounds or None, locked=locked or None, **kw)
    plan.table.to_csv(out / "plan.csv")
    (out / "plan.json").write_text(plan.to_json())
    plan.plot(out / "plan.png")
    if not units:
        plan.plot_response_curves(out / "response_curves.png")
    import pandas as pd

    with pd.option_context("display.float_format", "{:,.2f}".format, "display.width", 160):
        print(plan.table.to_string())
    s = plan.summary
    print(
        f"\nexpected response {s['expected_response']:,.0f} (94% HDI {s['response_hdi_94'][0]:,.0f} - "
        f"{s['response_hdi_94'][1]:,.0f}); current allocation {s['current_expected_response']:,.0f}; "
        f"uplift {s['uplift_mean']:,.0f}, P(uplift > 0) = {s['p_uplift_positive']:.2f}"
    )
    print(f"wrote {out / 'plan.csv'}, {out / 'plan.json'}, {out / 'plan.png'}"
          + ("" if units else f", {out / 'response_curves.png'}"))
    return 0


def cmd_batch(a) -> int:
    from .batch import fit_many

    if a.export:  # refuse a bad export folder before any work
        check_output_dir(a.export, "export", overwrite=a.overwrite, inputs=[a.data, a.out], flag="--export")
    devices = None
    if a.devices:
        import jax

        devices = jax.devices()[: a.devices]
    kw = dict(by=a.by, config=a.config, out=a.out, chains=a.chains, warmup=a.warmup, draws=a.draws,
              target_accept=a.target_accept, max_tree_depth=a.max_tree_depth, seed=a.seed, chunk_size=a.chunk_size,
              devices=devices, force=a.force, overwrite=a.overwrite, retry_failed=a.retry_failed,
              progress=not a.no_progress, lift_tests=a.lift_tests, holdout=a.holdout, log_likelihood=a.log_likelihood)
    res = fit_many(a.data, max_chunks=a.max_chunks, **kw)  # any config: single-market brands or market panels
    m = res.manifest()
    atomic_write_text(Path(a.out) / "manifest.csv", m.to_csv(index=False))
    atomic_write_text(Path(a.out) / "last_run.json", json.dumps(res.stats, indent=2, default=str))
    print(res.summary())
    print(f"wrote {Path(a.out) / 'manifest.sqlite'} (+ manifest.csv) and {Path(a.out) / 'brands'}/<brand>.nc")
    if a.export:
        _export([a.out], a.export, a.export_format, 0.9, not a.no_progress, a.overwrite)
    return 0 if (m["status"] == "done").any() or m.empty else 1


def _export(runs: list[str], out: str, fmt: str, hdi_prob: float, progress: bool, overwrite: bool) -> None:
    from .export import export_runs

    written = export_runs(runs, out, fmt=fmt, hdi_prob=hdi_prob, progress=progress, overwrite=overwrite)
    print(f"wrote {', '.join(str(p) for p in written.values())}")


def cmd_export(a) -> int:
    _export(a.runs, a.out, a.format, a.hdi_prob, not a.no_progress, a.overwrite)
    return 0


def cmd_bench(a) -> int:
    from .bench.suite import finish_args, run_suite

    return run_suite(finish_args(a))


def _command(argv: list[str]) -> str | None:
    """The subcommand of ``argv``: its first word that is not an option (the top-level options
    take no values)."""
    return next((w for w in argv if not w.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    from . import __version__

    parser = _Parser(prog="mmm-jax", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mmm-jax {__version__}")
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("--verbose", action="store_true", help="debug messages, and full tracebacks of errors")
    loud.add_argument("--quiet", action="store_true", help="only warnings, errors and the results (no progress "
                                                           "bars or progress messages)")
    sub = parser.add_subparsers(dest="command", required=True)
    overwrite_help = ("also write into an existing folder that is not an mmm_jax output of this kind "
                      "(mmm_jax's files replace same-named ones; other files are kept)")
    p = sub.add_parser("demo", help="fit the bundled example and compare estimated with true ROAS")
    p.add_argument("--out", default="mmm_jax_demo", help="output directory (default: ./mmm_jax_demo)")
    p.add_argument("--overwrite", action="store_true", help=overwrite_help)
    _sampler_args(p)
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("fit", help="fit a CSV with a YAML/JSON config and save the model")
    p.add_argument("data", help="CSV or Parquet with the date, target, channel and control columns (and the "
                                "market columns of a multi-market config, long format)")
    p.add_argument("--config", required=True, help="YAML or JSON model config; with a 'market' key one joint "
                                                   "multi-market model")
    p.add_argument("--out", required=True, help="new folder to write the fitted model to (an earlier run's "
                                                "folder is replaced; any other existing folder is refused)")
    p.add_argument("--overwrite", action="store_true", help=overwrite_help)
    _calibration_args(p, batch=False)
    _sampler_args(p)
    _until_args(p)
    p.set_defaults(func=cmd_fit)
    p = sub.add_parser("refresh", help="refit a saved model on extended data, starting from its last draws and "
                                       "adaptation (short warm-up)")
    p.add_argument("run", help="a folder written by `mmm-jax fit` (or `refresh`)")
    p.add_argument("data", help="CSV or Parquet: the data with the new weeks (same columns as the fit's)")
    p.add_argument("--out", required=True, help="folder to write the refreshed model to (RUN itself is replaced "
                                                "only when named here)")
    p.add_argument("--overwrite", action="store_true", help=overwrite_help)
    p.add_argument("--warmup", type=_int_at_least(0), default=200)
    p.add_argument("--draws", type=_int_at_least(1), default=None, help="default: the fit's")
    p.add_argument("--seed", type=_int_at_least(0), default=None, help="default: the fit's + 1")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _calibration_args(p, batch=False)
    _until_args(p)
    p.set_defaults(func=cmd_refresh)
    p = sub.add_parser("batch", help="fit one model per brand/market for many brands (resumable)")
    p.add_argument("data", help="long-format CSV/Parquet (with --by) or a directory of per-brand files")
    p.add_argument("--by", default=None, help="brand/market column of a long-format table")
    p.add_argument("--config", required=True, help="YAML or JSON model config (one model for every brand); with a "
                   "'market' key each brand's markets are fitted jointly")
    p.add_argument("--out", required=True, help="output directory (manifest.sqlite + brands/*.nc); rerun to resume")
    _sampler_args(p, samplers=("blackjax",))
    p.add_argument("--max-tree-depth", type=_int_at_least(1), default=10)
    p.add_argument("--chunk-size", type=_int_at_least(1), default=None,
                   help="brands per compiled call (default: from memory)")
    p.add_argument("--devices", type=_int_at_least(1), default=None, help="use the first N devices (default: all)")
    p.add_argument("--max-chunks", type=_int_at_least(0), default=None, help="stop after N chunks (rerun to continue)")
    p.add_argument("--force", action="store_true", help="refit everything if OUT holds another configuration")
    p.add_argument("--overwrite", action="store_true", help=overwrite_help)
    p.add_argument("--retry-failed", action="store_true", help="also refit brands that failed before")
    p.add_argument("--export", default=None, metavar="DIR",
                   help="afterwards write roas, contributions and diagnostics tables of every brand to DIR "
                        "(as `mmm-jax export OUT --out DIR`)")
    p.add_argument("--export-format", choices=("parquet", "csv"), default="parquet")
    _calibration_args(p, batch=True)
    p.set_defaults(func=cmd_batch)
    p = sub.add_parser("export", help="write ROAS, weekly contributions and diagnostics of fitted runs as one "
                                      "Parquet/CSV table each (for dashboards)")
    p.add_argument("runs", nargs="+", metavar="RUN", help="batch output folders (`mmm-jax batch`) and/or fitted-model "
                                                          "folders (`mmm-jax fit` / `refresh`)")
    p.add_argument("--out", required=True, help="folder for roas.*, contributions.* and diagnostics.*")
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet", help="default: parquet")
    p.add_argument("--hdi-prob", type=_float_in(0.0, 1.0, hi_open=True), default=0.9,
                   help="HDI probability of the ROAS bounds (default 0.9)")
    p.add_argument("--overwrite", action="store_true", help=overwrite_help)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("cv", help="time-slice cross-validation: rolling origins fitted as one batch")
    p.add_argument("data", help="CSV or Parquet: one brand, a long market panel (market config), or many brands "
                                "with --by")
    p.add_argument("--config", required=True, help="YAML or JSON model config (any kind)")
    p.add_argument("--folds", type=_int_at_least(1), default=4, help="number of origins (default 4)")
    p.add_argument("--horizon", type=_int_at_least(1), default=13, help="weeks scored after each origin (default 13)")
    p.add_argument("--by", default=None, help="brand column: cross-validate every brand (folds x brands, one batch)")
    p.add_argument("--out", required=True, help="output folder (the folds' batch + cv_metrics.csv, cv_roas.csv, "
                                                "cv.png); rerun to resume")
    p.add_argument("--overwrite", action="store_true", help=overwrite_help)
    p.add_argument("--lift-tests", default=None, metavar="PATH",
                   help="lift tests (a fold uses those that end before its origin)")
    _sampler_args(p, samplers=("blackjax",))
    p.set_defaults(func=cmd_cv)
    p = sub.add_parser("sbc", help="simulation-based calibration: simulate from the prior, refit as one batch")
    p.add_argument("--config", required=True, help="YAML or JSON model config (any kind)")
    p.add_argument("--data", default=None, help="template CSV/Parquet (dates, spend, controls, markets; default: the "
                                                "bundled example)")
    p.add_argument("--n", type=_int_at_least(2), default=100, help="simulations (default 100)")
    p.add_argument("--out", required=True, help="output folder (coverage, ranks, plots)")
    p.add_argument("--overwrite", action="store_true", help=overwrite_help)
    _sampler_args(p, samplers=("blackjax",))
    p.set_defaults(func=cmd_sbc, chains=2, warmup=300, draws=300)
    p = sub.add_parser("optimize", help="optimise the budget split for a fitted model (a directory from `fit`; "
                                        "with markets, over every market x local channel), or one total over "
                                        "every brand x channel of a `batch` directory")
    p.add_argument("run_dir", help="directory written by `mmm-jax fit` or `mmm-jax batch`")
    p.add_argument("--total", type=_float_in(0.0, math.inf, lo_open=False, hi_open=True), required=True, help="budget over the horizon (currency)")
    p.add_argument("--horizon", type=_int_at_least(1), default=13, help="weeks (default 13)")
    p.add_argument("--objective", choices=["mean", "mean_sd", "cvar", "mroas"], default="mean")
    p.add_argument("--alpha", type=_float_in(0.0, 1.0), default=0.1, help="CVaR tail fraction in (0, 1] (default 0.1)")
    p.add_argument("--risk-aversion", type=_float_in(0.0, math.inf, lo_open=False, hi_open=True), default=1.0,
                   help="weight of sd in mean_sd")
    p.add_argument("--min-mroas", type=_float_in(-math.inf, math.inf, hi_open=True), default=None,
                   help="minimum marginal ROAS for objective mroas")
    p.add_argument("--bound", action="append", metavar="CH=LO:HI", type=_bound,
                   help="spend bounds over the horizon (BRAND/CH=LO:HI for a batch, MARKET/CH=LO:HI with markets)")
    p.add_argument("--bounds-pct", type=_positive_float, default=None, help="allow +-this fraction around current spend")
    p.add_argument("--lock", action="append", metavar="CH=VALUE", type=_pair,
                   help="fix a channel's spend (BRAND/CH=VALUE for a batch, MARKET/CH=VALUE with markets)")
    p.add_argument("--max-history-multiple", type=_positive_float, default=None,
                   help="cap weekly spend at this multiple of the channel's historical max")
    p.add_argument("--draws", type=_int_at_least(1), default=2000, help="posterior draws used (default 2000)")
    p.add_argument("--seed", type=_int_at_least(0), default=0)
    p.add_argument("--flighting", action="store_true", help="optimise every week's spend (not a flat split)")
    p.add_argument("--out", default=None, help="output directory (default RUN_DIR/budget)")
    p.add_argument("--overwrite", action="store_true", help=overwrite_help)
    p.set_defaults(func=cmd_optimize)
    p = sub.add_parser("bench", help="sampler benchmark suite: samplers x problem sizes",
                       description="Every sampler on a grid of simulated problems, each run in its own process; "
                                   "writes JSON + Markdown + plot to --out: benchmarks/results/ when run from a "
                                   "source checkout, else ./mmm_jax_bench/ (see benchmarks/README.md).")
    if _command(sys.argv[1:] if argv is None else argv) == "bench":  # the suite's options, only when asked for
        from .bench.suite import add_arguments

        add_arguments(p)
    p.set_defaults(func=cmd_bench)
    try:
        a = parser.parse_args(argv)
        if getattr(a, "max_draws", None) is not None and getattr(a, "until", None) is None:
            parser.error(f"{a.command}: --max-draws needs --until (e.g. --until rhat=1.01,ess=400)")
    except SystemExit as exit_:  # --help, --version, or a one-line argument error (exit 2)
        return int(exit_.code or 0)
    # PyTensor's C backend warns about BLAS at import; we run on JAX, so it is noise here.
    warnings.filterwarnings("ignore", message=".*BLAS.*")
    if a.quiet and hasattr(a, "no_progress"):
        a.no_progress = True
    logger = logging.getLogger("mmm_jax")
    level = logger.level
    handler = _log_to_stderr(logging.DEBUG if a.verbose else logging.WARNING if a.quiet else logging.INFO)
    shown = warnings.showwarning
    if not a.verbose:  # one line per warning, without the source line it came from
        warnings.showwarning = _show_warning
    try:
        return a.func(a)
    except KeyboardInterrupt:
        print(f"mmm-jax {a.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - every error is one line unless --verbose
        if a.verbose:
            raise
        user = isinstance(err, _user_errors()) or is_storage_error(err)
        text = " ".join(str(err).split()) or type(err).__name__
        if user:
            print(f"mmm-jax {a.command}: error: {text}", file=sys.stderr)
            return 2
        print(f"mmm-jax {a.command}: internal error: {type(err).__name__}: {text[:500]} "
              "(rerun with --verbose for the traceback and report it)", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = shown
        logger.removeHandler(handler)
        logger.setLevel(level)


def _log_to_stderr(level: int) -> logging.Handler:
    """Show the ``mmm_jax`` logger's messages at ``level`` and above as ``mmm-jax: message`` lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("mmm-jax: %(message)s"))
    logger = logging.getLogger("mmm_jax")
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"mmm-jax: warning: {' '.join(str(message).split())}", file=file or sys.stderr)


def _user_errors() -> tuple:
    """Errors caused by the input, the folders or the disk: reported in one line, exit 2."""
    from .batch.store import ConfigChangedError, StorageError, StoreLockedError
    from .budget import BudgetError
    from .config.model import ConfigError
    from .data.validate import DataError
    from .persist import OutputDirError, RunFormatError

    return (DataError, ConfigError, BudgetError, FileNotFoundError, ConfigChangedError, RunFormatError,
            OutputDirError, StoreLockedError, StorageError, PermissionError, IsADirectoryError, NotADirectoryError)


if __name__ == "__main__":
    sys.exit(main())
