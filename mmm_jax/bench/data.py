"""The simulated data set of a benchmark run, written once for the workers to read."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["write_data"]


def write_data(weeks: int, channels: int, seed: int, folder: Path) -> dict:
    """Simulate ``mmm_jax.datasets.simulate(weeks, channels, seed=seed)``, write ``data.csv`` and
    ``truth.json`` into ``folder``; returns the part of a run spec that describes the data and
    the model (geometric adstock l_max 8, yearly seasonality of order 2, linear trend)."""
    from mmm_jax.datasets import simulate

    df, truth = simulate(weeks, channels, seed=seed)
    channel_names = list(truth.channels)
    data_csv = Path(folder) / "data.csv"
    truth_json = Path(folder) / "truth.json"
    df.to_csv(data_csv, index=False)
    truth_d = truth.to_dict()
    truth_json.write_text(json.dumps(truth_d))
    return {
        "data_csv": str(data_csv),
        "truth_json": str(truth_json),
        "date": "date",
        "target": "sales",
        "channels": channel_names,
        "controls": list(truth.controls),
        "l_max": 8,
        "seasonality": 2,
        "true_roas": {c: float(truth_d["roas"][c]) for c in channel_names},
        "n_weeks": int(len(df)),
    }
