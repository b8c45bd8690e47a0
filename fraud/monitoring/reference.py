"""Reference distributions of a model version: what its inputs and outputs looked like on
the window its calibration and thresholds were fitted on (rows the served model did not
train on: fold 0's validation window, or the refit's calibration window). Stored in the
registry version as ``reference.json`` (its SHA-256 in the manifest like every file);
``fraud monitor`` compares the decision log with it.

    features        per feature: decile edges (fraud.monitoring.psi) and the shares of the
                    bins, the missing bin last
    score           the calibrated score: decile edges and shares (for PSI), and a fixed
                    histogram on the API's score buckets (for the plot)
    p_t             histograms of p_t (from the model's margin) per class
    focal           focal-loss percentiles p50/p90/p99 and the hard-example rate, under the
                    model's own gamma/alpha for a focal winner, else gamma 2, alpha 0.25
                    (``loss_source`` says which)
    hourly          (when training gives the rows' times) per feature and for the score, the
                    rows per UTC hour of the transaction and bin: the API's live drift check
                    (``fraud.monitoring.live``) compares a few hours of traffic with the
                    reference of the same hours

Importable without pandas (the serving image has none): the API reads ``REFERENCE_FILE``
and ``important_features`` from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from objectives import FocalLoss

from .psi import bin_index, bin_shares, quantile_edges

if TYPE_CHECKING:
    import pandas as pd

REFERENCE_FILE = "reference.json"
SCHEMA = 1
# the API's score buckets (lambda_handler.telemetry), so the plot reads like the dashboard
SCORE_HISTOGRAM_EDGES = (0.0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
P_T_EDGES = tuple(np.linspace(0.0, 1.0, 21))
DEFAULT_GAMMA, DEFAULT_ALPHA = 2.0, 0.25
HOURS = 24


def distribution(values) -> dict:
    """Decile edges and bin shares (missing bin last) of one column."""
    edges = quantile_edges(values)
    return {"edges": edges, "shares": bin_shares(values, edges).tolist()}


def histogram(values, edges) -> list[float]:
    """Shares of ``values`` in fixed ``edges`` (values outside are clipped in)."""
    x = np.clip(np.asarray(values, dtype=np.float64), edges[0], edges[-1])
    counts, _ = np.histogram(x, bins=np.asarray(edges))
    return (counts / counts.sum()).tolist() if counts.sum() else counts.astype(float).tolist()


def hourly_counts(values, edges, hours) -> list[list[int]]:
    """Rows per (hour, bin) of one column: ``HOURS`` lists of bin counts, the missing bin last."""
    counts = np.zeros((HOURS, len(edges) + 2), dtype=np.int64)
    np.add.at(counts, (np.asarray(hours, dtype=np.int64), bin_index(values, edges)), 1)
    return counts.tolist()


def hourly(features: "pd.DataFrame", scores, edges: dict, score_edges, timestamps) -> dict:
    """The ``hourly`` part of the reference, on the same edges as its deciles."""
    import pandas as pd

    hours = pd.DatetimeIndex(pd.to_datetime(timestamps, utc=True)).hour.to_numpy()
    return {"hour": "UTC hour of the transaction's time",
            "rows": np.bincount(hours, minlength=HOURS).tolist(),
            "features": {name: hourly_counts(features[name].to_numpy(dtype=np.float64), edges[name], hours)
                         for name in features.columns},
            "score": hourly_counts(scores, score_edges, hours)}


def focal_loss_settings(gamma, alpha) -> tuple[float, float | None, str]:
    """The (gamma, alpha) losses are measured with, and where they come from: ``gamma`` None
    means the winner is not a focal model."""
    if gamma is not None:
        return float(gamma), (None if alpha is None else float(alpha)), "the model's own (focal winner)"
    return DEFAULT_GAMMA, DEFAULT_ALPHA, "default gamma 2, alpha 0.25 (the winner is not a focal model)"


def p_t(margins, labels) -> np.ndarray:
    """Probability the model gave the true class, from its raw margin."""
    p = 1.0 / (1.0 + np.exp(-np.asarray(margins, dtype=np.float64)))
    return np.where(np.asarray(labels) == 1, p, 1.0 - p)


def focal_figures(margins, labels, gamma: float, alpha, hard_p_t: float) -> dict:
    """Focal-loss percentiles and the hard-example rate of labelled rows."""
    z, y = np.asarray(margins, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    if not z.size:
        return {"rows": 0, "p50": None, "p90": None, "p99": None, "hard_example_rate": None}
    loss = FocalLoss(gamma=gamma, alpha=alpha).loss(z, y)
    return {"rows": int(z.size), "p50": float(np.percentile(loss, 50)), "p90": float(np.percentile(loss, 90)),
            "p99": float(np.percentile(loss, 99)), "hard_example_rate": float(np.mean(p_t(z, y) < hard_p_t))}


def reference_distributions(features: "pd.DataFrame", scores, margins, labels, *, gamma=None, alpha=None,
                            window: dict | None = None, importance: dict | None = None, hard_p_t: float = 0.5,
                            model_kind: str | None = None, timestamps=None) -> dict:
    """The reference of one model version, JSON-ready. ``features``, ``scores`` (calibrated),
    ``margins`` (raw), ``labels`` and ``timestamps`` (the transactions' times; None: no
    ``hourly`` part) are row-aligned over the reference window; ``gamma`` None for a winner
    that is not a focal model."""
    labels = np.asarray(labels)
    g, a, source = focal_loss_settings(gamma, alpha)
    pts = p_t(margins, labels)
    columns = {name: distribution(features[name].to_numpy(dtype=np.float64)) for name in features.columns}
    score = distribution(scores)
    out = {
        "schema": SCHEMA, "model_kind": model_kind, "window": window or {}, "rows": int(len(labels)),
        "frauds": int((labels == 1).sum()),
        "features": columns,
        "feature_importance": dict(importance or {}),
        "score": {**score, "histogram": {"edges": list(SCORE_HISTOGRAM_EDGES),
                                         "shares": histogram(scores, SCORE_HISTOGRAM_EDGES)}},
        "p_t": {"edges": list(P_T_EDGES), "fraud": histogram(pts[labels == 1], P_T_EDGES),
                "legitimate": histogram(pts[labels == 0], P_T_EDGES)},
        "focal": {"gamma": g, "alpha": a, "loss_source": source, "hard_p_t": hard_p_t,
                  **focal_figures(margins, labels, g, a, hard_p_t)},
    }
    if timestamps is not None:
        out["hourly"] = hourly(features, scores, {n: c["edges"] for n, c in columns.items()}, score["edges"],
                               timestamps)
    return out


def with_served_scores(reference: dict, scores, timestamps, window: dict) -> dict:
    """``reference`` with its score part (deciles, histogram, hourly counts) taken from the
    served model's calibrated ``scores`` of other rows, unlabelled ones (the score needs no
    label): for a served model that trained on the reference window (``fraud.refit``'s
    latest), whose scores there would be in-sample, and whose calibrated scores, though
    distributed like its twin's in the large, do not share the twin's ties (the deciles of
    a step calibrator), which a PSI on those deciles reads as drift. The features, p_t and
    focal figures stay the reference window's."""
    import pandas as pd

    score = distribution(scores)
    out = {**reference, "score": {**score, "histogram": {"edges": list(SCORE_HISTOGRAM_EDGES),
                                                          "shares": histogram(scores, SCORE_HISTOGRAM_EDGES)}},
           "score_window": {**window, "rows": int(np.asarray(scores).size),
                            "why": "the served model's scores of days after its training window"}}
    if "hourly" in reference:
        hours = pd.DatetimeIndex(pd.to_datetime(timestamps, utc=True)).hour.to_numpy()
        out["hourly"] = {**reference["hourly"], "score": hourly_counts(scores, score["edges"], hours)}
    return out


def important_features(reference: dict, k: int) -> list[str]:
    """The reference's top-``k`` features by importance (all for 0, or without importances)."""
    names = list(reference["features"])
    importance = reference.get("feature_importance") or {}
    if k <= 0 or not importance:
        return names
    return sorted(names, key=lambda n: -importance.get(n, 0.0))[:k]


def load_reference(registry, version: str) -> dict:
    """A version's reference, verified against its manifest (``RegistryError`` if absent:
    versions published before references existed have none)."""
    return registry.read_json(version, REFERENCE_FILE)
