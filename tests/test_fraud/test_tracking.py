"""Tracking is bookkeeping: where it goes, and a store that fails does not fail the night."""

from __future__ import annotations

from fraud.config import TrackingConfig
from fraud.tracking import track_run, tracking_uri

SUMMARY = {"run_id": "r1", "winner": {"kind": "focal_xgb", "gamma": 2.0, "alpha": 0.25, "params": {"max_depth": 4}},
           "split": {"as_of": "2026-02-15T00:00:00+00:00"}, "candidates": {},
           "test": {"average_precision": 0.7, "auc_roc": 0.9, "policy": {"recall": 0.5, "reviews_per_day": 20}},
           "trials": []}


def test_where_runs_are_tracked(tmp_path):
    assert tracking_uri(TrackingConfig(), tmp_path / "runs") == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert tracking_uri(TrackingConfig(), "s3://bucket/runs") is None  # no SQLite on S3: a server URI is needed
    assert tracking_uri(TrackingConfig(uri="http://mlflow:5000"), "s3://bucket/runs") == "http://mlflow:5000"
    assert tracking_uri(TrackingConfig(enabled=False), tmp_path) is None
    assert track_run(TrackingConfig(enabled=False), tmp_path, tmp_path, SUMMARY) == {}


def test_a_store_that_cannot_be_written_is_reported_not_raised(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    out = track_run(TrackingConfig(uri=f"sqlite:///{blocker}/mlflow.db"), tmp_path, tmp_path, SUMMARY)
    assert set(out) == {"error"} and out["error"]
