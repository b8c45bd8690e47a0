"""Ports to the outside world, each one small interface with a local and an AWS adapter
(the shape of Powertools' persistence layers): blob store (directory / S3), key-value
store (in-memory / DynamoDB), queue (in-memory / SQS), metrics sink (in-memory / EMF).
Tests and the local default use the local implementations; AWS is one adapter away."""

from .blob import BlobStore, LocalBlobStore, S3BlobStore, open_blob_store
from .kv import ConditionFailed, DynamoDBKeyValueStore, InMemoryKeyValueStore, KeyValueStore

__all__ = [
    "BlobStore", "LocalBlobStore", "S3BlobStore", "open_blob_store",
    "KeyValueStore", "InMemoryKeyValueStore", "DynamoDBKeyValueStore", "ConditionFailed",
]
