"""Card numbers cannot be recovered from what the service stores, sends or logs, and API
keys are made once and kept only as digests.

A card number has few unknown digits, so any unkeyed (or publicly salted) hash of it is
reversed by enumeration. The properties tested: every card-derived value depends on the
secret hash key (two keys give disjoint values for the same cards, so nothing can be
computed from the card number alone); the key persists locally across restarts; card ids
never travel in a URL (access logs keep URLs).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from helpers.api import API_KEY_HASH, free_port

ROOT = Path(__file__).resolve().parents[2]
PANS = ["4539578763621486", "5555555555554444", "4012888888881881"]


def _txn(i: int) -> dict:
    return {"transaction_id": f"priv-{i}", "timestamp": f"2026-02-11T09:{i:02d}:00Z", "card_id": PANS[i % 3],
            "terminal_id": f"T-{i % 2}", "amount": 30.0 + i, "currency": "EUR"}


@pytest.fixture(scope="module")
def review_bundle(small_training):
    """A model that sends every transaction to review (so messages go out)."""
    from fraud.policy import Thresholds

    return dataclasses.replace(small_training.bundle, thresholds=Thresholds(review=0.0, decline=2.0))


def _deployment(bundle, secrets_dir: Path) -> str:
    """A local deployment: its key in ``secrets_dir`` (made on first use), its registry
    signed with that key. Returns the registry's URI."""
    from fraud.pseudonym import load_pseudonymizer
    from fraud.registry import ModelRegistry
    from fraud.storage.secrets import LocalSecretStore

    keys = load_pseudonymizer(LocalSecretStore(secrets_dir), create=True)
    registry = ModelRegistry.open(secrets_dir.parent / f"registry-{secrets_dir.name}", keys=keys)
    if registry.champion() is None:
        registry.promote(registry.publish(bundle), "everything to review")
    return registry.uri


def _run_service(bundle, secrets_dir: Path, caplog) -> dict[str, set[str]]:
    """Score, block a card, feed back; returns every card-derived value the service left,
    by where it was found."""
    from fastapi.testclient import TestClient

    from lambda_handler.api import create_app
    from lambda_handler.container import build_container
    from lambda_handler.settings import Settings

    settings = Settings(backend="local", registry_uri=_deployment(bundle, secrets_dir), api_key_hashes=API_KEY_HASH,
                        metrics="off", secrets_dir=str(secrets_dir))
    container = build_container(settings)
    client = TestClient(create_app(container))
    headers = {"x-api-key": "test-key-123"}
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lambda_handler"):
        for i in range(6):
            assert client.post("/v1/score", json=_txn(i), headers=headers).status_code == 200
        assert client.put("/v1/lists/block/card", json={"id": PANS[0], "reason": "stolen"},
                          headers=headers).status_code == 204
    messages = container.queue.receive(100)
    assert len(messages) == 6
    found = {
        "state keys": {k for k, _ in container.stores["features"].scan("card#")},
        "list keys": {k for k, _ in container.stores["lists"].scan("block#card#")},
        "request digests": {item.value["digest"] for _, item in container.stores["idempotency"].scan("txn#")},
        "review messages": {m["card"] for m in messages},
        "logs": set(re.findall(r"card=(\S+)", caplog.text)),
    }
    everything = json.dumps([sorted(v) for v in found.values()]) + caplog.text + json.dumps(messages)
    for store in container.stores.values():
        everything += json.dumps([[k, item.value] for k, item in store.scan("")])
    assert not [p for p in PANS if p in everything], "a card number is stored or logged in clear"
    assert all(found.values()), {k: len(v) for k, v in found.items()}
    return found


def test_every_stored_or_logged_card_value_depends_on_the_secret_key(review_bundle, tmp_path, caplog):
    first = _run_service(review_bundle, tmp_path / "a", caplog)
    restarted = _run_service(review_bundle, tmp_path / "a", caplog)  # same key file: same pseudonyms
    other_key = _run_service(review_bundle, tmp_path / "b", caplog)
    assert first == restarted
    for where in first:
        assert not first[where] & other_key[where], f"{where}: computable without the key"
    key_file = tmp_path / "a" / "hash-key.json"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "a").stat().st_mode & 0o777) == "0o700"
    assert len(bytes.fromhex(json.loads(key_file.read_text())["hash_key"])) == 32


def test_aws_backend_refuses_to_start_without_the_hash_key_secret(local_registry_dir):
    from lambda_handler.container import build_container
    from lambda_handler.settings import Settings

    with pytest.raises(RuntimeError, match="FRAUD_HASH_KEY_SECRET_ARN"):
        build_container(Settings(backend="aws", registry_uri=str(local_registry_dir), metrics="off"))


def test_api_keys_are_made_once_and_kept_as_digests(review_bundle, tmp_path):
    from fastapi.testclient import TestClient

    from lambda_handler.api import create_app
    from lambda_handler.container import build_container
    from lambda_handler.settings import Settings

    secrets_dir = tmp_path / "secrets"
    registry_uri = _deployment(review_bundle, secrets_dir)
    env = {**os.environ, "FRAUD_SECRETS_DIR": str(secrets_dir), "PYTHONPATH": str(ROOT)}
    made = [subprocess.run([sys.executable, "-m", "batch_jobs.cli", "api-key", "create"], env=env,
                           capture_output=True, text=True, check=True) for _ in range(2)]
    keys = [m.stdout.split("x-api-key:")[1].split()[0] for m in made]
    assert keys[0] != keys[1] and all(len(k) > 40 for k in keys)
    stored = (secrets_dir / "api-keys.json").read_text()
    assert all(k not in stored for k in keys)
    assert json.loads(stored) == {"api_key_hashes": [hashlib.sha256(k.encode()).hexdigest() for k in keys]}
    assert oct((secrets_dir / "api-keys.json").stat().st_mode & 0o777) == "0o600"
    for _ in range(2):  # a restarted server accepts the same keys
        settings = Settings(backend="local", registry_uri=registry_uri, metrics="off", secrets_dir=str(secrets_dir))
        client = TestClient(create_app(build_container(settings)))
        assert [client.get("/v1/model", headers={"x-api-key": k}).status_code for k in keys] == [200, 200]
        assert client.get("/v1/model", headers={"x-api-key": keys[0] + "x"}).status_code == 401


def test_card_ids_never_reach_the_access_log(local_registry_dir, tmp_path):
    """uvicorn (like API Gateway) logs every request's path: a card id must not be in one."""
    port = free_port()
    env = {**os.environ, "FRAUD_REGISTRY_URI": str(local_registry_dir), "FRAUD_METRICS": "off",
           "FRAUD_API_KEY_HASHES": API_KEY_HASH, "PYTHONPATH": str(ROOT)}
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "-m", "uvicorn", "lambda_handler.app:app", "--port", str(port),
                                   "--log-level", "info"], env=env, stdout=out, stderr=subprocess.STDOUT)
    base, headers = f"http://127.0.0.1:{port}", {"x-api-key": "test-key-123"}
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/v1/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        with httpx.Client(base_url=base, headers=headers) as http:
            assert http.put("/v1/lists/block/card", json={"id": PANS[1], "reason": "stolen"}).status_code == 204
            assert http.post("/v1/score", json=_txn(1)).json()["decision"] == "decline"
            assert http.post("/v1/lists/block/card/remove", json={"id": PANS[1]}).status_code == 204
            # the old form, with the id in the path, no longer exists
            assert http.put(f"/v1/lists/block/card/{PANS[2]}", json={"reason": "x"}).status_code in (404, 405)
    finally:
        server.terminate()
        server.wait(10)
    text = log.read_text()
    assert '"PUT /v1/lists/block/card HTTP/1.1" 204' in text, text[-2000:]  # the access log is on
    assert PANS[1] not in text
