"""One run of PyMC-Marketing's MMM, in PyMC-Marketing's interpreter: ``python PATH/pmm_worker.py``
reads the run's spec (JSON) on stdin and prints one line ``@@BENCH_RESULT@@ {...}``.

Runs: ``pmm-numpyro`` (``nuts_sampler="numpyro"``) and ``pmm-pymc`` (its default sampler,
PyMC's NUTS). Needs only pymc-marketing (+ numpyro for ``pmm-numpyro``), never ``mmm_jax``:
that interpreter has no mmm_jax, so the parent runs this file by its path
(:data:`mmm_jax.bench.pmm.PMM_WORKER`) and it imports :mod:`common` as the file next to it.

The model is ``pymc_marketing.mmm.multidimensional.MMM``, the class PyMC-Marketing documents
(in 0.19 the legacy ``pymc_marketing.mmm.MMM`` warns that it is deprecated and points there), with
GeometricAdstock(l_max) + LogisticSaturation(), controls ``[*controls, "t"]`` where ``t`` is a
linear time index (0, 1, ..., T-1) standing in for our linear trend, yearly seasonality of
the same order, and PyMC-Marketing's default priors and scaling.
"""

from __future__ import annotations

import time
import warnings

if __package__:  # imported as mmm_jax.bench.pmm_worker
    from .common import Timer, convergence, load_data, roas_from_contributions, run_main, wrap_timed
else:  # run by path (or imported from the folder on sys.path) in an interpreter without mmm_jax
    from common import Timer, convergence, load_data, roas_from_contributions, run_main, wrap_timed

__all__ = ["run_pmm"]


def run_pmm(spec: dict) -> dict:
    """Build and fit PyMC-Marketing's MMM on the spec's data; wall time, phases, convergence, ROAS."""
    t_imp = time.perf_counter()
    import numpy as np
    import pymc as pm

    try:
        from pymc_marketing.mmm.multidimensional import MMM
    except ImportError as err:
        raise ImportError(
            "this benchmark needs pymc_marketing.mmm.multidimensional.MMM (tested with pymc-marketing 0.19.2)"
        ) from err
    api = "pymc_marketing.mmm.multidimensional.MMM"
    from pymc_marketing.mmm import GeometricAdstock, LogisticSaturation

    import_s = time.perf_counter() - t_imp

    nuts_sampler = spec["run"].split("-", 1)[1]  # numpyro | pymc | default (both: PyMC's choice)
    date, target, channels = spec["date"], spec["target"], list(spec["channels"])
    df, _ = load_data(spec)
    df = df.copy()
    df["t"] = np.arange(len(df), dtype=float)
    controls = [*spec["controls"], "t"]
    if spec.get("pmm_standardize_controls"):
        # what our model does internally; PyMC-Marketing feeds controls as given
        for c in controls:
            df[c] = (df[c] - df[c].mean()) / df[c].std(ddof=0)
    X = df[[date, *channels, *controls]]
    y = df[target].rename(target)

    timer = Timer()
    # fit() = pm.sample(var_names=free RVs) -> pm.compute_deterministics -> fit_data/attrs
    wrap_timed(pm, "sample", timer, "pm_sample")
    wrap_timed(pm, "compute_deterministics", timer, "compute_deterministics")

    with timer("build"):
        kwargs = dict(
            date_column=date,
            target_column=target,
            channel_columns=channels,
            adstock=GeometricAdstock(l_max=spec["l_max"]),
            saturation=LogisticSaturation(),
            control_columns=controls,
            yearly_seasonality=spec["seasonality"],
        )
        if spec.get("hsgp"):  # bench_suite's HSGP axis: PyMC-Marketing's own HSGP flags
            kwargs.update(time_varying_intercept=True, time_varying_media=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            mmm = MMM(**kwargs)
        mmm.build_model(X, y)
    sample_kwargs = dict(
        chains=spec["chains"],
        tune=spec["warmup"],
        draws=spec["draws"],
        target_accept=spec["target_accept"],
    )
    if nuts_sampler not in ("pymc", "default"):
        sample_kwargs["nuts_sampler"] = nuts_sampler
    with timer("fit"):
        idata = mmm.fit(X, y, progressbar=spec.get("progress", False), random_seed=spec["seed"], **sample_kwargs)
    t = timer.times
    wall = t["build"] + t["fit"]
    sampling = float(idata.posterior.attrs.get("sampling_time", float("nan")))

    # PyMC-Marketing 1.x returns an xarray DataTree (ArviZ 1): take its groups as Datasets
    post = idata.posterior.to_dataset() if hasattr(idata.posterior, "to_dataset") else idata.posterior
    stats = idata.sample_stats.to_dataset() if hasattr(idata.sample_stats, "to_dataset") else idata.sample_stats
    target_scale = float(np.asarray(mmm.scalers["_target"]).squeeze())
    contrib = post["channel_contribution"].transpose("chain", "draw", "date", "channel").values * target_scale
    spend = df[channels].to_numpy(dtype=float)
    free = [rv.name for rv in mmm.model.free_RVs]

    if nuts_sampler == "numpyro":
        phase_label = "jit_warmup_sampling"  # numpyro's MCMC.run: XLA compile + warmup + draws
        pre_label = "jaxify_init_postprocess"  # PyTensor->JAX, initial points, vmap'd transforms, idata
    else:
        phase_label = "warmup_plus_sampling"
        pre_label = "compile_init_postprocess"
    breakdown = {
        "build": t["build"],
        pre_label: t["pm_sample"] - sampling,
        phase_label: sampling,
        "compute_deterministics": t.get("compute_deterministics", 0.0),
        "fit_other": t["fit"] - t["pm_sample"] - t.get("compute_deterministics", 0.0),
    }
    out = {
        "wall_s": wall,
        "breakdown_s": breakdown,
        "import_s": import_s,
        "pmm_api": api,
        "pmm_controls": controls,
        "pmm_standardize_controls": bool(spec.get("pmm_standardize_controls")),
        "sampler_settings": {"nuts_sampler": nuts_sampler, **sample_kwargs},
        "inference_library": str(idata.posterior.attrs.get("inference_library", "")),
        "roas_mean": roas_from_contributions(contrib, spend, channels),
        "target_scale": target_scale,
    }
    if nuts_sampler in ("numpyro", "blackjax"):
        import jax

        out["jax_device_count"] = jax.local_device_count()
        out["jax_platform"] = jax.default_backend()
    out.update(convergence(post, stats, free))
    return out


if __name__ == "__main__":
    run_main(run_pmm)
