"""Key-value store of JSON documents with optimistic concurrency: in memory and DynamoDB.

Every item carries a version. ``put(..., expected_version=v)`` succeeds only if the
stored version is still ``v`` (0: the key must not exist), so read-modify-write is
atomic under concurrency: the loser gets ``ConditionFailed`` and retries on fresh data.
Documents are stored as JSON text, not DynamoDB numbers, so floats round-trip exactly
(DynamoDB numbers are decimals; float -> decimal -> float arithmetic would drift).
An item may carry a ``tag``: ``tagged(tag)`` lists just the items with that tag (in DynamoDB
a sparse global secondary index, ``TAG_INDEX``), so a few pending outbox records are found
without reading the many sent ones.
orjson writes the shortest text that reads back to the same float, at a seventh of the
cost of the standard json module (the state document is on every transaction's path).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterator

import orjson


TAG_INDEX = "by-tag"  # DynamoDB: a sparse GSI on the top-level attribute "tag"


def _encode(value: dict) -> str:
    return orjson.dumps(value).decode()


class ConditionFailed(Exception):
    """The item changed (or exists / is missing) since it was read."""


@dataclass(frozen=True)
class Item:
    value: dict
    version: int


@dataclass(frozen=True)
class Write:
    """One conditional write of a transaction: ``expected_version`` 0 means "must not exist"."""
    key: str
    value: dict
    expected_version: int
    ttl_seconds: float | None = None
    tag: str | None = None


class KeyValueStore(ABC):
    @abstractmethod
    def get(self, key: str) -> Item | None: ...

    @abstractmethod
    def put(self, key: str, value: dict, *, expected_version: int | None = None,
            ttl_seconds: float | None = None, tag: str | None = None) -> int:
        """Store ``value``; returns the new version. ``expected_version`` None: unconditional.
        ``tag``: listed by ``tagged(tag)`` until a put without it."""

    @abstractmethod
    def delete(self, key: str, *, expected_version: int | None = None) -> None: ...

    @abstractmethod
    def transact(self, writes: list[Write]) -> None:
        """All or nothing: every write happens, or (``ConditionFailed``) none does, when any
        key's version is not the one expected. Distinct keys, at most 100 writes."""

    @abstractmethod
    def scan(self, prefix: str = "") -> Iterator[tuple[str, Item]]:
        """All live items whose key starts with ``prefix`` (reads the whole table: tests, tools)."""

    @abstractmethod
    def tagged(self, tag: str, limit: int = 1000) -> list[tuple[str, Item]]:
        """Up to ``limit`` live items carrying ``tag``, without reading the others. In
        DynamoDB eventually consistent (an index): check versions before acting."""

    def get_many(self, keys) -> dict[str, Item]:
        """The live items among ``keys`` (missing keys are absent from the result): one
        round trip per hundred keys where the backend can batch reads."""
        found = {}
        for key in dict.fromkeys(keys):
            item = self.get(key)
            if item is not None:
                found[key] = item
        return found

    def put_many(self, items: dict[str, dict], ttl_seconds: float | None = None) -> None:
        """Unconditional bulk write (building state from history)."""
        for key, value in items.items():
            self.put(key, value, ttl_seconds=ttl_seconds)

    def update(self, key: str, change, *, ttl_seconds: float | None = None, max_attempts: int = 20):
        """Atomic read-modify-write: ``change(old_value_or_None) -> (new_value, result)``.

        Retries on concurrent modification; returns ``result``.
        """
        for _ in range(max_attempts):
            item = self.get(key)
            new_value, result = change(None if item is None else item.value)
            try:
                self.put(key, new_value, expected_version=0 if item is None else item.version,
                         ttl_seconds=ttl_seconds)
                return result
            except ConditionFailed:
                continue
        raise ConditionFailed(f"{key}: gave up after {max_attempts} concurrent modifications")


class InMemoryKeyValueStore(KeyValueStore):
    """Thread-safe dict with versions and expiry; the local and test implementation."""

    def __init__(self):
        self._items: dict[str, tuple[str, int, float | None, str | None]] = {}
        self._lock = threading.Lock()

    def _live(self, key):
        entry = self._items.get(key)
        if entry is None or (entry[2] is not None and entry[2] <= time.time()):
            return None
        return entry

    def get(self, key: str) -> Item | None:
        with self._lock:
            entry = self._live(key)
        return None if entry is None else Item(orjson.loads(entry[0]), entry[1])

    def get_many(self, keys) -> dict[str, Item]:
        with self._lock:
            entries = {key: entry for key in keys if (entry := self._live(key)) is not None}
        return {key: Item(orjson.loads(entry[0]), entry[1]) for key, entry in entries.items()}

    def put(self, key, value, *, expected_version=None, ttl_seconds=None, tag=None) -> int:
        doc = _encode(value)
        with self._lock:
            entry = self._live(key)
            current = 0 if entry is None else entry[1]
            if expected_version is not None and current != expected_version:
                raise ConditionFailed(f"{key}: version {current}, expected {expected_version}")
            expires = None if ttl_seconds is None else time.time() + ttl_seconds
            self._items[key] = (doc, current + 1, expires, tag)
            return current + 1

    def transact(self, writes: list[Write]) -> None:
        _check_transaction(writes)
        docs = [_encode(w.value) for w in writes]
        with self._lock:
            for w in writes:
                entry = self._live(w.key)
                if (0 if entry is None else entry[1]) != w.expected_version:
                    raise ConditionFailed(f"{w.key}: version changed; nothing written")
            now = time.time()
            for w, doc in zip(writes, docs):
                expires = None if w.ttl_seconds is None else now + w.ttl_seconds
                self._items[w.key] = (doc, w.expected_version + 1, expires, w.tag)

    def delete(self, key, *, expected_version=None) -> None:
        with self._lock:
            entry = self._live(key)
            if expected_version is not None and (0 if entry is None else entry[1]) != expected_version:
                raise ConditionFailed(f"{key}: version changed")
            self._items.pop(key, None)

    def scan(self, prefix=""):
        with self._lock:
            keys = [k for k in self._items if k.startswith(prefix) and self._live(k)]
            entries = {k: self._items[k] for k in keys}
        for key in sorted(entries):
            doc, version, *_ = entries[key]
            yield key, Item(orjson.loads(doc), version)

    def tagged(self, tag, limit=1000):
        with self._lock:
            entries = [(k, e) for k, e in self._items.items() if e[3] == tag and self._live(k)][:limit]
        return [(key, Item(orjson.loads(entry[0]), entry[1])) for key, entry in entries]

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for k in self._items if self._live(k))


def _check_transaction(writes: list[Write]) -> None:
    keys = [w.key for w in writes]
    if len(set(keys)) != len(keys) or not 0 < len(keys) <= 100:
        raise ValueError(f"a transaction takes 1 to 100 distinct keys, got {keys}")


def _until_processed(batch_call, pending: dict, unprocessed: str, on_response=None, attempts: int = 8) -> dict:
    """Call a DynamoDB batch API until it has taken every request, backing off exponentially
    on the part it left (throttling); returns what is still left after ``attempts``."""
    for attempt in range(attempts):
        out = batch_call(RequestItems=pending)
        if on_response is not None:
            on_response(out)
        pending = out.get(unprocessed) or {}
        if not pending:
            return {}
        time.sleep(0.05 * 2**attempt)
    return pending


def _live_item(raw: dict, now: float) -> Item | None:
    """A DynamoDB item as an Item; None once expired (DynamoDB's TTL sweep lags by hours)."""
    if "expires_at" in raw and float(raw["expires_at"]["N"]) <= now:
        return None
    return Item(orjson.loads(raw["doc"]["S"]), int(raw["version"]["N"]))


class DynamoDBKeyValueStore(KeyValueStore):
    """A DynamoDB table keyed ``pk`` (string) with attributes ``doc`` (JSON text),
    ``version`` and ``expires_at`` (the table's TTL attribute)."""

    def __init__(self, table_name: str, endpoint_url: str | None = None, dynamodb_client=None):
        from .aws import client

        self.table = table_name
        self.db = dynamodb_client or client("dynamodb", endpoint_url)

    @staticmethod
    def create_table(table_name: str, endpoint_url: str | None = None, tag_index: bool = False) -> None:
        """Create the table (tests and local set-up; the CDK app creates it in AWS), with the
        sparse tag index where ``tagged`` is used (the outbox)."""
        from .aws import client

        db = client("dynamodb", endpoint_url)
        attributes = [{"AttributeName": "pk", "AttributeType": "S"}]
        index = {}
        if tag_index:
            attributes.append({"AttributeName": "tag", "AttributeType": "S"})
            index = {"GlobalSecondaryIndexes": [{"IndexName": TAG_INDEX, "Projection": {"ProjectionType": "ALL"},
                                                 "KeySchema": [{"AttributeName": "tag", "KeyType": "HASH"}]}]}
        db.create_table(TableName=table_name, BillingMode="PAY_PER_REQUEST", AttributeDefinitions=attributes,
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], **index)
        db.get_waiter("table_exists").wait(TableName=table_name)
        db.update_time_to_live(TableName=table_name, TimeToLiveSpecification={
            "Enabled": True, "AttributeName": "expires_at"})

    def get(self, key: str) -> Item | None:
        out = self.db.get_item(TableName=self.table, Key={"pk": {"S": key}}, ConsistentRead=True)
        raw = out.get("Item")
        return None if raw is None else _live_item(raw, time.time())

    def get_many(self, keys) -> dict[str, Item]:
        """BatchGetItem, 100 keys a call, strongly consistent; unprocessed keys are retried."""
        unique = list(dict.fromkeys(keys))
        found = {}

        def collect(out):
            now = time.time()
            for raw in out.get("Responses", {}).get(self.table, []):
                item = _live_item(raw, now)
                if item is not None:
                    found[raw["pk"]["S"]] = item

        for start in range(0, len(unique), 100):
            pending = {self.table: {"Keys": [{"pk": {"S": k}} for k in unique[start:start + 100]],
                                    "ConsistentRead": True}}
            pending = _until_processed(self.db.batch_get_item, pending, "UnprocessedKeys", collect)
            if pending:
                raise RuntimeError(f"DynamoDB left {len(pending[self.table]['Keys'])} keys unread")
        return found

    @staticmethod
    def _put_request(key: str, value: dict, expected_version: int | None, version: int,
                     ttl_seconds: float | None, tag: str | None = None) -> dict:
        """PutItem arguments (less the table) that write ``version``, conditional on the
        stored version being ``expected_version`` (0: absent or expired; None: no condition)."""
        now = time.time()
        item = {"pk": {"S": key}, "doc": {"S": _encode(value)}, "version": {"N": str(version)}}
        if ttl_seconds is not None:
            item["expires_at"] = {"N": str(int(now + ttl_seconds))}
        if tag is not None:
            item["tag"] = {"S": tag}
        request = {"Item": item}
        if expected_version == 0:
            request.update(ConditionExpression="attribute_not_exists(pk) OR expires_at <= :now",
                           ExpressionAttributeValues={":now": {"N": str(int(now))}})
        elif expected_version is not None:
            request.update(ConditionExpression="version = :v",
                           ExpressionAttributeValues={":v": {"N": str(expected_version)}})
        return request

    def put(self, key, value, *, expected_version=None, ttl_seconds=None, tag=None) -> int:
        if expected_version is None:
            current = self.get(key)
            new_version = 1 if current is None else current.version + 1
        else:
            new_version = expected_version + 1
        try:
            self.db.put_item(TableName=self.table,
                             **self._put_request(key, value, expected_version, new_version, ttl_seconds, tag))
        except self.db.exceptions.ConditionalCheckFailedException as exc:
            raise ConditionFailed(f"{key}: changed since read") from exc
        return new_version

    def transact(self, writes: list[Write]) -> None:
        """TransactWriteItems: one round trip; a failed condition or a concurrent transaction
        on one of the items cancels all of it."""
        _check_transaction(writes)
        items = [{"Put": {"TableName": self.table, **self._put_request(w.key, w.value, w.expected_version,
                                                                        w.expected_version + 1, w.ttl_seconds,
                                                                        w.tag)}}
                 for w in writes]
        try:
            self.db.transact_write_items(TransactItems=items)
        except self.db.exceptions.TransactionCanceledException as exc:
            codes = {r.get("Code") for r in exc.response.get("CancellationReasons", [])}
            if codes & {"ConditionalCheckFailed", "TransactionConflict"}:
                raise ConditionFailed(f"{[w.key for w in writes]}: changed since read; nothing written") from exc
            raise

    def delete(self, key, *, expected_version=None) -> None:
        kwargs = {}
        if expected_version is not None:
            kwargs = {"ConditionExpression": "version = :v",
                      "ExpressionAttributeValues": {":v": {"N": str(expected_version)}}}
        try:
            self.db.delete_item(TableName=self.table, Key={"pk": {"S": key}}, **kwargs)
        except self.db.exceptions.ConditionalCheckFailedException as exc:
            raise ConditionFailed(f"{key}: changed since read") from exc

    def scan(self, prefix=""):
        kwargs = {"TableName": self.table, "ConsistentRead": True}
        if prefix:
            kwargs.update(FilterExpression="begins_with(pk, :p)",
                          ExpressionAttributeValues={":p": {"S": prefix}})
        now = time.time()
        for page in self.db.get_paginator("scan").paginate(**kwargs):
            for raw in page.get("Items", []):
                item = _live_item(raw, now)
                if item is not None:
                    yield raw["pk"]["S"], item

    def tagged(self, tag, limit=1000):
        """A Query on the sparse tag index: reads only the tagged items."""
        out, now = [], time.time()
        kwargs = {"TableName": self.table, "IndexName": TAG_INDEX, "KeyConditionExpression": "#t = :t",
                  "ExpressionAttributeNames": {"#t": "tag"}, "ExpressionAttributeValues": {":t": {"S": tag}}}
        for page in self.db.get_paginator("query").paginate(**kwargs, PaginationConfig={"PageSize": 100}):
            for raw in page.get("Items", []):
                item = _live_item(raw, now)
                if item is not None:
                    out.append((raw["pk"]["S"], item))
                if len(out) >= limit:
                    return out
        return out

    def put_many(self, items, ttl_seconds=None) -> None:
        keys = list(items)
        for start in range(0, len(keys), 25):
            requests = [{"PutRequest": {"Item": self._put_request(key, items[key], None, 1, ttl_seconds)["Item"]}}
                        for key in keys[start:start + 25]]
            pending = _until_processed(self.db.batch_write_item, {self.table: requests}, "UnprocessedItems")
            if pending:
                raise RuntimeError(f"DynamoDB left {len(pending[self.table])} items unwritten")
