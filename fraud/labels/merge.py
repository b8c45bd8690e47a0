"""Stored labels merged into the transactions, by transaction id.

Precedence (the README says the same):

1. A transaction with no stored label known by the cut-off keeps the file's label and
   label_time.
2. Stored labels (feedback, imports) override the file: the stored label known last
   decides the label. A later contradicting label is a correction and replaces the earlier
   one; at equal known_at, fraud wins.
3. label_time is when the decided label became known. For fraud: the earliest fraud report
   since the last stored legitimate label, the file's own fraud label_time included (the
   same label known earlier counts from then). Before label_time the transaction counts as
   legitimate, as every fraud label does (``fraud.splits.labels_known_at``).
4. The one departure from point in time: a fraud later corrected to legitimate is
   legitimate in every fold, also one whose cut-off fell between the two reports (one
   label column cannot hold a retracted fraud). It only ever removes a fraud label.

Only labels known before ``as_of`` are read (``LabelStore.read``), so a run as of a past
moment never sees a later label.
"""

from __future__ import annotations

import logging

import pandas as pd

log = logging.getLogger(__name__)


def _decide(store: pd.DataFrame, file_label: int, file_time) -> tuple[int, pd.Timestamp]:
    """(label, label_time) for one transaction from its stored labels, sorted by known_at."""
    ordered = store.sort_values(["known_at", "label"], kind="stable")  # fraud last at a tie: it wins
    final = int(ordered["label"].iloc[-1])
    if final == 0:
        return 0, ordered["known_at"].iloc[-1]
    legit = ordered.loc[ordered["label"] == 0, "known_at"]
    since = legit.iloc[-1] if len(legit) else None
    frauds = ordered.loc[ordered["label"] == 1, "known_at"]
    times = list(frauds[frauds >= since]) if since is not None else list(frauds)
    if file_label == 1 and pd.notna(file_time) and (since is None or file_time > since):
        times.append(file_time)
    return 1, min(times)


def merge_labels(transactions: pd.DataFrame, labels: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The transactions with stored ``labels`` applied (a copy), and counts of what changed."""
    ids = transactions["transaction_id"].astype(str)
    matched = labels[labels["transaction_id"].isin(set(ids))]
    summary = {"stored_labels": int(len(labels)), "matched_transactions": int(matched["transaction_id"].nunique()),
               "unmatched_labels": int(len(labels) - len(matched)), "label_changed": 0, "label_time_changed": 0}
    if matched.empty:
        return transactions, summary
    out = transactions.copy()
    label_time = pd.to_datetime(out["label_time"], utc=True)
    position = pd.Series(range(len(out)), index=ids.to_numpy())
    position = position[~position.index.duplicated()]
    new_label, new_time = out["label"].to_numpy().copy(), label_time.astype(object).to_numpy().copy()
    for tid, rows in matched.groupby("transaction_id", sort=False):
        i = position[tid]
        label, when = _decide(rows, int(new_label[i]), label_time.iloc[i])
        summary["label_changed"] += int(label != new_label[i])
        summary["label_time_changed"] += int(when != label_time.iloc[i])
        new_label[i], new_time[i] = label, when
    out["label"] = pd.Series(new_label, index=out.index).astype(out["label"].dtype)
    out["label_time"] = pd.Series(pd.to_datetime(new_time, utc=True), index=out.index).dt.tz_convert(
        label_time.dt.tz)
    log.info("label store: %(stored_labels)d labels, %(matched_transactions)d transactions matched, "
             "%(label_changed)d labels changed, %(unmatched_labels)d for transactions not in the data", summary)
    return out, summary


def with_stored_labels(transactions: pd.DataFrame, uri: str | None, as_of: pd.Timestamp | None = None,
                       endpoint_url: str | None = None) -> pd.DataFrame:
    """The nightly job's one call: ``transactions`` with the labels of the store at ``uri``
    known before ``as_of`` (all: None) merged in; unchanged without a store."""
    if not uri:
        return transactions
    from .store import open_label_store

    store = open_label_store(uri, endpoint_url)
    merged, _ = merge_labels(transactions, store.read(as_of))
    return merged
