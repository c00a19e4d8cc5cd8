"""Samplers behind one interface: :func:`sample` returns a :class:`SampleResult`."""

from .base import SAMPLERS, SamplerConfig, SampleResult, sample
from .warmstart import WarmStart, warm_start

__all__ = ["SAMPLERS", "SampleResult", "SamplerConfig", "sample", "WarmStart", "warm_start"]
