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
  JAX's own LRU scans the whole folder (a stat and a file read per entry) on every write,
  which grows with the cache (about 0.2 s per write at 5,000 entries, and a fit of a new
  structure writes ~60 programs); ours scans it on a process's first write and then once per
  ``max_bytes / 16`` written (:class:`ThrottledLRUCache`), so the folder may exceed its bound by
  that much per writing process until the next scan.
"""

from __future__ import annotations

import os
import re

__all__ = ["configure", "set_host_devices", "enable_compilation_cache", "default_cache_dir", "throttled_lru_class",
           "original_environ"]

_OFF = ("0", "off", "false", "no", "none", "")
# what importing mmm_jax changes in os.environ (configure() here; PyMC's JAX sampling module puts
# its own host-device count into XLA_FLAGS), as it was before: this module is imported first
_FLAGS_BEFORE = {name: os.environ.get(name) for name in ("XLA_FLAGS", "PYTENSOR_FLAGS")}


def original_environ() -> dict[str, str]:
    """A copy of ``os.environ`` with ``XLA_FLAGS`` and ``PYTENSOR_FLAGS`` as they were before
    ``mmm_jax`` was imported (unset if they were): the environment for a fresh process that sets
    itself up, such as a benchmark worker or another interpreter, so that the host-device count
    and precision chosen for this process do not leak into it. Other variables are as they are now."""
    env = dict(os.environ)
    for name, value in _FLAGS_BEFORE.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


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
    _install_throttled_cache(os.fspath(path), int(max_bytes))


def throttled_lru_class():
    from jax._src.lru_cache import LRUCache

    class ThrottledLRUCache(LRUCache):
        """JAX's file-locked LRU cache whose eviction scan runs on this process's first write and
        then once per ``max_size // 16`` bytes written, instead of on every write."""

        def __init__(self, path: str, *, max_size: int, **kwargs):
            super().__init__(path, max_size=max_size, **kwargs)
            self.scan_every = max(1, max_size // 16)
            self.unscanned_bytes: int | None = None  # None: not scanned yet in this process
            self.scans = 0

        def _evict_if_needed(self, *, additional_size: int = 0) -> None:
            if self.unscanned_bytes is not None and self.unscanned_bytes + additional_size < self.scan_every:
                self.unscanned_bytes += additional_size
                return
            super()._evict_if_needed(additional_size=additional_size)
            self.unscanned_bytes = 0
            self.scans += 1

    return ThrottledLRUCache


def _install_throttled_cache(path: str, max_bytes: int) -> None:
    """Give JAX a :class:`ThrottledLRUCache` on ``path`` unless its cache is already set up (it
    then keeps its own); JAX internals that moved leave JAX's cache in place."""
    import logging

    try:
        from jax._src import compilation_cache as cc

        import jax

        if max_bytes <= 0 or jax.config.jax_compilation_cache_check_contents:
            return
        with cc._cache_initialized_mutex:
            if cc._cache_initialized or cc._cache is not None:
                return
            cc._cache = throttled_lru_class()(path, max_size=max_bytes)
            cc._cache_initialized = True
    except (ImportError, AttributeError, TypeError) as err:  # pragma: no cover - depends on the JAX release
        logging.getLogger("mmm_jax").info("JAX's own compilation-cache eviction kept: %s", err)


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
