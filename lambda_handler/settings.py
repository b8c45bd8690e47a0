"""Configuration of the API, from environment variables (prefix ``FRAUD_``).

Locally everything defaults to in-process implementations and the local registry; in AWS
the CDK app sets the table names, the queue URL and the registry's S3 URI.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FRAUD_", extra="ignore")

    registry_uri: str = "registry"
    config_path: str | None = None
    backend: str = Field("local", pattern="^(local|aws)$")
    aws_endpoint_url: str | None = None  # moto / LocalStack; unset in AWS

    features_table: str = "fraud-online-features"
    idempotency_table: str = "fraud-idempotency"
    outbox_table: str = "fraud-review-outbox"
    lists_table: str = "fraud-lists"
    feedback_table: str = "fraud-feedback"
    review_queue_url: str | None = None

    # Secrets. In AWS: Secrets Manager ARNs (the CDK app creates both secrets). Locally: files
    # under secrets_dir, created on first use (`fraud api-key create` adds a key).
    api_key_hashes: str = ""                  # comma-separated SHA-256 hex digests of accepted keys
    api_key_secret_arn: str | None = None     # secret {"api_key_hashes": [...]}
    hash_key_secret_arn: str | None = None    # secret {"hash_key": ...}: keys the hash of card/terminal ids
    secrets_dir: str | None = None            # local secrets (hash-key.json, api-keys.json); default .fraud

    max_batch: int = Field(1000, gt=0)
    max_body_bytes: int = Field(1_048_576, gt=0)
    champion_recheck_s: float = Field(300, ge=0)
    model_threads: int = Field(1, ge=0)  # per prediction call; 0: all cores (see Candidate.set_threads)
    in_progress_timeout_s: float = Field(30, gt=0)
    max_clock_skew_s: float = Field(300, ge=0)  # a timestamp further in the future is refused
    # other currencies than the model's (its bundle says which) are refused unless a rate converts
    # them: {"USD": 0.92} reads 1 USD as 0.92 of the model's currency (JSON in FRAUD_CURRENCY_RATES)
    currency_rates: dict[str, float] = Field(default_factory=dict)
    # review messages: one send with this timeout on the request path (then the outbox holds
    # it), a longer one from the scheduled drain, which stops after drain_budget_s
    review_send_timeout_s: float = Field(0.3, gt=0)
    drain_send_timeout_s: float = Field(2.0, gt=0)
    drain_budget_s: float = Field(30, gt=0)
    outbox_lease_s: float = Field(60, gt=0, lt=300)  # under SQS FIFO's 5-minute de-duplication window

    metrics: str = Field("emf", pattern="^(emf|memory|off)$")
    # where EMF lines go (lambda_handler.metrics_output): unset, stdout on Lambda or with the aws
    # backend (CloudWatch reads them there), else the file .fraud/metrics-emf.jsonl; "-": stdout
    metrics_path: str | None = None
    metrics_namespace: str = "FraudScoring"
    service_name: str = "fraud-scoring"
    recall_slo: float = Field(0.7, ge=0, le=1)
    feedback_window_days: int = Field(7, gt=0)
    # where feedback labels go for training (fraud.labels): a directory, or s3://bucket/labels
    # (the CDK app sets it); "" keeps them out of any store
    labels_uri: str = ".fraud/labels"
    # where each scored transaction's decision record goes (fraud.decisions): a directory,
    # firehose://<delivery stream> (the CDK app sets it), or "off"; unset: .fraud/decisions with
    # the local backend, off with aws. One Firehose call gets decision_log_timeout_s (one attempt).
    decision_log_uri: str | None = None
    decision_log_timeout_s: float = Field(0.3, gt=0)

    # the feature state's coverage (the watermark `fraud state load` writes): with none, or one
    # older than state_max_age_s, answers follow state_fallback and say so. "review": nothing is
    # declined, a score at or above the model's decline threshold goes to review, the rest is
    # approved; "rules": only the allow/block lists decide; "off": the model as usual. The CDK
    # app sets "review"; off by default for local use, where the state lives in memory.
    state_fallback: str = Field("off", pattern="^(off|review|rules)$")
    state_max_age_s: float = Field(2 * 86400, gt=0)

    # live drift (fraud.monitoring.live): the PSI of the champion's score and of its top
    # live_drift_features features (0: all) over each window of this many transactions a process
    # scores, as EMF metrics; 0 turns it off
    live_drift_rows: int = Field(1000, ge=0)
    live_drift_features: int = Field(10, ge=0)

    history_path: str | None = None  # local only: warm the in-memory feature state from this data


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
