"""``fraud labels import``: label files (one file, or every .csv/.parquet under a directory
or an S3 drop prefix) checked as a whole, then appended to the label store. A bad cell in
any file stops the import before anything is stored."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fraud.labels import open_label_store
from fraud.labels.importer import parse_label_file
from fraud.storage.blob import open_blob_store, split_s3_uri
from fraud.validation import InputError

SUFFIXES = (".csv", ".parquet")


def _files(source: str, endpoint_url: str | None) -> list[tuple[str, bytes]]:
    """(name, bytes) of each label file at ``source``."""
    if source.startswith("s3://"):
        bucket, prefix = split_s3_uri(source)
        store = open_blob_store(f"s3://{bucket}", endpoint_url)
        keys = [k for k in store.list(prefix) if k.lower().endswith(SUFFIXES)]
        return [(store.url(k), store.get(k)) for k in keys]
    path = Path(source)
    if path.is_dir():
        return [(str(p), p.read_bytes()) for p in sorted(path.rglob("*")) if p.suffix.lower() in SUFFIXES]
    if not path.is_file():
        raise InputError(f"{source}: no such label file")
    return [(str(path), path.read_bytes())]


def import_labels(source: str, store_uri: str, endpoint_url: str | None = None,
                  now: pd.Timestamp | None = None) -> dict:
    files = _files(source, endpoint_url)
    if not files:
        raise InputError(f"{source}: no .csv or .parquet label files there. Nothing was imported.")
    now = now or pd.Timestamp.now(tz="UTC")
    labels = pd.concat([parse_label_file(name, data, now) for name, data in files], ignore_index=True)
    if labels.empty:
        raise InputError(f"{source}: the label files have no rows. Nothing was imported.")
    store = open_label_store(store_uri, endpoint_url)
    count = store.append(labels)
    return {"files": len(files), "labels": count, "fraud": int((labels["label"] == 1).sum()),
            "legitimate": int((labels["label"] == 0).sum()), "store": store.uri,
            "first_known": labels["known_at"].min().isoformat(), "last_known": labels["known_at"].max().isoformat()}
