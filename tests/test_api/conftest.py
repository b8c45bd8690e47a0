"""API test fixtures: a real moto server for S3, DynamoDB and SQS, a registry on S3 with
a trained model, and containers/apps wired to them."""

from __future__ import annotations

import dataclasses
import io

import pytest

from helpers.api import API_KEY_HASH, TABLES


@pytest.fixture(scope="session")
def review_bundle(small_training):
    """The trained bundle with thresholds that send every transaction to review."""
    from fraud.policy import Thresholds

    return dataclasses.replace(small_training.bundle, thresholds=Thresholds(review=0.0, decline=2.0))


@pytest.fixture(scope="session")
def deployment_keys(moto_server, hash_key_secret):
    """The deployment's key (from Secrets Manager): pseudonyms and registry signatures."""
    from fraud.pseudonym import load_pseudonymizer
    from fraud.storage.secrets import SecretsManagerStore

    return load_pseudonymizer(SecretsManagerStore(moto_server), hash_key_secret)


@pytest.fixture(scope="session")
def s3_registry(moto_server, small_training, deployment_keys):
    """A registry on S3 (moto) holding the trained model as champion, signed with the
    deployment's key."""
    from fraud.registry import ModelRegistry
    from fraud.storage.aws import client

    client("s3", moto_server).create_bucket(Bucket="fraud-models")
    registry = ModelRegistry.open("s3://fraud-models/registry", moto_server, keys=deployment_keys)
    version = registry.publish(small_training.bundle)
    registry.promote(version, "test champion")
    return registry


@pytest.fixture(scope="session")
def hash_key_secret(moto_server) -> str:
    """The card-hash key in Secrets Manager, as the CDK app creates it; returns its ARN."""
    from fraud.storage.aws import client

    return client("secretsmanager", moto_server).create_secret(
        Name="fraud-test/hash-key", SecretString='{"hash_key": "' + "k" * 64 + '"}')["ARN"]


_counter = {"n": 0}


@pytest.fixture
def aws_settings(moto_server, s3_registry, hash_key_secret):
    """Settings for a fresh set of DynamoDB tables and a FIFO review queue on moto."""
    from fraud.storage.aws import client
    from fraud.storage.kv import DynamoDBKeyValueStore
    from lambda_handler.settings import Settings

    _counter["n"] += 1
    suffix = f"t{_counter['n']}"
    tables = {f"{name}_table": f"fraud-{name}-{suffix}" for name in TABLES}
    for name, table in tables.items():
        DynamoDBKeyValueStore.create_table(table, moto_server, tag_index=name == "outbox_table")
    queue_url = client("sqs", moto_server).create_queue(
        QueueName=f"fraud-review-{suffix}.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"})["QueueUrl"]
    return Settings(backend="aws", aws_endpoint_url=moto_server, registry_uri=s3_registry.uri,
                    review_queue_url=queue_url, api_key_hashes=API_KEY_HASH, metrics="emf",
                    hash_key_secret_arn=hash_key_secret, **tables)


@pytest.fixture
def emf_stream():
    return io.StringIO()


@pytest.fixture(scope="session")
def local_registry_dir(tmp_path_factory, small_training):
    from fraud.registry import ModelRegistry

    path = tmp_path_factory.mktemp("api-registry")
    registry = ModelRegistry.open(path)
    registry.promote(registry.publish(small_training.bundle), "api tests")
    return path


@pytest.fixture
def local_settings(local_registry_dir):
    from lambda_handler.settings import Settings

    return Settings(backend="local", registry_uri=str(local_registry_dir), api_key_hashes=API_KEY_HASH,
                    metrics="memory", max_batch=5, max_body_bytes=20_000)
