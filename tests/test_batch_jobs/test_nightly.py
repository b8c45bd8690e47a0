"""The nightly job end to end on small simulated data, batch scoring, and the Dask path."""

from __future__ import annotations

import json

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


def test_score_batch_command(nightly, small_sim_dir, tmp_path):
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
    assert main(["--config", str(config), "--registry", str(root / "registry"), "score-batch", "--input", str(day),
                 "--output", str(alone), "--no-progress"]) == 0
    assert (pd.read_parquet(alone)["f_card_count_30d"].mean() < scored["f_card_count_30d"].mean())


def test_bad_input_stops_the_job_and_writes_nothing(tmp_path, nightly):
    root, config, _, _ = nightly
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"transaction_id": ["a"], "timestamp": ["2026-01-01"], "card_id": ["c"],
                  "terminal_id": ["m"]}).to_csv(bad, index=False)
    registry = tmp_path / "reg"
    assert main(["--config", str(config), "--registry", str(registry), "train", "--data", str(bad),
                 "--runs", str(tmp_path / "runs"), "--no-progress"]) == 2
    assert not registry.exists() or not any(registry.rglob("manifest.json"))


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
    result.bundle.write(tmp_path / "bundle")  # the Dask-trained model saves like any other
