"""Run one benchmark worker in a fresh process and read its result.

The worker gets its spec as JSON on stdin and prints one result line (:mod:`.common`); it runs
in its own process group with a time limit, so that a timeout or Ctrl-C also takes down the
processes it started (PyMC's chains). Around the run the parent records the load average and
the CPU time the rest of the machine used, which flag timings disturbed by other processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .._runtime import original_environ
from .common import RESULT_MARKER, busy_cpu_seconds

__all__ = ["clean_environ", "log", "module_command", "raise_on_sigterm", "run_one"]


def log(msg: str) -> None:
    """A progress line on stderr."""
    print(msg, file=sys.stderr, flush=True)


def raise_on_sigterm(signum, frame):
    """Signal handler (``signal.signal(signal.SIGTERM, raise_on_sigterm)``): a SIGTERM ends the
    benchmark like Ctrl-C, so that the running worker's process group is killed too."""
    raise KeyboardInterrupt(f"signal {signum}")


def clean_environ() -> dict[str, str]:
    """The environment for a worker: this process's, without the XLA / PyTensor flags that
    importing mmm_jax set here (each worker sets up its own)."""
    return original_environ()


def module_command(module: str, python: str | None = None) -> list[str]:
    """``[python, "-m", module]``: a worker module of this package, run by ``python`` (default:
    this interpreter)."""
    return [python or sys.executable, "-m", module]


def run_one(run: str, command: list[str], spec: dict, opts, tmp: Path, env: dict) -> dict:
    """Run one worker to completion (or timeout) and return its parsed result.

    ``command``: the worker's command line, e.g. ``[python, path/to/worker.py]`` or
    :func:`module_command`; it runs in ``tmp`` with ``env``. ``opts`` has ``timeout`` (seconds)
    and ``show_worker_output`` (pass the worker's stderr through instead of keeping it in
    ``tmp/<run>.stderr.log``, whose tail goes into a failed run's result).
    """
    err_path = tmp / f"{run}.stderr.log"
    load_before = _loadavg()
    busy0 = busy_cpu_seconds()
    t0 = time.perf_counter()
    with open(err_path, "w") as err_fh:
        proc = subprocess.Popen(
            [str(c) for c in command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None if opts.show_worker_output else err_fh,
            cwd=str(tmp),
            env=env,
            text=True,
            start_new_session=True,  # own process group: a timeout kills PyMC's chain processes too
        )
        try:
            stdout, _ = proc.communicate(json.dumps(spec), timeout=opts.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            stdout, _ = proc.communicate()
            return {
                "load_avg_before": load_before,
                "run": run,
                "status": "timeout",
                "error": f"no result within --timeout {opts.timeout:g} s",
                "elapsed_s": time.perf_counter() - t0,
                "stderr_tail": _tail(err_path),
            }
        except BaseException:  # Ctrl-C / SIGTERM: take the worker (and PyMC's chain processes) down too
            _kill_group(proc)
            raise
    elapsed = time.perf_counter() - t0
    busy1 = busy_cpu_seconds()
    result = None
    for line in stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            result = json.loads(line[len(RESULT_MARKER):])
    if result is None:
        result = {
            "run": run,
            "status": "error",
            "error": f"worker exited with code {proc.returncode} and no result line",
            "stdout_tail": stdout[-3000:],
            "stderr_tail": _tail(err_path),
        }
    elif result.get("status") != "ok":
        result["stderr_tail"] = _tail(err_path)
    result["elapsed_s"] = elapsed  # subprocess wall, interpreter start-up and imports included
    result["returncode"] = proc.returncode
    # 1-minute load averages around the run: well above the run's own parallelism means
    # something else competed for the CPU and the timings are suspect
    result["load_avg_before"], result["load_avg_after"] = load_before, _loadavg()
    # CPU time the rest of the machine used while this run ran (Linux: /proc/stat minus the
    # worker's own CPU time); more than a few percent of the machine means the timings are suspect
    if busy0 is not None and busy1 is not None and result.get("cpu_seconds") is not None:
        other = max(0.0, busy1 - busy0 - result["cpu_seconds"])
        result["other_cpu_s"] = other
        result["other_cpu_share"] = other / (elapsed * (os.cpu_count() or 1))
    if result.get("status") == "ok" and result.get("wall_s"):
        result["ess_per_s"] = result["min_ess_bulk"] / result["wall_s"]
    return result


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""
