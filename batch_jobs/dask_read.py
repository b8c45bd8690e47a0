"""Reading and validating transactions on a Dask cluster, the rows never in the driver.

``dask.dataframe.read_parquet`` reads the daily ``date=YYYY-MM-DD`` partitions (a local
directory, or ``s3://`` through pyarrow's own S3 filesystem); days outside ``[start, end)``
are pruned by the partition filter, not opened. Each partition is validated on a worker
by the same ``fraud.validation.Validator`` rules as ``fraud.io.load_transactions``; a
transaction id repeated in another partition is found by a shuffle of the ids' hashes (the
first in row order is kept, as the serial reader keeps it). Only counts, examples and the
few duplicated hashes come back to the driver. Bad rows are written by the workers, one CSV
per partition under ``<quarantine_dir>/quarantine-<stamp>/``, and only once the whole input
passed the ``max_bad_row_fraction`` check (a run that stops writes nothing). The quarantine
directory must be reachable by the workers (a shared path; on a LocalCluster any path).

    valid, report = read_transactions_dask(client, "data/transactions", config, require_label=True)
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from fraud.config import FraudConfig
from fraud.schema import TRANSACTION_ID
from fraud.validation import CARD_MASK, EXAMPLES, InputError, ValidationReport, Validator

log = logging.getLogger(__name__)
ROW, HASH, DUPLICATE = "_row", "_hash", "transaction_id: duplicate transaction_id"


def _filesystem(source: str, endpoint_url: str | None):
    """pyarrow's S3 filesystem for ``s3://`` (no s3fs needed), else the default."""
    if not source.startswith("s3://"):
        return None, source
    from pyarrow import fs

    # endpoint_url: another S3 (moto, MinIO), e.g. http://127.0.0.1:5000
    return fs.S3FileSystem(endpoint_override=endpoint_url) if endpoint_url else fs.S3FileSystem(), source[5:]


def read_raw(source, columns: list[str], start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
             endpoint_url: str | None = None):
    """The raw Dask DataFrame of ``source``'s Parquet files, only ``columns`` (those present),
    the ``date=`` partitions outside ``[start, end)`` pruned."""
    import dask.dataframe as dd
    import pyarrow.dataset as ds

    filesystem, path = _filesystem(str(source), endpoint_url)
    dataset = ds.dataset(path, format="parquet", partitioning="hive", filesystem=filesystem,
                         exclude_invalid_files=False, ignore_prefixes=[".", "_"])
    names = set(dataset.schema.names)
    if not dataset.files:
        raise InputError(f"no .parquet files under {source!r}: give a directory of daily partitions "
                         "date=YYYY-MM-DD/part-0.parquet or an s3:// prefix")
    filters = []
    if "date" in names:
        if start is not None:
            filters.append(("date", ">=", start.strftime("%Y-%m-%d")))
        if end is not None:
            filters.append(("date", "<", end.ceil("D").strftime("%Y-%m-%d") if end != end.floor("D")
                            else end.strftime("%Y-%m-%d")))
    wanted = [c for c in columns if c in names and c != "date"]
    kwargs = {"filesystem": filesystem} if filesystem is not None else {}
    return dd.read_parquet(path, columns=wanted, filters=filters or None, dataset={"partitioning": "hive"},
                           **kwargs)


def partitions_for(client, rows: int, rows_per_partition: int = 1_000_000) -> int:
    """Two partitions a worker, more once partitions would pass ``rows_per_partition``: a
    shuffle's fixed cost grows with the partitions, a partition's memory with its rows
    (daily partitions of a small table are too many: 45 of them shuffled 3x slower than 4)."""
    workers = max(1, len(client.scheduler_info()["workers"]))
    return max(2 * workers, -(-int(rows) // rows_per_partition))


def _validator(config: FraudConfig, require_label: bool) -> Validator:
    return Validator(config.columns, config.data.label_delay.total_seconds(), require_label,
                     config.data.timestamp_format, config.data.timezone)


def _validate_part(raw: pd.DataFrame, first_row: int, config: FraudConfig, require_label: bool):
    """(valid rows with ``_row`` and ``_hash``, rejected rows, the partition's report)."""
    validator = _validator(config, require_label)
    good, bad = validator.validate(raw.reset_index(drop=True), first_row)
    rows = np.arange(first_row, first_row + len(raw), dtype=np.int64)
    good[ROW] = rows[~np.isin(rows, bad[ROW].to_numpy())]  # valid rows keep their order
    good[HASH] = pd.util.hash_array(good[TRANSACTION_ID].to_numpy(dtype=object), categorize=False).view(np.int64)
    return good, bad, validator.report


def _drop_repeats(good: pd.DataFrame, repeats: pd.Series, config: FraudConfig):
    """Rows whose id was seen earlier in another partition, moved to the rejected rows."""
    again = good[HASH].map(repeats).notna().to_numpy() & (good[ROW].to_numpy() > good[HASH].map(repeats).to_numpy())
    rejected = good.loc[again].drop(columns=[HASH])
    inverse = {ours: theirs for ours, theirs in config.columns.present().items()}
    rejected = rejected.rename(columns=inverse)
    card = config.columns.card_id
    if card in rejected:
        rejected[card] = CARD_MASK
    rejected.insert(1, "_reason", DUPLICATE)
    rejected = rejected[[ROW, "_reason", *[c for c in rejected.columns if c not in (ROW, "_reason")]]]
    return good.loc[~again].drop(columns=[ROW, HASH]).reset_index(drop=True), rejected


def _write_csv(frame: pd.DataFrame, path: str) -> int:
    if len(frame):
        tmp = Path(path).with_suffix(".csv.tmp")
        frame.to_csv(tmp, index=False)
        tmp.replace(path)
    return len(frame)


def _merge_reports(parts: list[ValidationReport]) -> ValidationReport:
    total = ValidationReport()
    for part in parts:
        total.rows_in += part.rows_in
        total.rows_ok += part.rows_ok
        total.reasons.update(part.reasons)
        for reason, shown in part.examples.items():
            kept = total.examples.setdefault(reason, [])
            kept.extend(shown[:max(0, EXAMPLES - len(kept))])
    return total


def read_transactions_dask(client, source, config: FraudConfig, require_label: bool = False,
                           start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
                           quarantine_dir: str | Path | None = None, endpoint_url: str | None = None):
    """(valid transactions as a Dask DataFrame persisted on the workers, the report).

    Raises ``InputError`` (and writes nothing) on a fatal problem or when the share of bad
    rows exceeds ``config.data.max_bad_row_fraction``."""
    import dask
    import dask.dataframe as dd

    raw = read_raw(source, list(config.columns.present().values()), start, end, endpoint_url)
    # lengths of the very partitions validated: a projected read (len alone) may be split
    # into other partitions by the optimiser, and zipping those would drop rows silently
    parts = client.persist(raw.to_delayed())
    lengths = client.gather(client.compute([dask.delayed(len)(part) for part in parts]))
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
    checked = [dask.delayed(_validate_part, nout=3)(part, int(offset), config, require_label)
               for part, offset in zip(parts, offsets, strict=True)]
    checked = client.persist(checked)
    reports = client.gather(client.compute([c[2] for c in checked]))  # fatal errors surface here
    goods = [c[0] for c in checked]
    if not goods:
        raise InputError(f"no .parquet files under {source!r} in the dates asked for")
    meta = client.compute(dask.delayed(lambda g: g.iloc[:0])(goods[0])).result()
    hashes = dd.from_delayed([dask.delayed(lambda g: g[[HASH, ROW]])(g) for g in goods],
                             meta=meta[[HASH, ROW]])
    counts = hashes.groupby(HASH)[ROW].agg(["count", "min"])
    repeats = counts[counts["count"] > 1]["min"].compute()  # the few repeated ids: small
    cleaned = [dask.delayed(_drop_repeats, nout=2)(g, repeats, config) for g in goods]
    cleaned = client.persist(cleaned)
    report = _merge_reports(reports)
    if len(repeats):
        dup_counts = client.gather(client.compute([dask.delayed(len)(c[1]) for c in cleaned]))
        n_dup = int(sum(dup_counts))
        report.rows_ok -= n_dup
        report.reasons[DUPLICATE] += n_dup
        firsts = client.gather(client.compute([dask.delayed(lambda r: r.head(EXAMPLES))(c[1]) for c in cleaned]))
        shown = report.examples.setdefault(DUPLICATE, [])
        for first in firsts:
            for _, row in first.iterrows():
                if len(shown) < EXAMPLES:
                    shown.append((int(row[ROW]), row.get(config.columns.transaction_id)))
    validator = _validator(config, require_label)
    validator.report = report
    validator.check_fraction(config.data.max_bad_row_fraction)
    if report.rows_bad:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        target = Path(quarantine_dir or config.data.quarantine_dir) / f"quarantine-{stamp}"
        target.mkdir(parents=True, exist_ok=True)
        writes = [dask.delayed(_write_csv)(dask.delayed(pd.concat)([bad, c[1]], ignore_index=True),
                                           str(target / f"part-{i:05d}.csv"))
                  for i, (bad, c) in enumerate(zip([c[1] for c in checked], cleaned))]
        client.gather(client.compute(writes))
        report.quarantine_path = str(target)
        log.warning("%d invalid rows quarantined to %s\n%s", report.rows_bad, target, report.summary())
    valid = dd.from_delayed([c[0] for c in cleaned], meta=meta.drop(columns=[ROW, HASH]), verify_meta=False)
    log.info("read %d valid transactions from %s in %d partitions", report.rows_ok, source, valid.npartitions)
    return valid, report
