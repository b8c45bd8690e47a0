"""Reading transaction tables: Parquet (a file, a directory of daily partitions, or an
s3:// prefix) or CSV, in chunks of bounded size, validated on the way in.

    frame, report = load_transactions("data/transactions", config)

Only the mapped columns are read. Rejected rows are written to a quarantine CSV, and
only once the whole input has passed the bad-row threshold: a run that stops writes
nothing.
"""

from __future__ import annotations

import io
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pandas as pd
import pyarrow.parquet as pq

from .config import FraudConfig
from .storage.blob import open_blob_store
from .validation import InputError, ValidationReport, Validator

log = logging.getLogger(__name__)
TABLE_SUFFIXES = (".parquet", ".csv", ".csv.gz")


def _is_table(name: str) -> bool:
    return name.endswith(TABLE_SUFFIXES) and not Path(name).name.startswith((".", "_"))


def list_table_files(source: str | Path, endpoint_url: str | None = None) -> list[str]:
    """The data files of a source, in path order (daily partitions sort by date)."""
    source = str(source)
    if source.startswith("s3://"):
        store = open_blob_store(source, endpoint_url)
        return [store.url(k) for k in store.list() if _is_table(k)]
    path = Path(source)
    if path.is_file():
        return [str(path)]
    if path.is_dir():
        return sorted(str(p) for p in path.rglob("*") if p.is_file() and _is_table(p.name))
    raise InputError(f"input {source!r} does not exist: give a table file (.parquet, .csv, .csv.gz), a directory "
                     "of them or an s3:// prefix")


def _open(uri: str, endpoint_url: str | None):
    if uri.startswith("s3://"):
        bucket_and_key = uri[len("s3://"):]
        bucket, _, key = bucket_and_key.partition("/")
        return io.BytesIO(open_blob_store(f"s3://{bucket}", endpoint_url).get(key))
    return uri


def iter_raw_chunks(source, chunk_rows: int, columns: list[str] | None = None,
                    endpoint_url: str | None = None) -> Iterator[pd.DataFrame]:
    """Raw chunks of about ``chunk_rows`` rows (small files are gathered, big ones split),
    reading only ``columns`` where possible."""
    pending: list[pd.DataFrame] = []
    size = 0
    for piece in _iter_pieces(source, chunk_rows, columns, endpoint_url):
        pending.append(piece)
        size += len(piece)
        if size >= chunk_rows:
            yield pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0]
            pending, size = [], 0
    if pending:
        yield pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0]


def _iter_pieces(source, chunk_rows, columns, endpoint_url) -> Iterator[pd.DataFrame]:
    files = list_table_files(source, endpoint_url)
    if not files:
        raise InputError(f"no .parquet or .csv files under {source!r} (names starting with '.' or '_' are "
                         "skipped): give a table file or a directory of them, e.g. daily partitions "
                         "date=YYYY-MM-DD/part-0.parquet")
    for uri in files:
        handle = _open(uri, endpoint_url)
        if uri.endswith(".parquet"):
            parquet = pq.ParquetFile(handle)
            available = set(parquet.schema_arrow.names)
            wanted = [c for c in columns if c in available] if columns else None
            for batch in parquet.iter_batches(batch_size=chunk_rows, columns=wanted):
                yield batch.to_pandas()
        else:
            for chunk in pd.read_csv(handle, chunksize=chunk_rows, dtype=str, keep_default_na=True,
                                     usecols=lambda c: columns is None or c in columns):
                yield chunk


def iter_transactions(source, config: FraudConfig, require_label: bool = False,
                      endpoint_url: str | None = None, validator: Validator | None = None):
    """Yield (valid chunk, rejected chunk) pairs; ``validator.report`` accumulates counts."""
    validator = validator or Validator(config.columns, config.data.label_delay.total_seconds(), require_label,
                                       config.data.timestamp_format, config.data.timezone)
    columns = list(config.columns.present().values())
    row = 0
    for raw in iter_raw_chunks(source, config.data.chunk_rows, columns, endpoint_url):
        good, bad = validator.validate(raw, row)
        row += len(raw)
        yield good, bad


def load_transactions(source, config: FraudConfig, require_label: bool = False,
                      quarantine_dir: str | Path | None = None,
                      endpoint_url: str | None = None) -> tuple[pd.DataFrame, ValidationReport]:
    """Read, validate and concatenate a whole source; quarantine the bad rows.

    Raises ``InputError`` (and writes nothing) on a fatal problem or when the share of bad
    rows exceeds ``config.data.max_bad_row_fraction``.
    """
    validator = Validator(config.columns, config.data.label_delay.total_seconds(), require_label,
                          config.data.timestamp_format, config.data.timezone)
    good_parts, bad_parts = [], []
    for good, bad in iter_transactions(source, config, require_label, endpoint_url, validator):
        good_parts.append(good)
        if len(bad):
            bad_parts.append(bad)
    validator.check_fraction(config.data.max_bad_row_fraction)
    report = validator.report
    frame = pd.concat(good_parts, ignore_index=True) if good_parts else pd.DataFrame()
    if bad_parts:
        target = Path(quarantine_dir or config.data.quarantine_dir)
        target.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        path = target / f"quarantine-{stamp}.csv"
        tmp = path.with_suffix(".csv.tmp")
        pd.concat(bad_parts, ignore_index=True).to_csv(tmp, index=False)
        tmp.replace(path)
        report.quarantine_path = str(path)
        log.warning("%d invalid rows quarantined to %s\n%s", report.rows_bad, path, report.summary())
    log.info("read %d valid transactions from %s", len(frame), source)
    return frame, report
