"""Batch scoring: a day of transactions in, one scored row per transaction out.

    fraud score-batch --input data/transactions/date=2026-06-29 --output scores.parquet

Each row gets its features, the calibrated probability, the decision (approve / review /
decline), the top reasons (per-feature contributions of the model; for the rows routed to
review or declined) and the model version. History for the features is read only as far back as the features look; the
day is scored and written in chunks (Parquet row groups), so memory stays bounded.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fraud.bundle import ModelBundle
from fraud.config import FraudConfig
from fraud.features.batch import build_features
from fraud.io import load_transactions
from fraud.progress import progress_bar
from fraud.pseudonym import Pseudonymizer, configured_pseudonymizer
from fraud.registry import ModelRegistry, RegistryError
from fraud.schema import CARD_ID, TERMINAL_ID, TIMESTAMP, TRANSACTION_ID
from fraud.validation import InputError

from .history import lookback, read_range

log = logging.getLogger(__name__)
REASONS = 3


def _features(frame: pd.DataFrame, history: pd.DataFrame, bundle: ModelBundle, dask: str | None) -> pd.DataFrame:
    known = history[~history[TRANSACTION_ID].isin(frame[TRANSACTION_ID])] if len(history) else history
    combined = pd.concat([known, frame], ignore_index=True) if len(known) else frame.reset_index(drop=True)
    if dask:
        from fraud.features.distributed import build_features_dask, dask_client

        with dask_client(dask):
            feats = build_features_dask(combined, bundle.spec)
        feats = feats.loc[frame[TRANSACTION_ID].to_numpy()].reset_index(drop=True)
    else:
        feats = build_features(combined, bundle.spec).iloc[len(known):].reset_index(drop=True)
    return feats


def score_frame(bundle: ModelBundle, frame: pd.DataFrame, features: pd.DataFrame, version: str,
                keys: Pseudonymizer | None = None) -> pd.DataFrame:
    """Scores, decisions and reasons for rows with their features. Reasons only for the rows
    a person will look at, those routed to review or declined (approved rows carry none),
    computed as the API computes them (the path attribution, ``exact=False``), so a reviewer
    reads the same reasons for a transaction whichever way it was scored; exact
    contributions cost 5x more. With ``keys`` the card id is replaced by its keyed token
    (``card_token``); without, the raw id is kept."""
    n = len(frame)
    scores = bundle.predict_proba(features)
    decisions = bundle.thresholds.decide(scores)
    reasons = np.full(n, "[]", dtype=object)
    names = np.full((REASONS, n), None, dtype=object)
    flagged = np.flatnonzero(decisions != "approve")
    if flagged.size:
        for i, r in zip(flagged, bundle.reasons(features.iloc[flagged], k=REASONS, exact=False)):
            reasons[i] = json.dumps(r)
            for j, item in enumerate(r):
                names[j, i] = item["feature"]
    out = pd.DataFrame({
        TRANSACTION_ID: frame[TRANSACTION_ID].to_numpy(), TIMESTAMP: frame[TIMESTAMP].reset_index(drop=True),
        **_card_column(frame[CARD_ID], keys), TERMINAL_ID: frame[TERMINAL_ID].to_numpy(),
        "amount": frame["amount"].to_numpy(), "score": scores, "decision": decisions,
        "reasons": reasons, "model_version": version,
        # typed: a chunk with no flagged row (or no third reason) would otherwise be all-null,
        # which Parquet stores as another type than the next chunk's strings
        **{f"reason_{i + 1}": pd.Series(names[i], dtype="str") for i in range(REASONS)},
    })
    return pd.concat([out, features.add_prefix("f_")], axis=1)


def _without_history(features: pd.DataFrame) -> int | None:
    """Rows whose card had no earlier transaction visible (time since previous is missing)."""
    column = "card_seconds_since_previous"
    return int(features[column].isna().sum()) if column in features else None


def _card_column(cards: pd.Series, keys: Pseudonymizer | None) -> dict:
    if keys is None:
        return {CARD_ID: cards.to_numpy()}
    tokens = {card: keys.card_token(card) for card in cards.unique()}
    return {"card_token": cards.map(tokens).to_numpy()}


def score_batch(input_path, output_path, config: FraudConfig, registry: ModelRegistry,
                history_source=None, chunk_rows: int = 50_000, dask: str | None = None,
                progress: bool = True, endpoint_url: str | None = None, raw_card_ids: bool = False,
                no_history: bool = False) -> dict:
    """Score every transaction of ``input_path`` with the champion; returns counts.

    Without ``history_source`` the card and terminal features see only the input itself (a
    card's first transaction of the day looks like its first ever), which floods review:
    refused unless ``no_history`` says so; the result counts the rows scored without any
    earlier transaction of their card. The output names cards by their keyed token (the
    API's key, ``configured_pseudonymizer``), not by id, unless ``raw_card_ids``: scored
    files get copied and shared."""
    if history_source is None and not no_history:
        raise InputError("score-batch needs the transactions before the input for the card and terminal features "
                         "(--history DIR); without them every card looks new and far more transactions go to "
                         "review. Pass --no-history to score the input on its own anyway.")
    version = registry.champion()
    if version is None:
        raise RegistryError(f"no champion model in {registry.uri}; run `fraud train` first")
    bundle = registry.load(version)
    keys = None if raw_card_ids else configured_pseudonymizer(endpoint_url)
    frame, report = load_transactions(input_path, config, endpoint_url=endpoint_url)
    if not len(frame):
        raise InputError(f"{input_path} holds no valid transactions")
    frame = frame.sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)
    start = frame[TIMESTAMP].min()
    history = pd.DataFrame()
    if history_source is not None:
        history = read_range(history_source, config, start - lookback(bundle.spec), frame[TIMESTAMP].max(),
                             endpoint_url)
        log.info("%d history rows from %s for the features", len(history), history_source)
    features = _features(frame, history, bundle, dask)
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_path.with_name(f".{output_path.name}.tmp")
    writer = None
    counts = {"approve": 0, "review": 0, "decline": 0}
    try:
        for lo in progress_bar(range(0, len(frame), chunk_rows), enabled=progress, desc="scoring", unit="chunk"):
            hi = min(lo + chunk_rows, len(frame))
            scored = score_frame(bundle, frame.iloc[lo:hi].reset_index(drop=True),
                                 features.iloc[lo:hi].reset_index(drop=True), version, keys)
            for decision, n in scored["decision"].value_counts().items():
                counts[decision] += int(n)
            table = pa.Table.from_pandas(scored, preserve_index=False)
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
        writer.close()
        tmp.replace(output_path)
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    result = {"output": str(output_path), "rows": len(frame), "model_version": version, "decisions": counts,
              "invalid_rows": report.rows_bad, "history": str(history_source) if history_source else None,
              "rows_without_card_history": _without_history(features)}
    if history_source is None:
        log.warning("scored without history: %d of %d rows had no earlier transaction of their card",
                    result["rows_without_card_history"], len(frame))
    log.info("scored %d transactions with model %s into %s: %s", len(frame), version, output_path, counts)
    return result
