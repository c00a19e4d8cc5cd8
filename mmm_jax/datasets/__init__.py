"""Datasets: a seeded synthetic generator with known truth and a bundled example.

The bundled example (``example.csv``, ``example_truth.json``) is
``simulate(156, 4, seed=2024)``; regenerate it with
``python -m mmm_jax.datasets.synthetic --write``. :func:`simulate_counts` (new-customer
counts) and :func:`simulate_time_varying` (drifting media effectiveness) simulate the model
library's count likelihoods and HSGP effects with known truth.
"""

from __future__ import annotations

import json
from importlib import resources

import pandas as pd

from .acquisition import CountTruth, TimeVaryingTruth, simulate_counts, simulate_time_varying
from .synthetic import SyntheticTruth, simulate

__all__ = [
    "simulate",
    "SyntheticTruth",
    "simulate_counts",
    "CountTruth",
    "simulate_time_varying",
    "TimeVaryingTruth",
    "load_example",
    "EXAMPLE_CHANNELS",
    "EXAMPLE_CONTROLS",
    "EXAMPLE_DATE",
    "EXAMPLE_TARGET",
]

EXAMPLE_CHANNELS: tuple[str, ...] = ("tv", "search", "social", "display")
EXAMPLE_CONTROLS: tuple[str, ...] = ("price_index",)
EXAMPLE_DATE = "date"
EXAMPLE_TARGET = "sales"


def load_example() -> tuple[pd.DataFrame, dict]:
    """Load the bundled weekly example (works from an installed wheel).

    Returns
    -------
    df : pandas.DataFrame, shape (156, 7)
        Columns ``date`` (datetime64), ``sales`` (currency per week),
        ``tv``, ``search``, ``social``, ``display`` (spend, currency per week)
        and ``price_index``.
    truth : dict
        The generating truth, as :meth:`SyntheticTruth.to_dict` (per-channel
        values keyed by channel name, e.g. ``truth["roas"]["tv"]``), plus
        ``simulate_args``.
    """
    root = resources.files(__name__)
    with root.joinpath("example.csv").open("r", encoding="utf-8") as fh:
        df = pd.read_csv(fh, parse_dates=[EXAMPLE_DATE])
    truth = json.loads(root.joinpath("example_truth.json").read_text(encoding="utf-8"))
    return df, truth
