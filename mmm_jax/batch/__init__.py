"""Batch engine: one model per brand for many brands in one compiled program.

``fit_many`` takes any config (single-market brands, or market panels with market keys),
validates each brand, pads every brand to a template shape with masks, vmaps the whole NUTS
sampler (warm-up with per-brand step size and mass matrix, then sampling) over brands, shards
the brand axis over devices, and writes each finished brand atomically to a resumable store
(``manifest.sqlite`` + ``brands/<brand>.nc``). Layout: :mod:`.run` (the front door and the one
runner), :mod:`.brands` (single-market brands), :mod:`.panels` (market panels), :mod:`.jobs` (the chunk loop and
the brand writer), :mod:`.stack` (splitting and padding), :mod:`.engine` (the sharded sampler),
:mod:`.store` (manifest and files).
"""

from .engine import brand_mesh, lockstep_waste, make_batch_sampler
from .run import BatchResult, default_chunk_size, fit_many, load_brand
from .stack import BrandData, BrandFailure, brand_seed, prepare_brand, split_brands, stack_brands
from .store import ConfigChangedError, ResultStore, read_manifest

__all__ = [
    "fit_many",
    "BatchResult",
    "load_brand",
    "default_chunk_size",
    "make_batch_sampler",
    "brand_mesh",
    "lockstep_waste",
    "BrandData",
    "BrandFailure",
    "brand_seed",
    "prepare_brand",
    "split_brands",
    "stack_brands",
    "ResultStore",
    "read_manifest",
    "ConfigChangedError",
]
