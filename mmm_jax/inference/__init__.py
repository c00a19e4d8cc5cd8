"""Samplers behind one interface: :func:`sample` returns a :class:`SampleResult`."""

from .base import SAMPLERS, SamplerConfig, SampleResult, sample

__all__ = ["SAMPLERS", "SampleResult", "SamplerConfig", "sample"]
