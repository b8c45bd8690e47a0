"""The label store: labels with the time they became known, as Parquet files partitioned
by that day (``known_date=YYYY-MM-DD/labels-<digest>.parquet``).

Written through a ``BlobStore``, so each file appears whole or not at all (locally temp
file + rename, whose hidden temp names listings skip; on S3 one PUT). A file is named by
the digest of its rows, so a retried append rewrites the same file, and reads drop repeats
of (transaction_id, label, source, known_at): appending a label twice stores it once.
"""

from __future__ import annotations

import hashlib
import io
from abc import ABC, abstractmethod

import pandas as pd

from fraud.storage.blob import BlobStore, open_blob_store

LABEL_COLUMNS = ("transaction_id", "label", "source", "known_at")
PARTITION = "known_date="


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """The store's columns and types (label 0/1 int8, known_at UTC), repeats dropped, sorted."""
    out = pd.DataFrame({"transaction_id": frame["transaction_id"].astype(str),
                        "label": frame["label"].astype("int8"),
                        "source": frame["source"].astype(str),
                        "known_at": pd.to_datetime(frame["known_at"], utc=True)})
    return (out.drop_duplicates(list(LABEL_COLUMNS))
            .sort_values(["known_at", "transaction_id", "label", "source"]).reset_index(drop=True))


class LabelStore(ABC):
    uri: str

    @abstractmethod
    def append(self, labels: pd.DataFrame) -> int:
        """Store rows with ``LABEL_COLUMNS``; returns how many distinct labels were given."""

    @abstractmethod
    def read(self, known_before: pd.Timestamp | None = None) -> pd.DataFrame:
        """Every stored label known strictly before ``known_before`` (all: None), once each."""


class BlobLabelStore(LabelStore):
    def __init__(self, blobs: BlobStore):
        self.blobs = blobs
        self.uri = blobs.uri

    def append(self, labels: pd.DataFrame) -> int:
        labels = normalise(labels)
        if labels["known_at"].isna().any():
            raise ValueError("every label needs the time it became known (known_at)")
        for day, rows in labels.groupby(labels["known_at"].dt.strftime("%Y-%m-%d"), sort=True):
            rows = rows.reset_index(drop=True)
            digest = hashlib.sha256(pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes()).hexdigest()
            buffer = io.BytesIO()
            rows.to_parquet(buffer, index=False)
            self.blobs.put(f"{PARTITION}{day}/labels-{digest[:24]}.parquet", buffer.getvalue())
        return len(labels)

    def read(self, known_before: pd.Timestamp | None = None) -> pd.DataFrame:
        cutoff = pd.Timestamp(known_before).tz_convert("UTC") if known_before is not None else None
        frames = []
        for key in self.blobs.list():
            if not key.startswith(PARTITION) or not key.endswith(".parquet"):
                continue
            day = key[len(PARTITION):].split("/", 1)[0]
            if cutoff is not None and pd.Timestamp(day, tz="UTC") > cutoff:
                continue
            frames.append(pd.read_parquet(io.BytesIO(self.blobs.get(key))))
        if not frames:
            return normalise(pd.DataFrame({c: pd.Series([], dtype=object) for c in LABEL_COLUMNS}))
        labels = normalise(pd.concat(frames, ignore_index=True))
        if cutoff is not None:
            labels = labels[labels["known_at"] < cutoff].reset_index(drop=True)
        return labels


def open_label_store(uri: str, endpoint_url: str | None = None) -> LabelStore:
    """``s3://bucket/labels`` or a local directory."""
    return BlobLabelStore(open_blob_store(uri, endpoint_url))
