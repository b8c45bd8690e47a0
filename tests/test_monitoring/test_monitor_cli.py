"""`fraud monitor` end to end: a registry trained by the nightly job on the small simulation
(its reference.json), a decision log written through the real writer from the champion's
own scores of the days after training, labels in the real label store."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from batch_jobs.cli import main
from fraud.decisions import read_decisions
from fraud.models import FOCAL_KINDS
from fraud.monitoring.psi import bin_index, bin_shares
from fraud.monitoring.reference import REFERENCE_FILE, distribution
from fraud.registry import ModelRegistry, sha256
from helpers.configs import SMALL

MONITORING = """
[monitoring]
min_rows = 1000
min_labels = 5
important_features = 0
recall_lag_days = 0
"""
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_sim_dir, small_transactions):
    root = tmp_path_factory.mktemp("monitor")
    config = root / "small.toml"
    config.write_text(SMALL + MONITORING)
    assert main(["--config", str(config), "--registry", str(root / "registry"), "train", "--data",
                 str(small_sim_dir), "--runs", str(root / "runs"), "--no-progress", "--no-score", "--labels", ""]) == 0
    registry = ModelRegistry.open(root / "registry")
    from fraud.features.batch import build_features

    bundle = registry.load_champion()
    features = build_features(small_transactions, bundle.spec)
    return root, config, registry, bundle, features


def test_the_reference_is_in_the_manifest_and_computed_on_the_calibration_window(trained, small_transactions):
    root, _, registry, bundle, features = trained
    version = registry.champion()
    manifest = registry.manifest(version)
    data = (root / "registry" / "versions" / version / REFERENCE_FILE).read_bytes()
    assert manifest["files"][REFERENCE_FILE]["sha256"] == sha256(data)
    reference = json.loads(data)
    window = registry.read_json(version, "metrics.json")["served_model"]["calibrated_on"]
    assert reference["window"] == window
    ts = small_transactions["timestamp"]
    inside = ((ts >= pd.Timestamp(window["start"])) & (ts < pd.Timestamp(window["end"]))).to_numpy()
    assert reference["rows"] == inside.sum() and reference["frauds"] == small_transactions["label"][inside].sum()
    for name in ("amount", bundle.spec.names[-1]):
        assert reference["features"][name] == distribution(features[name].to_numpy(dtype=float)[inside])
    # not the training window's: its amounts bin differently
    train = registry.read_json(version, "metrics.json")["served_model"]["train"]
    in_train = ((ts >= pd.Timestamp(train["start"])) & (ts < pd.Timestamp(train["end"]))).to_numpy()
    assert reference["features"]["amount"] != distribution(features["amount"].to_numpy(dtype=float)[in_train])
    # the score's part: the served model's own scores, of the newest days when it is the latest
    # refit (it trained on the calibration window: fraud.refit), else of the same rows
    served = registry.read_json(version, "metrics.json")["served_model"]
    score_window = reference["score_window"]
    assert served["latest"]   # the default
    assert (score_window["start"], score_window["end"]) == (served["train"]["end"], served["as_of"])
    scored = ((ts >= pd.Timestamp(score_window["start"])) & (ts < pd.Timestamp(score_window["end"]))).to_numpy()
    probs = bundle.predict_proba(features.loc[scored])
    assert reference["score"]["shares"] == pytest.approx(bin_shares(probs, reference["score"]["edges"]).tolist(),
                                                         abs=1e-9)
    focal = reference["focal"]
    winner = registry.read_json(version, "metrics.json")["winner"]
    if winner["kind"] in FOCAL_KINDS:  # the winner's own loss, else gamma 2, alpha 0.25
        assert (focal["gamma"], focal["alpha"]) == (winner["gamma"], winner["alpha"])
    else:
        assert (focal["gamma"], focal["alpha"]) == (2.0, 0.25)
    assert focal["p50"] <= focal["p90"] <= focal["p99"]
    assert sum(reference["p_t"]["fraud"]) == pytest.approx(1.0) and sum(reference["p_t"]["legitimate"]) == \
        pytest.approx(1.0)
    # the live drift check's counts: the same rows, by the UTC hour of their transaction
    hourly = reference["hourly"]
    assert hourly["rows"] == np.bincount(ts[inside].dt.tz_convert("UTC").dt.hour, minlength=24).tolist()
    hours = ts[inside].dt.tz_convert("UTC").dt.hour.to_numpy()
    for h in (3, 14):
        assert np.asarray(hourly["features"]["amount"])[h].tolist() == np.bincount(
            bin_index(features["amount"].to_numpy(dtype=float)[inside][hours == h],
                      reference["features"]["amount"]["edges"]), minlength=len(hourly["features"]["amount"][h])).tolist()
    assert np.asarray(hourly["score"]).sum() == scored.sum()


def test_a_baseline_winner_reports_its_losses_under_gamma_2_alpha_0_25(small_transactions, small_features):
    """The training hook passes a loss only for focal winners (a baseline's gamma 0 is not one)."""
    from conftest import SMALL_TRAINING
    from fraud.config import load_config
    from fraud.training import LabelledFeatures, train

    spec, features = small_features
    search = {**SMALL_TRAINING["search"], "candidates": ["logistic_xgb"], "max_trials": 1, "max_rounds": 40}
    result = train(LabelledFeatures.from_transactions(small_transactions, features),
                   load_config(overrides={**SMALL_TRAINING, "search": search}), spec, progress=False)
    focal = result.reference["focal"]
    assert result.reference["model_kind"] == "logistic_xgb" and (focal["gamma"], focal["alpha"]) == (2.0, 0.25)
    assert "not a focal model" in focal["loss_source"]
    assert result.reference["window"] == result.summary["served_model"]["calibrated_on"]


def _write_log(root, bundle, transactions, features, days, scale_amount: float = 1.0):
    from fraud.decisions import decision_record, open_decision_log
    from fraud.pseudonym import configured_pseudonymizer

    keys = configured_pseudonymizer()
    day = transactions["timestamp"].dt.tz_convert("UTC").dt.date.astype(str)
    rows = day.isin(days).to_numpy()
    feats = features.loc[rows].copy()
    feats["amount"] = feats["amount"] * scale_amount
    txns = transactions.loc[rows]
    probs, margins = bundle.predict_proba(feats), bundle.model.margin(feats)
    decisions = bundle.decide(feats, probs)
    names = bundle.spec.names
    log = open_decision_log(str(root))
    log.write([decision_record(transaction_id=t.transaction_id, timestamp=t.timestamp.to_pydatetime(),
                               scored_at=t.timestamp.to_pydatetime(), card=keys.card_token(t.card_id),
                               terminal_id=t.terminal_id, amount=t.amount, feature_names=names,
                               feature_values=values, probability=p, margin=m, decision=d,
                               model_version="unused", reasons=[])
               for t, values, p, m, d in zip(txns.itertuples(), feats[names].to_numpy(), probs, margins, decisions)])
    return txns.assign(decision=decisions)


def test_fraud_monitor_on_a_real_registry_and_decision_log(trained, small_transactions, tmp_path, capsys,
                                                          monkeypatch):
    root, config, registry, bundle, features = trained
    last = small_transactions["timestamp"].max().tz_convert("UTC").floor("D")
    days = [str((last - pd.Timedelta(days=k)).date()) for k in (2, 1)]
    champion = registry.champion()
    log_dir, labels_dir = tmp_path / "decisions", tmp_path / "labels"

    def run(out, *extra):
        return main(["--config", str(config), "--registry", str(root / "registry"), "monitor", "--decisions",
                     str(log_dir), "--labels", str(labels_dir), *(["--out", str(out)] if out else []), "--day",
                     days[1], "--as-of", str(last + pd.Timedelta(days=3)), *extra])

    scored = _write_log(log_dir, bundle, small_transactions, features, days)
    frame = read_decisions(str(log_dir))
    assert len(frame) == len(scored) and {"feature.amount", "margin", "probability"} <= set(frame.columns)
    # the log was written with model_version "unused": no score PSI for the champion
    monkeypatch.chdir(tmp_path)
    assert run(None) in (0, 3)  # default --out: runs/monitor/<day>, beside the nightly runs
    assert json.loads((tmp_path / "runs" / "monitor" / days[1] / "health.json").read_text())["score_psi"] is None

    import shutil

    shutil.rmtree(log_dir)
    scored = _write_log(log_dir, bundle, small_transactions, features, days)
    for part in log_dir.glob("date=*/*.jsonl"):  # the champion's version, as the API writes it
        part.write_text(part.read_text().replace('"model_version":"unused"', f'"model_version":"{champion}"'))
    from fraud.labels import open_label_store

    frauds = scored[scored["label"] == 1]
    open_label_store(str(labels_dir)).append(pd.DataFrame({
        "transaction_id": frauds["transaction_id"], "label": 1, "source": "chargeback",
        "known_at": frauds["timestamp"] + pd.Timedelta(days=1)}))
    capsys.readouterr()
    code = run(tmp_path / "steady", "--metrics", "emf")
    out = capsys.readouterr().out
    health = json.loads((tmp_path / "steady" / "health.json").read_text())
    assert health["scored_rows"] == int((scored["timestamp"].dt.tz_convert("UTC").dt.date.astype(str)
                                         == days[1]).sum())
    assert health["drift_verdict"] and health["score_psi"] is not None
    assert health["labelled_frauds"] == len(frauds)
    flagged = frauds["decision"].isin(["review", "decline"]).mean()
    assert health["recall"] == pytest.approx(flagged)
    # the days right after training: their amounts as in the reference window (on this short
    # simulation the 30-day label counts still grow, and recall at 20 reviews a day is low: the
    # status says so, the exit code follows it)
    assert health["feature_psi"]["amount"][days[1]] < 0.1 and "amount" not in health["drifted_features"]
    assert code == (0 if health["status"] in ("OK", "NOT_ENOUGH_DATA") else 3)
    assert f"status: {health['status']}" in out
    emf = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(emf) == 1
    names = {m["Name"] for m in emf[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"FeaturePSIMax", "ScorePSI", "PolicyRecall", "ScoredRows", "LabelledRows"} <= names
    value = {name: np.ravel(emf[0][name])[0] for name in names}  # Powertools may write a value as a list
    assert value["ScorePSI"] == pytest.approx(health["score_psi"]) and value["ScoredRows"] == health["scored_rows"]
    assert value["PolicyRecall"] == pytest.approx(health["recall"])
    assert emf[0]["service"] == "fraud-monitoring"
    for name in ("psi_by_day.png", "score_histogram.png", "recall.png"):
        data = (tmp_path / "steady" / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, name
        import matplotlib.image

        assert matplotlib.image.imread(tmp_path / "steady" / name).shape[0] > 100
    assert "psi_by_day.png" in (tmp_path / "steady" / "health.html").read_text()

    # amounts ten times larger than the model was calibrated on: drift, exit 3
    shutil.rmtree(log_dir)
    _write_log(log_dir, bundle, small_transactions, features, days, scale_amount=10.0)
    for part in log_dir.glob("date=*/*.jsonl"):
        part.write_text(part.read_text().replace('"model_version":"unused"', f'"model_version":"{champion}"'))
    assert run(tmp_path / "drift") == 3
    drift = json.loads((tmp_path / "drift" / "health.json").read_text())
    assert "DRIFT" in drift["problems"] and "amount" in drift["drifted_features"]
    assert "DRIFT" in capsys.readouterr().out
