"""Day one through the API: after ``fraud state load``, the features the API computes for a
replayed day, over HTTP, are the batch engine's (to 1e-9), in memory and in DynamoDB."""

from __future__ import annotations

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from batch_jobs.state_load import load_state
from fraud.features.batch import build_features
from helpers.api import HEADERS
from helpers.replay import assert_equal_batch, replay_http
from lambda_handler.api import create_app
from lambda_handler.container import build_container

N_CARDS = 150  # DynamoDB on moto copies the table on every transaction: keep it small


@pytest.fixture(scope="module")
def start(small_transactions):
    return small_transactions["timestamp"].min().normalize() + pd.Timedelta(days=35, hours=8)


def test_api_after_state_load_computes_the_batch_features_in_memory(local_settings, small_transactions,
                                                                   small_features, start):
    spec, features = small_features
    container = build_container(local_settings)
    assert container.online.spec.names == spec.names
    load_state(small_transactions, spec, container.stores["features"], container.online.keys, as_of=start)
    with TestClient(create_app(container)) as client:
        online = replay_http(client, HEADERS, container, small_transactions, start, hours=3)
    assert_equal_batch(online, features, at_least=500)


def test_api_after_state_load_computes_the_batch_features_in_dynamodb(aws_settings, small_transactions,
                                                                     small_features, start):
    spec, _ = small_features
    cards = sorted(small_transactions["card_id"].unique())[:N_CARDS]
    some = small_transactions[small_transactions["card_id"].isin(cards)]
    features = build_features(some, spec)
    container = build_container(aws_settings)
    load_state(some, spec, container.stores["features"], container.online.keys, as_of=start)
    with TestClient(create_app(container)) as client:
        online = replay_http(client, HEADERS, container, some, start, hours=3)
    assert_equal_batch(online, features, at_least=40)
