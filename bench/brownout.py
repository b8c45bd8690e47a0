"""Review requests during an SQS brownout, against the same requests with SQS healthy.

    python bench/brownout.py [--requests 200] [--json bench/results/brownout.json]

Everything runs for real on loopback: moto's server (DynamoDB state, the S3 registry, a
standard SQS queue) and a TCP proxy in front of its SQS endpoint that either forwards or,
in the brownout, accepts connections and never answers. Every transaction goes to review
(a model whose review threshold is 0), so each request sends a message. Reported: p50/p99
of the requests with SQS healthy (the baseline) and during the brownout, their ratio, how
long the drain took to deliver the backlog once SQS answered again, and whether every
message arrived exactly once (a standard queue: SQS de-duplicates nothing there).
The DynamoDB calls per scored transaction are counted in the same run.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench"), str(ROOT / "tests")]

from common import percentiles, write_json  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    for name, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                        "AWS_DEFAULT_REGION": "us-east-1", "FRAUD_SECRETS_DIR": tempfile.mkdtemp()}.items():
        os.environ.setdefault(name, value)

    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    from fastapi.testclient import TestClient
    from moto.server import ThreadedMotoServer

    from fraud.config import load_config
    from fraud.features.batch import build_features
    from fraud.features.spec import FeatureSpec
    from fraud.io import load_transactions
    from fraud.policy import Thresholds
    from fraud.pseudonym import load_pseudonymizer
    from fraud.registry import ModelRegistry
    from fraud.simulator import TransactionSimulator
    from fraud.storage.aws import client
    from fraud.storage.kv import DynamoDBKeyValueStore
    from fraud.storage.queue import SQSQueue
    from fraud.storage.secrets import SecretsManagerStore
    from fraud.training import LabelledFeatures, train
    from helpers.api import free_port, queue_messages
    from helpers.configs import SMALL
    from helpers.proxy import SwitchableProxy
    from lambda_handler.api import create_app
    from lambda_handler.container import build_container
    from lambda_handler.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="brownout-"))
    print("training a small model ...", flush=True)
    TransactionSimulator(n_customers=1500, n_terminals=600, seed=7).write(work / "data", 45, progress=False)
    (work / "small.toml").write_text(SMALL)
    config = load_config(work / "small.toml")
    frame, _ = load_transactions(work / "data", config, require_label=True)
    spec = FeatureSpec.default(config.features, config.columns)
    bundle = train(LabelledFeatures.from_transactions(frame, build_features(frame, spec)), config, spec,
                   progress=False).bundle

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    proxy = SwitchableProxy(port)
    try:
        arn = client("secretsmanager", endpoint).create_secret(
            Name="bench/hash-key", SecretString='{"hash_key": "' + "b" * 64 + '"}')["ARN"]
        client("s3", endpoint).create_bucket(Bucket="bench")
        registry = ModelRegistry.open("s3://bench/registry", endpoint,
                                      keys=load_pseudonymizer(SecretsManagerStore(endpoint), arn))
        registry.promote(registry.publish(dataclasses.replace(bundle, thresholds=Thresholds(0.0, 2.0))), "reviews")
        tables = {f"{name}_table": f"bench-{name}" for name in ("features", "idempotency", "outbox", "lists",
                                                                 "feedback")}
        for name, table in tables.items():
            DynamoDBKeyValueStore.create_table(table, endpoint, tag_index=name == "outbox_table")
        queue_url = client("sqs", endpoint).create_queue(QueueName="bench-reviews")["QueueUrl"]
        settings = Settings(backend="aws", aws_endpoint_url=endpoint, registry_uri=registry.uri,
                            review_queue_url=queue_url, api_key_hashes=hashlib.sha256(b"bench").hexdigest(),
                            hash_key_secret_arn=arn, metrics="off",
                            **tables)
        container = build_container(settings, queue=SQSQueue(queue_url, proxy.endpoint,
                                                             timeout_s=settings.review_send_timeout_s))
        app = TestClient(create_app(container))
        db = container.stores["idempotency"].db
        calls = collections.Counter()
        db.meta.events.register("provide-client-params.dynamodb",
                                lambda params, **kw: calls.update([kw["event_name"].split(".")[-1]]))

        def timed(ids):
            out = []
            for i in ids:
                txn = {"transaction_id": f"b-{i}", "timestamp": f"2026-02-13T{10 + i // 3600 % 10:02d}:"
                       f"{i // 60 % 60:02d}:{i % 60:02d}Z", "card_id": f"card-{i % 97}",
                       "terminal_id": f"term-{i % 31}", "amount": 20.0 + i % 50, "currency": "EUR"}
                started = time.perf_counter()
                r = app.post("/v1/score", json=txn, headers={"x-api-key": "bench"})
                out.append(time.perf_counter() - started)
                assert r.status_code == 200 and r.json()["decision"] == "review", r.text
            return out

        n = args.requests
        healthy = timed(range(n))
        per_transaction = {k: v / n for k, v in calls.items()}
        proxy.set_mode("hang")
        brownout = timed(range(n, 2 * n))
        proxy.set_mode("forward")
        started = time.perf_counter()
        while container.router.drain()["pending"]:
            pass
        drained_s = time.perf_counter() - started
        delivered = collections.Counter(m["transaction_id"] for m in queue_messages(endpoint, queue_url))
        exactly_once = delivered == {f"b-{i}": 1 for i in range(2 * n)}
    finally:
        proxy.close()
        moto.stop()

    results = {"requests": n, "healthy": percentiles(healthy), "brownout": percentiles(brownout),
               "drain_seconds": drained_s, "every_message_exactly_once": exactly_once,
               "dynamodb_calls_per_transaction": per_transaction,
               "review_send_timeout_s": settings.review_send_timeout_s}
    results["p99_ratio"] = results["brownout"]["p99_ms"] / results["healthy"]["p99_ms"]
    print(f"review requests, SQS healthy: p50 {results['healthy']['p50_ms']:.1f} ms, "
          f"p99 {results['healthy']['p99_ms']:.1f} ms")
    print(f"review requests, SQS hanging: p50 {results['brownout']['p50_ms']:.1f} ms, "
          f"p99 {results['brownout']['p99_ms']:.1f} ms ({results['p99_ratio']:.2f}x)")
    print(f"backlog of {n} delivered in {drained_s:.1f} s once SQS answered; exactly once: {exactly_once}")
    print("DynamoDB calls per scored transaction (review ones include the outbox):",
          {k: round(v, 2) for k, v in per_transaction.items()})
    write_json(args.json, results)


if __name__ == "__main__":
    main()
