"""The decision log (fraud.decisions): records, the local write-ahead JSON Lines and its
compaction to Parquet, the Firehose writer, and the reader over both layouts."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from fraud.decisions import DecisionLogError, decision_record, open_decision_log, read_decisions
from fraud.decisions.firehose import FirehoseDecisionLog
from fraud.decisions.reader import compact_decisions

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["amount", "card_txn_count_1d", "terminal_risk_7d"]


def record(tid: str, scored_at: str = "2026-03-01T10:00:00+00:00", p: float = 0.25, **kw) -> dict:
    values = kw.pop("values", [12.5, 3.0, float("nan")])
    kw.setdefault("reasons", [{"feature": "amount", "value": 12.5, "contribution": 0.4}])
    return decision_record(transaction_id=tid, timestamp=datetime.fromisoformat("2026-03-01T09:59:58+00:00"),
                           scored_at=datetime.fromisoformat(scored_at), card="card_0123456789abcdef",
                           terminal_id="T1", amount=12.5, feature_names=NAMES, feature_values=values,
                           probability=p, margin=-1.5, decision="review", model_version="v1", **kw)


def test_a_record_is_flat_json_with_the_token_and_missing_features_as_null():
    override = SimpleNamespace(list="block", entity="card", reason="stolen")
    r = record("a", override=override, shadow={"model_version": "v2", "probability": 0.5, "margin": float("inf"),
                                                "decision": "decline"})
    assert json.loads(json.dumps(r, allow_nan=False)) == r
    assert r["features"] == {"amount": 12.5, "card_txn_count_1d": 3.0, "terminal_risk_7d": None}
    assert r["override"] == "block:card" and r["decided_by"] == "champion"
    assert r["scored_at"] == "2026-03-01T10:00:00+00:00" and r["timestamp"] == "2026-03-01T09:59:58+00:00"
    assert r["shadow"] == {"model_version": "v2", "probability": 0.5, "margin": None, "decision": "decline"}
    with pytest.raises(ValueError, match="card token"):
        decision_record(**{**_kwargs(), "card": "4539578763621486"})
    with pytest.raises(ValueError, match="feature names"):
        decision_record(**{**_kwargs(), "feature_values": [1.0]})


def _kwargs() -> dict:
    now = datetime.now(timezone.utc)
    return dict(transaction_id="x", timestamp=now, scored_at=now, card="card_00", terminal_id="T", amount=1.0,
                feature_names=NAMES, feature_values=[1.0, 2.0, 3.0], probability=0.1, margin=0.0,
                decision="approve", model_version="v1")


def test_local_round_trip_columns_and_the_last_record_per_transaction(tmp_path):
    log = open_decision_log(str(tmp_path / "d"))
    log.write([record("a"), record("b", p=0.5, shadow={"model_version": "v2", "probability": 0.7, "margin": 0.8,
                                                       "decision": "decline"})])
    log.write([record("a", scored_at="2026-03-01T10:05:00+00:00", p=0.9)])  # scored again after a crash
    log.write([record("c", scored_at="2026-03-02T00:00:01+00:00")])
    got = read_decisions(tmp_path / "d")
    assert list(got["transaction_id"]) == ["b", "a", "c"]
    assert list(got["probability"]) == [0.5, 0.9, 0.25]
    assert str(got["scored_at"].dt.tz) == "UTC" and str(got["timestamp"].dt.tz) == "UTC"
    assert list(got.columns[-3:]) == [f"feature.{n}" for n in sorted(NAMES)]
    assert got["feature.terminal_risk_7d"].isna().all() and got["feature.card_txn_count_1d"].tolist() == [3.0] * 3
    assert json.loads(got["reasons"][0]) == [{"feature": "amount", "value": 12.5, "contribution": 0.4}]
    assert got["shadow_probability"].tolist()[0] == 0.7 and got["shadow_decision"].tolist()[0] == "decline"
    assert got["shadow_model_version"].isna().tolist() == [False, True, True]
    # partitioned by the UTC day of scored_at; [start, end) on scored_at
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["date=2026-03-01", "date=2026-03-02"]
    assert list(read_decisions(tmp_path / "d", "2026-03-01", "2026-03-02")["transaction_id"]) == ["b", "a"]
    assert list(read_decisions(tmp_path / "d", "2026-03-01T10:01Z")["transaction_id"]) == ["a", "c"]
    assert read_decisions(tmp_path / "nothing").empty


WRITER = """
import sys, time
from datetime import datetime, timezone
from fraud.decisions import decision_record, open_decision_log
log = open_decision_log(sys.argv[1])
for i in range(100000):
    now = datetime.now(timezone.utc)
    log.write([decision_record(transaction_id=f"t{i}-{j}", timestamp=now, scored_at=now, card="card_00",
                               terminal_id="T", amount=1.0, feature_names=["f"] * 1, feature_values=[float(i)],
                               probability=0.1, margin=0.0, decision="approve", model_version="v1",
                               reasons=[{"feature": "f", "value": 1.0, "contribution": 0.1}] * 20)
               for j in range(5)])
    print(i, flush=True)  # written: write() returned
"""


def test_a_process_killed_between_writes_leaves_a_readable_log_without_duplicates(tmp_path):
    """SIGKILL at a random moment, then a torn write (a fragment with no newline, as a crash
    inside write() leaves): every write that returned is read, once, and nothing else fails."""
    root = tmp_path / "d"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    acknowledged = []
    while len(acknowledged) < 40:
        acknowledged.append(int(proc.stdout.readline()))
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    acknowledged += [int(line) for line in proc.stdout.read().split()]
    wal = next(root.rglob("wal-*.jsonl"))
    with open(wal, "ab") as fh:
        fh.write(b'{"transaction_id":"torn","timestamp":"2026-')
    got = read_decisions(root)
    assert got["transaction_id"].is_unique
    ids = set(got["transaction_id"])
    assert {f"t{i}-{j}" for i in acknowledged for j in range(5)} <= ids and "torn" not in ids
    assert len(ids) <= 5 * (max(acknowledged) + 2)
    # a later process appends to a file of its own, never behind the fragment
    open_decision_log(str(root)).write([record("after", scored_at=datetime.now(timezone.utc).isoformat())])
    assert "after" in set(read_decisions(root)["transaction_id"]) and "torn" not in set(read_decisions(root)
                                                                                         ["transaction_id"])


def test_a_failed_write_moves_to_a_new_file(tmp_path, monkeypatch):
    """A write that fails half-way (disk full) leaves a fragment: the log must not append the
    next records behind it (they would fuse with it into one unreadable line)."""
    import fraud.decisions.local as local

    log = open_decision_log(str(tmp_path / "d"))
    log.write([record("a")])
    real_write = os.write
    monkeypatch.setattr(local.os, "write", lambda fd, data: (real_write(fd, bytes(data[:20])), _raise())[0])
    with pytest.raises(DecisionLogError) as failed:
        log.write([record("b")])
    assert [r["transaction_id"] for r in failed.value.records] == ["b"]
    monkeypatch.setattr(local.os, "write", real_write)
    log.write([record("c")])
    assert sorted(read_decisions(tmp_path / "d")["transaction_id"]) == ["a", "c"]
    assert len(list((tmp_path / "d").rglob("wal-*.jsonl"))) == 2


def _raise():
    raise OSError(28, "No space left on device")


def test_compaction_turns_a_closed_day_into_parquet_and_a_crash_in_it_doubles_nothing(tmp_path):
    root = tmp_path / "d"
    log = open_decision_log(str(root))
    log.write([record("a"), record("b", p=0.5)])
    log.write([record("c", scored_at="2026-03-02T23:59:59+00:00")])
    before = read_decisions(root)
    wal = next((root / "date=2026-03-01").glob("wal-*.jsonl"))
    kept = wal.read_bytes()
    # the day just ended is not compacted within the grace hour (a writer may still append)
    assert compact_decisions(root, now=datetime(2026, 3, 3, 0, 30, tzinfo=timezone.utc)) == ["2026-03-01"]
    assert sorted(p.name[:5] for p in (root / "date=2026-03-01").iterdir()) == ["part-"]
    assert list((root / "date=2026-03-02").glob("wal-*.jsonl"))
    pd.testing.assert_frame_equal(read_decisions(root), before)
    wal.write_bytes(kept)  # as if the compaction died after the rename, before deleting
    pd.testing.assert_frame_equal(read_decisions(root), before)
    assert compact_decisions(root, now=datetime(2026, 3, 3, 1, 0, tzinfo=timezone.utc)) == ["2026-03-01",
                                                                                          "2026-03-02"]
    pd.testing.assert_frame_equal(read_decisions(root), before)
    assert not list(root.rglob("wal-*")) and len(list(root.rglob("part-*.parquet"))) == 2


class FakeFirehose:
    def __init__(self, fail_every: int = 0, error: Exception | None = None):
        self.calls, self.fail_every, self.error = [], fail_every, error

    def put_record_batch(self, DeliveryStreamName, Records):
        self.calls.append(Records)
        if self.error is not None:
            raise self.error
        answers = [{"ErrorCode": "ServiceUnavailableException"} if self.fail_every and n % self.fail_every == 0
                   else {"RecordId": str(n)} for n in range(len(Records))]
        return {"FailedPutCount": sum("ErrorCode" in a for a in answers), "RequestResponses": answers}


def test_firehose_writer_batches_within_the_limits_and_raises_what_was_lost():
    fake = FakeFirehose()
    log = FirehoseDecisionLog("s", firehose_client=fake)
    log.write([record(f"t{i}") for i in range(3)])
    assert len(fake.calls) == 1
    assert [json.loads(r["Data"])["transaction_id"] for r in fake.calls[0]] == ["t0", "t1", "t2"]
    assert all(r["Data"].endswith(b"}\n") for r in fake.calls[0])  # newline-delimited at the destination
    fake.calls.clear()
    log.write([record(f"t{i}") for i in range(1001)])
    assert [len(c) for c in fake.calls] == [500, 500, 1]
    big = [record(f"b{i}", reasons=[{"feature": "x" * 900_000, "value": 1, "contribution": 1}]) for i in range(9)]
    fake.calls.clear()
    log.write(big)
    assert [len(c) for c in fake.calls] == [4, 4, 1]  # 4 MiB a call
    partial = FirehoseDecisionLog("s", firehose_client=FakeFirehose(fail_every=2))
    with pytest.raises(DecisionLogError) as lost:
        partial.write([record(f"t{i}") for i in range(4)])
    assert [r["transaction_id"] for r in lost.value.records] == ["t0", "t2"]
    down = FirehoseDecisionLog("s", firehose_client=FakeFirehose(error=TimeoutError("read timeout")))
    with pytest.raises(DecisionLogError, match="TimeoutError") as lost:
        down.write([record(f"t{i}") for i in range(2)])
    assert len(lost.value.records) == 2 and len(down.firehose.calls) == 1  # no retry on the scoring path


def _firehose_objects(records: list[dict], compress: bool) -> bytes:
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    return gzip.compress(data) if compress else data


def test_reader_of_the_s3_layout_firehose_writes(moto_server):
    """Objects as Firehose delivers them (gzip or not) under decisions/date=<arrival day>/:
    a record scored just before midnight that arrived after it is still read by its day."""
    from fraud.storage.aws import client

    s3 = client("s3", moto_server)
    s3.create_bucket(Bucket="decisions-reader")
    day1 = [record("a"), record("b", scored_at="2026-03-01T23:59:59+00:00")]
    s3.put_object(Bucket="decisions-reader", Key="decisions/date=2026-03-01/fraud-1-2026-03-01-10-00-00-x.gz",
                  Body=_firehose_objects(day1[:1], True))
    s3.put_object(Bucket="decisions-reader", Key="decisions/date=2026-03-02/fraud-1-2026-03-02-00-00-01-y",
                  Body=_firehose_objects(day1[1:] + [record("a", scored_at="2026-03-02T08:00:00+00:00", p=0.75),
                                                     record("c", scored_at="2026-03-02T09:00:00+00:00")], False))
    s3.put_object(Bucket="decisions-reader", Key="decisions/date=2026-03-09/fraud-1-z", Body=b"not json\n")
    got = read_decisions("s3://decisions-reader/decisions", "2026-03-01", "2026-03-02", endpoint_url=moto_server)
    assert list(got["transaction_id"]) == ["a", "b"] and got["probability"].tolist() == [0.25, 0.25]
    got = read_decisions("s3://decisions-reader/decisions", "2026-03-01", "2026-03-03", endpoint_url=moto_server)
    assert list(got["transaction_id"]) == ["b", "a", "c"] and got["probability"].tolist() == [0.25, 0.75, 0.25]
    with pytest.raises(ValueError, match="line 1 is not a decision record"):
        read_decisions("s3://decisions-reader/decisions", endpoint_url=moto_server)


def test_firehose_writer_against_moto_lands_records_in_s3(moto_server):
    """moto delivers each PutRecordBatch straight to S3 (under the prefix, its
    !{timestamp:...} expression left as text, and YYYY/MM/DD/HH/): the reader finds them."""
    from fraud.storage.aws import client

    client("s3", moto_server).create_bucket(Bucket="decisions-firehose")
    client("firehose", moto_server).create_delivery_stream(
        DeliveryStreamName="fraud-decisions-test", DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={"RoleARN": "arn:aws:iam::123456789012:role/firehose",
                                            "BucketARN": "arn:aws:s3:::decisions-firehose",
                                            "Prefix": "decisions/date=!{timestamp:yyyy-MM-dd}/",
                                            "ErrorOutputPrefix": "decision-errors/"})
    log = open_decision_log("firehose://fraud-decisions-test", moto_server)
    log.write([record("a"), record("b")])
    log.write([record("c")])
    got = read_decisions("s3://decisions-firehose/decisions", endpoint_url=moto_server)
    assert sorted(got["transaction_id"]) == ["a", "b", "c"]
