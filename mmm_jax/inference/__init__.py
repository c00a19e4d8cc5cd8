"""Samplers behind one interface: :func:`sample` returns a :class:`SampleResult`."""

from .base import SAMPLERS, SampleResult, SamplerConfig, sample

__all__ = ["SAMPLERS", "SampleResult", "SamplerConfig", "sample"]
