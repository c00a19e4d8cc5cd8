"""JAX's compile events during a run: how much of a fit's wall time went into lowering and XLA
compilation (or loading compiled programs from the persistent cache)."""

from __future__ import annotations

__all__ = ["CompileMonitor"]

_COMPILE_EVENTS = {
    "/jax/core/compile/backend_compile_duration": "backend_compile_s",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lowering_s",
    "/jax/core/compile/jaxpr_trace_duration": "trace_s",
    "/jax/compilation_cache/cache_retrieval_time_sec": "cache_retrieval_s",
    "/jax/compilation_cache/compile_time_saved_sec": "cache_saved_s",
}


class CompileMonitor:
    """Records JAX's compile events; ``snapshot()`` / ``since(snap)`` bracket a phase.

    Durations are summed per kind; the spans of lowering and XLA compilation are kept with
    their wall-clock start so that :meth:`compile_between` can count only the compilations that
    started inside the sampler's own clock (not the small eager ops before it).
    """

    def __init__(self):
        import jax

        self.totals = {v: 0.0 for v in _COMPILE_EVENTS.values()}
        self.count = 0
        self.spans = []  # (kind, start, end), wall clock (time.time())

        def on_duration(event, duration, **kwargs):
            key = _COMPILE_EVENTS.get(event)
            if key is not None:
                self.totals[key] += float(duration)
                if key == "backend_compile_s":
                    self.count += 1

        def on_span(event, start, end, **kwargs):
            key = _COMPILE_EVENTS.get(event)
            if key in ("backend_compile_s", "lowering_s"):
                self.spans.append((key, float(start), float(end)))

        jax.monitoring.register_event_duration_secs_listener(on_duration)
        jax.monitoring.register_event_time_span_listener(on_span)

    def snapshot(self) -> dict:
        return {**self.totals, "n_backend_compiles": self.count}

    def since(self, snap: dict) -> dict:
        now = self.snapshot()
        return {k: now[k] - snap[k] for k in now}

    def compile_between(self, t_from: float, t_to: float) -> float:
        """Wall seconds of lowering + XLA compilation that started in ``[t_from, t_to]``.

        Spans can nest (a compile triggered while lowering) or overlap (parallel compiles), so
        this is the length of their union, not their sum.
        """
        total, cur_start, cur_end = 0.0, None, None
        for start, end in sorted((a, b) for _, a, b in self.spans if t_from <= a <= t_to):
            if cur_end is None or start > cur_end:
                if cur_end is not None:
                    total += cur_end - cur_start
                cur_start, cur_end = start, end
            else:
                cur_end = max(cur_end, end)
        if cur_end is not None:
            total += cur_end - cur_start
        return total
