"""Process-level JAX settings applied when ``mmm_jax`` is imported.

* float64 (``jax_enable_x64``): posterior geometry and the PyMC log-density agree to 1e-6
  only in double precision. Opt out with ``MMM_JAX_X64=0``, which also sets PyTensor's
  ``floatX=float32`` (PyTensor's JAX backend would otherwise switch float64 back on).
* CPU host devices: chains run one per device (``chain_method="parallel"``). On CPU, XLA
  shows one device unless told otherwise, so before JAX initialises its backends we ask
  for ``max(4, cpu_count)`` host devices (``MMM_JAX_HOST_DEVICES=n`` to choose, ``0`` to
  leave XLA_FLAGS alone). Accelerators are unaffected. If JAX was already initialised by
  the caller, nothing changes and chains run vectorised.
* XLA persistent compilation cache, on by default: every compiled program is stored in
  :func:`default_cache_dir` (``$XDG_CACHE_HOME/mmm_jax/xla``, else ``~/.cache/mmm_jax/xla``),
  so a later process that compiles the same program (same model structure, data shapes and
  sampler settings: the data are inputs of the programs, not constants) loads it instead of
  recompiling — seconds saved on every fit after the first. ``MMM_JAX_CACHE_DIR=/path`` picks
  another folder, ``MMM_JAX_CACHE_DIR=0`` (or ``off``) turns it off. The cache is an LRU of
  at most ``MMM_JAX_CACHE_MAX_MB`` (default 1024) MiB whose reads and writes take a file lock,
  so concurrent processes (a batch on several hosts, pytest-xdist workers) never see a
  half-written entry. ``MMM_JAX_CACHE_MIN_COMPILE_S`` sets the minimum compile time worth
  caching (default 0). A cache already set up by the caller (``jax_compilation_cache_dir``) is
  left as it is; a folder that cannot be created turns the cache off with a log message.
"""

from __future__ import annotations

import os
import re

__all__ = ["configure", "set_host_devices", "enable_compilation_cache", "default_cache_dir"]

_OFF = ("0", "off", "false", "no", "none", "")


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


def default_cache_dir() -> str:
    """Where compiled programs are kept unless ``MMM_JAX_CACHE_DIR`` says otherwise."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mmm_jax", "xla")


def enable_compilation_cache(path: str | os.PathLike, min_compile_time_s: float = 0.0,
                             max_bytes: int = 1024 * 2**20) -> None:
    """Turn on JAX's persistent compilation cache in ``path`` (created if missing): an LRU of at
    most ``max_bytes`` whose reads and writes are serialised by a file lock (safe when several
    processes share the folder)."""
    import jax

    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", os.fspath(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_s))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", int(max_bytes))


def _configure_cache() -> None:
    import logging

    import jax

    if jax.config.jax_compilation_cache_dir:  # the caller set one up: theirs
        return
    path = os.environ.get("MMM_JAX_CACHE_DIR")
    if path is not None and path.strip().lower() in _OFF:
        return
    path = path or default_cache_dir()
    try:
        enable_compilation_cache(path, float(os.environ.get("MMM_JAX_CACHE_MIN_COMPILE_S", "0")),
                                 int(float(os.environ.get("MMM_JAX_CACHE_MAX_MB", "1024")) * 2**20))
    except (OSError, ValueError, RuntimeError) as err:
        logging.getLogger("mmm_jax").info("compilation cache off: %s (%s)", path, err)


def configure() -> None:
    import jax

    if os.environ.get("MMM_JAX_X64", "1") != "0":
        jax.config.update("jax_enable_x64", True)
    else:
        _use_float32()
    _configure_cache()
    want = os.environ.get("MMM_JAX_HOST_DEVICES")
    if want == "0":
        return
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "") and want is None:
        return
    n = int(want) if want else max(4, os.cpu_count() or 1)
    set_host_devices(n)
