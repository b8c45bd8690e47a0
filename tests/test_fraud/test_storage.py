"""The key-value store contract, held by the in-memory store and by DynamoDB (moto's
server): versioned conditional writes, expiry, and batched reads."""

from __future__ import annotations

import itertools
import time

import pytest

from fraud.storage.kv import ConditionFailed, DynamoDBKeyValueStore, InMemoryKeyValueStore

_tables = itertools.count()


@pytest.fixture(params=["memory", "dynamodb"])
def store(request):
    if request.param == "memory":
        return InMemoryKeyValueStore()
    endpoint = request.getfixturevalue("moto_server")
    name = f"kv-contract-{next(_tables)}"
    DynamoDBKeyValueStore.create_table(name, endpoint)
    return DynamoDBKeyValueStore(name, endpoint_url=endpoint)


def test_conditional_writes_and_versions(store):
    assert store.put("a", {"x": 1.1}, expected_version=0) == 1
    with pytest.raises(ConditionFailed):
        store.put("a", {"x": 2}, expected_version=0)  # exists
    with pytest.raises(ConditionFailed):
        store.put("a", {"x": 2}, expected_version=5)  # stale version
    assert store.put("a", {"x": 2}, expected_version=1) == 2
    assert store.get("a").value == {"x": 2} and store.get("a").version == 2
    with pytest.raises(ConditionFailed):
        store.delete("a", expected_version=1)
    store.delete("a", expected_version=2)
    assert store.get("a") is None


def test_get_many_returns_live_items_only_across_batches(store):
    store.put_many({f"k{i}": {"i": i, "f": i / 3} for i in range(150)})  # two BatchGetItem pages in DynamoDB
    store.put("short-lived", {"i": -1}, ttl_seconds=1)
    time.sleep(1.1)
    keys = [f"k{i}" for i in range(0, 150, 2)] + ["k0", "missing", "short-lived"]
    found = store.get_many(keys)
    assert sorted(found) == sorted(f"k{i}" for i in range(0, 150, 2))
    assert all(found[f"k{i}"].value == {"i": i, "f": i / 3} for i in range(0, 150, 2))  # floats exact
    assert found["k4"].version == store.get("k4").version
    assert store.get_many([]) == {}


def test_transact_is_all_or_nothing(store):
    from fraud.storage.kv import Write

    store.put("card", {"n": 1}, expected_version=0)
    store.transact([Write("card", {"n": 2}, 1), Write("new", {"n": 1}, 0, ttl_seconds=60)])
    assert store.get("card").value == {"n": 2} and store.get("new").version == 1
    with pytest.raises(ConditionFailed):  # "card" is at version 2 now: neither write happens
        store.transact([Write("other", {"n": 1}, 0), Write("card", {"n": 3}, 1)])
    assert store.get("other") is None and store.get("card").value == {"n": 2}
    with pytest.raises(ConditionFailed):
        store.transact([Write("new", {"n": 9}, 0)])  # exists already
    with pytest.raises(ValueError, match="distinct keys"):
        store.transact([Write("a", {}, 0), Write("a", {}, 0)])
