"""Per-entity online state stays bounded (issue 13): a card-testing burst of one card at
30,000 distinct terminals keeps the card's DynamoDB item far below DynamoDB's 400 KB, and
terminals older than the history window leave the state."""

from __future__ import annotations

import pytest

from fraud.features.online import MAX_SEEN_TERMINALS, OnlineFeatures, _seen_token, entity_key
from fraud.features.spec import CARD, FeatureSpec
from fraud.storage.kv import DynamoDBKeyValueStore, InMemoryKeyValueStore

N = 30_000
# moto deep-copies a table for every item of a TransactWriteItems, so a transaction costs time
# in proportion to the table (30,000 against moto would take well over 20 min): the first ones
# go through the in-memory store, then the card's state is copied into DynamoDB for the last
# ones, and every TRIM_EVERY transactions the table is cut back to the card's item (the other
# items, one-off terminals' states and applied-records, play no part here)
IN_DYNAMODB = 1_000
TRIM_EVERY = 50
SPACING_S = 40  # 30,000 transactions in 14 days: all inside the 30-day window
ITEM_BOUND = 64 * 1024  # bytes; DynamoDB refuses items over 400 KB


def item_size(item: dict) -> int:
    """DynamoDB's size of an item: its attribute names and values, in bytes."""
    return sum(len(name.encode()) + len(next(iter(value.values())).encode()) for name, value in item.items())


@pytest.mark.slow
def test_a_card_testing_burst_keeps_the_card_item_small_in_dynamodb(moto_server, record_property):
    spec = FeatureSpec.default()
    memory = InMemoryKeyValueStore()
    engine = OnlineFeatures(spec, memory)
    card = entity_key(engine.keys, CARD, "burst-card")
    t0 = 1_780_000_000

    def txn(i, t=None, terminal=None):
        return {"transaction_id": f"burst-{i}", "timestamp": t0 + i * SPACING_S if t is None else t,
                "card_id": "burst-card", "terminal_id": terminal or f"term-{i}", "amount": 1.0}

    def stored_size(store, version=1):  # the item as DynamoDB stores it
        item = store.get(card)
        return item_size(DynamoDBKeyValueStore._put_request(card, item.value, None, version, engine.ttl)["Item"])

    largest = 0
    for i in range(N - IN_DYNAMODB):
        assert engine.process(txn(i))["card_terminal_seen_before"] == 0
        if i % 250 == 0 or i >= MAX_SEEN_TERMINALS - 5:
            largest = max(largest, stored_size(memory, i + 1))
            assert largest < ITEM_BOUND, (i, largest)

    table = "fraud-burst-features"
    DynamoDBKeyValueStore.create_table(table, moto_server)
    dynamo = DynamoDBKeyValueStore(table, moto_server)
    dynamo.put(card, memory.get(card).value, ttl_seconds=engine.ttl)
    engine = OnlineFeatures(spec, dynamo, keys=engine.keys)

    def raw_size():
        raw = dynamo.db.get_item(TableName=table, Key={"pk": {"S": card}}, ConsistentRead=True)["Item"]
        return item_size(raw)

    def trim():
        others = [key for key, _ in dynamo.scan() if key != card]
        for start in range(0, len(others), 25):
            dynamo.db.batch_write_item(RequestItems={table: [{"DeleteRequest": {"Key": {"pk": {"S": key}}}}
                                                             for key in others[start:start + 25]]})

    for i in range(N - IN_DYNAMODB, N):
        assert engine.process(txn(i))["card_terminal_seen_before"] == 0  # every one succeeds
        largest = max(largest, raw_size())
        if i % TRIM_EVERY == 0:
            trim()
    record_property("largest_card_item_bytes", largest)
    print(f"largest card item after {N} transactions: {largest} bytes (cap {MAX_SEEN_TERMINALS} terminals)")
    assert largest < ITEM_BOUND
    state = dynamo.get(card).value
    assert state["n"] == N and len(state["seen"]) == MAX_SEEN_TERMINALS

    t_last = t0 + (N - 1) * SPACING_S
    # a recent terminal is remembered; one evicted by the cap is not (batch would read 1)
    assert engine.process(txn(N, t_last + 10, f"term-{N - 10}"))["card_terminal_seen_before"] == 1
    assert engine.process(txn(N + 1, t_last + 20, "term-0"))["card_terminal_seen_before"] == 0
    # more than the window later, every terminal before is gone from the state
    later = t_last + 20 + spec.history_window + 1
    assert engine.process(txn(N + 2, later, f"term-{N - 1}"))["card_terminal_seen_before"] == 0
    assert dynamo.get(card).value["seen"] == {_seen_token(engine.keys, f"term-{N - 1}"): later}
    assert raw_size() < 2048
