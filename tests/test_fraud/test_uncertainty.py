"""Day-bootstrap intervals: paired over days, and a verdict that follows the interval."""

from __future__ import annotations

import numpy as np
import pytest

from fraud.uncertainty import day_bootstrap
from objectives import average_precision


def _window(seed=1, days=14, per_day=400):
    rng = np.random.default_rng(seed)
    day = np.repeat(np.arange(days), per_day)
    y = (rng.random(day.size) < 0.03).astype(int)
    return rng, day, y


def test_a_day_drawn_twice_counts_twice():
    rng, day, y = _window()
    s = rng.random(day.size) + y
    drawn = np.array([3, 3, 5, 0, 7])  # day 3 twice
    rows = np.concatenate([np.flatnonzero(day == d) for d in drawn])
    weight = np.bincount(drawn, minlength=day.max() + 1)[day].astype(float)
    keep = weight > 0
    assert average_precision(s[keep], y[keep], weight[keep]) == pytest.approx(average_precision(s[rows], y[rows]),
                                                                              abs=1e-12)


def test_the_verdict_follows_the_paired_interval():
    rng, day, y = _window()
    strong = y * 0.6 + rng.random(day.size)            # separates frauds well
    weak = y * 0.15 + rng.random(day.size)             # barely
    out = day_bootstrap({"focal_xgb": strong, "logistic_xgb": weak}, y, day, ("logistic_xgb",), ("focal_xgb",))
    d = out["difference"]
    assert out["days"] == 14 and d["challenger"] == "focal_xgb" and d["baseline"] == "logistic_xgb"
    assert 0 < d["low"] <= d["average_precision"] <= d["high"]
    assert d["verdict"].startswith("focal_xgb beat the tuned baseline logistic_xgb")
    for m, row in out["models"].items():
        assert row["low"] <= row["average_precision"] <= row["high"], m

    # ahead on the point figure, but by less than the days vary: not a win
    jitter = weak + 0.01 * np.random.default_rng(106).standard_normal(day.size)
    twin = day_bootstrap({"focal_xgb": jitter, "logistic_xgb": weak}, y, day, ("logistic_xgb",),
                         ("focal_xgb",))["difference"]
    assert twin["average_precision"] > 0 and twin["low"] < 0 < twin["high"]
    assert "did not clearly beat" in twin["verdict"]
    # slightly but consistently better on every day: paired over the same days, a win, although
    # each model's own interval is far wider than the gap
    slightly = day_bootstrap({"focal_xgb": weak + 0.02 * y, "logistic_xgb": weak}, y, day, ("logistic_xgb",),
                             ("focal_xgb",))
    d = slightly["difference"]
    assert d["low"] > 0 and d["verdict"].startswith("focal_xgb beat")
    assert slightly["models"]["focal_xgb"]["high"] - slightly["models"]["focal_xgb"]["low"] > 4 * d["average_precision"]
    worse = day_bootstrap({"focal_xgb": weak, "logistic_xgb": strong}, y, day, ("logistic_xgb",),
                          ("focal_xgb",))["difference"]
    assert worse["high"] < 0 and "did worse" in worse["verdict"]


def test_days_not_rows_are_resampled():
    """A model that is right on one burst day only: resampling rows would call it sure."""
    rng, day, y = _window(days=10, per_day=500)
    y[:] = 0
    y[day == 4] = (rng.random(500) < 0.3)
    y[(day != 4)] = (rng.random(int((day != 4).sum())) < 0.01)
    lucky = rng.random(day.size) + np.where(day == 4, y * 2.0, 0.0)
    out = day_bootstrap({"focal_xgb": lucky, "logistic_xgb": rng.random(day.size)}, y, day, ("logistic_xgb",),
                        ("focal_xgb",))
    width = out["models"]["focal_xgb"]["high"] - out["models"]["focal_xgb"]["low"]
    assert width > 0.15  # the burst day drawn 0, 1 or 2 times moves AP a lot


def test_training_reports_the_comparison(small_training):
    summary = small_training.summary
    comparison = summary["comparison"]
    assert set(comparison["models"]) == set(summary["candidates"])
    for kind, row in comparison["models"].items():
        assert row["average_precision"] == pytest.approx(summary["candidates"][kind]["test_average_precision"],
                                                         abs=1e-9)
    assert comparison["difference"]["challenger"] in ("focal_xgb", "focal_lgbm")
    assert comparison["difference"]["verdict"]
