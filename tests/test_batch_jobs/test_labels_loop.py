"""Labels back into training: feedback -> label store -> the nightly job's data, point in
time per fold; a failing store does not fail feedback; ``fraud labels import`` checks
every file before it stores anything (also from an S3 drop prefix)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pandas as pd
import pytest

from fraud.labels import open_label_store
from fraud.splits import labels_known_at, make_split
from fraud.storage.kv import InMemoryKeyValueStore
from fraud.storage.metrics import InMemoryMetricsSink
from lambda_handler.feedback import FeedbackService
from lambda_handler.schemas import Feedback
from lambda_handler.scoring import TXN_PREFIX
from lambda_handler.telemetry import Telemetry


class Stop(Exception):
    pass


def feedback_service(labels, scored_ids) -> tuple[FeedbackService, InMemoryMetricsSink]:
    """The API's feedback service on in-memory stores, with ``scored_ids`` scored."""
    idempotency = InMemoryKeyValueStore()
    for tid in scored_ids:
        idempotency.put(TXN_PREFIX + tid, {"state": "done", "terminal_id": "M1", "decision": "approve",
                                           "probability": 0.1, "amount": 10.0})
    sink = InMemoryMetricsSink()
    online = SimpleNamespace(add_label=lambda *a, **k: None)
    return FeedbackService(InMemoryKeyValueStore(), idempotency, online, Telemetry(sink), 7, 0.7, labels), sink


def fb(tid: str, label: str = "fraud") -> Feedback:
    return Feedback(transaction_id=tid, label=label, source="chargeback", time="2026-01-01T00:00:00Z")


def test_feedback_reaches_the_nightly_data_known_from_when_it_arrived(tmp_path, small_sim_dir, small_transactions,
                                                                       small_config, monkeypatch):
    import batch_jobs.nightly as nightly

    split = make_split(small_transactions["timestamp"], small_config.split,
                       pd.Timedelta(small_config.data.label_delay))
    fold = split.folds[0]
    legit = small_transactions[fold.train.mask(small_transactions["timestamp"])
                               & (small_transactions["label"] == 0).to_numpy()]
    early, late = legit["transaction_id"].iloc[0], legit["transaction_id"].iloc[1]
    store = open_label_store(tmp_path / "labels")
    service, _ = feedback_service(store, [early, late])
    # a chargeback for each, one arriving before the fold's label cut-off, one after it
    service.record(fb(early), now=fold.label_cutoff - pd.Timedelta(hours=1))
    service.record(fb(late), now=fold.label_cutoff + pd.Timedelta(hours=1))

    seen = {}
    monkeypatch.setattr(nightly, "build_features", lambda t, spec: seen.setdefault("t", t).iloc[:, :0])

    def train(data, config, spec, split, **kwargs):
        seen.update(data=data, split=split)
        raise Stop

    monkeypatch.setattr(nightly, "train", train)
    with pytest.raises(Stop):
        nightly._prepare_and_train(small_config, small_sim_dir, tmp_path / "run", False, None, False, None,
                                   nightly.TrainingWindow(), str(tmp_path / "labels"))
    rows = seen["t"].reset_index(drop=True)
    at = {tid: int(rows.index[rows["transaction_id"] == tid][0]) for tid in (early, late)}
    data, used_fold = seen["data"], seen["split"].folds[0]
    assert used_fold.label_cutoff == fold.label_cutoff
    assert [int(data.label[at[t]]) for t in (early, late)] == [1, 1]
    assert data.label_time[at[early]] == fold.label_cutoff - pd.Timedelta(hours=1)
    known = labels_known_at(data.label, data.label_time, used_fold.label_cutoff)
    # the fold trains on the label known before its cut-off, not on the one known after
    assert [int(known[at[t]]) for t in (early, late)] == [1, 0]
    assert int(data.label.sum()) == int(small_transactions["label"].sum()) + 2  # nothing else changed


class BrokenStore:
    uri = "s3://gone/labels"

    def append(self, labels):
        raise ConnectionError("S3 is unreachable")


def test_a_failing_label_store_does_not_fail_feedback_and_a_resend_repairs_it(tmp_path, caplog):
    service, sink = feedback_service(BrokenStore(), ["T1"])
    with caplog.at_level(logging.ERROR, logger="lambda_handler.feedback"):
        assert service.record(fb("T1")) == (True, False)
    assert service.store.get("label#T1").value["label"] == "fraud"  # recorded all the same
    assert sink.values("LabelStoreFailures") == [1]
    assert '"transaction_id": "T1", "label": 1, "source": "chargeback"' in caplog.text  # re-importable
    service.labels = open_label_store(tmp_path / "labels")
    assert service.record(fb("T1")) == (True, False)  # the client resends: the same label
    stored = service.labels.read()
    assert stored[["transaction_id", "label", "source"]].values.tolist() == [["T1", 1, "chargeback"]]
    assert stored["known_at"].iloc[0] == pd.Timestamp(service.store.get("label#T1").value["known_at"])
    service.record(fb("T1", "legitimate"))  # a contradicting label is refused by the API, not stored
    assert len(service.labels.read()) == 1


def test_labels_import_checks_every_file_first(tmp_path, capsys):
    from batch_jobs.cli import main

    drop, store = tmp_path / "drop", tmp_path / "labels"
    drop.mkdir()
    (drop / "a.csv").write_text("transaction_id,label,source,known_at\nT1,fraud,bank,2026-03-01T00:00:00Z\n"
                                "T2,legitimate,bank,2026-03-02T00:00:00Z\n")
    (drop / "b.csv").write_text("transaction_id,label,source\nT3,1,bank\nT4,2,bank\n")
    assert main(["labels", "import", str(drop), "--store", str(store)]) == 2
    assert "b.csv: row 2, field label: '2' is not 0/1 or fraud/legitimate" in capsys.readouterr().err
    assert not store.exists()  # a.csv was good, and still nothing was stored
    (drop / "b.csv").write_text("transaction_id,label,source\nT3,1,bank\n")
    assert main(["labels", "import", str(drop), "--store", str(store)]) == 0
    assert "imported 3 labels (2 fraud, 1 legitimate) from 2 file(s)" in capsys.readouterr().out
    assert sorted(open_label_store(store).read()["transaction_id"]) == ["T1", "T2", "T3"]


def test_labels_import_from_an_s3_drop_prefix(moto_server):
    from batch_jobs.labels_import import import_labels
    from fraud.storage.aws import client

    s3 = client("s3", moto_server)
    s3.create_bucket(Bucket="fraud-drop-test")
    s3.put_object(Bucket="fraud-drop-test", Key="labels-drop/2026-03/x.csv",
                  Body=b"transaction_id,label,source,known_at\nT9,fraud,bank,2026-03-01T00:00:00Z\n")
    s3.put_object(Bucket="fraud-drop-test", Key="labels-drop/readme.txt", Body=b"not labels")
    summary = import_labels("s3://fraud-drop-test/labels-drop/", "s3://fraud-drop-test/labels", moto_server)
    assert (summary["files"], summary["labels"]) == (1, 1)
    stored = open_label_store("s3://fraud-drop-test/labels", moto_server).read()
    assert stored[["transaction_id", "label", "source"]].values.tolist() == [["T9", 1, "bank"]]
