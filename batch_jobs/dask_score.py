"""``fraud score-batch --dask``: read, featurise, score and write on the workers.

The input day(s) and the history the features look back on (``lookback``: the longest
window) are read as partitioned Parquet (``batch_jobs.dask_read``, the same validation;
history days outside the range are pruned); history rows that are also in the input are
dropped by an anti-join on the transaction id; the Dask feature engine computes the
features of the union; each partition of the input rows is scored by ``score_frame``
(the same scores, decisions, reasons and card tokens as the single-process path) and
written by its worker into ``<output>/date=YYYY-MM-DD/part.N.parquet``. The driver gets
the model and the counts back, never the rows.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from fraud.config import FraudConfig
from fraud.features.dask_table import DATE, feature_table
from fraud.pseudonym import configured_pseudonymizer
from fraud.registry import ModelRegistry, RegistryError
from fraud.schema import TIMESTAMP, TRANSACTION_ID
from fraud.validation import InputError

from .dask_read import partitions_for, read_transactions_dask
from .history import lookback
from .scoring import score_frame

log = logging.getLogger(__name__)
INPUT = "_input"


def _scored(part: pd.DataFrame, bundle, names: list[str], version: str, keys) -> pd.DataFrame:
    part = part[part[INPUT]].reset_index(drop=True)
    out = score_frame(bundle, part, part[names], version, keys)
    out[DATE] = part[DATE].astype(str).to_numpy()
    text = [c for c in out.columns if out[c].dtype == object]
    return out.astype({c: "string" for c in text})  # typed, so every part writes one schema


def score_batch_dask(client, input_path, output_path, config: FraudConfig, registry: ModelRegistry,
                     history_source=None, endpoint_url: str | None = None, raw_card_ids: bool = False,
                     no_history: bool = False) -> dict:
    """Score every transaction of ``input_path`` with the champion into the partitioned
    Parquet directory ``output_path``; returns the counts (as ``score_batch``)."""
    import dask
    import dask.dataframe as dd

    if history_source is None and not no_history:
        raise InputError("score-batch needs the transactions before the input for the card and terminal features "
                         "(--history DIR); pass --no-history to score the input on its own anyway.")
    version = registry.champion()
    if version is None:
        raise RegistryError(f"no champion model in {registry.uri}; run `fraud train` first")
    bundle = registry.load(version)
    keys = None if raw_card_ids else configured_pseudonymizer(endpoint_url)
    frame, report = read_transactions_dask(client, input_path, config, endpoint_url=endpoint_url,
                                           quarantine_dir=Path(output_path).parent / "quarantine")
    start, end, n_rows = dask.compute(frame[TIMESTAMP].min(), frame[TIMESTAMP].max(), frame.map_partitions(len).sum())
    if not n_rows:
        raise InputError(f"{input_path} holds no valid transactions")
    combined = frame.assign(**{INPUT: True})
    if history_source is not None:
        history, _ = read_transactions_dask(client, history_source, config, start=start - lookback(bundle.spec),
                                            end=end + pd.Timedelta(microseconds=1), endpoint_url=endpoint_url,
                                            quarantine_dir=Path(output_path).parent / "quarantine")
        history = history[(history[TIMESTAMP] >= start - lookback(bundle.spec)) & (history[TIMESTAMP] <= end)]
        ids = frame[[TRANSACTION_ID]].assign(_seen=True)
        history = history.merge(ids, on=TRANSACTION_ID, how="left")
        history = history[history["_seen"].isna()].drop(columns=["_seen"])
        combined = dd.concat([history.assign(**{INPUT: False}), combined])
    combined = combined.repartition(npartitions=partitions_for(client, n_rows))
    table = feature_table(combined, bundle.spec, extra=(INPUT,))
    names = list(bundle.spec.names)
    meta = _scored(table._meta.assign(**{INPUT: pd.Series(dtype=bool)}), bundle, names, version, keys)
    scored = client.persist(table.map_partitions(_scored, bundle, names, version, keys, meta=meta))
    counts, missing = dask.compute(scored["decision"].value_counts(),
                                   scored["f_card_seconds_since_previous"].isna().sum()
                                   if "f_card_seconds_since_previous" in scored.columns else 0)
    scored.to_parquet(str(output_path), partition_on=[DATE], write_index=False)
    decisions = {"approve": 0, "review": 0, "decline": 0, **{k: int(v) for k, v in counts.items()}}
    result = {"output": str(output_path), "rows": int(n_rows), "model_version": version, "decisions": decisions,
              "invalid_rows": report.rows_bad, "history": str(history_source) if history_source else None,
              "rows_without_card_history": int(missing), "engine": "dask"}
    log.info("scored %d transactions with model %s into %s on Dask: %s", n_rows, version, output_path, decisions)
    return result
