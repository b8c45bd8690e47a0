"""The stack as deployed, without an AWS account: the resources, the environment variables
and the IAM policies come from the synthesized template; the code runs as each deployed
principal against moto's server with IAM enforcement on.

    nightly job (first night, empty registry)  as the training task role
    fraud state load (the one-off task)        as the state-load task role
    fraud state catch-up (the nightly task)    the same role, after a day reached the lake only
    scoring API under uvicorn                  as the scoring function role
      API key made by `fraud api-key create`, score, replay, batch, lists, feedback (into
      the label store the nightly job reads, after an operator's `fraud labels import`),
      review messages, decision records (Firehose to decisions/), champion reload
    outbox drain handler                       as the drain function role
    fraud hard-examples (the daily task)        as its task role, on the API's decisions (where Firehose
                                               delivers them) and labels, the versions' thresholds from
                                               the registry; denied writes outside hard-examples/ and
                                               deletes; the training role reads the queue back

Two checks per principal. moto refuses any call whose action the principal lacks (its
evaluator is basic, so ``helpers.iam.for_moto`` adapts the statements). Every call the
process made is then recorded (``helpers/aws_call_log``) and checked against the exact
statements as AWS authorises it (resource ARNs, s3:prefix conditions, transactions as
per-item actions, 404s on S3 needing ListBucket), and every granted action on every resource
must have been needed by some call (least privilege), except the few listed below with
the failure path that needs them.

Card numbers: after the flow, nothing in DynamoDB, SQS, the decision log or the API's log holds the card
number or a plain hash of it; its state key is the HMAC under the key in Secrets Manager.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import io
import json
import os
import re
import secrets
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx
import pytest

from helpers import iam
from helpers.api import free_port
from helpers.configs import SMALL

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
cdk = pytest.importorskip("aws_cdk")

ROOT = Path(__file__).resolve().parents[2]
CALL_LOG_HOOK = ROOT / "tests" / "helpers" / "aws_call_log"
BUCKET = "fraud-dev-data"
PAN = "4539578763621486"  # a Luhn-valid test card number, sent as the card id
# Granted by the CDK for the Lambda runtime itself (active tracing: the X-Ray daemon sends
# the segments), not for calls of our code.
PLATFORM_GRANTS = {"xray:PutTraceSegments on *", "xray:PutTelemetryRecords on *"}
# Granted for paths this flow does not take, each with the path that needs it.
FAILURE_PATH_GRANTS = {
    "scoring": {
        # a batch that fails after claiming its transactions releases the claims
        ("dynamodb:DeleteItem", "fraud-dev-idempotency"),
    },
    "drain": set(),
    "training": set(),
    "state_load": set(),
    "hard_examples": set(),
}


def _synth(tmp_path) -> dict:
    from aws_cdk.assertions import Template

    from infra.app import build_app

    app = build_app(context={"stage": "dev"}, outdir=str(tmp_path / "cdk.out"))
    return Template.from_stack(app.node.find_child("FraudScoring-dev")).to_json()


def _logical(template: dict, kind: str, prop: str, value: str) -> str:
    return next(k for k, r in template["Resources"].items()
                if r["Type"] == kind and r.get("Properties", {}).get(prop) == value)


class Moto:
    """moto's server in its own process, IAM enforced after the first three calls (which
    make the admin user that creates everything else)."""

    def __init__(self, log_path: Path):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)
        _wait_for(lambda: httpx.get(f"{self.endpoint}/moto-api/").status_code == 200, 30, "moto server")
        import boto3

        bootstrap = boto3.client("iam", endpoint_url=self.endpoint, region_name=iam.REGION,
                                 aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        self.admin = self.user(bootstrap, "admin", [{"Effect": "Allow", "Action": "*", "Resource": "*"}])

    def user(self, iam_client, name: str, statements: list[dict]) -> dict:
        iam_client.create_user(UserName=name)
        iam_client.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": statements}))
        key = iam_client.create_access_key(UserName=name)["AccessKey"]
        return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}

    def client(self, service: str, creds: dict | None = None):
        import boto3

        creds = creds or self.admin
        return boto3.client(service, endpoint_url=self.endpoint, region_name=iam.REGION,
                            aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"])

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def _wait_for(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not come up in {seconds} s")


def _create_resources(moto: Moto, template: dict) -> tuple[dict, dict, dict]:
    """Everything the three principals touch, named as the template names it.
    Returns (refs for the resolver, ARN by table name / queue URL / secret ARN, secret values)."""
    refs, arns, secret_values = {}, {}, {}
    s3, db, sqs, sm = (moto.client(s) for s in ("s3", "dynamodb", "sqs", "secretsmanager"))
    for logical, resource in template["Resources"].items():
        kind, props = resource["Type"], resource.get("Properties", {})
        if kind == "AWS::S3::Bucket":
            name = BUCKET if logical.startswith("DataBucket") else f"fraud-dev-{logical.lower()[:40]}"
            s3.create_bucket(Bucket=name)
            refs[logical] = {"Ref": name, "Arn": f"arn:aws:s3:::{name}"}
        elif kind == "AWS::DynamoDB::Table":
            name = props["TableName"]
            indexes = {"GlobalSecondaryIndexes": props["GlobalSecondaryIndexes"]} \
                if "GlobalSecondaryIndexes" in props else {}
            db.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                            AttributeDefinitions=props["AttributeDefinitions"], KeySchema=props["KeySchema"], **indexes)
            arn = db.describe_table(TableName=name)["Table"]["TableArn"]
            refs[logical], arns[name] = {"Ref": name, "Arn": arn}, arn
        elif kind == "AWS::SQS::Queue":
            attributes = {"FifoQueue": "true"} if props.get("FifoQueue") else {}
            url = sqs.create_queue(QueueName=props["QueueName"], Attributes=attributes)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            refs[logical], arns[url] = {"Ref": url, "Arn": arn, "QueueName": props["QueueName"]}, arn
        elif kind == "AWS::SecretsManager::Secret":
            if "GenerateSecretString" in props:
                generate = props["GenerateSecretString"]
                value = {**json.loads(generate["SecretStringTemplate"]),
                         generate["GenerateStringKey"]: secrets.token_hex(generate["PasswordLength"] // 2)}
            else:
                value = json.loads(props["SecretString"])
            arn = sm.create_secret(Name=props["Name"], SecretString=json.dumps(value))["ARN"]
            refs[logical], arns[arn], secret_values[props["Name"]] = {"Ref": arn}, arn, value
    firehose = moto.client("firehose")
    for logical, resource in template["Resources"].items():  # after the buckets they deliver to
        if resource["Type"] == "AWS::KinesisFirehose::DeliveryStream":
            props = resource["Properties"]
            name, destination = props["DeliveryStreamName"], props["ExtendedS3DestinationConfiguration"]
            firehose.create_delivery_stream(
                DeliveryStreamName=name, DeliveryStreamType=props["DeliveryStreamType"],
                ExtendedS3DestinationConfiguration={
                    "BucketARN": refs[destination["BucketARN"]["Fn::GetAtt"][0]]["Arn"],
                    "RoleARN": f"arn:aws:iam::{iam.ACCOUNT}:role/{logical}", "Prefix": destination["Prefix"],
                    "ErrorOutputPrefix": destination["ErrorOutputPrefix"]})
            arn = firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"][
                "DeliveryStreamARN"]
            refs[logical], arns[name] = {"Ref": name, "Arn": arn}, arn
    return refs, arns, secret_values


@dataclasses.dataclass
class Principal:
    name: str
    statements: list[dict]     # exactly as synthesized (resolved)
    env: dict                  # the function's / task's environment as synthesized (resolved)
    creds: dict
    commands: dict | None = None  # a task's container command(s) as synthesized (resolved), by task family

    def run_env(self, moto: Moto, call_log: Path, **extra) -> dict:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FRAUD_"))}
        return {**base, **self.env, **self.creds, "AWS_DEFAULT_REGION": iam.REGION, "AWS_REGION": iam.REGION,
                "AWS_ENDPOINT_URL": moto.endpoint, "FRAUD_AWS_ENDPOINT_URL": moto.endpoint,
                "PYTHONPATH": f"{CALL_LOG_HOOK}{os.pathsep}{ROOT}", "FRAUD_TEST_AWS_CALL_LOG": str(call_log),
                **extra}


def _principals(moto: Moto, template: dict, resolve: iam.Resolver) -> dict[str, Principal]:
    resources = template["Resources"]
    scoring_fn = _logical(template, "AWS::Lambda::Function", "FunctionName", "fraud-dev-score")
    drain_fn = _logical(template, "AWS::Lambda::Function", "FunctionName", "fraud-dev-outbox-drain")
    task = _logical(template, "AWS::ECS::TaskDefinition", "Family", "fraud-dev-nightly-training")
    container = resources[task]["Properties"]["ContainerDefinitions"][0]
    state_task = _logical(template, "AWS::ECS::TaskDefinition", "Family", "fraud-dev-state-load")
    state_container = resources[state_task]["Properties"]["ContainerDefinitions"][0]
    catch_up_task = _logical(template, "AWS::ECS::TaskDefinition", "Family", "fraud-dev-state-catch-up")
    catch_up_container = resources[catch_up_task]["Properties"]["ContainerDefinitions"][0]
    hard_task = _logical(template, "AWS::ECS::TaskDefinition", "Family", "fraud-dev-hard-examples")
    hard_container = resources[hard_task]["Properties"]["ContainerDefinitions"][0]
    assert iam.role_of(template, catch_up_task, "TaskRoleArn") == iam.role_of(template, state_task, "TaskRoleArn")
    assert catch_up_container["Environment"] == state_container["Environment"]
    plans = {
        "scoring": (iam.role_of(template, scoring_fn, "Role"),
                    resolve(resources[scoring_fn]["Properties"]["Environment"]["Variables"])),
        "drain": (iam.role_of(template, drain_fn, "Role"),
                  resolve(resources[drain_fn]["Properties"]["Environment"]["Variables"])),
        "training": (iam.role_of(template, task, "TaskRoleArn"),
                     {e["Name"]: resolve(e["Value"]) for e in container["Environment"]}),
        "state_load": (iam.role_of(template, state_task, "TaskRoleArn"),
                       {e["Name"]: resolve(e["Value"]) for e in state_container["Environment"]}),
        "hard_examples": (iam.role_of(template, hard_task, "TaskRoleArn"),
                          {e["Name"]: resolve(e["Value"]) for e in hard_container["Environment"]}),
    }
    admin_iam = moto.client("iam")
    principals = {}
    for name, (role, env) in plans.items():
        statements = iam.role_statements(template, role, resolve)
        creds = moto.user(admin_iam, name, iam.for_moto(statements))
        commands = {"state_load": {"load": resolve(state_container["Command"]),
                                   "catch-up": resolve(catch_up_container["Command"])},
                    "hard_examples": {"queue": resolve(hard_container["Command"])}}.get(name)
        principals[name] = Principal(name, statements, env, creds, commands)
    return principals


def _check_calls(principal: Principal, call_log: Path, arns: dict) -> list[dict]:
    calls = iam.read_calls(call_log)
    assert calls, f"{principal.name}: no AWS calls recorded (is the call-log hook loaded?)"
    refused = [c for c in calls if c["error"] in ("AccessDenied", "AccessDeniedException")]
    assert not refused, f"{principal.name}: moto refused {refused}"
    assert iam.denied_calls(calls, principal.statements, arns) == [], principal.name
    failure_paths = {f"{action} on {arns[table]}" for action, table in FAILURE_PATH_GRANTS[principal.name]}
    for grant in failure_paths:
        action, resource = grant.split(" on ")
        assert iam.allowed(principal.statements, action, resource, {}), f"{principal.name} lost {grant}"
    unused = [u for u in iam.unused_grants(calls, principal.statements, arns)
              if u.split(": ", 1)[1] not in failure_paths and u.split(": ", 1)[1] not in PLATFORM_GRANTS]
    assert unused == [], f"{principal.name}: granted but never needed: {unused}"
    return calls


def _recent_day(partition: Path) -> bytes:
    """Four transactions of the last hours (one labelled since), as a day's lake partition."""
    import pandas as pd

    rows = pd.read_parquet(partition).head(4).copy()
    now = pd.Timestamp.now(tz="UTC").floor("s")
    rows["transaction_id"] = [f"lake-only-{i}" for i in range(4)]
    rows["timestamp"] = [now - pd.Timedelta(hours=3) + pd.Timedelta(minutes=i) for i in range(4)]
    rows["label"] = [1, 0, 0, 0]
    rows["label_time"] = [now - pd.Timedelta(hours=1), pd.NaT, pd.NaT, pd.NaT]
    rows["label_time"] = rows["label_time"].astype(pd.read_parquet(partition)["label_time"].dtype)
    out = io.BytesIO()
    rows.to_parquet(out, index=False)
    return out.getvalue()


def _run(args, env, timeout, cwd) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{args} failed:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}"
    return out


@pytest.mark.slow
def test_the_deployed_stack_runs_with_exactly_its_iam(tmp_path, small_sim_dir, small_training):
    from fraud.policy import Thresholds
    from fraud.pseudonym import Pseudonymizer
    from fraud.registry import ModelRegistry
    from fraud.storage.blob import S3BlobStore
    from fraud.storage.kv import DynamoDBKeyValueStore
    from lambda_handler.review import PENDING, PREFIX

    template = _synth(tmp_path)
    moto = Moto(tmp_path / "moto.log")
    try:
        refs, arns, secret_values = _create_resources(moto, template)
        principals = _principals(moto, template, iam.Resolver(refs))
        s3 = moto.client("s3")
        for path in sorted(small_sim_dir.rglob("*.parquet")):
            s3.put_object(Bucket=BUCKET, Key=f"transactions/{path.relative_to(small_sim_dir)}",
                          Body=path.read_bytes())
        work = tmp_path / "work"
        work.mkdir()

        # an operator imports labels for a batch-scored day into the label store the job reads
        operator = {**os.environ, **moto.admin, "AWS_ENDPOINT_URL": moto.endpoint,
                    "AWS_DEFAULT_REGION": iam.REGION, "PYTHONPATH": str(ROOT)}
        (work / "labels.csv").write_text("transaction_id,label,source,known_at\n"
                                         "T0001000000,fraud,bank,2026-01-10T00:00:00Z\n")
        _run(["-m", "batch_jobs.cli", "labels", "import", "labels.csv", "--store", f"s3://{BUCKET}/labels"],
             operator, 120, work)

        # -- the first night, as the training task: empty registry, data on S3 -------------
        training = principals["training"]
        assert training.env["FRAUD_DATA_URI"] == f"s3://{BUCKET}/transactions"
        assert training.env["FRAUD_LABELS_URI"] == f"s3://{BUCKET}/labels"
        assert training.env["FRAUD_HARD_EXAMPLES_URI"] == f"s3://{BUCKET}/hard-examples"
        # hard examples up-weighted: the job lists the (still empty) queue it finds in $FRAUD_HARD_EXAMPLES_URI
        (work / "small.toml").write_text(SMALL + "[training]\nhard_example_weight = 5.0\n")
        training_log = log = tmp_path / "training-calls.jsonl"
        _run(["-m", "batch_jobs.cli", "--config", "small.toml", "train", "--no-progress"],
             training.run_env(moto, log), 600, work)
        assert {"service": "s3", "operation": "ListObjectsV2", "params": {"Bucket": BUCKET, "Prefix": "hard-examples/"},
                "error": None} in iam.read_calls(log)
        # a recall alarm right after (the retrain rule's override, infra/retrain.py): the job reads the trigger
        # log, finds the night's start within the cooldown, records that and exits 0 without training
        held = _run(["-m", "batch_jobs.cli", "--config", "small.toml", "train", "--no-progress"],
                    training.run_env(moto, log, FRAUD_TRAINING_TRIGGER="alarm:fraud-dev-MonitoredRecallBelowSLO"),
                    120, work)
        assert "not training: a retrain started" in held.stdout
        # (the training role's calls are checked once it has also read a queued hard example, below)
        deployed_key = Pseudonymizer(secret_values["fraud-dev/hash-key"]["hash_key"].encode())
        registry = ModelRegistry(S3BlobStore(BUCKET, "registry", s3_client=s3), keys=deployed_key)
        nightly_version = registry.champion()
        assert nightly_version in registry.versions()

        # an operator makes an API key (into the stack's secret) and serves a review-everything model
        scoring = principals["scoring"]
        api_keys_arn = scoring.env["FRAUD_API_KEY_SECRET_ARN"]
        made = _run(["-m", "batch_jobs.cli", "api-key", "create", "--secret-arn", api_keys_arn], operator, 60, work)
        api_key = made.stdout.split("x-api-key:")[1].split()[0]
        stored = json.loads(moto.client("secretsmanager").get_secret_value(SecretId=api_keys_arn)["SecretString"])
        assert stored == {"api_key_hashes": [hashlib.sha256(api_key.encode()).hexdigest()]}
        review_version = registry.publish(dataclasses.replace(small_training.bundle,
                                                              thresholds=Thresholds(review=0.0, decline=2.0)))
        registry.promote(review_version, "send everything to review")
        # the deployment step before traffic: the one-off state-load task, its command as synthesized
        state_load = principals["state_load"]
        assert state_load.commands["load"][:2] == ["state", "load"]
        log = tmp_path / "state-load-calls.jsonl"
        loaded = _run(["-m", "batch_jobs.cli", *state_load.commands["load"]], state_load.run_env(moto, log), 300, work)
        assert "watermark" in loaded.stdout
        # a day reached the data lake but not the API: the nightly catch-up task, same role, same log
        s3.put_object(Bucket=BUCKET, Key=f"transactions/date={date.today()}/part-0.parquet",
                      Body=_recent_day(sorted(small_sim_dir.rglob("*.parquet"))[-1]))
        assert state_load.commands["catch-up"][:2] == ["state", "catch-up"]
        caught = _run(["-m", "batch_jobs.cli", *state_load.commands["catch-up"]], state_load.run_env(moto, log), 300,
                      work)
        assert "transactions: 4 applied of 4" in caught.stdout and "labels:       1 applied of 1" in caught.stdout
        _check_calls(state_load, log, arns)

        # -- the API, as the scoring function ---------------------------------------------------
        log = tmp_path / "scoring-calls.jsonl"
        port = free_port()
        server_log = tmp_path / "server.log"
        with open(server_log, "w") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "lambda_handler.app:app", "--port", str(port)],
                # the simulated history ends in February: its state counts as fresh for ten years here
                # (and a Firehose call may take 5 s here: moto on a loaded test machine; the 0.3 s bound
                # of the scoring path is tested in tests/test_api/test_decision_log.py)
                env=scoring.run_env(moto, log, FRAUD_CHAMPION_RECHECK_S="1", FRAUD_STATE_MAX_AGE_S=str(10 * 365 * 86400),
                                    FRAUD_DECISION_LOG_TIMEOUT_S="5"),
                cwd=work, stdout=out,
                stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_for(lambda: httpx.get(f"{base}/v1/health").status_code == 200, 90, "the API")
            api = httpx.Client(base_url=base, headers={"x-api-key": api_key}, timeout=30)
            assert httpx.get(f"{base}/v1/model").status_code == 401
            assert httpx.get(f"{base}/v1/health").json()["state"]["status"] == "fresh"  # FRAUD_STATE_FALLBACK is on
            assert api.get("/v1/model").json()["version"] == review_version

            def txn(i, card=None):
                return {"transaction_id": f"iam-{i}", "timestamp": f"2026-02-14T10:{i:02d}:00Z",
                        "card_id": card or f"card-{i % 3}", "terminal_id": f"T{i % 2}", "amount": 20.0 + i,
                        "currency": "EUR"}

            scored = [api.post("/v1/score", json=txn(i, PAN if i == 0 else None)) for i in range(4)]
            assert [r.status_code for r in scored] == [200] * 4, [r.text for r in scored]
            assert {r.json()["decision"] for r in scored} == {"review"}
            again = api.post("/v1/score", json=txn(1)).json()
            assert again["replayed"] and again["probability"] == scored[1].json()["probability"]
            batch = api.post("/v1/score/batch", json={"transactions": [txn(i) for i in range(4, 7)]})
            assert batch.status_code == 200 and len(batch.json()["results"]) == 3
            assert api.put("/v1/lists/block/card", json={"id": PAN, "reason": "reported stolen"}).status_code == 204
            blocked = api.post("/v1/score", json=txn(7, PAN)).json()
            assert blocked["decision"] == "decline" and blocked["override"]["list"] == "block"
            listed = api.get("/v1/lists/block/card")  # read back: pseudonyms and tokens, never the number
            assert listed.status_code == 200, listed.text
            assert len(listed.json()["items"]) == 1 and PAN not in listed.text
            assert api.post("/v1/lists/block/card/remove", json={"id": PAN}).status_code == 204
            assert api.post("/v1/lists/block/card/remove", json={"id": PAN}).status_code == 404
            feedback = api.post("/v1/feedback", json={"transaction_id": "iam-0", "label": "fraud",
                                                      "source": "chargeback", "time": "2026-02-20T00:00:00Z"})
            assert feedback.json()["recorded"], feedback.text
            stored = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="labels/")["Contents"]]
            assert len(stored) == 2  # the import's, and this label in its known day's partition
            assert api.get("/v1/health").json()["outbox_pending"] == 0
            registry.rollback(nightly_version, "back to the nightly model")
            _wait_for(lambda: api.get("/v1/model").json()["version"] == nightly_version, 20, "the champion reload")
            assert api.post("/v1/score", json=txn(8)).json()["model_version"] == nightly_version
        finally:
            server.terminate()
            server.wait(20)
        calls = _check_calls(scoring, log, arns)
        # the decision log: one PutRecordBatch per request that scored something fresh (four single
        # scores, the batch, the blocked card, the nightly model's; the replay none), delivered by
        # Firehose to decisions/ (moto delivers at once, leaving the prefix's !{timestamp} as text)
        assert scoring.env["FRAUD_DECISION_LOG_URI"] == "firehose://fraud-dev-decisions"
        assert len([c for c in calls if c["operation"] == "PutRecordBatch"]) == 7
        decisions = b"".join(s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
                             for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="decisions/")["Contents"])
        logged = [json.loads(line) for line in decisions.splitlines()]
        assert sorted(r["transaction_id"] for r in logged) == [f"iam-{i}" for i in range(9)]
        assert {r["decision"] for r in logged if r["transaction_id"] in {f"iam-{i}" for i in range(7)}} == {"review"}
        assert next(r for r in logged if r["transaction_id"] == "iam-7")["override"] == "block:card"
        reviews = _receive_all(moto.client("sqs"), scoring.env["FRAUD_REVIEW_QUEUE_URL"])
        assert sorted(m["transaction_id"] for m in reviews) == [f"iam-{i}" for i in range(7)]

        # -- the outbox drain, as the drain function: a message left pending by an outage -----
        drain = principals["drain"]
        outbox = DynamoDBKeyValueStore(drain.env["FRAUD_OUTBOX_TABLE"], dynamodb_client=moto.client("dynamodb"))
        outbox.put(PREFIX + "iam-pending", {"message": {"transaction_id": "iam-pending", "card": "card_x"},
                                            "state": "pending", "attempts": 2, "created_at": "2026-02-14T10:00:00Z",
                                            "lease_until": 0.0}, expected_version=0, ttl_seconds=3600, tag=PENDING)
        log = tmp_path / "drain-calls.jsonl"
        event = {"version": "0", "id": "e1", "detail-type": "Scheduled Event", "source": "aws.events",
                 "account": iam.ACCOUNT, "time": "2026-02-14T10:01:00Z", "region": iam.REGION,
                 "resources": ["arn:aws:events:us-east-1:123456789012:rule/drain"], "detail": {}}
        out = _run(["-c", "import json, sys; from lambda_handler.outbox import handler; "
                          f"print(json.dumps(handler({event!r}, None)))"], drain.run_env(moto, log), 120, work)
        assert json.loads(out.stdout.strip().splitlines()[-1]) == {"sent": 1, "failed": 0, "pending": 0}
        _check_calls(drain, log, arns)
        assert [m["transaction_id"] for m in _receive_all(moto.client("sqs"), drain.env["FRAUD_REVIEW_QUEUE_URL"])] \
            == ["iam-pending"]

        # -- 03:00 the next day, as the hard-examples task: the day's decisions and labels ------------
        _queue_hard_examples(moto, principals, arns, logged, review_version, nightly_version, work, tmp_path)
        # the next night's training reads the queue: the reviewed hard example (iam-0: queued, then labelled
        # by /v1/feedback) gets the weight, as training.py's hard_example_weights gives it from the task's env
        weights = _run(["-c", "import json, os; from fraud.hard_examples import hard_example_weights as w; "
                              "e = os.environ; print(json.dumps(w(['iam-0', 'T0001000000'], 5.0, "
                              "e['FRAUD_HARD_EXAMPLES_URI'], e['FRAUD_LABELS_URI'], "
                              "endpoint_url=e['FRAUD_AWS_ENDPOINT_URL']).tolist()))"],
                       training.run_env(moto, training_log), 120, work)
        assert json.loads(weights.stdout.strip().splitlines()[-1]) == [5.0, 1.0]
        calls = _check_calls(training, training_log, arns)
        assert [c for c in calls if c["operation"] == "GetObject" and c["params"]["Key"].startswith("hard-examples/")]

        _assert_card_number_unrecoverable(moto, template, secret_values, server_log, reviews, decisions)
    finally:
        moto.stop()


def _queue_hard_examples(moto: Moto, principals: dict, arns: dict, logged: list[dict], review_version: str,
                         nightly_version: str, work: Path, tmp_path: Path) -> None:
    """The hard-examples task's command as synthesized, as its role, on the decisions the API
    logged through Firehose, the labels of the label store (the import's, /v1/feedback's) and
    the thresholds of the versions that scored them; run twice (a re-run queues nothing
    twice). Then what its role must never do, refused."""
    from botocore.exceptions import ClientError

    task = principals["hard_examples"]
    command = task.commands["queue"]
    queue = f"s3://{BUCKET}/hard-examples"
    assert command[0] == "hard-examples" and "--day" not in command  # the schedule runs on the default day
    assert command[command.index("--queue") + 1] == queue == principals["training"].env["FRAUD_HARD_EXAMPLES_URI"]
    s3 = moto.client("s3")
    # moto files Firehose's objects under <prefix>YYYY/MM/DD/HH/, the prefix's !{timestamp:yyyy-MM-dd} left as
    # text; Firehose in AWS resolves it to the day it received them: put them where AWS would have
    delivered = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="decisions/")["Contents"]]
    for key in delivered:
        arrived = re.search(r"!\{timestamp:yyyy-MM-dd\}/(\d{4})/(\d\d)/(\d\d)/\d\d/([^/]+)$", key)
        year, month, day, name = arrived.groups()
        s3.copy_object(Bucket=BUCKET, Key=f"decisions/date={year}-{month}-{day}/{name}",
                       CopySource={"Bucket": BUCKET, "Key": key})
    scored_day = next(r for r in logged if r["transaction_id"] == "iam-0")["scored_at"][:10]
    day_ids = {r["transaction_id"] for r in logged if r["scored_at"][:10] == scored_day}
    log = tmp_path / "hard-examples-calls.jsonl"
    runs = [_run(["-m", "batch_jobs.cli", *command, "--day", scored_day], task.run_env(moto, log), 120, work).stdout
            for _ in range(2)]
    queued = [json.loads(line) for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="hard-examples/")["Contents"]
              for line in s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read().splitlines()]
    assert f"{scored_day}: queued {len(queued)} hard examples" in runs[0] and f"of {len(day_ids)} scored" in runs[0]
    assert f"queued 0 hard examples (none) of {len(day_ids)} scored; {len(queued)} queued before" in runs[1]
    by_id = {q["transaction_id"]: q for q in queued}
    assert len(by_id) == len(queued) and set(by_id) <= day_ids and "iam-0" in by_id
    # iam-0: the fraud /v1/feedback reported, which the model scored low; each row carries the review
    # threshold of the version that scored it, read from that version's thresholds.json in the registry
    assert by_id["iam-0"]["label"] == 1 and "low_p_t" in by_id["iam-0"]["kinds"]
    assert {q["model_version"] for q in queued} <= {review_version, nightly_version}
    assert {q["review_threshold"] for q in queued if q["model_version"] == review_version} == {0.0}
    calls = _check_calls(task, log, arns)
    assert {c["operation"] for c in calls} == {"GetObject", "ListObjectsV2", "PutObject", "GetSecretValue"}
    # what the role must never do: moto refuses it live; the exact statements refuse the listings
    # (moto evaluates no s3:prefix condition) as AWS would
    own = moto.client("s3", task.creds)
    queued_key = next(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="hard-examples/")["Contents"])
    forbidden = {"put labels/": lambda: own.put_object(Bucket=BUCKET, Key="labels/known_date=2026-01-01/x.jsonl",
                                                       Body=b""),
                 "put registry/": lambda: own.put_object(Bucket=BUCKET, Key="registry/champion.json", Body=b"{}"),
                 "put decisions/": lambda: own.put_object(Bucket=BUCKET, Key=f"decisions/date={scored_day}/x",
                                                          Body=b""),
                 "put at the root": lambda: own.put_object(Bucket=BUCKET, Key="hard-examples.jsonl", Body=b""),
                 "delete the queue's": lambda: own.delete_object(Bucket=BUCKET, Key=queued_key),
                 "read transactions/": lambda: own.get_object(Bucket=BUCKET, Key=next(
                     o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="transactions/")["Contents"]))}
    refused = {}
    for what, attempt in forbidden.items():
        try:
            attempt()
            refused[what] = None
        except ClientError as exc:
            refused[what] = exc.response["Error"]["Code"]
    assert refused == {what: "AccessDenied" for what in forbidden}
    bucket = f"arn:{iam.PARTITION}:s3:::{BUCKET}"
    for prefix in ("", "transactions/", "registry/", "runs/", "triggers/", "decision-errors/"):
        assert not iam.allowed(task.statements, "s3:ListBucket", bucket, {"s3:prefix": prefix}), prefix
    for action in ("s3:DeleteObject", "s3:PutObjectAcl", "s3:GetObjectVersion", "s3:DeleteObjectVersion"):
        assert not iam.allowed(task.statements, action, f"{bucket}/{queued_key}", {}), action


def _receive_all(sqs, url: str) -> list[dict]:
    out = []
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300).get("Messages"):
        out += [json.loads(m["Body"]) for m in got]
        for m in got:  # as a consumer does (a FIFO group holds back the rest while one is in flight)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


def _assert_card_number_unrecoverable(moto, template, secret_values, server_log: Path, reviews,
                                      decisions: bytes) -> None:
    """Everything stored or logged: no card number, no unkeyed hash of it; the state key is
    the HMAC under the deployed key."""
    db = moto.client("dynamodb")
    dumped = []
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::DynamoDB::Table":
            for page in db.get_paginator("scan").paginate(TableName=resource["Properties"]["TableName"]):
                dumped += page["Items"]
    stored = json.dumps(dumped) + json.dumps(reviews) + server_log.read_text() + decisions.decode()
    plain = [PAN, PAN[-8:], hashlib.sha256(PAN.encode()).hexdigest()[:16],
             hashlib.sha256(f"fraud-scoring:{PAN}".encode()).hexdigest()[:16]]
    assert [p for p in plain if p in stored] == []
    key = secret_values["fraud-dev/hash-key"]["hash_key"].encode()
    state_key = "card#" + hmac.digest(key, f"card\x00{PAN}".encode(), "sha256").hex()[:32]
    assert state_key in stored, "the card's state is not keyed by the HMAC under the deployed key"
