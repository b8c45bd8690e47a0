"""Small helpers shared by the benchmark scripts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def write_json(path: Path | None, results: dict) -> None:
    """Write the figures where ``--json`` asked (nothing when it was not given)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str))


def percentiles(seconds) -> dict:
    """p50 / p99 in milliseconds of a list of durations in seconds."""
    ms = np.asarray(seconds) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "n": int(ms.size)}
