"""`fraud monitor` as the deployed monitor task runs it: its command and environment as
synthesized, as its task role against moto's server with IAM enforced, on a champion with
its reference.json in the S3 registry, decisions where Firehose delivers them and labels in
the S3 label store. Every call it made must be allowed by the exact statements, and every
grant must have been needed (the harness of test_deployed_iam)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from helpers import iam

cdk = pytest.importorskip("aws_cdk")

from test_infra.test_deployed_iam import (BUCKET, CALL_LOG_HOOK, ROOT, Moto, _create_resources,  # noqa: E402
                                          _logical, _synth)


def _firehose_object(bundle, transactions, features) -> bytes:
    from fraud.decisions import decision_record
    from fraud.decisions.log import record_line

    probs, margins = bundle.predict_proba(features), bundle.model.margin(features)
    decisions = bundle.decide(features, probs)
    names = bundle.spec.names
    return "".join(record_line(decision_record(
        transaction_id=t.transaction_id, timestamp=t.timestamp.to_pydatetime(), scored_at=t.timestamp.to_pydatetime(),
        card="card_" + "0" * 16, terminal_id=t.terminal_id, amount=t.amount, feature_names=names,
        feature_values=values, probability=p, margin=m, decision=d, model_version=bundle.metadata["version"]))
        for t, values, p, m, d in zip(transactions.itertuples(), features[names].to_numpy(), probs, margins,
                                      decisions)).encode()


@pytest.mark.slow
def test_the_monitor_task_runs_with_exactly_its_iam(tmp_path, small_training, small_transactions, small_features):
    from fraud.labels.store import BlobLabelStore
    from fraud.pseudonym import Pseudonymizer
    from fraud.registry import ModelRegistry
    from fraud.storage.blob import S3BlobStore

    template = _synth(tmp_path)
    moto = Moto(tmp_path / "moto.log")
    try:
        refs, arns, secret_values = _create_resources(moto, template)
        resolve = iam.Resolver(refs)
        task = _logical(template, "AWS::ECS::TaskDefinition", "Family", "fraud-dev-monitor")
        container = template["Resources"][task]["Properties"]["ContainerDefinitions"][0]
        statements = iam.role_statements(template, iam.role_of(template, task, "TaskRoleArn"), resolve)
        creds = moto.user(moto.client("iam"), "monitor", iam.for_moto(statements))
        env = {e["Name"]: resolve(e["Value"]) for e in container["Environment"]}
        command = resolve(container["Command"])
        assert command[:3] == ["monitor", "--metrics", "emf"]

        # as operators: a champion with its reference, a day of decisions as Firehose writes them, labels
        s3 = moto.client("s3")
        keys = Pseudonymizer(secret_values["fraud-dev/hash-key"]["hash_key"].encode())
        registry = ModelRegistry(S3BlobStore(BUCKET, "registry", s3_client=s3), keys=keys)
        version = registry.publish(small_training.bundle, extra={"reference.json": small_training.reference})
        registry.promote(version, "the champion monitored")
        bundle = registry.load(version)
        day = small_transactions["timestamp"].max().tz_convert("UTC").floor("D") - pd.Timedelta(days=1)
        scored_day = small_transactions["timestamp"].dt.tz_convert("UTC").dt.floor("D")
        # the judged day's decisions (PSI), and a label-complete day recall_lag_days (7) earlier (recall)
        complete = day - pd.Timedelta(days=7)
        for logged in (day, complete):
            these = (scored_day == logged).to_numpy()
            s3.put_object(Bucket=BUCKET, Key=f"decisions/date={logged.date()}/fraud-dev-decisions-1-{logged.date()}-00",
                          Body=_firehose_object(bundle, small_transactions.loc[these], small_features[1].loc[these]))
        rows = (scored_day == day).to_numpy()
        txns = small_transactions.loc[(scored_day == complete).to_numpy()]
        frauds = txns[txns["label"] == 1]
        BlobLabelStore(S3BlobStore(BUCKET, "labels", s3_client=s3)).append(pd.DataFrame({
            "transaction_id": frauds["transaction_id"], "label": 1, "source": "chargeback",
            "known_at": complete + pd.Timedelta(days=1, hours=12)}))

        log = tmp_path / "monitor-calls.jsonl"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FRAUD_"))}
        run_env = {**base, **env, **creds, "AWS_DEFAULT_REGION": iam.REGION, "AWS_REGION": iam.REGION,
                   "AWS_ENDPOINT_URL": moto.endpoint, "FRAUD_AWS_ENDPOINT_URL": moto.endpoint,
                   "PYTHONPATH": f"{CALL_LOG_HOOK}{os.pathsep}{ROOT}", "FRAUD_TEST_AWS_CALL_LOG": str(log)}
        out = subprocess.run([sys.executable, "-m", "batch_jobs.cli", *command, "--out", str(tmp_path / "health"),
                              "--day", str(day.date()), "--as-of", str(day + pd.Timedelta(days=3))],
                             env=run_env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert out.returncode in (0, 3), out.stdout[-3000:] + out.stderr[-5000:]
        health = json.loads((tmp_path / "health" / "health.json").read_text())
        assert health["champion"] == version and health["scored_rows"] == int(rows.sum())
        assert health["labelled_frauds"] == len(frauds) and health["score_psi"] is not None
        emf = [json.loads(line) for line in out.stdout.splitlines() if line.startswith('{"_aws"')]
        assert len(emf) == 1 and emf[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == env["FRAUD_METRICS_NAMESPACE"]

        calls = iam.read_calls(log)
        assert {c["operation"] for c in calls} >= {"GetObject", "ListObjectsV2", "GetSecretValue"}
        assert [c for c in calls if c["error"] in ("AccessDenied", "AccessDeniedException")] == []
        assert iam.denied_calls(calls, statements, arns) == []
        assert iam.unused_grants(calls, statements, arns) == []
        assert not [c for c in calls if c["operation"] in ("PutObject", "DeleteObject")]  # it writes nothing
    finally:
        moto.stop()
