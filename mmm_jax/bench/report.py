"""What a benchmark report records besides its runs (the machine, the device, the git commit of
the code), and how it is made safe to write and to publish (no NaN, no machine paths)."""

from __future__ import annotations

import math
import os
import platform
import subprocess
from pathlib import Path

from .paths import checkout_root

__all__ = ["device_name", "finite", "fmt", "git_info", "machine_info", "redact_paths"]


def git_info() -> dict | None:
    """Commit and dirty state (of ``mmm_jax/``) of the source checkout this package runs from;
    None for an installed package or outside git."""
    root = checkout_root()
    if root is None:
        return None
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "mmm_jax"], cwd=root,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": head.stdout.strip(), "mmm_jax_dirty": bool(dirty.stdout.strip())}


def machine_info() -> dict:
    """CPU count, platform and Python version of this machine."""
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "python": platform.python_version(),
    }


def device_name() -> str:
    """GPU name(s) from nvidia-smi, else the CPU model."""
    try:
        r = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                           text=True, timeout=20)
        names = [x.strip() for x in r.stdout.splitlines() if x.strip()]
        if r.returncode == 0 and names:
            return f"{len(names)} x {names[0]}"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"CPU: {line.split(':', 1)[1].strip()} ({os.cpu_count()} logical cores)"
    except OSError:
        pass
    return f"CPU: {platform.processor() or platform.machine()} ({os.cpu_count()} logical cores)"


def finite(o):
    """JSON-safe copy: NaN / inf become null."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [finite(v) for v in o]
    return o


def fmt(x, nd: int = 1) -> str:
    """A number for a Markdown table: ``nd`` decimals with thousands separators; "–" for a missing
    or non-finite one."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:,.{nd}f}"


def redact_paths(obj):
    """Results are committed: keep only the last parts of absolute paths (no machine paths)."""
    if isinstance(obj, dict):
        return {k: redact_paths(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_paths(v) for v in obj]
    if isinstance(obj, str) and obj.startswith("/") and obj.count("/") >= 2:
        return "<local>/" + "/".join(Path(obj).parts[-3:])
    return obj
