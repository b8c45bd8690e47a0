"""The same job with everything on S3 (moto's server): input partitions, the registry and
the run reports."""

from __future__ import annotations

import json

from batch_jobs.cli import main
from fraud.io import load_transactions
from fraud.registry import ModelRegistry
from fraud.storage.aws import client
from helpers.configs import SMALL


def upload_dir(local, bucket, prefix, endpoint):
    s3 = client("s3", endpoint)
    for path in sorted(local.rglob("*.parquet")):
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{path.relative_to(local)}", Body=path.read_bytes())


def test_reading_partitions_from_s3_matches_local(moto_server, small_sim_dir, default_config):
    client("s3", moto_server).create_bucket(Bucket="fraud-input")
    upload_dir(small_sim_dir, "fraud-input", "transactions", moto_server)
    remote, report = load_transactions("s3://fraud-input/transactions", default_config, endpoint_url=moto_server)
    local, _ = load_transactions(small_sim_dir, default_config)
    assert report.rows_bad == 0
    assert list(remote["transaction_id"]) == list(local["transaction_id"])
    assert remote["amount"].equals(local["amount"])


def test_nightly_with_registry_and_reports_on_s3(moto_server, small_sim_dir, tmp_path, monkeypatch):
    client("s3", moto_server).create_bucket(Bucket="fraud-job")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server)  # boto3's own per-service endpoint variable
    config = tmp_path / "small.toml"
    config.write_text(SMALL)
    assert main(["--config", str(config), "--registry", "s3://fraud-job/registry", "train", "--data",
                 str(small_sim_dir), "--runs", "s3://fraud-job/runs", "--no-progress", "--no-score"]) == 0
    registry = ModelRegistry.open("s3://fraud-job/registry", moto_server)
    assert registry.champion() in registry.versions()
    keys = [o["Key"] for o in client("s3", moto_server).list_objects_v2(Bucket="fraud-job",
                                                                        Prefix="runs/")["Contents"]]
    assert any(k.endswith("/report.html") for k in keys) and any(k.endswith("/pr_curves.png") for k in keys)
    summary = json.loads(client("s3", moto_server).get_object(
        Bucket="fraud-job", Key=next(k for k in keys if k.endswith("/report.json")))["Body"].read())
    assert summary["registry_version"] == registry.champion()
