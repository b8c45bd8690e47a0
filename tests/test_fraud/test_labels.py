"""The label store (round trip, idempotence, atomic files, the S3 adapter), the precedence
by which stored labels override the files' labels, and the bulk import's checks."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from fraud.labels import open_label_store
from fraud.labels.merge import merge_labels, with_stored_labels
from fraud.labels.importer import parse_label_file
from fraud.validation import InputError

T = pd.Timestamp


def labels(*rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["transaction_id", "label", "source", "known_at"]).assign(
        known_at=lambda f: pd.to_datetime(f["known_at"], utc=True))


def test_round_trip_idempotence_and_reading_what_was_known_by_a_time(tmp_path):
    store = open_label_store(tmp_path / "labels")
    first = labels(("a", 1, "chargeback", "2026-03-01T10:00Z"), ("b", 0, "reviewer", "2026-03-02T09:00Z"))
    assert store.append(first) == 2
    store.append(first)  # a retry
    # "b" again, in another file of its day
    store.append(labels(("b", 0, "reviewer", "2026-03-02T09:00Z"), ("c", 1, "bank", "2026-03-02T12:00Z"),
                        ("a", 0, "reviewer", "2026-03-03T00:00Z")))
    got = store.read()
    assert list(zip(got["transaction_id"], got["label"], got["source"], got["known_at"])) == [
        ("a", 1, "chargeback", T("2026-03-01T10:00Z")), ("b", 0, "reviewer", T("2026-03-02T09:00Z")),
        ("c", 1, "bank", T("2026-03-02T12:00Z")), ("a", 0, "reviewer", T("2026-03-03T00:00Z"))]
    assert str(got["label"].dtype) == "int8" and str(got["known_at"].dt.tz) == "UTC"
    # strictly before the time: the label known at 09:00 is not known at 09:00 yet
    assert list(store.read(T("2026-03-02T09:00Z"))["transaction_id"]) == ["a"]
    assert list(store.read(T("2026-03-02T09:00:01Z"))["transaction_id"]) == ["a", "b"]
    days = sorted(p.parent.name for p in (tmp_path / "labels").rglob("*.jsonl"))
    # a file per day and batch, named by its rows: the retry rewrote its file
    assert days == ["known_date=2026-03-01", "known_date=2026-03-02", "known_date=2026-03-02",
                    "known_date=2026-03-03"]


def test_a_crash_between_write_and_rename_leaves_no_visible_file(tmp_path):
    """The process dies (os._exit) after writing the temp file, before the rename: the
    store reads what it held before, and the half-done write is only a hidden temp file."""
    root = tmp_path / "labels"
    store = open_label_store(root)
    store.append(labels(("a", 1, "chargeback", "2026-03-01T10:00Z")))
    script = textwrap.dedent(f"""
        import os, pandas as pd
        import fraud.storage.blob as blob
        from fraud.labels import open_label_store
        blob.os.replace = lambda *a: os._exit(3)
        open_label_store({str(root)!r}).append(pd.DataFrame({{"transaction_id": ["b"], "label": [1],
            "source": ["chargeback"], "known_at": [pd.Timestamp("2026-03-01T11:00Z")]}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 3, done.stderr  # it died where we made it die
    hidden = [p for p in root.rglob("*") if p.is_file() and p.name.startswith(".")]
    assert len(hidden) == 1 and hidden[0].stat().st_size > 0  # written, never renamed
    assert list(store.read()["transaction_id"]) == ["a"]


def frame(*rows) -> pd.DataFrame:
    """Transactions as the files give them: (id, label, label_time)."""
    return pd.DataFrame({"transaction_id": [r[0] for r in rows], "label": pd.Series([r[1] for r in rows], dtype="int8"),
                         "label_time": pd.to_datetime([r[2] for r in rows], utc=True)})


FILE = frame(("f0", 0, "2026-03-08T00:00Z"), ("f1", 1, "2026-03-05T00:00Z"), ("untouched", 1, "2026-03-04T00:00Z"))


@pytest.mark.parametrize("file_id, stored, expected", [
    # a stored fraud overrides the file's legitimate label, known from its known_at
    ("f0", [(1, "2026-03-03T00:00Z")], (1, "2026-03-03T00:00Z")),
    # the same label: the earliest known time wins, the file's or the store's
    ("f1", [(1, "2026-03-06T00:00Z")], (1, "2026-03-05T00:00Z")),
    ("f1", [(1, "2026-03-02T00:00Z")], (1, "2026-03-02T00:00Z")),
    ("f0", [(1, "2026-03-02T00:00Z"), (1, "2026-03-01T00:00Z")], (1, "2026-03-01T00:00Z")),
    # a stored legitimate label overrides the file's fraud
    ("f1", [(0, "2026-03-06T00:00Z")], (0, "2026-03-06T00:00Z")),
    # a later contradicting label is a correction: the latest decides
    ("f0", [(1, "2026-03-01T00:00Z"), (0, "2026-03-02T00:00Z")], (0, "2026-03-02T00:00Z")),
    ("f0", [(0, "2026-03-01T00:00Z"), (1, "2026-03-02T00:00Z")], (1, "2026-03-02T00:00Z")),
    # fraud, corrected, fraud again: known as fraud from the second report only
    ("f0", [(1, "2026-03-01T00:00Z"), (0, "2026-03-02T00:00Z"), (1, "2026-03-09T00:00Z")], (1, "2026-03-09T00:00Z")),
    # ... unless the file's own fraud report came after the correction
    ("f1", [(1, "2026-03-01T00:00Z"), (0, "2026-03-02T00:00Z"), (1, "2026-03-09T00:00Z")], (1, "2026-03-05T00:00Z")),
    # the file's fraud before a stored legitimate label does not count after it
    ("f1", [(0, "2026-03-06T00:00Z"), (1, "2026-03-07T00:00Z")], (1, "2026-03-07T00:00Z")),
    # contradicting labels known at the same moment: fraud wins
    ("f0", [(0, "2026-03-02T00:00Z"), (1, "2026-03-02T00:00Z")], (1, "2026-03-02T00:00Z")),
])
def test_precedence(file_id, stored, expected):
    store = labels(*[(file_id, lab, f"s{i}", when) for i, (lab, when) in enumerate(stored)], ("gone", 1, "x",
                                                                                             "2026-03-01T00:00Z"))
    merged, summary = merge_labels(FILE, store)
    row = merged.set_index("transaction_id").loc[file_id]
    assert (int(row["label"]), row["label_time"]) == (expected[0], T(expected[1]))
    assert merged.set_index("transaction_id").loc["untouched"].to_dict() == \
        {"label": 1, "label_time": T("2026-03-04T00:00Z")}  # no stored label: as the file has it
    assert summary["unmatched_labels"] == 1 and summary["matched_transactions"] == 1
    assert FILE["label"].tolist() == [0, 1, 1]  # the input is not modified


def test_a_run_as_of_a_moment_reads_no_label_known_later(tmp_path):
    store = open_label_store(tmp_path)
    store.append(labels(("f0", 1, "chargeback", "2026-03-03T00:00Z")))
    assert with_stored_labels(FILE, str(tmp_path), T("2026-03-03T00:00Z"))["label"].tolist() == [0, 1, 1]
    assert with_stored_labels(FILE, str(tmp_path), T("2026-03-03T00:00:01Z"))["label"].tolist() == [1, 1, 1]
    assert with_stored_labels(FILE, None) is FILE


NOW = T("2026-04-01T00:00Z")


@pytest.mark.parametrize("text, message", [
    ("transaction_id,label,source\nT1,fraud,x\nT2,maybe,x\n", "row 2, field label: 'maybe'"),
    ("transaction_id,label\nT1,1\n", "missing column(s) source"),
    ("transaction_id,label,source,known_at\nT1,1,x,2026-03-01T00:00\n", "row 1, field known_at: '2026-03-01T00:00' "
                                                                        "has no UTC offset"),
    ("transaction_id,label,source,known_at\nT1,1,x,2026-03-01T00:00Z\nT2,1,x,yesterday\n", "row 2, field known_at"),
    ("transaction_id,label,source,known_at\nT1,1,x,2026-05-01T00:00Z\n", "row 1, field known_at: "
                                                                         "'2026-05-01T00:00Z' is in the future"),
    ("transaction_id,label,source\n,1,x\n", "row 1, field transaction_id"),
    ("transaction_id,label,source\nT1,1,\n", "row 1, field source"),
])
def test_import_errors_name_the_field_and_row(text, message):
    with pytest.raises(InputError, match="Nothing was imported") as err:
        parse_label_file("in.csv", text.encode(), NOW)
    assert message in str(err.value)


def test_import_reads_both_spellings_and_defaults_known_at_to_now(tmp_path):
    parquet = tmp_path / "l.parquet"
    pd.DataFrame({"transaction_id": ["T1", "T2", "T3"], "label": ["FRAUD", "legitimate", "1"],
                  "source": ["bank", "bank", "bank"],
                  "known_at": [T("2026-03-01T00:00+01:00"), None, None]}).to_parquet(parquet)
    got = parse_label_file(str(parquet), parquet.read_bytes(), NOW)
    assert got["label"].tolist() == [1, 0, 1]
    assert got["known_at"].tolist() == [T("2026-02-28T23:00Z"), NOW, NOW]


def test_s3_adapter_against_moto(moto_server):
    from fraud.storage.aws import client

    s3 = client("s3", moto_server)
    s3.create_bucket(Bucket="fraud-labels-test")
    store = open_label_store("s3://fraud-labels-test/labels", moto_server)
    batch = labels(("a", 1, "chargeback", "2026-03-01T10:00Z"), ("b", 0, "reviewer", "2026-03-02T09:00Z"))
    store.append(batch)
    store.append(batch)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="fraud-labels-test")["Contents"]]
    assert len(keys) == 2 and all(k.startswith("labels/known_date=2026-03-0") for k in keys)
    assert store.read()[["transaction_id", "label"]].values.tolist() == [["a", 1], ["b", 0]]
    assert store.read(T("2026-03-02T00:00Z"))["transaction_id"].tolist() == ["a"]


def test_the_feedback_path_appends_without_pandas(tmp_path):
    """The serving image has neither pandas nor pyarrow: the API's side of the store must
    not need them."""
    script = textwrap.dedent(f"""
        import sys
        sys.modules["pandas"] = sys.modules["pyarrow"] = None  # any import of them fails
        import lambda_handler.feedback
        from fraud.labels.store import open_label_store
        open_label_store({str(tmp_path)!r}).append([{{"transaction_id": "T1", "label": 1, "source": "chargeback",
                                                     "known_at": "2026-03-01T10:00:00+00:00"}}])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert open_label_store(tmp_path).read()["transaction_id"].tolist() == ["T1"]
