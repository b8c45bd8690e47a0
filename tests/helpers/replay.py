"""Replay a day of transactions and labels through the online feature path: the engine
itself (``replay``) or the API over HTTP (``replay_http``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from batch_jobs.loop_drill import api_transaction  # the client's JSON, as the drill sends it
from fraud.features.online import APPLIED_PREFIX, OnlineFeatures
from fraud.features.spec import FeatureSpec
from fraud.schema import epoch_seconds, tiebreak
from fraud.storage.kv import InMemoryKeyValueStore



def events(transactions: pd.DataFrame, day_start: pd.Timestamp, hours: float) -> pd.DataFrame:
    """Transactions of the window and the labels that become known in it, in the API's
    order: by time, a label known at t after the transactions at t (it is not used at t)."""
    day_end = day_start + pd.Timedelta(hours=hours)
    day = transactions[(transactions["timestamp"] >= day_start) & (transactions["timestamp"] < day_end)]
    labels = transactions[(transactions["label_time"] >= day_start) & (transactions["label_time"] < day_end)]
    return pd.concat([
        pd.DataFrame({"kind": 0, "t": epoch_seconds(day["timestamp"]),
                      "tb": tiebreak(day["transaction_id"].to_numpy(object)), "row": day.index}),
        pd.DataFrame({"kind": 1, "t": epoch_seconds(labels["label_time"]),
                      "tb": tiebreak(labels["transaction_id"].to_numpy(object)), "row": labels.index}),
    ]).sort_values(["t", "kind", "tb"])


def _label(engine: OnlineFeatures, rec: dict) -> None:
    """As /v1/feedback applies it: once per transaction id (its marker)."""
    engine.add_label(rec["terminal_id"], rec["label"] == 1, rec["label_time"], label_id=rec["transaction_id"],
                     card_id=rec["card_id"])


def replay(transactions: pd.DataFrame, spec: FeatureSpec, day_start: pd.Timestamp, store=None,
           hours: float = 24, keys=None, load_history: bool = True):
    """Load history before ``day_start`` (unless ``load_history`` is false: the store holds
    it already, under ``keys``), then replay the next ``hours`` of transactions and the labels
    that become known in them, in time order, through the online path."""
    engine = OnlineFeatures(spec, store or InMemoryKeyValueStore(), keys=keys)
    if load_history:
        engine.load_history(transactions, as_of=day_start)
    records = transactions.to_dict("index")
    out = {}
    for kind, _, _, row in events(transactions, day_start, hours).itertuples(index=False):
        rec = records[row]
        if kind == 0:
            out[row] = engine.process(rec)
        else:
            _label(engine, rec)
    return pd.DataFrame.from_dict(out, orient="index")[spec.names], engine


def replay_http(client, headers: dict, container, transactions: pd.DataFrame, day_start: pd.Timestamp,
                hours: float) -> pd.DataFrame:
    """Send the window's transactions to POST /v1/score one by one, in time order, applying
    the labels that become known between them as /v1/feedback does (``add_label`` with the
    transaction id; feedback's own clock is the server's, so historical label times go in
    directly); returns the features the API computed, as it recorded them (its ``applied#``
    records in the features store), by row of ``transactions``."""
    records = transactions.to_dict("index")
    sent = {}
    for kind, _, _, row in events(transactions, day_start, hours).itertuples(index=False):
        rec = records[row]
        if kind == 0:
            r = client.post("/v1/score", json=api_transaction(rec), headers=headers)
            assert r.status_code == 200, r.text
            assert r.json()["transaction_id"] == rec["transaction_id"]
            sent[row] = rec["transaction_id"]
        else:
            _label(container.online, rec)
    store, names = container.stores["features"], container.online.spec.names
    found = {}
    ids = list(sent.values())
    for lo in range(0, len(ids), 100):
        found.update(store.get_many([APPLIED_PREFIX + i for i in ids[lo:lo + 100]]))
    missing = [i for i in ids if APPLIED_PREFIX + i not in found]
    assert not missing, f"the API applied no state for {missing[:5]}"
    out = {row: {n: (math.nan if found[APPLIED_PREFIX + i].value["features"].get(n) is None
                     else found[APPLIED_PREFIX + i].value["features"][n]) for n in names}
           for row, i in sent.items()}
    return pd.DataFrame.from_dict(out, orient="index")[names]


def assert_equal_batch(online: pd.DataFrame, expected: pd.DataFrame, at_least: int) -> None:
    """The online features equal the batch engine's (rows of ``online``) to 1e-9, NaN = NaN,
    on at least ``at_least`` rows; a failure names each differing feature and its row count."""
    assert len(online) >= at_least
    expected = expected.loc[online.index, online.columns]
    close = np.isclose(online.to_numpy(float), expected.to_numpy(float), rtol=1e-9, atol=1e-9, equal_nan=True)
    bad = [(online.columns[j], int((~close[:, j]).sum())) for j in range(close.shape[1]) if not close[:, j].all()]
    assert not bad, f"online features differ from batch in (feature, rows): {bad}"
