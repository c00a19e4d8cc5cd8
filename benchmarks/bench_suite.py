#!/usr/bin/env python
"""Sampler benchmark suite: every sampler x a grid of problem sizes, plus speed options.

The suite is ``mmm_jax.bench.suite`` (also ``mmm-jax bench``, which takes the same options);
this script runs it::

    python benchmarks/bench_suite.py --pmm-python PATH/TO/pmm-venv/bin/python   # default grid
    python benchmarks/bench_suite.py --full --pmm-python ...                     # full grid

Output in ``--out`` (default ``benchmarks/results/``): ``bench_suite[_TAG]_<UTC>.json``,
``bench_suite[_TAG]_latest.{json,md,png}``. See ``python benchmarks/bench_suite.py --help``.
"""

import sys

from mmm_jax.bench.suite import main

if __name__ == "__main__":
    sys.exit(main())
