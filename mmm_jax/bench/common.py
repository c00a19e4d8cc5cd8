"""The benchmark workers' protocol and measurements: run a worker function on its spec and
print its result line; time phases; convergence, posterior moments and ROAS of a fit.

Workers in *other* interpreters import this file too (``pmm_worker.py`` next to it, run by path
under PyMC-Marketing's interpreter; the PyMC-Marketing and Meridian workers in ``benchmarks/``),
where it is a top-level module ``common``, not ``mmm_jax.bench.common``. So it imports only the
standard library at the top, NumPy, pandas and ArviZ inside the functions, and never ``mmm_jax``.

Protocol: a worker reads its spec as JSON (from ``argv[1]`` if given, else stdin) and prints
exactly one line ``RESULT_MARKER + json`` on stdout; anything else it prints (progress bars,
warnings) is ignored by the parent (:func:`mmm_jax.bench.runner.run_one`).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import traceback
from contextlib import contextmanager
from importlib import metadata

RESULT_MARKER = "@@BENCH_RESULT@@ "

VERSION_PACKAGES = (
    "mmm_jax",
    "pymc-marketing",
    "google-meridian",
    "tensorflow-probability",
    "pymc",
    "pytensor",
    "numpyro",
    "blackjax",
    "jax",
    "jaxlib",
    "arviz",
    "numpy",
    "pandas",
    "xarray",
)


def read_spec() -> dict:
    """The run spec: JSON from argv[1] when given, else from stdin."""
    text = sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read()
    return json.loads(text)


def emit(result: dict) -> None:
    """Print the single result line the parent parses."""
    sys.stdout.flush()
    sys.stdout.write(RESULT_MARKER + json.dumps(result, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(o)


def versions() -> dict[str, str]:
    """Installed versions of the packages that matter here (absent ones are skipped)."""
    out = {"python": platform.python_version()}
    for name in VERSION_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def run_main(fn) -> None:
    """Run ``fn(spec) -> dict`` and emit its result, or an error result with the traceback."""
    spec = read_spec()
    t0 = time.perf_counter()
    try:
        result = fn(spec)
        result.setdefault("status", "ok")
    except BaseException as err:  # noqa: BLE001 - the parent must always get a result line
        result = {
            "status": "error",
            "error": f"{type(err).__name__}: {err}",
            "traceback": traceback.format_exc(),
        }
    result["run"] = spec.get("run")
    result["worker_seconds"] = time.perf_counter() - t0
    result["cpu_seconds"] = _cpu_seconds()
    result["peak_rss_mb"] = _peak_rss_mb()
    result["versions"] = versions()
    result["python_executable"] = sys.executable
    result["env"] = {k: os.environ[k] for k in ("XLA_FLAGS", "JAX_PLATFORMS", "OMP_NUM_THREADS") if k in os.environ}
    emit(result)


def _cpu_seconds() -> float | None:
    """User + system CPU seconds of this process and its waited-for children."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return None
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        total += ru.ru_utime + ru.ru_stime
    return total


def busy_cpu_seconds() -> float | None:
    """Machine-wide non-idle CPU seconds since boot (Linux /proc/stat), else None."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal ...
    busy = sum(fields[:3]) + sum(fields[5:8])
    return busy / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb() -> dict | None:
    """Peak resident memory (MiB) of this process and of its largest waited-for child (Linux: KiB units)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return None
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 1024**2
    return {
        "self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale,
        "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale,
    }


class Timer:
    """Accumulates wall seconds per label: ``with timer("build"): ...``."""

    def __init__(self):
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, label: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.times[label] = self.times.get(label, 0.0) + time.perf_counter() - t0


def wrap_timed(owner, attr: str, timer: Timer, label: str):
    """Replace ``owner.attr`` by a wrapper that adds its wall time to ``timer[label]``."""
    fn = getattr(owner, attr)

    def wrapped(*args, **kwargs):
        with timer(label):
            return fn(*args, **kwargs)

    wrapped.__wrapped__ = fn
    setattr(owner, attr, wrapped)
    return fn


def load_data(spec: dict):
    """The benchmark data (DataFrame with a parsed date column) and the truth dict."""
    import pandas as pd

    df = pd.read_csv(spec["data_csv"], parse_dates=[spec["date"]])
    with open(spec["truth_json"]) as fh:
        truth = json.load(fh)
    return df, truth


def as_dataset(group):
    """An ``xarray.Dataset`` of a results group: ArviZ 1's DataTree node, or the Dataset itself."""
    return group.to_dataset() if hasattr(group, "children") else group


def convergence(posterior, sample_stats, var_names: list[str]) -> dict:
    """Min bulk ESS / max R-hat over ``var_names``, divergences and tree statistics.

    ``posterior`` and ``sample_stats`` are xarray Datasets (or ArviZ 1's DataTree nodes) with
    (chain, draw) dims.
    """
    import arviz as az
    import numpy as np

    post = as_dataset(posterior)[list(var_names)]
    ess = az.ess(post, method="bulk")
    rhat = az.rhat(post)
    min_ess = min(float(np.nanmin(ess[v].values)) for v in ess.data_vars)
    max_rhat = max(float(np.nanmax(rhat[v].values)) for v in rhat.data_vars)
    # the parameter with the smallest ESS, for the record
    worst = min(ess.data_vars, key=lambda v: float(np.nanmin(ess[v].values)))
    n = post.sizes["chain"] * post.sizes["draw"]
    out = {
        "free_parameters": list(var_names),
        "n_free_scalars": int(sum(post[v].size // n for v in post.data_vars)),
        "min_ess_bulk": min_ess,
        "min_ess_bulk_param": str(worst),
        "median_ess_bulk": float(np.nanmedian(np.concatenate([np.ravel(ess[v].values) for v in ess.data_vars]))),
        "max_rhat": max_rhat,
        "chains": int(post.sizes["chain"]),
        "draws": int(post.sizes["draw"]),
    }
    ss = as_dataset(sample_stats)
    out["divergences"] = int(np.asarray(ss["diverging"]).sum()) if "diverging" in ss else None
    for name, key in (("tree_depth", "mean_tree_depth"), ("n_steps", "mean_n_steps"),
                      ("step_size", "mean_step_size"), ("acceptance_rate", "mean_acceptance_rate")):
        out[key] = float(np.asarray(ss[name]).mean()) if name in ss else None
    if "tree_depth" in ss:
        out["max_tree_depth_seen"] = int(np.asarray(ss["tree_depth"]).max())
    if "n_steps" in ss:
        out["total_leapfrog_steps"] = int(np.asarray(ss["n_steps"]).sum())
    return out


def posterior_moments(posterior, var_names) -> dict:
    """Mean, sd and bulk ESS of every free scalar, flattened per variable (lists)."""
    import arviz as az
    import numpy as np

    post = as_dataset(posterior)[list(var_names)]
    ess = az.ess(post, method="bulk")
    out = {}
    for v in var_names:
        x = np.asarray(post[v].values, dtype=float)
        x = x.reshape(x.shape[0] * x.shape[1], -1)
        out[v] = {
            "mean": x.mean(0).tolist(),
            "sd": x.std(0).tolist(),
            "ess_bulk": np.asarray(ess[v].values, dtype=float).ravel().tolist(),
        }
    return out


def roas_from_contributions(contrib, spend, channels: list[str]) -> dict:
    """Posterior-mean ROAS per channel.

    contrib : array (chain, draw, date, channel), original currency units
    spend : array (date, channel), original currency units
    """
    import numpy as np

    contrib = np.asarray(contrib, dtype=float)
    spend = np.asarray(spend, dtype=float)
    roas = contrib.sum(axis=2) / spend.sum(axis=0)  # (chain, draw, channel)
    mean = roas.mean(axis=(0, 1))
    return {c: float(v) for c, v in zip(channels, mean)}


def loop_summary(rows: list[dict], wall: float) -> dict:
    """Throughput and convergence of a loop of per-brand fits.

    ``rows``: one dict per brand with ``min_ess_bulk``, ``max_rhat``, ``divergences``, ``wall_s``.
    """
    import numpy as np

    ess = np.asarray([r["min_ess_bulk"] for r in rows], dtype=float)
    ess_s = ess / (wall / len(rows))
    return {
        "wall_s": wall,
        "brands": len(rows),
        "fitted": len(rows),
        "brands_per_min": 60.0 * len(rows) / wall,
        "min_ess_per_s_per_brand": float(ess_s.min()),
        "median_ess_per_s_per_brand": float(np.median(ess_s)),
        "median_min_ess_bulk": float(np.median(ess)),
        "min_ess_bulk": float(ess.min()),
        "share_rhat_ok": float(np.mean([r["max_rhat"] < 1.01 for r in rows])),
        "max_rhat": float(max(r["max_rhat"] for r in rows)),
        "divergences": int(sum(r["divergences"] for r in rows)),
        "first_brand_s": rows[0]["wall_s"],
        "later_brand_s": float(np.mean([r["wall_s"] for r in rows[1:]])) if len(rows) > 1 else None,
    }
