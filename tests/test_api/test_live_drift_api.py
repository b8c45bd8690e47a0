"""The API's live drift: each window of scored transactions is judged against the serving
champion's reference and goes out as metrics (LivePSIRows, LiveScorePSI,
LiveFeaturePSIMax). Days of the same simulated traffic the reference came from read as no
drift; a client that starts sending amounts in cents is caught in its first window; a
promotion switches the reference; a champion without one is served as before."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from batch_jobs.loop_drill import api_transaction
from fraud.monitoring.reference import REFERENCE_FILE
from helpers.api import API_KEY_HASH, HEADERS

WINDOW = 1000
DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def registry_with_reference(tmp_path_factory, small_training):
    from fraud.registry import ModelRegistry

    registry = ModelRegistry.open(tmp_path_factory.mktemp("live-drift-registry"))
    version = registry.publish(small_training.bundle, extra={REFERENCE_FILE: small_training.reference})
    registry.promote(version, "live drift tests")
    return registry


def _client(registry, **settings):
    from lambda_handler.api import create_app
    from lambda_handler.container import build_container
    from lambda_handler.settings import Settings

    container = build_container(Settings(backend="local", registry_uri=registry.uri, api_key_hashes=API_KEY_HASH,
                                         metrics="memory", max_batch=1000, max_body_bytes=5_000_000,
                                         decision_log_uri="off", labels_uri="", live_drift_rows=WINDOW, **settings))
    return container, TestClient(create_app(container))


def _replay(client, rows: pd.DataFrame, amount_factor: float = 1.0, container=None, labels=None) -> None:
    """``rows`` through /v1/score/batch, 250 at a time; with ``labels`` (transactions whose
    label times fall in the replay) each label is applied to the online state before the
    first batch after it became known, as a frequent `fraud state catch-up` would."""
    pending = labels.sort_values("label_time") if labels is not None else None
    for start in range(0, len(rows), 250):
        chunk = rows.iloc[start:start + 250]
        if pending is not None:
            due = pending["label_time"] < chunk["timestamp"].min()
            for rec in pending[due].to_dict("records"):
                container.online.add_label(rec["terminal_id"], rec["label"] == 1, rec["label_time"],
                                           label_id=rec["transaction_id"], card_id=rec["card_id"])
            pending = pending[~due]
        body = [api_transaction(r) for r in chunk.to_dict("records")]
        for b in body:
            b["amount"] = round(b["amount"] * amount_factor, 2)
        answer = client.post("/v1/score/batch", json={"transactions": body}, headers=HEADERS)
        assert answer.status_code == 200, answer.text


def test_unchanged_traffic_is_quiet_and_amounts_in_cents_are_caught(registry_with_reference, small_transactions,
                                                                    small_training, caplog):
    """The reference's own days replayed through the API (the online features equal the
    batch ones the reference was computed from): what is left is the windows' hours and
    their sampling noise. Then a day whose amounts come in cents."""
    window = small_training.reference["window"]
    start, end = pd.Timestamp(window["start"]), pd.Timestamp(window["end"])
    container, client = _client(registry_with_reference)
    txns = small_transactions
    history = txns[(txns["timestamp"] < start) & (txns["timestamp"] >= start - 35 * DAY)]
    container.online.load_history(history, as_of=start)
    same = txns[(txns["timestamp"] >= start) & (txns["timestamp"] < end)]
    _replay(client, same, container=container,
            labels=txns[(txns["label_time"] >= start) & (txns["label_time"] < end + DAY)])
    sink = container.sink
    rows, score_psi, feature_psi = (sink.values("LivePSIRows"), sink.values("LiveScorePSI"),
                                    sink.values("LiveFeaturePSIMax"))
    assert len(rows) == len(same) // WINDOW >= 4 and all(r == WINDOW for r in rows)   # batches of 250 fill 1000
    assert len(score_psi) == len(feature_psi) == len(rows)
    assert max(feature_psi) < 0.1 and max(score_psi) < 0.1, (feature_psi, score_psi)

    caplog.set_level(logging.INFO, logger="lambda_handler.live_drift")
    left = container.scoring.live_drift._drift.rows   # the unfinished window carries over
    next_day = txns[(txns["timestamp"] >= end) & (txns["timestamp"] < end + DAY)]
    _replay(client, next_day.iloc[:2 * WINDOW], amount_factor=100)   # a client now sends cents
    drifted = sink.values("LiveFeaturePSIMax")[len(rows):]
    assert len(drifted) == (left + 2 * WINDOW) // WINDOW >= 2
    assert drifted[-1] > 1.0, drifted   # the window of cents alone
    judged = container.scoring.live_drift._drift.judged
    amount_features = [n for n in judged if any(k in n for k in ("amount", "mean", "sum"))]
    named = [r.getMessage() for r in caplog.records if "live drift of champion" in r.getMessage()]
    assert named and any(n in named[-1] for n in amount_features), (named, judged)


def test_a_promotion_judges_against_the_new_champions_reference(registry_with_reference, small_training,
                                                                small_transactions):
    from fraud.registry import ModelRegistry

    registry = ModelRegistry.open(registry_with_reference.uri)
    container, client = _client(registry, champion_recheck_s=0)
    watch = container.scoring.live_drift
    first = registry.champion()
    assert watch._version == first   # read at the cold start
    changed = dict(small_training.reference, feature_importance={"amount": 1.0})   # judges only the amount
    second = registry.publish(small_training.bundle, extra={REFERENCE_FILE: changed})
    registry.promote(second, "a new champion")
    try:
        _replay(client, small_transactions.iloc[-10:])
        assert watch._version == second and watch._drift.judged[0] == "amount"
        assert watch._drift.rows == 10   # the new champion's window starts empty
    finally:
        registry.promote(first, "back")


def test_a_champion_without_a_reference_is_served_without_the_check(tmp_path, small_training, small_transactions,
                                                                    caplog):
    from fraud.registry import ModelRegistry

    registry = ModelRegistry.open(tmp_path / "registry")
    registry.promote(registry.publish(small_training.bundle), "published before references")
    caplog.set_level(logging.WARNING, logger="lambda_handler.live_drift")
    container, client = _client(registry)
    _replay(client, small_transactions.iloc[:WINDOW + 10])
    assert container.sink.values("LivePSIRows") == []
    assert any("live drift off for champion" in r.getMessage() for r in caplog.records)
    assert len(container.sink.values("Decisions")) == WINDOW + 10   # every transaction scored
