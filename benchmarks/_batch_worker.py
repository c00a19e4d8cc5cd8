"""Benchmark worker for the batch engine (runs in our interpreter, one run per process).

Modes (``spec["run"]``):

batch        ``mmm_jax.batch.fit_many`` over ``spec["brands"]`` brands (files in ``spec["data_dir"]``),
             everything counted: validation, model build + compile, sampling, posterior
             quantities, diagnostics, atomic writes.
loop-ours    a Python loop of single fits with ONE compiled program reused: chains pmapped one per
             device (the fastest single-brand layout on CPU), the brand's data passed as inputs;
             counts compile + sampling + diagnostics (no post-processing or writing: the
             comparison favours the loop).
loop-ours-full  the same plus what a single fit returns: posterior quantities (contributions,
             ROAS, posterior predictive) and the brand's InferenceData with diagnostics, as the
             batch makes them (the batch also writes them to disk; this loop does not).

Prints one ``@@BENCH_RESULT@@ {...}`` line.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

from mmm_jax.bench.common import loop_summary, run_main


def _brand_frames(spec):
    import pandas as pd

    files = sorted(Path(spec["data_dir"]).glob("*.csv"))[: spec["brands"]]
    return {p.stem: pd.read_csv(p, parse_dates=[spec["date"]]) for p in files}


def _config(spec):
    from mmm_jax import ModelConfig

    extra = {}
    if spec.get("hsgp_m"):  # a batch of HSGP brands: time-varying intercept and shared media multiplier
        extra = {"time_varying_intercept": {"m": spec["hsgp_m"]}, "time_varying_media": {"m": spec["hsgp_m"]}}
    return ModelConfig(date=spec["date"], target=spec["target"], channels=spec["channels"],
                       controls=spec["controls"], seasonality=spec["seasonality"], **extra)


def run_batch(spec: dict) -> dict:
    import numpy as np

    t0 = time.perf_counter()
    import mmm_jax  # noqa: F401 - sets x64 + host devices before JAX starts
    from mmm_jax.batch import fit_many

    frames = _brand_frames(spec)
    import_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit_many(frames, config=_config(spec), out=spec["out"], chains=spec["chains"], warmup=spec["warmup"],
                       draws=spec["draws"], target_accept=spec["target_accept"], seed=spec["seed"],
                       chunk_size=spec.get("chunk_size"), vmap_group=spec.get("vmap_group"),
                       vmap_chains=spec.get("vmap_chains"), progress=False)
    wall = time.perf_counter() - t1
    m = res.manifest()
    done = m[m.status == "done"]
    per_brand_s = wall / max(len(done), 1)
    ess_s = (done["min_ess_bulk"] / per_brand_s).to_numpy()
    import jax

    return {
        "wall_s": wall,
        "import_s": import_s,
        "brands": len(frames),
        "fitted": int(len(done)),
        "brands_per_min": 60.0 * len(done) / wall,
        "min_ess_per_s_per_brand": float(np.min(ess_s)) if len(ess_s) else None,
        "median_ess_per_s_per_brand": float(np.median(ess_s)) if len(ess_s) else None,
        "median_min_ess_bulk": float(done["min_ess_bulk"].median()),
        "min_ess_bulk": float(done["min_ess_bulk"].min()),
        "share_rhat_ok": float((done["max_rhat"] < 1.01).mean()),
        "max_rhat": float(done["max_rhat"].max()),
        "divergences": int(done["divergences"].sum()),
        "lockstep_waste": res.stats["lockstep_waste"],
        "lockstep_waste_if_sorted": res.stats["lockstep_waste_if_sorted"],
        "chunk_size": res.stats["chunk_size"],
        "devices": res.stats["devices"],
        "compile_s": res.stats["compile_s"],
        "sampling_s": res.stats["sampling_s"],
        "jax_platform": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
    }


def run_loop(spec: dict) -> dict:
    import numpy as np

    t0 = time.perf_counter()
    import arviz as az
    import jax
    from mmm_jax.model.build import build_pymc_model

    import mmm_jax  # noqa: F401
    from mmm_jax.batch import brand_seed, prepare_brand, stack_brands
    from mmm_jax.batch.brands import brand_idata, quantity_fn, slice_brand
    from mmm_jax.compile import compile_logdensity
    from mmm_jax.inference import SamplerConfig
    from mmm_jax.inference.blackjax import chain_inputs, nuts_chain
    from mmm_jax.posterior.results import diagnostics

    full = spec["run"] == "loop-ours-full"
    frames = _brand_frames(spec)
    cfg = _config(spec)
    import_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    brands = [prepare_brand(n, f, cfg) for n, f in frames.items()]
    T = max(b.n_weeks for b in brands)
    st0 = stack_brands(brands[:1], T, cfg.seasonality)
    model = build_pymc_model(cfg, {k: v[0] for k, v in st0.arrays.items()})
    ld = compile_logdensity(model)
    free = sorted(rv.name for rv in model.free_RVs)
    qfn = quantity_fn(ld, cfg.likelihood) if full else None
    scfg = SamplerConfig(chains=spec["chains"], warmup=spec["warmup"], draws=spec["draws"],
                         target_accept=spec["target_accept"], progress=False)
    n_dev = min(jax.local_device_count(), scfg.chains)

    def chain(data, pos, key):
        return nuts_chain(lambda p: ld.logp(p, data), pos, key, scfg)

    program = jax.pmap(chain, in_axes=(None, 0, 0), devices=jax.local_devices()[:n_dev])
    if n_dev != scfg.chains:
        program = jax.jit(jax.vmap(chain, in_axes=(None, 0, 0)))
    rows = []
    for b in brands:
        tb = time.perf_counter()
        st = stack_brands([b], T, cfg.seasonality)
        data = {k: v[0] for k, v in st.arrays.items()}
        seed_b = brand_seed(spec["seed"], b.name)
        k_run, k_pp = jax.random.split(jax.random.key(seed_b))  # (sample, posterior predictive), as fit_many
        init, keys = chain_inputs(ld, k_run, scfg)
        pos, stats, _ = program(data, init, keys)
        post = {k: np.asarray(v) for k, v in pos.items()}
        if full:  # the outputs a single fit gives: posterior quantities + InferenceData (no file)
            tot = np.zeros((1, len(cfg.channels)))
            tot[0, b.present] = b.data.spend.sum(axis=0)
            q = qfn({k: v[None] for k, v in post.items()}, {k: v[None] for k, v in data.items()},
                    np.asarray([b.scaling.target_scale]), tot, np.asarray(jax.random.key_data(k_pp))[None])
            q = slice_brand({k: np.asarray(v)[0] for k, v in q.items()}, ld, b.n_weeks, b.present, cfg)
            st_b = {k: np.asarray(v) for k, v in stats.items()}
            st_b["diverging"] = st_b["diverging"].astype(bool)
            d = diagnostics(brand_idata(b, q, st_b, ld, scfg, free, seed_b, "", {}, cfg))
            rows.append({"min_ess_bulk": d["min_ess_bulk"], "max_rhat": d["max_rhat"],
                         "divergences": d["divergences"], "wall_s": time.perf_counter() - tb})
            continue
        ess = az.ess(az.convert_to_dataset(post), method="bulk")
        rhat = az.rhat(az.convert_to_dataset(post))
        rows.append({
            "min_ess_bulk": min(float(np.nanmin(ess[v].values)) for v in ess.data_vars),
            "max_rhat": max(float(np.nanmax(rhat[v].values)) for v in rhat.data_vars),
            "divergences": int(np.asarray(stats["diverging"]).sum()),
            "wall_s": time.perf_counter() - tb,
        })
    return {
        **loop_summary(rows, time.perf_counter() - t1),
        "import_s": import_s,
        "chain_layout": "pmap" if n_dev == scfg.chains else "vmap",
        "jax_platform": jax.default_backend(),
    }


def main(spec: dict) -> dict:
    return run_batch(spec) if spec["run"].startswith("batch") else run_loop(spec)


if __name__ == "__main__":
    run_main(main)
