"""The API's decision log: one record per freshly scored transaction (none for a replay),
holding what the model saw and answered, the card only as its token; a log that fails or
hangs never fails or stalls scoring, and is counted (DecisionLogFailures)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from fraud.decisions import DecisionLog, read_decisions
from helpers.api import HEADERS
from helpers.proxy import SwitchableProxy

PANS = ["4539578763621486", "5555555555554444", "4012888888881881"]


def txn(i: int, card: str | None = None) -> dict:
    return {"transaction_id": f"dl-{i}", "timestamp": f"2026-02-12T10:{i:02d}:00Z",
            "card_id": card or PANS[i % 3], "terminal_id": f"T-{i % 2}", "amount": 40.0 + 7 * i, "currency": "EUR"}


def _service(settings, **update):
    from lambda_handler.api import create_app
    from lambda_handler.container import build_container

    container = build_container(settings.model_copy(update=update))
    return container, TestClient(create_app(container))


def _wal_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_each_fresh_score_is_logged_once_with_what_the_model_saw_and_answered(local_settings, tmp_path):
    root = tmp_path / "decisions"
    container, client = _service(local_settings, decision_log_uri=str(root))
    assert client.put("/v1/lists/block/card", json={"id": PANS[2], "reason": "stolen"}, headers=HEADERS).status_code \
        == 204
    answers = {}
    for i in range(3):
        answers[f"dl-{i}"] = client.post("/v1/score", json=txn(i), headers=HEADERS).json()
    batch = client.post("/v1/score/batch", json={"transactions": [txn(i) for i in range(3, 7)]}, headers=HEADERS)
    answers.update({r["transaction_id"]: r for r in batch.json()["results"]})
    logged = _wal_bytes(root)
    # replays of stored answers (single and batch) add nothing
    assert client.post("/v1/score", json=txn(1), headers=HEADERS).json()["replayed"]
    assert all(r["replayed"] for r in client.post("/v1/score/batch", json={"transactions": [txn(i) for i in (3, 4)]},
                                                  headers=HEADERS).json()["results"])
    assert _wal_bytes(root) == logged

    got = read_decisions(root).set_index("transaction_id")
    assert sorted(got.index) == sorted(answers)  # each once
    assert len(logged.splitlines()) == len(answers)
    bundle, version = container.holder.current()
    names = bundle.feature_names
    matrix = got[[f"feature.{n}" for n in names]].to_numpy(dtype=np.float64)
    # the logged vector is the one the model saw: it reproduces the answer's score and margin
    np.testing.assert_allclose(bundle.predict_proba(matrix), got["probability"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(bundle.model.margin(matrix), got["margin"], rtol=0, atol=1e-9)
    for tid, answer in answers.items():
        row, i = got.loc[tid], int(tid.split("-")[1])
        assert row["probability"] == answer["probability"] and row["decision"] == answer["decision"]
        assert json.loads(row["reasons"]) == answer["reasons"] and row["model_version"] == version
        assert row["card"] == container.scoring.keys.card_token(PANS[i % 3])
        assert row["override"] == ("block:card" if i % 3 == 2 else None)
        assert row["policy_reason"] == answer["policy_reason"] and row["terminal_id"] == f"T-{i % 2}"
        assert row["amount"] == 40.0 + 7 * i and row["timestamp"].isoformat() == f"2026-02-12T10:{i:02d}:00+00:00"
        assert row["decided_by"] == "champion" and row["shadow_model_version"] is None
    assert got.loc["dl-2", "decision"] == "decline"  # the block list decided, the model's score still logged
    assert (got["scored_at"] > got["timestamp"]).all()


def test_no_card_id_in_any_stored_byte(local_settings, tmp_path):
    from fraud.decisions import compact_decisions

    root = tmp_path / "decisions"
    _, client = _service(local_settings, decision_log_uri=str(root))
    client.post("/v1/score/batch", json={"transactions": [txn(i) for i in range(5)]}, headers=HEADERS)
    stored = _wal_bytes(root)
    assert stored.count(b"\"card\":\"card_") == 5  # the token, in each record
    assert [p for p in PANS if p.encode() in stored or p[-8:].encode() in stored] == []
    frame = read_decisions(root)
    assert compact_decisions(root, now=frame["scored_at"].max() + np.timedelta64(2, "D"))
    assert [p for p in PANS if p in read_decisions(root).to_json(date_format="iso")] == []


class BrokenLog(DecisionLog):
    uri = "broken://"

    def __init__(self):
        self.calls = 0

    def write(self, records):
        self.calls += 1
        raise OSError("disk gone")


def test_a_failing_log_fails_no_score_and_is_counted_and_logged_by_token(local_settings, caplog):
    from lambda_handler.decision_log import LOST_PREFIX, DecisionRecorder

    container, client = _service(local_settings)
    broken = BrokenLog()
    container.scoring.decisions = DecisionRecorder(broken, container.telemetry)
    with caplog.at_level(logging.INFO, logger="lambda_handler"):
        single = client.post("/v1/score", json=txn(20), headers=HEADERS)
        batch = client.post("/v1/score/batch", json={"transactions": [txn(i) for i in range(21, 24)]},
                            headers=HEADERS)
    assert single.status_code == 200 and single.json()["probability"] >= 0
    assert [r["replayed"] for r in batch.json()["results"]] == [False] * 3
    assert broken.calls == 2  # once per request
    assert container.sink.values("DecisionLogFailures") == [1, 3]
    lost = [json.loads(r.getMessage()[len(LOST_PREFIX):]) for r in caplog.records
            if r.getMessage().startswith(LOST_PREFIX)]
    assert [r["transaction_id"] for r in lost] == [f"dl-{i}" for i in range(20, 24)]
    assert lost[0]["probability"] == single.json()["probability"] and lost[0]["card"].startswith("card_")
    assert [p for p in PANS if p in caplog.text] == []


@pytest.fixture
def firehose_stream(moto_server):
    from fraud.storage.aws import client

    client("s3", moto_server).create_bucket(Bucket="api-decisions")
    client("firehose", moto_server).create_delivery_stream(
        DeliveryStreamName="api-decisions", DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={"RoleARN": "arn:aws:iam::123456789012:role/firehose",
                                            "BucketARN": "arn:aws:s3:::api-decisions",
                                            "Prefix": "decisions/date=!{timestamp:yyyy-MM-dd}/",
                                            "ErrorOutputPrefix": "decision-errors/"})
    proxy = SwitchableProxy(int(moto_server.rsplit(":", 1)[1]))
    yield proxy
    proxy.close()


def test_firehose_one_call_per_request_and_a_hanging_one_costs_only_its_timeout(local_settings, firehose_stream,
                                                                                moto_server):
    from fraud.decisions.firehose import FirehoseDecisionLog
    from lambda_handler.decision_log import DecisionRecorder

    timeout_s = 0.3
    container, client = _service(local_settings)
    firehose = FirehoseDecisionLog("api-decisions", firehose_stream.endpoint, timeout_s=timeout_s)
    container.scoring.decisions = DecisionRecorder(firehose, container.telemetry)
    calls = []

    def count(params, **kwargs):
        calls.append(len(params["Records"]))

    firehose.firehose.meta.events.register("provide-client-params.firehose.PutRecordBatch", count)
    try:
        batch = client.post("/v1/score/batch", json={"transactions": [txn(i) for i in range(30, 35)]},
                            headers=HEADERS)
        assert batch.status_code == 200 and calls == [5]  # one PutRecordBatch for the request's five rows
        client.post("/v1/score", json=txn(35), headers=HEADERS)
        assert calls == [5, 1]
        landed = read_decisions("s3://api-decisions/decisions", endpoint_url=moto_server)
        assert sorted(landed["transaction_id"]) == [f"dl-{i}" for i in range(30, 36)]

        firehose_stream.set_mode("hang")  # accepts connections, never answers
        latencies = []
        for i in range(36, 40):
            started = time.perf_counter()
            r = client.post("/v1/score", json=txn(i), headers=HEADERS)
            latencies.append(time.perf_counter() - started)
            assert r.status_code == 200 and not r.json()["replayed"]
    finally:
        firehose.firehose.meta.events.unregister("provide-client-params.firehose.PutRecordBatch", count)
    assert firehose_stream.hung == 4 and len(calls) == 6  # one attempt (one connection) each, no retry
    assert min(latencies) >= timeout_s * 0.9, latencies  # it did wait on the hanging Firehose...
    assert max(latencies) < timeout_s + 0.7, latencies  # ...for about its timeout, not botocore's 60 s x retries
    assert container.sink.values("DecisionLogFailures") == [1, 1, 1, 1]


def test_the_setting_picks_the_log(local_settings):
    from fraud.decisions.firehose import FirehoseDecisionLog
    from fraud.decisions.local import LocalDecisionLog
    from lambda_handler.container import _decisions
    from lambda_handler.telemetry import Telemetry

    telemetry = Telemetry(None)
    local = local_settings.model_copy(update={"decision_log_uri": None})
    assert isinstance(_decisions(local, telemetry).log, LocalDecisionLog)
    assert _decisions(local, telemetry).log.uri == ".fraud/decisions"
    assert _decisions(local.model_copy(update={"backend": "aws"}), telemetry) is None
    assert _decisions(local.model_copy(update={"decision_log_uri": "off"}), telemetry) is None
    assert _decisions(local.model_copy(update={"decision_log_uri": ""}), telemetry) is None
    hose = _decisions(local.model_copy(update={"decision_log_uri": "firehose://s", "aws_endpoint_url":
                                               "http://127.0.0.1:9"}), telemetry).log
    assert isinstance(hose, FirehoseDecisionLog) and hose.stream == "s"
    assert hose.firehose.meta.config.read_timeout == 0.3 and hose.firehose.meta.config.retries["total_max_attempts"] == 1


def test_the_failure_metric_is_the_one_the_alarm_watches(local_settings):
    """EMF as the API prints it: DecisionLogFailures under the stack's namespace with the
    service dimension alone (the alarm's metric), the value the count of records lost."""
    import io

    pytest.importorskip("aws_cdk")
    from fraud.storage.metrics import EMFMetricsSink
    from infra.stack import METRICS_NAMESPACE, SERVICE
    from lambda_handler.decision_log import DecisionRecorder
    from lambda_handler.telemetry import Telemetry

    stream = io.StringIO()
    recorder = DecisionRecorder(BrokenLog(), Telemetry(EMFMetricsSink(local_settings.metrics_namespace,
                                                                      local_settings.service_name, stream)))
    recorder.write([{"transaction_id": "a"}, {"transaction_id": "b"}, {"transaction_id": "c"}])
    (blob,) = [json.loads(line) for line in stream.getvalue().splitlines()]
    (directive,) = blob["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == METRICS_NAMESPACE and directive["Dimensions"] == [["service"]]
    assert blob["service"] == SERVICE and blob["DecisionLogFailures"] == [3.0]
    assert directive["Metrics"] == [{"Name": "DecisionLogFailures", "Unit": "Count"}]
