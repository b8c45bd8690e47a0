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
