"""Point-in-time features: no future transaction or label leaks in; batch, online and
Dask compute the same numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud.features.batch import build_features
from fraud.features.online import OnlineFeatures, entity_key
from fraud.features.spec import FeatureSpec, feature_names
from fraud.storage.kv import InMemoryKeyValueStore
from helpers.replay import replay
from helpers.frames import labelled_frame


@pytest.fixture(scope="module")
def spec(default_config):
    return FeatureSpec.default(default_config.features, default_config.columns)


@pytest.fixture(scope="module")
def batch(small_transactions, spec):
    return build_features(small_transactions, spec)


def same(a, b, rtol=1e-9, atol=1e-9):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)


def test_feature_names_are_stable_and_complete(spec, default_config):
    names = feature_names(default_config.features, default_config.columns)
    assert names == spec.names and len(names) == len(set(names))
    for expected in ("card_count_1h", "card_mean_30d", "card_amount_zscore_30d", "card_seconds_since_previous",
                     "card_terminal_seen_before", "terminal_fraud_rate_7d", "distance_from_home_km", "hour"):
        assert expected in names
    assert FeatureSpec.from_dict(spec.to_dict()) == spec


def test_appending_later_transactions_never_changes_earlier_features(small_transactions, batch, spec):
    cut = small_transactions["timestamp"].min() + pd.Timedelta(days=30)
    early = small_transactions["timestamp"] < cut
    partial = build_features(small_transactions.loc[early], spec)
    assert same(partial, batch.loc[early]).all()


def test_appending_later_labels_never_changes_earlier_features(small_transactions, batch, spec):
    cut = small_transactions["timestamp"].min() + pd.Timedelta(days=25)
    changed = small_transactions.copy()
    later = changed["label_time"] >= cut
    changed.loc[later, "label"] = 1 - changed.loc[later, "label"]  # rewrite every label known from cut on
    again = build_features(changed, spec)
    before = (small_transactions["timestamp"] <= cut).to_numpy()
    assert same(again.loc[before], batch.loc[before]).all()
    after = ~before
    assert not same(again.loc[after, "terminal_fraud_rate_30d"], batch.loc[after, "terminal_fraud_rate_30d"]).all()


def test_a_label_is_used_only_once_it_is_known():
    df = labelled_frame([
        ("a", "2026-03-01 10:00", "c1", "m1", 100.0, 1, "2026-03-06 09:00"),  # fraud, reported 5 days later
        ("b", "2026-03-04 12:00", "c2", "m1", 20.0, 0, "2026-03-11 12:00"),
        ("c", "2026-03-06 09:00", "c3", "m1", 20.0, 0, "2026-03-13 09:00"),   # same second as the report
        ("d", "2026-03-06 09:00:01", "c4", "m1", 20.0, 0, "2026-03-13 09:00"),
    ])
    f = build_features(df, FeatureSpec.default()).set_index(df["transaction_id"])
    assert f.loc["b", "terminal_label_count_7d"] == 0 and np.isnan(f.loc["b", "terminal_fraud_rate_7d"])
    assert f.loc["c", "terminal_label_count_7d"] == 0  # known at 09:00:00 means not before 09:00:00
    assert f.loc["d", "terminal_label_count_7d"] == 1 and f.loc["d", "terminal_fraud_rate_7d"] == 1.0


def test_label_delay_fills_missing_label_times(default_config):
    from fraud.validation import Validator

    raw = pd.DataFrame({"transaction_id": ["x", "y"], "timestamp": ["2026-01-01T00:00:00Z"] * 2,
                        "card_id": ["c", "c"], "terminal_id": ["m", "m"], "amount": [1.0, 2.0],
                        "label": [1, 0], "label_time": [None, "2026-01-02T00:00:00Z"]})
    good, bad = Validator(default_config.columns, 7 * 86400).validate(raw, 0)
    assert good["label_time"].iloc[0] == pd.Timestamp("2026-01-08", tz="UTC")
    assert good["label_time"].iloc[1] == pd.Timestamp("2026-01-02", tz="UTC")


def test_windows_count_what_they_should():
    df = labelled_frame([
        ("a", "2026-03-01 10:00:00", "c1", "m1", 10.0, 0, None),
        ("b", "2026-03-01 10:20:00", "c1", "m2", 20.0, 0, None),
        ("c", "2026-03-01 12:30:00", "c1", "m1", 30.0, 0, None),
        ("d", "2026-03-03 12:30:00", "c1", "m1", 90.0, 0, None),
    ])
    f = build_features(df, FeatureSpec.default()).set_index(df["transaction_id"])
    assert list(f["card_count_1h"]) == [1, 2, 1, 1]
    assert list(f["card_sum_1d"]) == [10, 30, 60, 90]
    assert list(f["card_count_30d"]) == [1, 2, 3, 4]
    assert list(f["card_terminal_seen_before"]) == [0, 0, 1, 1]
    assert np.isnan(f.loc["a", "card_seconds_since_previous"]) and f.loc["b", "card_seconds_since_previous"] == 1200
    assert f.loc["d", "card_amount_ratio_30d"] == pytest.approx(90 / 20)
    mean, var = 20.0, (100 + 400 + 900) / 3 - 400
    assert f.loc["d", "card_amount_zscore_30d"] == pytest.approx((90 - mean) / np.sqrt(var + 1))
    assert np.isnan(f.loc["a", "card_amount_ratio_30d"])


def test_zero_amount_history_gives_finite_features_batch_and_online():
    """Zero-amount authorisations (card checks) are real traffic: a later purchase on that
    card must not get an infinite amount ratio (XGBoost rejects inf) in either path."""
    df = labelled_frame([
        ("a", "2026-03-01 10:00:00", "c1", "m1", 0.0, 0, None),
        ("b", "2026-03-01 10:05:00", "c1", "m1", 0.0, 0, None),
        ("c", "2026-03-01 10:10:00", "c1", "m2", 950.0, 0, None),
        ("d", "2026-03-01 10:11:00", "c1", "m2", 0.0, 0, None),
    ])
    spec = FeatureSpec.default()
    batch = build_features(df, spec).set_index(df["transaction_id"])
    assert not np.isinf(batch.to_numpy()).any()
    assert batch.loc["c", "card_amount_ratio_30d"] == pytest.approx(950 / 0.01)
    assert batch.loc["b", "card_amount_ratio_30d"] == 0.0
    engine = OnlineFeatures(spec, InMemoryKeyValueStore())
    online = pd.DataFrame([engine.process(row) for row in df.to_dict("records")], index=df["transaction_id"])
    assert same(online[batch.columns], batch).all().all()


def test_applying_a_transaction_twice_counts_it_once():
    """A retry (the request died before answering, or its batch failed after the features
    were computed) gets the features of the first attempt and leaves the state alone."""
    df = labelled_frame([
        ("a", "2026-03-01 10:00:00", "c1", "m1", 10.0, 0, None),
        ("b", "2026-03-01 10:20:00", "c1", "m2", 20.0, 0, None),
        ("c", "2026-03-01 10:30:00", "c1", "m1", 30.0, 0, None),
    ])
    spec = FeatureSpec.default()
    rows = df.to_dict("records")
    once = OnlineFeatures(spec, InMemoryKeyValueStore())
    expected = [once.process(row) for row in rows]
    twice = OnlineFeatures(spec, InMemoryKeyValueStore())
    got = []
    for row in rows:
        first = twice.process(row)
        assert same(pd.Series(twice.process(row)), pd.Series(first)).all()  # the retry
        got.append(first)
    assert same(pd.DataFrame(got), pd.DataFrame(expected)).all().all()
    assert [g["card_count_1h"] for g in got] == [1, 2, 3]
    card = twice.store.get(entity_key(twice.keys, "card", "c1")).value
    assert card["n"] == 3 == once.store.get(entity_key(once.keys, "card", "c1")).value["n"]
    # a retry served by a champion with another feature spec: what the record lacks is missing
    from fraud.features.online import _features_from_record, _features_record

    back = _features_from_record(_features_record({"a": 1.5, "b": float("nan")}), ["a", "b", "c"])
    assert back["a"] == 1.5 and np.isnan(back["b"]) and np.isnan(back["c"])


def test_online_replay_of_a_day_equals_batch(small_transactions, batch, spec):
    day = small_transactions["timestamp"].min().normalize() + pd.Timedelta(days=40)
    online, engine = replay(small_transactions, spec, day)
    assert len(online) > 2000
    expected = batch.loc[online.index]
    agree = same(online, expected)
    assert agree.all(), online.columns[~agree.all(axis=0)].tolist()
    # one transaction's update is visible to the next of the same card
    card = small_transactions.loc[online.index[0], "card_id"]
    assert engine.store.get(entity_key(engine.keys, "card", card)) is not None


def test_online_state_is_bounded(small_transactions, spec):
    from fraud.features.online import MAX_SEEN_TERMINALS

    store = InMemoryKeyValueStore()
    OnlineFeatures(spec, store).load_history(small_transactions)
    for _, item in store.scan("card#"):
        for width, snaps in item.value["snaps"].items():
            assert len(snaps) <= {"300": 12, "3600": 24, "86400": 30}[width]
        seen, last = item.value["seen"], item.value["last"]
        assert 0 < len(seen) <= MAX_SEEN_TERMINALS
        assert all(0 <= last - used <= spec.history_window for used in seen.values())


def _in_event_order(df):
    from fraud.schema import epoch_seconds, tiebreak

    order = np.lexsort((tiebreak(df["transaction_id"].to_numpy(object)), epoch_seconds(df["timestamp"])))
    return df.iloc[order]


def _online(df, spec, as_of=None, max_seen=None):
    """Features of the rows at or after ``as_of`` through the online path (state before it
    built in bulk), processed in event order; and the engine."""
    kwargs = {} if max_seen is None else {"max_seen_terminals": max_seen}
    engine = OnlineFeatures(spec, InMemoryKeyValueStore(), **kwargs)
    rows = _in_event_order(df)
    if as_of is not None:
        engine.load_history(df, as_of=as_of)
        cut = pd.Timestamp(as_of)
        rows = rows.loc[rows["timestamp"] >= (cut if cut.tzinfo else cut.tz_localize("UTC"))]
    got = {r["transaction_id"]: engine.process(r) for r in rows.to_dict("records")}
    return pd.DataFrame.from_dict(got, orient="index")[spec.names], engine


def test_a_terminal_is_seen_only_within_the_history_window_in_every_engine():
    """card_terminal_seen_before: the card used this terminal at most history_window (30 d)
    before; batch, Dask, online one by one and online from bulk state agree."""
    import dask

    from fraud.features.distributed import build_features_dask

    df = labelled_frame([
        ("a", "2026-01-01 00:00:00", "c1", "m1", 10.0, 0, None),
        ("b", "2026-01-01 00:00:00", "c1", "m1", 11.0, 0, None),   # same second: the tiebreak orders a, b
        ("c", "2026-01-05 00:00:00", "c1", "m2", 12.0, 0, None),
        ("d", "2026-01-31 00:00:00", "c1", "m1", 13.0, 0, None),   # exactly 30 d after a and b
        ("e", "2026-02-10 00:00:00", "c1", "m2", 14.0, 0, None),   # 36 d after c: forgotten
        ("f", "2026-03-02 00:00:01", "c1", "m1", 15.0, 0, None),   # 30 d + 1 s after d
        ("g", "2026-03-02 00:00:01", "c2", "m1", 16.0, 0, None),   # another card
        ("h", "2026-03-03 00:00:00", "c1", "m2", 17.0, 0, None),   # 21 d after e
    ])
    spec = FeatureSpec.default()
    assert spec.history_window == 30 * 86400
    batch = build_features(df, spec).set_index(df["transaction_id"])
    seen = batch["card_terminal_seen_before"]
    assert sorted(seen[["a", "b"]]) == [0, 1]
    assert list(seen[["c", "d", "e", "f", "g", "h"]]) == [0, 1, 0, 0, 0, 1]
    with dask.config.set(scheduler="synchronous"):
        distributed = build_features_dask(df, spec, npartitions=2)
    np.testing.assert_array_equal(distributed.loc[batch.index].to_numpy(), batch.to_numpy())
    online, engine = _online(df, spec)
    assert same(online.loc[batch.index], batch).all().all()
    for cut in ("2026-02-01", "2026-03-02 00:00:01", "2026-03-03"):  # bulk state, then one by one
        rest, _ = _online(df, spec, as_of=cut)
        assert same(rest, batch.loc[rest.index]).all().all(), cut
    # the state after the replay is the bulk state of all of it, in order of last use
    bulk = history_seen(df, spec, engine)
    assert list(bulk.items()) == list(engine.store.get(entity_key(engine.keys, "card", "c1")).value["seen"].items())
    assert list(bulk.values()) == [int(pd.Timestamp(x).timestamp()) for x in ("2026-03-02 00:00:01", "2026-03-03")]


def history_seen(df, spec, engine, card="c1", max_seen=None):
    from fraud.features.online import MAX_SEEN_TERMINALS, history_states

    states = history_states(df, spec, None, engine.keys, max_seen or MAX_SEEN_TERMINALS)
    return states[entity_key(engine.keys, "card", card)]["seen"]


def test_seen_terminals_are_capped_least_recently_used_first():
    """Beyond the cap the least recently used terminal is forgotten (online reads 0 where
    batch reads 1: the documented bound); the bulk state equals the replayed one."""
    from fraud.features.online import _seen_token

    rows = [(f"t{i}", f"2026-01-01 10:{i:02d}:00", "c1", term, 1.0, 0, None)
            for i, term in enumerate(["m1", "m2", "m3", "m1", "m4", "m5", "m1", "m2", "m6", "m6"])]
    df = labelled_frame(rows)
    spec = FeatureSpec.default()
    batch = build_features(df, spec).set_index(df["transaction_id"])["card_terminal_seen_before"]
    online, engine = _online(df, spec, max_seen=3)
    online = online["card_terminal_seen_before"]
    assert list(batch) == [0, 0, 0, 1, 0, 0, 1, 1, 0, 1]
    assert list(online) == [0, 0, 0, 1, 0, 0, 1, 0, 0, 1]  # t7: m2 was evicted by m5 (cap 3)
    stored = engine.store.get(entity_key(engine.keys, "card", "c1")).value["seen"]
    assert list(stored) == [_seen_token(engine.keys, m) for m in ("m1", "m2", "m6")]
    assert list(history_seen(df, spec, engine, max_seen=3).items()) == list(stored.items())
    for cut in df["timestamp"].iloc[1:]:  # any bulk state, then one by one: the same features
        rest, _ = _online(df, spec, as_of=cut, max_seen=3)
        assert list(rest["card_terminal_seen_before"]) == list(online.loc[rest.index]), cut


def test_a_seen_list_of_an_older_state_is_dropped_on_read():
    """State written before ``seen`` had times holds a list of tokens: migrated by dropping
    it (the terminals read as unseen once), never a crash."""
    from fraud.features.online import _empty_state, _seen_token

    spec = FeatureSpec.default()
    engine = OnlineFeatures(spec, InMemoryKeyValueStore())
    key = entity_key(engine.keys, "card", "c1")
    engine.store.put(key, {**_empty_state(), "seen": [_seen_token(engine.keys, "m1")]})
    txn = {"transaction_id": "x", "timestamp": "2026-03-01T10:00:00Z", "card_id": "c1", "terminal_id": "m1",
           "amount": 5.0}
    assert engine.process(txn)["card_terminal_seen_before"] == 0
    assert engine.store.get(key).value["seen"] == {_seen_token(engine.keys, "m1"): 1772359200}


def test_bulk_state_equals_replayed_state(small_transactions, spec):
    """``load_history`` builds every card's state (``seen`` included) as replaying the
    transactions one by one leaves it."""
    start = small_transactions["timestamp"].min().normalize() + pd.Timedelta(days=38)
    _, engine = replay(small_transactions, spec, start, hours=6)
    bulk = OnlineFeatures(spec, InMemoryKeyValueStore(), keys=engine.keys)
    bulk.load_history(small_transactions, as_of=start + pd.Timedelta(hours=6))
    replayed = dict(engine.store.scan("card#"))
    built = dict(bulk.store.scan("card#"))
    assert replayed.keys() == built.keys() and len(built) > 1000
    for key, item in built.items():
        assert item.value == replayed[key].value
        assert list(item.value["seen"].items()) == list(replayed[key].value["seen"].items())  # same order
    assert sum(map(len, (item.value["seen"] for item in built.values()))) < \
        small_transactions.groupby("card_id")["terminal_id"].nunique().sum()  # some aged out


def test_dask_equals_single_process(small_transactions, batch, spec):
    from fraud.features.distributed import build_features_dask, dask_client

    subset = small_transactions.iloc[:40000]
    expected = build_features(subset, spec).set_index(subset["transaction_id"])
    with dask_client("local", n_workers=2):
        got = build_features_dask(subset, spec, npartitions=3)
    got = got.loc[expected.index]
    assert list(got.columns) == list(expected.columns)
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())
