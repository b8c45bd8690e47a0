"""The label store: labels with the time they became known, as JSON Lines files partitioned
by that day (``known_date=YYYY-MM-DD/labels-<digest>.jsonl``).

JSON Lines, not Parquet: the API appends from the serving image, which has neither pandas
nor pyarrow (and should not, for two short rows a label); the training side reads the files
into a DataFrame. Written through a ``BlobStore``, so each file appears whole or not at all
(locally temp file + rename, whose hidden temp names listings skip; on S3 one PUT). A file
is named by the digest of its rows, so a retried append rewrites the same file, and reads
drop repeats of (transaction_id, label, source, known_at): a label appended twice is read once.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from datetime import datetime, timezone

from fraud.storage.blob import BlobStore, open_blob_store

LABEL_COLUMNS = ("transaction_id", "label", "source", "known_at")
PARTITION = "known_date="
SUFFIX = ".jsonl"


def _utc(value) -> datetime:
    """A datetime (pandas Timestamps are ones) or ISO text with an offset, in UTC."""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError(f"known_at {value!r} has no UTC offset")
    return when.astimezone(timezone.utc)


def _row(record: dict) -> tuple[str, int, str, str]:
    label = int(record["label"])
    if label not in (0, 1):
        raise ValueError(f"label {record['label']!r} is not 0 or 1")
    return (str(record["transaction_id"]), label, str(record["source"]),
            _utc(record["known_at"]).isoformat(timespec="microseconds"))


class LabelStore(ABC):
    uri: str

    @abstractmethod
    def append(self, labels) -> int:
        """Store labels (dicts, or a DataFrame, with ``LABEL_COLUMNS``; label 0/1, known_at
        aware); returns how many distinct labels were given."""

    @abstractmethod
    def read(self, known_before=None):
        """A DataFrame of every stored label known strictly before ``known_before`` (all:
        None), once each, sorted by known_at."""


class BlobLabelStore(LabelStore):
    def __init__(self, blobs: BlobStore):
        self.blobs = blobs
        self.uri = blobs.uri

    def append(self, labels) -> int:
        records = labels.to_dict("records") if hasattr(labels, "to_dict") else list(labels)
        rows = sorted({_row(r) for r in records}, key=lambda r: (r[3], r[0], r[1], r[2]))
        by_day: dict[str, list] = {}
        for row in rows:
            by_day.setdefault(row[3][:10], []).append(row)
        for day, day_rows in by_day.items():
            text = "".join(json.dumps(dict(zip(LABEL_COLUMNS, r)), separators=(",", ":")) + "\n" for r in day_rows)
            digest = hashlib.sha256(text.encode()).hexdigest()[:24]
            self.blobs.put(f"{PARTITION}{day}/labels-{digest}{SUFFIX}", text.encode())
        return len(rows)

    def read(self, known_before=None):
        import pandas as pd

        cutoff = pd.Timestamp(known_before).tz_convert("UTC") if known_before is not None else None
        rows = []
        for key in self.blobs.list():
            if not key.startswith(PARTITION) or not key.endswith(SUFFIX):
                continue
            day = key[len(PARTITION):].split("/", 1)[0]
            if cutoff is not None and pd.Timestamp(day, tz="UTC") > cutoff:
                continue
            rows += [json.loads(line) for line in self.blobs.get(key).decode().splitlines() if line.strip()]
        frame = pd.DataFrame(rows, columns=list(LABEL_COLUMNS))
        frame = pd.DataFrame({"transaction_id": frame["transaction_id"].astype(str),
                              "label": frame["label"].astype("int8"), "source": frame["source"].astype(str),
                              "known_at": pd.to_datetime(frame["known_at"], utc=True, format="ISO8601")})
        frame = frame.drop_duplicates(list(LABEL_COLUMNS))
        if cutoff is not None:
            frame = frame[frame["known_at"] < cutoff]
        return frame.sort_values(["known_at", "transaction_id", "label", "source"], kind="stable").reset_index(
            drop=True)


def open_label_store(uri: str, endpoint_url: str | None = None) -> LabelStore:
    """``s3://bucket/labels`` or a local directory."""
    return BlobLabelStore(open_blob_store(uri, endpoint_url))
