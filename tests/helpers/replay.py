"""Replay a day of transactions and labels through the online feature path."""

from __future__ import annotations

import pandas as pd

from fraud.features.online import OnlineFeatures
from fraud.features.spec import FeatureSpec
from fraud.schema import epoch_seconds, tiebreak
from fraud.storage.kv import InMemoryKeyValueStore


def replay(transactions: pd.DataFrame, spec: FeatureSpec, day_start: pd.Timestamp, store=None,
           hours: float = 24, keys=None, load_history: bool = True):
    """Load history before ``day_start`` (unless ``load_history`` is false: the store holds
    it already, under ``keys``), then replay the next ``hours`` of transactions and the labels
    that become known in them, in time order, through the online path."""
    day_end = day_start + pd.Timedelta(hours=hours)
    engine = OnlineFeatures(spec, store or InMemoryKeyValueStore(), keys=keys)
    if load_history:
        engine.load_history(transactions, as_of=day_start)
    day = transactions[(transactions["timestamp"] >= day_start) & (transactions["timestamp"] < day_end)]
    labels = transactions[(transactions["label_time"] >= day_start) & (transactions["label_time"] < day_end)]
    events = pd.concat([
        pd.DataFrame({"kind": 0, "t": epoch_seconds(day["timestamp"]),
                      "tb": tiebreak(day["transaction_id"].to_numpy(object)), "row": day.index}),
        pd.DataFrame({"kind": 1, "t": epoch_seconds(labels["label_time"]),
                      "tb": tiebreak(labels["transaction_id"].to_numpy(object)), "row": labels.index}),
    ]).sort_values(["t", "kind", "tb"])  # a label known at t is not used at t
    records = transactions.to_dict("index")
    out = {}
    for kind, _, _, row in events.itertuples(index=False):
        rec = records[row]
        if kind == 0:
            out[row] = engine.process(rec)
        else:
            engine.add_label(rec["terminal_id"], rec["label"] == 1, rec["label_time"])
    return pd.DataFrame.from_dict(out, orient="index")[spec.names], engine


