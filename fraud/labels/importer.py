"""A bulk label file (CSV or Parquet) read and checked before anything is stored: labels
for transactions the API never scored (batch-scored days, older ones).

Columns: transaction_id, label (0/1 or fraud/legitimate), source, known_at (optional, ISO
time with an offset; absent or empty: now). The first bad cell stops the import with an
``InputError`` naming the field and the row (1 = the first data row)."""

from __future__ import annotations

import io
from pathlib import PurePosixPath

import pandas as pd

from fraud.validation import InputError

REQUIRED = ("transaction_id", "label", "source")
LABELS = {"1": 1, "0": 0, "fraud": 1, "legitimate": 0, "1.0": 1, "0.0": 0, "true": 1, "false": 0}


def _read(name: str, data: bytes) -> pd.DataFrame:
    suffix = PurePosixPath(name).suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(io.BytesIO(data))
    if suffix == ".csv":
        return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    raise InputError(f"{name}: a label file is .csv or .parquet")


def _bad(name: str, row: int, field: str, value, why: str) -> InputError:
    return InputError(f"{name}: row {row + 1}, field {field}: {value!r} {why}. Nothing was imported.")


def parse_label_file(name: str, data: bytes, now: pd.Timestamp | None = None) -> pd.DataFrame:
    """The labels of one file in the store's columns; ``InputError`` on the first bad cell."""
    now = now or pd.Timestamp.now(tz="UTC")
    try:
        raw = _read(name, data)
    except InputError:
        raise
    except Exception as exc:  # pandas / pyarrow parse errors, of many types
        raise InputError(f"{name}: not a readable label file ({exc}). Nothing was imported.") from None
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise InputError(f"{name}: missing column(s) {', '.join(missing)}; a label file has transaction_id, label "
                         "(0/1 or fraud/legitimate), source and optionally known_at. Nothing was imported.")
    rows = []
    for i, rec in enumerate(raw.to_dict("records")):
        tid = "" if pd.isna(rec["transaction_id"]) else str(rec["transaction_id"]).strip()
        if not tid:
            raise _bad(name, i, "transaction_id", rec["transaction_id"], "is empty")
        label = LABELS.get(str(rec["label"]).strip().lower())
        if label is None:
            raise _bad(name, i, "label", rec["label"], "is not 0/1 or fraud/legitimate")
        source = "" if pd.isna(rec["source"]) else str(rec["source"]).strip()
        if not source:
            raise _bad(name, i, "source", rec["source"], "is empty")
        known = rec.get("known_at")
        if known is None or (not isinstance(known, str) and pd.isna(known)) or str(known).strip() == "":
            when = now
        else:
            try:
                when = pd.Timestamp(known)
            except (ValueError, TypeError):
                raise _bad(name, i, "known_at", known, "is not an ISO time") from None
            if pd.isna(when):
                raise _bad(name, i, "known_at", known, "is not an ISO time")
            if when.tzinfo is None:
                raise _bad(name, i, "known_at", known, "has no UTC offset (write e.g. 2026-07-04T09:30:00Z)")
            when = when.tz_convert("UTC")
            if when > now:
                raise _bad(name, i, "known_at", known, "is in the future")
        rows.append((tid, label, source, when))
    return pd.DataFrame(rows, columns=["transaction_id", "label", "source", "known_at"])
