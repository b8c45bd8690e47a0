"""The nightly job end to end on small simulated data, batch scoring, and the Dask path."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from batch_jobs.cli import main
from helpers.configs import SMALL



@pytest.fixture(scope="module")
def nightly(tmp_path_factory, small_sim_dir):
    root = tmp_path_factory.mktemp("nightly")
    config = root / "small.toml"
    config.write_text(SMALL)
    args = ["--config", str(config), "--registry", str(root / "registry"), "train", "--data", str(small_sim_dir),
            "--runs", str(root / "runs"), "--no-progress"]
    assert main(args) == 0
    first_runs = sorted((root / "runs").iterdir())
    assert main(args) == 0  # a second night: challenger vs champion
    return root, config, first_runs[0], sorted((root / "runs").iterdir())[-1]


def test_nightly_writes_report_registry_and_scores(nightly):
    root, _, run, _ = nightly
    for name in ("report.html", "report.json", "pr_curves.png", "calibration.png", "scores.png", "p_t_histogram.png",
                 "feature_importance.png", "training.png"):
        assert (run / name).stat().st_size > 0, name
    summary = json.loads((run / "report.json").read_text())
    for key in ("auc_roc", "average_precision", "card_precision_at_k", "per_class", "focal", "policy"):
        assert key in summary["test"]
    assert {"focal_loss_p50", "focal_loss_p90", "focal_loss_p99", "hard_example_rate"} <= set(summary["test"]["focal"])
    html = (run / "report.html").read_text()
    assert "Candidates side by side" in html and "focal_xgb" in html and "logistic_xgb" in html
    scores = pd.read_parquet(next(run.glob("scores-*.parquet")))
    assert {"score", "decision", "reason_1", "model_version", "reasons"} <= set(scores.columns)
    assert set(scores["decision"]) <= {"approve", "review", "decline"}
    assert scores["model_version"].nunique() == 1
    assert len(scores) > 2000


def test_second_night_compares_challenger_with_champion(nightly):
    root, _, first, second = nightly
    gate = json.loads((second / "report.json").read_text())["gate"]
    assert set(gate["scores"]) == {"challenger", "champion"}
    assert gate["decision"] in ("promote", "keep champion")
    assert "Challenger vs champion" in (second / "report.html").read_text()
    versions = sorted(p.name for p in (root / "registry" / "versions").iterdir())
    assert len(versions) == 2


def test_score_batch_command(nightly, small_sim_dir, tmp_path, capsys):
    root, config, _, _ = nightly
    day = sorted(small_sim_dir.iterdir())[-3]
    out = tmp_path / "scored.parquet"
    assert main(["--config", str(config), "--registry", str(root / "registry"), "score-batch", "--input", str(day),
                 "--output", str(out), "--history", str(small_sim_dir), "--chunk-rows", "700", "--no-progress"]) == 0
    scored = pd.read_parquet(out)
    raw = pd.read_parquet(day)
    assert sorted(scored["transaction_id"]) == sorted(raw["transaction_id"])
    # cards by keyed token only (the local key), one token per card; raw ids only when asked
    from fraud.pseudonym import configured_pseudonymizer

    assert "card_id" not in scored.columns and not set(raw["card_id"]) & set(scored["card_token"])
    by_txn = raw.set_index("transaction_id")["card_id"]
    keys = configured_pseudonymizer()
    assert (scored["card_token"] == [keys.card_token(by_txn[t]) for t in scored["transaction_id"]]).all()
    clear = tmp_path / "clear.parquet"
    assert main(["--config", str(config), "--registry", str(root / "registry"), "score-batch", "--input", str(day),
                 "--output", str(clear), "--history", str(small_sim_dir), "--raw-card-ids", "--no-progress"]) == 0
    assert set(pd.read_parquet(clear)["card_id"]) == set(raw["card_id"])
    assert scored["score"].between(0, 1).all()
    import pyarrow.parquet as pq

    assert pq.ParquetFile(out).num_row_groups >= len(raw) // 700  # streamed in chunks
    # with history the card features see the previous days; without, they cannot
    alone = tmp_path / "alone.parquet"
    without = ["--config", str(config), "--registry", str(root / "registry"), "score-batch", "--input", str(day),
               "--output", str(alone), "--no-progress"]
    assert main(without) == 2 and not alone.exists()  # no history is refused unless asked for
    capsys.readouterr()
    assert main(without + ["--no-history"]) == 0
    result = json.loads(capsys.readouterr().out)
    no_history = pd.read_parquet(alone)
    assert (no_history["f_card_count_30d"].mean() < scored["f_card_count_30d"].mean())
    assert result["rows_without_card_history"] == int(no_history["f_card_seconds_since_previous"].isna().sum())
    assert result["rows_without_card_history"] > 10 * int(scored["f_card_seconds_since_previous"].isna().sum())


def test_bad_input_stops_the_job_and_writes_nothing(tmp_path, nightly):
    root, config, _, _ = nightly
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"transaction_id": ["a"], "timestamp": ["2026-01-01"], "card_id": ["c"],
                  "terminal_id": ["m"]}).to_csv(bad, index=False)
    registry = tmp_path / "reg"
    assert main(["--config", str(config), "--registry", str(registry), "train", "--data", str(bad),
                 "--runs", str(tmp_path / "runs"), "--no-progress"]) == 2
    assert not registry.exists() or not any(registry.rglob("manifest.json"))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.fixture(scope="module")
def tiny_sim(tmp_path_factory):
    """45 days of a tiny simulation (about 350 transactions a day) as one frame, and the
    small config file: enough for the SMALL windows, and read in well under a second."""
    from fraud.simulator import TransactionSimulator

    root = tmp_path_factory.mktemp("tiny")
    TransactionSimulator(n_customers=150, n_terminals=60, seed=5).write(root / "days", 45, progress=False)
    config = root / "small.toml"
    config.write_text(SMALL)
    return pd.read_parquet(root / "days").drop(columns="date"), config


def _no_frauds(frame):
    return frame.assign(label=0, label_time=pd.NaT)


def _no_frauds_in_test_window(frame):
    # SMALL: the test window is days 33-37 of the 45 (validation 21-25, label delay 7)
    late = frame["timestamp"] >= frame["timestamp"].min().floor("D") + pd.Timedelta(days=30)
    return frame.assign(label=frame["label"].where(~late, 0))


def _ten_days_and_a_bad_row(frame):
    short = frame[frame["timestamp"] < frame["timestamp"].min().floor("D") + pd.Timedelta(days=10)].copy()
    short.loc[short.index[5], "amount"] = -1.0  # quarantined (under 1%) before the windows are checked
    return short


TRAINING_INPUT_PROBLEMS = {
    "too_few_days": (_ten_days_and_a_bad_row,
                     r"10 days of data \(2026-01-01 to 2026-01-10\) is too short for the configured windows: "
                     r"train 14 \+ validation 5 \+ test 5 days.* need 45 days; give more days of data, or shorten"),
    "no_frauds": (_no_frauds, r"every one of the [\d,]+ transactions has label 0 \(legitimate\): training needs "
                              r"both frauds \(1\) and legitimate transactions \(0\)\. Check that \[columns\] label"),
    "no_frauds_in_test_window": (_no_frauds_in_test_window,
                                 r"the test window \(2026-02-03 to 2026-02-07\) has no fraud labels among its "
                                 r"[\d,]+ transactions: every training, validation and test window needs both"),
    "empty_directory": (None, r"no \.parquet or \.csv files under .*: give a table file or a directory of them"),
    "no_table_files": ("notes.txt", r"no \.parquet or \.csv files under .*: give a table file or a directory"),
    "missing_column": (lambda f: f.drop(columns="amount"),
                       r"missing required column\(s\): amount \(mapped from 'amount'\).*Map each to your column "
                       r"in \[columns\]"),
    "no_rows": (lambda f: f.iloc[:0], r"no valid transactions to train on in .*: its tables have no rows"),
    "day_first_timestamps": (lambda f: f.assign(timestamp=f["timestamp"].dt.strftime("%d/%m/%Y %H:%M:%S")),
                             r"timestamp \(mapped from 'timestamp'\): '01/01/2026 \d\d:\d\d:\d\d' at row 0 is "
                             r"not an ISO-8601 timestamp .* Set \[data\] timestamp_format"),
}


@pytest.mark.parametrize("problem", list(TRAINING_INPUT_PROBLEMS))
def test_training_on_bad_or_too_little_data_exits_2_with_a_message_and_writes_nothing(tmp_path, tiny_sim, capsys,
                                                                                       problem):
    frame, config = tiny_sim
    change, message = TRAINING_INPUT_PROBLEMS[problem]
    data = tmp_path / "data"
    data.mkdir()
    if callable(change):
        change(frame).to_parquet(data / "part-0.parquet", index=False)
    elif change:
        (data / change).write_text("not a table")
    runs, registry = tmp_path / "runs", tmp_path / "registry"
    runs.mkdir()  # a runs directory that exists already keeps only finished runs
    code = main(["--config", str(config), "--registry", str(registry), "train", "--data", str(data),
                 "--runs", str(runs), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert re.search(r"^error: " + message, err, re.MULTILINE), err
    assert "Traceback" not in err and err.count("\nerror: ") + err.startswith("error: ") == 1
    assert list(runs.iterdir()) == []
    assert not registry.exists() or list(registry.rglob("*")) == []


@pytest.mark.slow
def test_dask_path_on_a_local_cluster(tmp_path, small_transactions, small_features, small_config):
    from batch_jobs.dask_fit import DaskFitter
    from fraud.features.distributed import build_features_dask, dask_client
    from fraud.training import LabelledFeatures, train

    spec, features = small_features
    config = small_config.model_copy(update={"search": small_config.search.model_copy(
        update={"max_trials": 4, "max_rounds": 60})})
    with dask_client("local", n_workers=2) as client:
        dask_features = build_features_dask(small_transactions, spec).loc[small_transactions["transaction_id"]]
        pd.testing.assert_frame_equal(dask_features.reset_index(drop=True), features, check_names=False)
        result = train(LabelledFeatures.from_transactions(small_transactions, features), config, spec,
                       progress=False, fitter=DaskFitter(client))
    assert set(result.summary["candidates"]) == {"focal_xgb", "focal_lgbm", "logistic_xgb", "weighted_logistic_xgb"}
    assert result.summary["test"]["average_precision"] > 5 * small_transactions["label"].mean()
    # early stopping keeps the best rounds: maximising AP, not taking it for a loss and stopping at round 0
    assert result.summary["candidates"]["focal_xgb"]["rounds"] > 5
    result.bundle.write(tmp_path / "bundle")  # the Dask-trained model saves like any other
