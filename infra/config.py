"""Per-stage settings of the deployment, read from CDK context (``-c key=value`` or cdk.json).

No account or region is hard-coded: the stack is environment-agnostic and deploys where
the caller's credentials point.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

# Scoring a new transaction: a conditional claim, one batched read of the card's and the
# terminal's state, one transaction writing both, the stored answer
# (tests/test_api: test_round_trips_per_scored_transaction).
DYNAMODB_CALLS_PER_TRANSACTION = 4
DYNAMODB_CALL_PLANNING_MS = 8  # a same-region call at a bad moment (p50 is a few ms)

DEFAULTS = {
    "dev": {"lambda_memory_mb": 2048, "provisioned_concurrency": 0, "reserved_concurrency": 20,
            "removal": "destroy", "log_retention_days": 14, "data_retention_days": 400},
    "prod": {"lambda_memory_mb": 3008, "provisioned_concurrency": 2, "reserved_concurrency": 200,
             "removal": "retain", "log_retention_days": 90, "data_retention_days": 730},
}


@dataclass(frozen=True)
class StageConfig:
    stage: str = "dev"
    # scoring Lambda: 2 GB gives about 1.2 vCPU; init with model load and verification measured
    # at about 1.1 s and a scored transaction at p99 2.5 ms on a 2-core machine (bench/scoring.py)
    lambda_memory_mb: int = 2048
    lambda_timeout_s: int = 10
    # largest POST /v1/score/batch: a batch runs its transactions in sequence, each costing
    # DYNAMODB_CALLS_PER_TRANSACTION round trips, so it must fit the timeout (checked below)
    api_max_batch: int = 100
    reserved_concurrency: int | None = 20
    provisioned_concurrency: int = 0
    auth: str = "iam"                   # "iam" or "jwt"
    jwt_issuer: str = "https://example.auth0.com/"
    jwt_audience: tuple[str, ...] = ("fraud-scoring",)
    throttle_rate: float = 500.0
    throttle_burst: int = 1000
    training_schedule: str = "cron(0 2 * * ? *)"   # EventBridge Scheduler, UTC
    state_catch_up_schedule: str = "cron(0 1 * * ? *)"  # fraud state catch-up: the lake's day into the state
    hard_examples_schedule: str = "cron(0 3 * * ? *)"   # fraud hard-examples: yesterday's (UTC) into the queue
    training_cpu: int = 4096
    training_memory_mb: int = 16384
    gpu_training: bool = False
    gpu_instance_types: tuple[str, ...] = ("g5.xlarge", "g6.xlarge")
    alarm_email: str | None = None
    api_key_secret_arn: str | None = None  # an existing secret of API-key digests (default: the stack makes one)
    recall_slo: float = 0.7
    state_max_age_hours: float = 48.0     # older feature state (watermark): the fallback policy decides
    review_rate_multiple: float = 3.0     # alarm when the hour's review share exceeds this x the expected
    review_rate_min_decisions: int = 200  # ... over at least this many decisions (no alarm on a quiet hour)
    latency_p99_ms: float = 250.0
    error_rate_threshold: float = 0.01
    log_retention_days: int = 14
    data_retention_days: int = 400
    removal: str = "destroy"
    tags: dict = field(default_factory=dict)

    def __post_init__(self):
        worst_s = self.api_max_batch * DYNAMODB_CALLS_PER_TRANSACTION * DYNAMODB_CALL_PLANNING_MS / 1000
        if worst_s > self.lambda_timeout_s / 2:
            raise ValueError(f"api_max_batch={self.api_max_batch} needs about {worst_s:.0f} s of DynamoDB calls "
                             f"at {DYNAMODB_CALL_PLANNING_MS} ms each; keep it under half of "
                             f"lambda_timeout_s={self.lambda_timeout_s} (lower the batch or raise the timeout)")

    @property
    def prefix(self) -> str:
        return f"fraud-{self.stage}"


def _coerce(name: str, value, default):
    if isinstance(default, bool):
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
    if isinstance(default, int) and not isinstance(default, bool) and value is not None:
        return int(value)
    if isinstance(default, float):
        return float(value)
    if isinstance(default, tuple):
        return tuple(value.split(",")) if isinstance(value, str) else tuple(value)
    return value


def stage_config(node) -> StageConfig:
    """The StageConfig for the ``stage`` context value, with any field overridden by context."""
    stage = node.try_get_context("stage") or "dev"
    if stage not in DEFAULTS:
        raise ValueError(f"unknown stage {stage!r}; use one of {sorted(DEFAULTS)}")
    base = StageConfig()
    values = {"stage": stage, **DEFAULTS[stage]}
    for f in fields(StageConfig):
        ctx = node.try_get_context(f.name)
        if ctx is not None and f.name != "stage":
            values[f.name] = _coerce(f.name, ctx, getattr(base, f.name))
    return StageConfig(**values)
