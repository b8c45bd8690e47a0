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


def _frame(rows):
    df = pd.DataFrame(rows, columns=["transaction_id", "timestamp", "card_id", "terminal_id", "amount",
                                     "label", "label_time"])
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True, format="ISO8601")
    df["label_time"] = pd.to_datetime(df["label_time"], utc=True, format="ISO8601")
    return df


def test_a_label_is_used_only_once_it_is_known():
    df = _frame([
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
    df = _frame([
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
    df = _frame([
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
    df = _frame([
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
    store = InMemoryKeyValueStore()
    OnlineFeatures(spec, store).load_history(small_transactions)
    for _, item in store.scan("card#"):
        for width, snaps in item.value["snaps"].items():
            assert len(snaps) <= {"300": 12, "3600": 24, "86400": 30}[width]


def test_dask_equals_single_process(small_transactions, batch, spec):
    from fraud.features.distributed import build_features_dask, dask_client

    subset = small_transactions.iloc[:40000]
    expected = build_features(subset, spec).set_index(subset["transaction_id"])
    with dask_client("local", n_workers=2):
        got = build_features_dask(subset, spec, npartitions=3)
    got = got.loc[expected.index]
    assert list(got.columns) == list(expected.columns)
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())
