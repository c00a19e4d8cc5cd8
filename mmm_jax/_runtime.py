"""Process-level JAX settings applied when ``mmm_jax`` is imported.

* float64 (``jax_enable_x64``): posterior geometry and the PyMC log-density agree to 1e-6
  only in double precision. Opt out with ``MMM_JAX_X64=0``, which also sets PyTensor's
  ``floatX=float32`` (PyTensor's JAX backend would otherwise switch float64 back on).
* CPU host devices: chains run one per device (``chain_method="parallel"``). On CPU, XLA
  shows one device unless told otherwise, so before JAX initialises its backends we ask
  for ``max(4, cpu_count)`` host devices (``MMM_JAX_HOST_DEVICES=n`` to choose, ``0`` to
  leave XLA_FLAGS alone). Accelerators are unaffected. If JAX was already initialised by
  the caller, nothing changes and chains run vectorised.
* XLA persistent compilation cache (opt-in): ``MMM_JAX_CACHE_DIR=/path`` stores every
  compiled program there (``jax_compilation_cache_dir``, no minimum compile time), so a
  later process that compiles the same program (same model, shapes, settings — and, for
  single fits, whose data are baked into the program, the same data) loads it instead of
  recompiling. ``MMM_JAX_CACHE_MIN_COMPILE_S`` sets the minimum compile time worth caching
  (default 0).
"""

from __future__ import annotations

import os
import re

__all__ = ["configure", "set_host_devices", "enable_compilation_cache"]


def _backends_initialized() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except Exception:  # noqa: BLE001 - private API moved: assume initialised, change nothing
        return True


def set_host_devices(n: int) -> bool:
    """Ask XLA for ``n`` CPU devices; returns False if JAX is already initialised."""
    if _backends_initialized():
        return False
    flags = re.sub(r"--xla_force_host_platform_device_count=\S+", "", os.environ.get("XLA_FLAGS", "")).strip()
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={int(n)}".strip()
    return True


def _use_float32() -> None:
    """Single precision end to end: PyTensor's ``floatX`` and JAX's default dtype.

    PyTensor's JAX backend sets ``jax_enable_x64`` from ``floatX`` when it is first imported,
    so ``floatX`` must say float32 too, or the first model compile switches float64 back on.
    """
    import sys

    import jax

    if "pytensor" in sys.modules:
        import pytensor

        pytensor.config.floatX = "float32"
    else:
        flags = [f for f in os.environ.get("PYTENSOR_FLAGS", "").split(",") if f and not f.startswith("floatX=")]
        os.environ["PYTENSOR_FLAGS"] = ",".join([*flags, "floatX=float32"])
    jax.config.update("jax_enable_x64", False)


def enable_compilation_cache(path: str | os.PathLike, min_compile_time_s: float = 0.0) -> None:
    """Turn on JAX's persistent compilation cache in ``path`` (created if missing)."""
    import jax

    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", os.fspath(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_s))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def configure() -> None:
    import jax

    if os.environ.get("MMM_JAX_X64", "1") != "0":
        jax.config.update("jax_enable_x64", True)
    else:
        _use_float32()
    cache = os.environ.get("MMM_JAX_CACHE_DIR")
    if cache:
        enable_compilation_cache(cache, float(os.environ.get("MMM_JAX_CACHE_MIN_COMPILE_S", "0")))
    want = os.environ.get("MMM_JAX_HOST_DEVICES")
    if want == "0":
        return
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "") and want is None:
        return
    n = int(want) if want else max(4, os.cpu_count() or 1)
    set_host_devices(n)
