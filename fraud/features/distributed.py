"""The same features with Dask, for data that outgrows one machine.

Card features depend only on the card's rows, terminal features only on the terminal's
rows (and their labels). So the table is shuffled by terminal and each partition adds the
batch engine's terminal features to its rows; that result is shuffled by card and each
partition adds the row and card features (two shuffles, no join). Every partition holds
whole entities, so the numbers are exactly the single-process ones. The
common-point-of-compromise features cross entities (a card's frauds count at the terminals
it used, and a terminal's at its cards): their fraud label times (the fraud rows' card,
terminal and label time: a small table) are collected once from the whole table and handed
to every partition (``CrossContext``).

    with dask_client("local") as client:          # or "tcp://scheduler:8786"
        features = build_features_dask(transactions, spec)
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging

import numpy as np
import pandas as pd

from ..schema import AMOUNT, CARD_ID, LABEL, LABEL_TIME, TERMINAL_ID, TIMESTAMP, TRANSACTION_ID
from .batch import CrossContext, build_features
from .spec import CARD, CARD_TERMINAL, CROSS_AGGREGATIONS, TERMINAL, TRANSACTION, FeatureSpec

log = logging.getLogger(__name__)
MALLOC_TRIM = "MALLOC_TRIM_THRESHOLD_"


@contextlib.contextmanager
def dask_client(address: str | None = "local", n_workers: int | None = None):
    """A distributed Client: ``"local"`` starts a LocalCluster (the embedded default),
    anything else is a scheduler address (whose workers are configured where they run)."""
    from dask.distributed import Client, LocalCluster

    if address in (None, "", "local"):
        import os

        workers = n_workers or max(1, min(4, os.cpu_count() or 1))
        with _adaptive_malloc(), \
                LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                             dashboard_address=None, silence_logs=logging.WARNING) as cluster, \
                Client(cluster) as client:
            log.info("dask LocalCluster with %d workers", workers)
            yield client
    else:
        with Client(address) as client:
            log.info("dask scheduler %s", address)
            yield client


@contextlib.contextmanager
def _adaptive_malloc():
    """Local workers spawned without ``MALLOC_TRIM_THRESHOLD_``, so glibc keeps its adaptive
    mmap threshold: Dask's default of that variable (which returns memory to the OS sooner)
    turns it off, and every array of a partition's columns is a fresh mmap, page-faulted in
    again; the 5M-row feature table on one worker took a median 18.3 s with it and 16.3 s
    without (five alternating runs each). A worker may hold on to some freed memory instead.
    Taken out of Dask's config and, for the cluster's life, out of this process's
    environment, which workers inherit and a Nanny started earlier in it has set."""
    import os

    import dask

    environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ").items() if k != MALLOC_TRIM}
    saved = os.environ.pop(MALLOC_TRIM, None)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
            yield
    finally:
        if saved is not None:
            os.environ[MALLOC_TRIM] = saved


def _subspec(spec: FeatureSpec, entities) -> FeatureSpec:
    return dataclasses.replace(spec, features=tuple(f for f in spec.features if f.entity in entities))


def _with_features(part: pd.DataFrame, spec: FeatureSpec, context: CrossContext | None,
                   keep: list[str]) -> pd.DataFrame:
    """The partition's ``keep`` columns with ``spec``'s features beside them (a feature named
    like a kept column, ``amount``, is that column's value and is not repeated)."""
    feats = build_features(part, spec, context)
    out = part[keep].reset_index(drop=True)
    new = [name for name in spec.names if name not in out.columns]
    return pd.concat([out, feats[new].reset_index(drop=True)], axis=1)


def cross_context(ddf) -> CrossContext | None:
    """The fraud label times every partition needs for the compromise features (a small
    table, collected once), or None when the table has no labels."""
    if LABEL in ddf.columns and LABEL_TIME in ddf.columns:
        frauds = ddf.loc[ddf[LABEL] == 1, [CARD_ID, TERMINAL_ID, LABEL, LABEL_TIME]]
        return CrossContext.from_frame(frauds.compute())
    return None


def with_features(ddf, spec: FeatureSpec, keep: list[str], npartitions: int | None = None):
    """Lazy Dask DataFrame of ``keep`` and ``spec``'s features, in two passes and no join:
    shuffled by terminal, each partition adds the terminal features; that result, shuffled
    by card, adds the transaction and card features. Only the columns a later pass or the
    caller needs travel through the shuffles (joining per-entity pieces on the transaction
    id instead cost two more shuffles of string keys and doubled the time)."""
    parts = npartitions or ddf.npartitions
    context = cross_context(ddf) if spec.needs(*CROSS_AGGREGATIONS) else None
    by_terminal = _subspec(spec, (TERMINAL,))
    by_card = _subspec(spec, (TRANSACTION, CARD, CARD_TERMINAL))
    # the terminal pass first: its 10 features, not the card pass's 22, ride the second shuffle
    card_needs = by_card.columns_read() if by_card.features else []
    table = _pass(ddf, by_terminal, TERMINAL_ID, context, [*keep, *card_needs], parts)
    table = _pass(table, by_card, CARD_ID, context, [*keep, *by_terminal.names], parts)
    return table[list(dict.fromkeys([*keep, *spec.names]))]


def _pass(table, spec: FeatureSpec, entity: str, context, keep: list[str], parts: int):
    """``table`` shuffled by ``entity`` with ``spec``'s features added to the ``keep`` columns.
    Only the columns kept or read travel (the others, e.g. currency and merchant category,
    were a third of the shuffles' string copies)."""
    keep = [c for c in dict.fromkeys(keep) if c in table.columns]
    if not spec.features:
        return table[keep]
    table = table[[c for c in dict.fromkeys([*keep, *spec.columns_read()]) if c in table.columns]]
    meta = _with_features(table._meta, spec, context, keep)
    return table.shuffle(on=entity, npartitions=parts, shuffle_method=_shuffle_method(parts)).map_partitions(
        _with_features, spec, context, keep, meta=meta)


def _shuffle_method(npartitions: int) -> str:
    """The feature passes' shuffle, named on each shuffle (a config set around the graph's
    construction is gone by the time a caller computes it): task-based for a few dozen
    partitions, where p2p's fixed cost per shuffle dominates (140k rows, 4 partitions, 2
    workers: 17 s against 26 s; 1M rows, 2 partitions, 1 worker: 0.9 s against 4.8 s, and
    p2p's output partitions made the features 2.3x slower; 5M rows, 5 partitions, 2 workers:
    12.5 s against 21 s for the whole table), p2p beyond."""
    return "tasks" if npartitions <= 32 else "p2p"


def build_features_dask(transactions, spec: FeatureSpec, npartitions: int | None = None,
                        compute: bool = True):
    """Features for a pandas or Dask DataFrame of canonical transactions.

    Returns a pandas DataFrame indexed by transaction id (``compute=True``) or the lazy
    Dask DataFrame (transaction id and the features, in no particular row order).
    """
    import dask.dataframe as dd

    ddf = transactions if isinstance(transactions, dd.DataFrame) else \
        dd.from_pandas(transactions, npartitions=npartitions or 4)
    joined = with_features(ddf, spec, [TRANSACTION_ID], npartitions)
    joined = joined[[TRANSACTION_ID, *spec.names]]
    if not compute:
        return joined
    return joined.compute().set_index(TRANSACTION_ID)
