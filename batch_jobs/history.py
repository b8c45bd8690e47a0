"""Reading the slice of history that features need, with bounded memory.

Features of a transaction look back at most the longest window (30 days by default), so
scoring a day needs that day plus the preceding windows, not the whole table. Files of a
``date=YYYY-MM-DD`` partitioned directory outside the range are not even opened; other
sources are read chunk by chunk and filtered.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from fraud.config import FraudConfig
from fraud.features.spec import FeatureSpec, bucket_seconds
from fraud.io import iter_transactions, list_table_files
from fraud.schema import TIMESTAMP
from fraud.validation import Validator

PARTITION = re.compile(r"date=(\d{4}-\d{2}-\d{2})")


def lookback(spec: FeatureSpec) -> pd.Timedelta:
    """How far back any feature of ``spec`` can look (longest window plus one bucket)."""
    windows = [f.window for f in spec.features if f.window] + [spec.history_window]
    longest = max(windows)
    return pd.Timedelta(seconds=longest + bucket_seconds(longest))


def files_in_range(source, start: pd.Timestamp, end: pd.Timestamp, endpoint_url=None) -> list[str]:
    files = list_table_files(source, endpoint_url)
    out = []
    for f in files:
        m = PARTITION.search(f)
        if m is None:
            out.append(f)
            continue
        day = pd.Timestamp(m.group(1), tz="UTC")
        if start.floor("D") <= day < end:
            out.append(f)
    return out


def read_range(source, config: FraudConfig, start: pd.Timestamp, end: pd.Timestamp,
               endpoint_url=None) -> pd.DataFrame:
    """Valid transactions with start <= timestamp < end (bad rows are skipped here; the
    nightly job is where they are counted and quarantined)."""
    validator = Validator(config.columns, config.data.label_delay.total_seconds(),
                          timestamp_format=config.data.timestamp_format, timezone=config.data.timezone)
    parts = []
    for uri in files_in_range(source, start, end, endpoint_url):
        for good, _ in iter_transactions(uri, config, endpoint_url=endpoint_url, validator=validator):
            keep = (good[TIMESTAMP] >= start) & (good[TIMESTAMP] < end)
            if keep.any():
                parts.append(good.loc[keep])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def latest_day(source, endpoint_url=None) -> str | None:
    """The newest ``date=`` partition of a directory, if it is partitioned."""
    days = [m.group(1) for f in list_table_files(source, endpoint_url) if (m := PARTITION.search(f))]
    return max(days) if days else None


def partition_path(source, day: str) -> str | None:
    for f in list_table_files(source):
        if f"date={day}" in f:
            return str(Path(f).parent) if not str(source).startswith("s3://") else f
    return None
