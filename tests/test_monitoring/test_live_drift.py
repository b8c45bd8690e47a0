"""Live drift (fraud.monitoring.live): PSI of a window of live rows against the reference
mixed by the window's hours, so a few hours of an unchanged daily cycle read as no drift
while a shifted feature is caught and named; windows close at their row count and start
empty; calendar features are never judged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud.monitoring.live import LiveDrift
from fraud.monitoring.reference import reference_distributions

NAMES = ["by_hour", "steady", "hour", "unimportant"]
IMPORTANCE = {"by_hour": 5.0, "steady": 4.0, "hour": 3.0, "unimportant": 0.1}


def traffic(rng, n: int, hours=None, shift: float = 0.0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Rows whose ``by_hour`` feature and score follow the hour of day (a daily cycle)."""
    hour = rng.integers(0, 24, n) if hours is None else rng.choice(hours, n)
    frame = pd.DataFrame({"by_hour": hour * 10 + rng.normal(0, 3, n), "steady": rng.normal(0, 1, n) + shift,
                          "hour": hour.astype(float), "unimportant": rng.normal(0, 1, n)})
    score = 1 / (1 + np.exp(-(hour - 12) / 3 + rng.normal(0, 0.5, n)))
    return frame, score, hour


@pytest.fixture(scope="module")
def reference():
    rng = np.random.default_rng(0)
    frame, score, hour = traffic(rng, 20_000)
    times = pd.Timestamp("2026-03-01", tz="UTC") + pd.to_timedelta(hour * 3600 + rng.integers(0, 3600, hour.size),
                                                                      unit="s")
    return reference_distributions(frame, score, np.log(score / (1 - score)), (score > 0.9).astype(int),
                                   importance=IMPORTANCE, timestamps=times)


def test_the_reference_counts_each_row_once_per_hour_and_bin(reference):
    hourly = reference["hourly"]
    assert sum(hourly["rows"]) == reference["rows"] == 20_000
    for name in NAMES:
        counts = np.asarray(hourly["features"][name])
        assert counts.shape == (24, len(reference["features"][name]["edges"]) + 2)
        np.testing.assert_allclose(counts.sum(axis=0) / reference["rows"], reference["features"][name]["shares"])
        np.testing.assert_array_equal(counts.sum(axis=1), hourly["rows"])
    np.testing.assert_allclose(np.asarray(hourly["score"]).sum(axis=0) / 20_000, reference["score"]["shares"])


def test_a_night_of_unchanged_traffic_is_no_drift_and_a_shift_is_named(reference):
    rng = np.random.default_rng(1)
    drift = LiveDrift(reference, NAMES, window_rows=2000, important=2)
    frame, score, hour = traffic(rng, 2000, hours=[0, 1, 2, 3, 4])   # five night hours only
    window = drift.add(hour, frame[NAMES].to_numpy(), score)
    # against whole days both would read as a large shift (the reference's own deciles, hour 0-4 alone)
    assert window is not None and window.rows == 2000
    assert window.feature_psi["by_hour"] < 0.05 and window.score_psi < 0.05, window
    frame, score, hour = traffic(rng, 2000, hours=[0, 1, 2, 3, 4], shift=1.5)
    shifted = drift.add(hour, frame[NAMES].to_numpy(), score)
    assert shifted.feature_psi_max_name == "steady" and shifted.feature_psi_max > 0.5, shifted
    assert shifted.feature_psi["by_hour"] < 0.05 and shifted.score_psi < 0.05


def test_a_missing_feature_is_drift(reference):
    rng = np.random.default_rng(2)
    drift = LiveDrift(reference, NAMES, window_rows=1000, important=2)
    frame, score, hour = traffic(rng, 1000)
    frame["steady"] = np.nan   # a broken pipeline: the feature went missing
    window = drift.add(hour, frame[NAMES].to_numpy(), score)
    assert window.feature_psi_max_name == "steady" and window.feature_psi_max > 5


def test_windows_close_at_their_row_count_and_start_empty(reference):
    rng = np.random.default_rng(3)
    drift = LiveDrift(reference, NAMES, window_rows=1000, important=2)
    frame, score, hour = traffic(rng, 1000, shift=3.0)
    matrix = frame[NAMES].to_numpy()
    assert drift.add(hour[:999], matrix[:999], score[:999]) is None and drift.rows == 999
    first = drift.add(hour[999:], matrix[999:], score[999:])
    assert first is not None and first.rows == 1000 and drift.rows == 0
    # the next window holds only its own rows: unchanged traffic after the shifted window reads clean
    frame, score, hour = traffic(rng, 1500)
    matrix = frame[NAMES].to_numpy()
    assert drift.add(hour[:600], matrix[:600], score[:600]) is None
    second = drift.add(hour[600:], matrix[600:], score[600:])
    assert second.rows == 1500 and second.feature_psi["steady"] < 0.05, second


def test_only_the_important_non_calendar_features_are_judged(reference):
    assert LiveDrift(reference, NAMES, important=3).judged == ("by_hour", "steady")   # hour: calendar
    assert LiveDrift(reference, NAMES, important=0).judged == ("by_hour", "steady", "unimportant")
    # a feature the model does not compute is not judged
    assert LiveDrift(reference, ["steady", "hour"], important=0).judged == ("steady",)


def test_a_reference_without_hourly_counts_is_refused(reference):
    old = {k: v for k, v in reference.items() if k != "hourly"}
    with pytest.raises(ValueError, match="no hourly counts"):
        LiveDrift(old, NAMES)


def test_an_hour_the_reference_never_saw_falls_back_on_its_overall_shares():
    """A reference window with no traffic at 3 am (a small merchant): live rows at 3 am are
    compared with the reference's overall shares, not with an empty hour."""
    rng = np.random.default_rng(4)
    frame, score, hour = traffic(rng, 20_000, hours=[h for h in range(24) if h != 3])
    times = pd.Timestamp("2026-03-01", tz="UTC") + pd.to_timedelta(hour * 3600, unit="s")
    reference = reference_distributions(frame, score, np.log(score / (1 - score)), (score > 0.9).astype(int),
                                        importance=IMPORTANCE, timestamps=times)
    assert reference["hourly"]["rows"][3] == 0
    drift = LiveDrift(reference, NAMES, window_rows=1000, important=2)
    frame, score, hour = traffic(rng, 1000, hours=[3])
    window = drift.add(hour, frame[NAMES].to_numpy(), score)
    assert window.feature_psi["steady"] < 0.05, window
