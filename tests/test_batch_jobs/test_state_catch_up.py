"""``fraud state catch-up``: what reached the data lake but not the API goes into the state
once, beside what the API applied, and the watermark moves on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from batch_jobs.state_catch_up import catch_up_state
from batch_jobs.state_load import load_state
from fraud.features.online import STATE_WATERMARK_KEY, read_watermark
from fraud.pseudonym import configured_pseudonymizer
from fraud.storage.kv import InMemoryKeyValueStore
from fraud.validation import InputError
from helpers.replay import replay

H = pd.Timedelta(hours=1)


@pytest.fixture(scope="module")
def keys():
    return configured_pseudonymizer()


@pytest.fixture(scope="module")
def t0(small_transactions):
    return small_transactions["timestamp"].min().normalize() + pd.Timedelta(days=35)


def _state(store) -> dict:
    """Every item but the watermark (whose times say when it was written)."""
    return {key: item.value for key, item in store.scan() if key != STATE_WATERMARK_KEY}


@pytest.fixture(scope="module")
def uninterrupted(small_transactions, small_features, keys, t0):
    """The reference: loaded at t0, then the API saw all of the next 12 hours."""
    spec, _ = small_features
    store = InMemoryKeyValueStore()
    load_state(small_transactions, spec, store, keys, as_of=t0)
    replay(small_transactions, spec, t0, store, hours=12, keys=keys, load_history=False)
    return store


def test_catch_up_applies_the_gap_once_and_equals_the_uninterrupted_state(small_transactions, small_features, keys,
                                                                          t0, uninterrupted):
    spec, features = small_features
    store = InMemoryKeyValueStore()
    load_state(small_transactions, spec, store, keys, as_of=t0)
    replay(small_transactions, spec, t0, store, hours=6, keys=keys, load_history=False)  # the API, then down 6 h
    gap = small_transactions[(small_transactions["timestamp"] >= t0 + 6 * H)
                             & (small_transactions["timestamp"] < t0 + 12 * H)]
    labels = small_transactions[(small_transactions["label_time"] >= t0) & (small_transactions["label_time"] < t0 + 12 * H)]
    assert len(gap) > 300 and len(labels) > 100

    now = (t0 + 12 * H).timestamp()
    summary = catch_up_state(small_transactions, spec, store, keys, as_of=t0 + 12 * H, now=now)
    # what the API applied (6 hours, their labels) is in the lake too: counted once
    assert summary.transactions == int(((small_transactions["timestamp"] >= t0)
                                        & (small_transactions["timestamp"] < t0 + 12 * H)).sum())
    assert summary.applied_transactions == len(gap)
    assert summary.labels == len(labels)
    assert summary.applied_labels == int((labels["label_time"] >= t0 + 6 * H).sum()) > 20
    assert _state(store) == _state(uninterrupted)
    mark = read_watermark(store)
    assert pd.Timestamp(mark["transactions_until"]) == gap["timestamp"].max()
    assert pd.Timestamp(mark["labels_until"]) == labels["label_time"].max()

    again = catch_up_state(small_transactions, spec, store, keys, as_of=t0 + 12 * H, now=now)
    assert again.applied_transactions == again.transactions == 0 and again.labels == 0
    assert _state(store) == _state(uninterrupted)

    # and the API, back up, computes the batch engine's features on the caught-up state
    online, _ = replay(small_transactions, spec, t0 + 12 * H, store, hours=3, keys=keys, load_history=False)
    expected = features.loc[online.index, online.columns]
    assert len(online) > 100
    assert np.allclose(online.to_numpy(float), expected.to_numpy(float), rtol=1e-9, atol=1e-9, equal_nan=True)


def test_catch_up_refuses_a_state_never_loaded(small_transactions, small_features, keys, t0):
    spec, _ = small_features
    store = InMemoryKeyValueStore()
    with pytest.raises(InputError, match="no watermark: load it first"):
        catch_up_state(small_transactions, spec, store, keys, as_of=t0, now=t0.timestamp())
    assert len(store) == 0


def test_catch_up_refuses_a_gap_older_than_the_apis_memory(small_transactions, small_features, keys, t0):
    """The API's applied-markers expire after 7 days: a transaction the API saw 8 days ago
    would be counted again, so such a gap needs a full load."""
    spec, _ = small_features
    store = InMemoryKeyValueStore()
    load_state(small_transactions, spec, store, keys, as_of=t0)
    before = {key: item.value for key, item in store.scan()}
    with pytest.raises(InputError, match=r"past the 7-day memory.*fraud state load"):
        catch_up_state(small_transactions, spec, store, keys, as_of=t0 + 12 * H, now=(t0 + pd.Timedelta(days=6, hours=1)).timestamp())
    assert {key: item.value for key, item in store.scan()} == before
    # --since: what is older was seen by the API; only the rest is applied
    summary = catch_up_state(small_transactions, spec, store, keys, as_of=t0 + 12 * H, since=t0 + 11 * H,
                             now=(t0 + pd.Timedelta(days=6, hours=1)).timestamp())
    assert summary.applied_transactions == int(((small_transactions["timestamp"] >= t0 + 11 * H)
                                        & (small_transactions["timestamp"] < t0 + 12 * H)).sum()) > 0
