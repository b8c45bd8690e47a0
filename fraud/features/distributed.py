"""The same features with Dask, for data that outgrows one machine.

Card features depend only on the card's rows, terminal features only on the terminal's
rows (and their labels). So the table is shuffled by card, each partition runs the batch
engine on the card features; shuffled by terminal for the terminal features; and the two
are joined on the transaction id. Every partition holds whole entities, so the numbers
are exactly the single-process ones. The common-point-of-compromise features cross
entities (a card's frauds count at the terminals it used, and a terminal's at its cards):
their fraud label times (the fraud rows' card, terminal and label time: a small table) are
collected once from the whole table and handed to every partition (``CrossContext``).

    with dask_client("local") as client:          # or "tcp://scheduler:8786"
        features = build_features_dask(transactions, spec)
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging

import numpy as np
import pandas as pd

from ..schema import CARD_ID, LABEL, LABEL_TIME, TERMINAL_ID, TRANSACTION_ID
from .batch import CrossContext, build_features
from .spec import CARD, CARD_TERMINAL, CROSS_AGGREGATIONS, TERMINAL, TRANSACTION, FeatureSpec

log = logging.getLogger(__name__)


@contextlib.contextmanager
def dask_client(address: str | None = "local", n_workers: int | None = None):
    """A distributed Client: ``"local"`` starts a LocalCluster (the embedded default),
    anything else is a scheduler address."""
    from dask.distributed import Client, LocalCluster

    if address in (None, "", "local"):
        import os

        workers = n_workers or max(1, min(4, os.cpu_count() or 1))
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None, silence_logs=logging.WARNING) as cluster, \
                Client(cluster) as client:
            log.info("dask LocalCluster with %d workers", workers)
            yield client
    else:
        with Client(address) as client:
            log.info("dask scheduler %s", address)
            yield client


def _subspec(spec: FeatureSpec, entities) -> FeatureSpec:
    return dataclasses.replace(spec, features=tuple(f for f in spec.features if f.entity in entities))


def _features_of(part: pd.DataFrame, spec: FeatureSpec, context: CrossContext | None = None) -> pd.DataFrame:
    feats = build_features(part, spec, context)
    feats.insert(0, TRANSACTION_ID, part[TRANSACTION_ID].to_numpy())
    return feats


def build_features_dask(transactions, spec: FeatureSpec, npartitions: int | None = None,
                        compute: bool = True):
    """Features for a pandas or Dask DataFrame of canonical transactions.

    Returns a pandas DataFrame indexed by transaction id (``compute=True``) or the lazy
    Dask DataFrame.
    """
    import dask.dataframe as dd

    ddf = transactions if isinstance(transactions, dd.DataFrame) else \
        dd.from_pandas(transactions, npartitions=npartitions or 4)
    parts = npartitions or ddf.npartitions
    context = None
    if spec.needs(*CROSS_AGGREGATIONS) and LABEL in ddf.columns and LABEL_TIME in ddf.columns:
        frauds = ddf.loc[ddf[LABEL] == 1, [CARD_ID, TERMINAL_ID, LABEL, LABEL_TIME]]
        context = CrossContext.from_frame(frauds.compute())
    pieces = []
    for entities, column in (((TRANSACTION,), None), ((CARD, CARD_TERMINAL), CARD_ID), ((TERMINAL,), TERMINAL_ID)):
        sub = _subspec(spec, entities)
        if not sub.features:
            continue
        source = ddf if column is None else ddf.shuffle(on=column, npartitions=parts)
        meta = pd.DataFrame({TRANSACTION_ID: pd.Series(dtype="string"),
                             **{name: pd.Series(dtype=np.float64) for name in sub.names}})
        pieces.append(source.map_partitions(_features_of, sub, context, meta=meta))
    joined = pieces[0]
    for piece in pieces[1:]:
        joined = joined.merge(piece, on=TRANSACTION_ID, how="inner")
    joined = joined[[TRANSACTION_ID, *spec.names]]
    if not compute:
        return joined
    return joined.compute().set_index(TRANSACTION_ID)
