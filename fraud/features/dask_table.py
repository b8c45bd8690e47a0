"""The feature table on Dask: features of the Dask engine plus the columns training and
evaluation need beside them, written as ``date=YYYY-MM-DD`` partitioned Parquet by the
workers, so windows of it are read back by partition pruning and nothing passes through
the driver.

    write_feature_table(valid_transactions, spec, "runs/<id>/features")
    table = read_feature_table("runs/<id>/features", start, end)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ..schema import AMOUNT, CARD_ID, LABEL, LABEL_TIME, TERMINAL_ID, TIMESTAMP, TRANSACTION_ID
from .distributed import with_features
from .spec import FeatureSpec

CARRIED = (TIMESTAMP, CARD_ID, TERMINAL_ID, AMOUNT, LABEL, LABEL_TIME, "fraud_pattern")
DATE = "date"


def feature_table(transactions, spec: FeatureSpec, extra: tuple[str, ...] = ()):
    """Lazy Dask DataFrame: transaction id, the carried columns present (and ``extra``),
    ``date`` and the features (exactly the single-process engine's numbers), partitioned by
    card."""
    carried = [c for c in (*CARRIED, *extra) if c in transactions.columns]
    table = with_features(transactions, spec, [TRANSACTION_ID, *carried])
    meta = _with_date(table._meta)
    return table.map_partitions(_with_date, meta=meta)[[TRANSACTION_ID, *carried, DATE,
                                                        *(n for n in spec.names if n not in carried)]]


def _with_date(part: pd.DataFrame) -> pd.DataFrame:
    """``date`` (UTC, YYYY-MM-DD) of each row: formatted once per distinct day and taken
    by Arrow (a ``strftime`` per row was a fifth of the feature table's time, an object
    array of the names made into strings 6x the take)."""
    stamps = part[TIMESTAMP]
    if not len(part):
        return part.assign(**{DATE: pd.array([], dtype="string")})
    utc = stamps.dt.tz_convert("UTC").dt.tz_localize(None) if stamps.dt.tz is not None else stamps
    day = utc.to_numpy().astype("datetime64[D]").astype(np.int64)
    first = int(day.min())
    offset = day - first
    seen = np.flatnonzero(np.bincount(offset))           # the partition's days, without a sort
    names = np.full(int(offset.max()) + 1, "", dtype=object)
    names[seen] = np.datetime_as_string((seen + first).astype("datetime64[D]"), unit="D")
    return part.assign(**{DATE: pd.array(pa.array(names, pa.string()).take(pa.array(offset)), dtype="string")})


def write_feature_table(transactions, spec: FeatureSpec, path) -> str:
    """Compute the feature table on the workers into partitioned Parquet at ``path``: each
    partition writes its rows of a day to ``date=YYYY-MM-DD/part-<partition>-0.parquet``
    with pyarrow's dataset writer (no shuffle by day, which cost as much as the features;
    Dask's ``to_parquet(partition_on=...)`` splits by day in pandas and took twice as long
    as the dataset writer on 1M rows). The days are read back by partition pruning."""
    Path(path).mkdir(parents=True, exist_ok=True)
    table = feature_table(transactions, spec)
    written = table.map_partitions(_write_days, str(path), meta=pd.Series(dtype=np.int64), partition_info=None)
    written.sum().compute()
    return str(path)


def _write_days(part: pd.DataFrame, path: str, partition_info=None) -> pd.Series:
    """One partition's rows into ``path/date=.../``; the number of rows written."""
    import pyarrow.dataset as ds

    number = (partition_info or {}).get("number", 0)
    if len(part):
        table = pa.Table.from_pandas(part, preserve_index=False)
        ds.write_dataset(table, path, format="parquet", file_options=_write_options(table),
                         partitioning=[DATE], partitioning_flavor="hive",
                         basename_template=f"part-{number:05d}-{{i}}.parquet",
                         existing_data_behavior="overwrite_or_ignore")
    return pd.Series([len(part)], dtype=np.int64)


def _write_options(table):
    """Dictionary encoding only where values repeat (ids of cards and terminals, labels,
    patterns): a float feature's or a timestamp's dictionary overflows and is thrown away
    page by page, which was 60 % of the write (1M rows: 1.37 s against 0.51 s)."""
    import pyarrow.dataset as ds

    repeating = [field.name for field in table.schema if field.name != TRANSACTION_ID
                 and not pa.types.is_floating(field.type) and not pa.types.is_timestamp(field.type)]
    return ds.ParquetFileFormat().make_write_options(use_dictionary=repeating)


def read_feature_table(path, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None, columns=None):
    """The rows with start <= timestamp < end, reading only the days that can hold them."""
    import dask.dataframe as dd

    filters = []
    if start is not None:
        filters.append((DATE, ">=", start.strftime("%Y-%m-%d")))
    if end is not None:
        filters.append((DATE, "<=", end.strftime("%Y-%m-%d")))
    table = dd.read_parquet(str(path), filters=filters or None, columns=columns,
                            dataset={"partitioning": "hive"})
    if start is not None:
        table = table[table[TIMESTAMP] >= start]
    if end is not None:
        table = table[table[TIMESTAMP] < end]
    return table


def row_uniform(ids: pd.Series, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per transaction id, the same on any worker and partition
    (down-sampling that does not depend on how the data is split)."""
    hashed = pd.util.hash_array(ids.to_numpy(dtype=object), hash_key=f"{seed:016d}"[:16], categorize=False)
    return (hashed >> np.uint64(11)).astype(np.float64) / float(1 << 53)
