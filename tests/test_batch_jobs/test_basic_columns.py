"""Data with only the five basic columns and labels (issue 15): the simulator's basic mode,
the run that drops the other columns' features and says so, and the ablation table."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

from batch_jobs.cli import main
from fraud.simulator import BASIC_COLUMNS, TransactionSimulator
from helpers.configs import SMALL_SPLIT

FAST = """
[features]
compromise_windows = [604800, 2592000]  # off by default; the ablation table shows their family
""" + SMALL_SPLIT + """[search]
time_budget_s = 20
max_trials = 1
max_rounds = 60
early_stopping_rounds = 10
candidates = ["logistic_xgb"]
n_jobs = 2
[policy]
review_capacity_per_day = 20
[report]
ablation = true
[simulation]
n_customers = 1000
n_terminals = 400
seed = 11
"""
FAMILIES = {"row calendar", "row amount", "card velocity", "card history", "terminal", "terminal labels",
            "compromise"}


def test_basic_mode_is_the_same_stream_with_fewer_columns():
    basic = TransactionSimulator(n_customers=200, n_terminals=80, seed=3, basic_columns=True).day(0)
    full = TransactionSimulator(n_customers=200, n_terminals=80, seed=3).day(0)
    assert tuple(basic.columns) == BASIC_COLUMNS
    pd.testing.assert_frame_equal(basic, full[list(BASIC_COLUMNS)])


@pytest.fixture(scope="module")
def basic_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("basic")
    config = root / "fast.toml"
    config.write_text(FAST)
    data = root / "transactions"
    assert main(["--config", str(config), "simulate", "--basic", "--days", "45", "--out", str(data)]) == 0
    assert main(["--config", str(config), "--registry", str(root / "registry"), "train", "--data", str(data),
                 "--runs", str(root / "runs"), "--no-progress", "--no-score"]) == 0
    run = next((root / "runs").iterdir())
    return json.loads((run / "report.json").read_text()), (run / "report.html").read_text()


def test_the_run_drops_the_features_of_absent_columns_and_says_so(basic_run, caplog):
    summary, html = basic_run
    dropped = summary["features"]["dropped"]
    assert dropped == {"is_online": ["channel"],
                       "distance_from_home_km": ["card_lat", "card_lon", "terminal_lat", "terminal_lon"]}
    assert "is_online" not in summary["feature_importance"]
    assert "Left out for want of a column" in html and "<code>is_online</code> (no channel)" in html


def test_the_ablation_refits_without_each_family(basic_run):
    summary, html = basic_run
    ablation = summary["ablation"]
    rows = {r["family"]: r for r in ablation["rows"]}
    assert set(rows) == {"all features"} | FAMILIES
    assert rows["all features"]["features"] == summary["features"]["used"] == \
        sum(r["features"] for f, r in rows.items() if f != "all features")
    assert rows["compromise"]["features"] == 4 and rows["row calendar"]["features"] == 4
    for r in rows.values():
        assert 0 < r["average_precision"] <= 1
        assert r["difference"] == pytest.approx(r["average_precision"] - rows["all features"]["average_precision"])
    assert len({round(r["average_precision"], 6) for r in rows.values()}) > 1  # the refits differ
    assert "What each feature family contributes" in html and html.count("<td>terminal labels</td>") == 1


def test_each_refit_leaves_out_exactly_its_family(small_transactions, small_features, small_config, monkeypatch):
    from fraud import ablation as module
    from fraud.splits import make_split
    from fraud.training import LabelledFeatures

    spec, features = small_features
    seen = []
    monkeypatch.setattr(module, "_fit_and_score", lambda columns, *args: seen.append(list(columns)) or 0.5)
    split = make_split(small_transactions["timestamp"], small_config.split,
                       pd.Timedelta(small_config.data.label_delay))
    out = module.ablation(LabelledFeatures.from_transactions(small_transactions, features), small_config, spec,
                          split, {"kind": "logistic_xgb", "params": {}})
    assert seen[0] == spec.names
    families = module.families(spec)
    assert [r["family"] for r in out["rows"]] == ["all features", *families]
    for columns, names in zip(seen[1:], families.values()):
        assert set(columns) == set(spec.names) - set(names)
