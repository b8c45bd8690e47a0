"""The compromise features through the API (issue 15, section 5): a fraud label sent to
POST /v1/feedback tells the card's side of the common-point-of-compromise state which card
it was on (the API kept the card's keyed hashes with the scored transaction; never the card
id), so the features the API computes equal the batch engine's on every row."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

import lambda_handler.feedback as feedback_module
from fraud.features.batch import build_features
from fraud.features.online import APPLIED_PREFIX, OnlineFeatures
from fraud.features.spec import FeatureSpec
from helpers.api import HEADERS
from helpers.frames import labelled_frame
from helpers.replay import api_transaction, events
from lambda_handler.api import create_app
from lambda_handler.container import build_container

from test_fraud.test_compromise_features import CROSS, STREAM  # the hand-made stream and its exact counts

WINDOWS = (7 * 86400, 30 * 86400)
# c1 (its fraud known on 03-04) used m2 on 03-02 (before the label: the label's fan-out records
# it) and on 03-21 (after: the transaction path records it): one card, counted once at k
STREAM = pd.concat([STREAM, labelled_frame([("k", "2026-03-22 10:00", "c5", "m2", 10.0, 0, "2026-03-29 10:00")])],
                   ignore_index=True)


class _Clock:
    """The server's clock as /v1/feedback reads it: the label's known time in the replay."""
    now: dt.datetime | None = None


class _FrozenDatetime(dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return _Clock.now


@pytest.fixture
def container_with_compromise(local_settings, small_config):
    """The API's container, its online path computing the compromise features besides the
    model's own (the model reads its feature names from the records and ignores the rest)."""
    container = build_container(local_settings)
    spec = FeatureSpec.default(small_config.features.model_copy(update={"compromise_windows": WINDOWS}),
                               small_config.columns)
    missing = set(container.holder.bundle.feature_names) - set(spec.names)
    assert not missing, f"the model's features are not all in the spec: {missing}"
    online = OnlineFeatures(spec, container.stores["features"], keys=container.online.keys)
    container.online = container.scoring.online = container.feedback.online = online
    return container


def test_fraud_feedback_reaches_the_cards_compromise_state(container_with_compromise, monkeypatch):
    container = container_with_compromise
    monkeypatch.setattr(feedback_module, "datetime", _FrozenDatetime)
    start = STREAM["timestamp"].min().normalize()
    hours = (STREAM["label_time"].max() - start) / pd.Timedelta(hours=1) + 1
    records = STREAM.to_dict("index")
    with TestClient(create_app(container)) as client:
        for kind, _, _, row in events(STREAM, start, hours).itertuples(index=False):
            rec = records[row]
            if kind == 0:
                r = client.post("/v1/score", json=api_transaction(rec), headers=HEADERS)
                assert r.status_code == 200, r.text
                continue
            _Clock.now = rec["label_time"].to_pydatetime()
            r = client.post("/v1/feedback", headers=HEADERS, json={
                "transaction_id": rec["transaction_id"], "label": "fraud" if rec["label"] == 1 else "legitimate",
                "source": "chargeback", "time": rec["label_time"].isoformat()})
            assert r.status_code == 200, r.text
            assert r.json()["recorded"] is True

    stored = container.stores["features"].get_many([APPLIED_PREFIX + t for t in STREAM["transaction_id"]])
    online = pd.DataFrame([[math.nan if stored[APPLIED_PREFIX + t].value["features"][n] is None
                            else stored[APPLIED_PREFIX + t].value["features"][n] for n in CROSS]
                           for t in STREAM["transaction_id"]], columns=CROSS)
    batch = build_features(STREAM, container.online.spec)[CROSS].reset_index(drop=True)
    assert batch.to_numpy().sum() > 0  # the stream has compromised cards and terminals to count
    np.testing.assert_array_equal(online.to_numpy(), batch.to_numpy())

    scored = container.stores["idempotency"].get("txn#b").value
    assert scored["card_ref"] == container.online.card_ref("c1")  # the card's keyed hashes
    assert "c1" not in scored["card_ref"].values() and "c1" not in scored.values()  # never the card id
