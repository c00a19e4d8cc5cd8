"""Process-level JAX settings applied when ``mmm_jax`` is imported.

* float64 (``jax_enable_x64``): posterior geometry and the PyMC log-density agree to 1e-6
  only in double precision. Opt out with ``MMM_JAX_X64=0``.
* CPU host devices: chains run one per device (``chain_method="parallel"``). On CPU, XLA
  shows one device unless told otherwise, so before JAX initialises its backends we ask
  for ``max(4, cpu_count)`` host devices (``MMM_JAX_HOST_DEVICES=n`` to choose, ``0`` to
  leave XLA_FLAGS alone). Accelerators are unaffected. If JAX was already initialised by
  the caller, nothing changes and chains run vectorised.
"""

from __future__ import annotations

import os
import re

__all__ = ["configure", "set_host_devices"]


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


def configure() -> None:
    import jax

    if os.environ.get("MMM_JAX_X64", "1") != "0":
        jax.config.update("jax_enable_x64", True)
    want = os.environ.get("MMM_JAX_HOST_DEVICES")
    if want == "0":
        return
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "") and want is None:
        return
    n = int(want) if want else max(4, os.cpu_count() or 1)
    set_host_devices(n)
