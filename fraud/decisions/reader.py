"""Reading the decision log back as one DataFrame (``read_decisions``), from either layout:

    local   <root>/date=YYYY-MM-DD/wal-*.jsonl (whole lines only) and part-*.parquet
    S3      s3://bucket/decisions/date=YYYY-MM-DD/<Firehose objects>: newline-delimited JSON,
            gzip-compressed or not

and ``compact_decisions``: a closed local day's JSON Lines into one Parquet file.

One row per transaction id (the record scored last, should one appear twice: a retry after
a crash, a compaction cut short). Columns: the record's scalar fields (``timestamp`` and
``scored_at`` tz-aware UTC), ``reasons`` as JSON text, the shadow score flattened into
``shadow_model_version``, ``shadow_probability``, ``shadow_margin``, ``shadow_decision``, and
one float column ``feature.<name>`` per feature. Absent: None in text columns, NaN in numbers.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pandas as pd

from fraud.storage.blob import LocalBlobStore

from .local import PARTITION, WAL_PREFIX, WAL_SUFFIX

SCALARS = ("transaction_id", "timestamp", "scored_at", "card", "terminal_id", "amount", "probability", "margin",
           "decision", "override", "policy_reason", "reasons", "model_version", "decided_by")
SHADOW = ("shadow_model_version", "shadow_probability", "shadow_margin", "shadow_decision")
TEXT = ("transaction_id", "card", "terminal_id", "decision", "override", "policy_reason", "reasons", "model_version",
        "decided_by", "shadow_model_version", "shadow_decision")
FEATURE_PREFIX = "feature."
PARQUET_PREFIX = "part-"
_DAY = re.compile(r"(?:^|/)date=(\d{4}-\d{2}-\d{2})/")
# Firehose files a record under its arrival time, a little after scored_at: a range read
# looks one day beyond each end, then filters on scored_at
ARRIVAL_SLACK = timedelta(days=1)


def _when(value) -> pd.Timestamp | None:
    if value is None:
        return None
    when = pd.Timestamp(value)
    return when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")


def flatten(records: list[dict]) -> pd.DataFrame:
    """Decision records (dicts as written) -> the reader's columns (built column by column:
    pandas is slow at rows of dicts)."""
    columns = {k: [r.get(k) for r in records] for k in SCALARS}
    columns["reasons"] = [orjson.dumps(r.get("reasons") or []).decode() for r in records]
    shadows = [r.get("shadow") or {} for r in records]
    for k in ("model_version", "probability", "margin", "decision"):
        columns[f"shadow_{k}"] = [sh.get(k) for sh in shadows]
    features = [r.get("features") or {} for r in records]
    for name in sorted({name for f in features for name in f}):
        columns[FEATURE_PREFIX + name] = [f.get(name) for f in features]
    return _typed(pd.DataFrame(columns))


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    for column in SCALARS + SHADOW:
        if column not in frame.columns:
            frame[column] = None
    for column in ("timestamp", "scored_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    for column in ("amount", "probability", "margin", "shadow_probability", "shadow_margin"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for column in TEXT:  # absent is None (not NaN) in the text columns
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    features = sorted(c for c in frame.columns if c.startswith(FEATURE_PREFIX))
    for column in features:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame[list(SCALARS + SHADOW) + features]


def json_lines(data: bytes, where: str) -> list[dict]:
    """The records of newline-delimited JSON; an unterminated last line (a write cut short
    by a crash) is not a record yet and is left out."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    complete = data[:data.rfind(b"\n") + 1]
    out = []
    for number, line in enumerate(complete.split(b"\n"), 1):
        if line.strip():
            try:
                out.append(orjson.loads(line))
            except ValueError as exc:
                raise ValueError(f"{where}: line {number} is not a decision record: {exc}") from exc
    return out


def _finish(frames: list[pd.DataFrame], start, end) -> pd.DataFrame:
    frame = _typed(pd.concat([f for f in frames if len(f)] or [flatten([])], ignore_index=True, sort=False))
    if start is not None:
        frame = frame[frame["scored_at"] >= start]
    if end is not None:
        frame = frame[frame["scored_at"] < end]
    frame = frame.sort_values("scored_at", kind="stable").drop_duplicates("transaction_id", keep="last")
    return frame.reset_index(drop=True)


def _in_range(day: str | None, start, end, slack=timedelta(0)) -> bool:
    if day is None:
        return True  # a partition whose day cannot be read: read it, scored_at decides
    begin = pd.Timestamp(day, tz="UTC")
    return (start is None or begin + timedelta(days=1) + slack > start) and (end is None or begin - slack < end)


# -- local -------------------------------------------------------------------------------
def _local_day(folder: Path) -> list[pd.DataFrame]:
    frames, records = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(WAL_PREFIX) and path.name.endswith(WAL_SUFFIX):
            records += json_lines(path.read_bytes(), str(path))
        elif path.name.startswith(PARQUET_PREFIX) and path.name.endswith(".parquet"):
            frames.append(pd.read_parquet(path))
    return frames + [flatten(records)]


def _read_local(root: Path, start, end) -> list[pd.DataFrame]:
    if not root.exists():
        return []
    for _ in range(5):  # a compaction may delete files between the listing and the read: list again
        try:
            frames = []
            for folder in sorted(root.glob(f"{PARTITION}*")):
                if folder.is_dir() and _in_range(folder.name[len(PARTITION):], start, end):
                    frames += _local_day(folder)
            return frames
        except FileNotFoundError:
            continue
    raise RuntimeError(f"{root}: files kept vanishing while reading (a compaction running in a loop?)")


# -- S3 ----------------------------------------------------------------------------------
def _read_s3(uri: str, start, end, endpoint_url) -> list[pd.DataFrame]:
    from fraud.storage.blob import S3BlobStore, split_s3_uri

    bucket, prefix = split_s3_uri(uri)
    blobs = S3BlobStore(bucket, prefix, endpoint_url=endpoint_url)
    if start is not None and end is not None:  # only the days asked for (and the slack)
        first, last = (start - ARRIVAL_SLACK).date(), (end + ARRIVAL_SLACK).date()
        keys = [k for n in range((last - first).days + 1)
                for k in blobs.list(f"{PARTITION}{first + timedelta(days=n)}/")]
    else:
        keys = blobs.list()
    records = []
    for key in keys:
        found = _DAY.search("/" + key)
        if _in_range(found.group(1) if found else None, start, end, ARRIVAL_SLACK):
            records += json_lines(blobs.get(key), blobs.url(key))
    return [flatten(records)]


def read_decisions(uri, start=None, end=None, endpoint_url: str | None = None) -> pd.DataFrame:
    """The decisions scored in [start, end) (UTC; a date is its midnight; None: unbounded),
    from a local root or ``s3://bucket/decisions``."""
    start, end = _when(start), _when(end)
    uri = str(uri)
    frames = _read_s3(uri, start, end, endpoint_url) if uri.startswith("s3://") else _read_local(Path(uri), start,
                                                                                                  end)
    return _finish(frames, start, end)


# -- compaction --------------------------------------------------------------------------
def compact_decisions(root, now: datetime | None = None, grace: timedelta = timedelta(hours=1)) -> list[str]:
    """Rewrite each local day that ended at least ``grace`` ago and still has JSON Lines
    files as one Parquet file (temp name, fsync, rename), then delete what it replaced.
    Returns the days compacted. ``grace``: a writer may still append a record of the day
    just ended (it was scored before midnight); none writes an hour later."""
    root, now = Path(root), now or datetime.now(timezone.utc)
    done = []
    for folder in sorted(root.glob(f"{PARTITION}*")):
        day = folder.name[len(PARTITION):]
        ended = datetime.combine(date.fromisoformat(day) + timedelta(days=1), datetime.min.time(), timezone.utc)
        old = [p for p in folder.iterdir() if p.name.startswith((WAL_PREFIX, PARQUET_PREFIX))]
        if now < ended + grace or not any(p.name.startswith(WAL_PREFIX) for p in old):
            continue
        frame = _finish(_local_day(folder), None, None)
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        data = buffer.getvalue()
        target = folder / f"{PARQUET_PREFIX}{hashlib.sha256(data).hexdigest()[:24]}.parquet"
        LocalBlobStore(folder).put(target.name, data)  # temp name, fsync, rename
        for path in old:
            if path != target:
                path.unlink(missing_ok=True)
        done.append(day)
    return done
