"""The whole system in one stack: storage, the scoring API, review routing, the nightly
training job, monitoring, and least-privilege IAM for each piece.

    data bucket (registry/, transactions/, runs/)      S3, encrypted, versioned, TLS only,
                                                        server access logs to a log bucket
    online features, idempotency, outbox, lists,        DynamoDB, on demand, TTL, PITR
      feedback
    review queue + DLQ                                  SQS FIFO, encrypted
    scoring Lambda (container) behind an HTTP API       IAM or JWT auth, throttled, X-Ray
    outbox drain Lambda, every minute                   same image, other handler
    nightly training                                    EventBridge Scheduler -> Fargate task
                                                        (option: AWS Batch on GPU instances)
                                                        VPC flow logs to CloudWatch Logs
    hard examples, daily (infra/hard_examples.py)       EventBridge Scheduler -> Fargate task
    alarms -> SNS, dashboard                            CloudWatch

cdk-nag's AwsSolutions pack runs over every stage in tests/test_infra/test_stack.py with
zero unacknowledged findings; each acknowledgement and its reason is in
``FraudScoringStack._nag_suppressions``.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_batch as batch
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as event_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .config import StageConfig
from .decision_log import DecisionLogStream
from .hard_examples import HARD_EXAMPLES_PREFIX, HardExampleQueueing, grant_read_queue
from .monitoring import DECISIONS_PREFIX, PSI_THRESHOLD, ModelHealthMonitoring
from .scheduled import fargate_target
from .retrain import TRIGGER_ENV, TRIGGERS_PREFIX, RetrainOnAlarm, grant_trigger_log

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSET_EXCLUDE = [".git", ".venv", "venv", ".whl", ".fraud", "data", "registry", "runs", "cdk.out", "**/cdk.out",
                 "quarantine",
                 "tests", "bench", "**/__pycache__", "**/*.pyc", ".pytest_cache", ".hypothesis", "*.egg-info"]
TABLES = ("features", "idempotency", "outbox", "lists", "feedback")
METRICS_NAMESPACE = "FraudScoring"
SERVICE = "fraud-scoring"
REGISTRY_PREFIX = "registry"
DATA_PREFIX = "transactions"
RUNS_PREFIX = "runs"
LABELS_PREFIX = "labels"  # the label store (fraud.labels): feedback writes, training reads
# S3 server access logs of the data bucket (who read or wrote which object): kept over a year
# (PCI DSS 10.7: audit trail history for at least 12 months)
ACCESS_LOG_RETENTION_DAYS = 400


# The DynamoDB calls of each function, per table (TransactWriteItems' puts are authorised as
# PutItem, BatchGetItem is an action of its own). Scoring: claims and stored answers
# (idempotency), the card/terminal state (features), review outbox, lists, feedback.
SCORING_TABLE_ACTIONS = {
    "features": ("BatchGetItem", "GetItem", "PutItem"),  # GetItem: the state's watermark
    "idempotency": ("GetItem", "PutItem", "DeleteItem"),
    "outbox": ("PutItem", "Query"),
    "lists": ("BatchGetItem", "GetItem", "PutItem", "DeleteItem", "Scan"),  # Scan: GET /v1/lists pages
    "feedback": ("BatchGetItem", "GetItem", "PutItem"),
}
DRAIN_TABLE_ACTIONS = {"outbox": ("PutItem", "Query")}
# fraud state load: the watermark and heartbeat off (DeleteItem), the state in batches
# (BatchWriteItem), the watermark on (an unconditional put reads the item's version first:
# GetItem, PutItem). fraud state catch-up, the same role: markers and states read in batches
# (BatchGetItem), each transaction and label one TransactWriteItems (PutItem).
STATE_LOAD_TABLE_ACTIONS = ("BatchGetItem", "BatchWriteItem", "DeleteItem", "GetItem", "PutItem")
TAGGED_TABLES = ("outbox",)
TAG_INDEX = "by-tag"  # fraud.storage.kv.TAG_INDEX (infra imports none of the runtime)


class FraudScoringStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, config: StageConfig, **kwargs):
        super().__init__(scope, construct_id, **kwargs)
        # S3 server access logs are delivered under a bucket policy for logging.s3.amazonaws.com
        # (the log bucket keeps ACLs disabled) rather than the legacy log-delivery ACL
        self.node.set_context("@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy", True)
        self.config = config
        removal = cdk.RemovalPolicy.RETAIN if config.removal == "retain" else cdk.RemovalPolicy.DESTROY
        self.access_log_bucket = self._access_log_bucket(removal)
        self.bucket = self._bucket(removal)
        self.tables = {name: self._table(name, removal) for name in TABLES}
        self.review_dlq, self.review_queue = self._queues()
        self.api_keys_secret, self.hash_key_secret = self._secrets(removal)
        self.alarm_topic = sns.Topic(self, "AlarmTopic", topic_name=f"{config.prefix}-alarms",
                                     master_key=None, enforce_ssl=True)
        if config.alarm_email:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        self.decision_log = DecisionLogStream(  # Firehose -> decisions/date=.../ (infra/decision_log.py)
            self, "DecisionLog", stream_name=f"{config.prefix}-decisions", bucket=self.bucket,
            prefix=DECISIONS_PREFIX, log_retention=_retention(config.log_retention_days))
        self.scoring_fn, self.outbox_fn = self._lambdas()
        self.http_api = self._api()
        self.training_task, self.schedule, self.schedule_dlq = self._training()
        self.gpu_queue = self._gpu_training() if config.gpu_training else None
        self.monitoring = ModelHealthMonitoring(  # fraud monitor nightly, its alarms (infra/monitoring.py)
            self, "ModelHealth", prefix=config.prefix, bucket=self.bucket, registry_prefix=REGISTRY_PREFIX,
            labels_prefix=LABELS_PREFIX, hash_key_secret=self.hash_key_secret, image=self.training_image,
            cluster=self.node.find_child("TrainingCluster"), dead_letter_queue=self.schedule_dlq,
            alarm_topic=self.alarm_topic, namespace=METRICS_NAMESPACE, recall_slo=config.recall_slo,
            log_retention=_retention(config.log_retention_days))
        self.hard_examples = HardExampleQueueing(  # fraud hard-examples daily (infra/hard_examples.py)
            self, "HardExamples", prefix=config.prefix, bucket=self.bucket, registry_prefix=REGISTRY_PREFIX,
            decisions_prefix=DECISIONS_PREFIX, labels_prefix=LABELS_PREFIX, hash_key_secret=self.hash_key_secret,
            image=self.training_image, cluster=self.node.find_child("TrainingCluster"),
            dead_letter_queue=self.schedule_dlq, log_retention=_retention(config.log_retention_days),
            schedule=config.hard_examples_schedule)
        self.retrain = RetrainOnAlarm(  # the recall and PSI alarms start training (infra/retrain.py)
            self, "RetrainOnAlarm", prefix=config.prefix,
            alarms=[self.monitoring.alarms["recall"], self.monitoring.alarms["feature_psi"]],
            cluster=self.node.find_child("TrainingCluster"), task_definition=self.training_task,
            container_name="train", dead_letter_queue=self.schedule_dlq)
        self._alarms_and_dashboard()
        for key, value in config.tags.items():
            cdk.Tags.of(self).add(key, str(value))
        cdk.Tags.of(self).add("stage", config.stage)
        cdk.CfnOutput(self, "ApiUrl", value=self.http_api.api_endpoint)
        cdk.CfnOutput(self, "DataBucketName", value=self.bucket.bucket_name)
        cdk.CfnOutput(self, "RegistryUri", value=f"s3://{self.bucket.bucket_name}/{REGISTRY_PREFIX}")
        cdk.CfnOutput(self, "ApiKeysSecretArn", value=self.api_keys_secret.secret_arn,
                      description="add an API key: fraud api-key create --secret-arn <this>")
        self._nag_suppressions()

    # -- storage ---------------------------------------------------------------------------
    def _access_log_bucket(self, removal) -> s3.Bucket:
        """Server access logs of the data bucket (S3 delivers them with SSE-S3 only)."""
        return s3.Bucket(
            self, "AccessLogBucket", encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True, removal_policy=removal,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            auto_delete_objects=removal == cdk.RemovalPolicy.DESTROY,
            lifecycle_rules=[s3.LifecycleRule(id="expire-access-logs",
                                              expiration=cdk.Duration.days(ACCESS_LOG_RETENTION_DAYS),
                                              abort_incomplete_multipart_upload_after=cdk.Duration.days(7))])

    def _bucket(self, removal) -> s3.Bucket:
        c = self.config
        return s3.Bucket(
            self, "DataBucket", encryption=s3.BucketEncryption.S3_MANAGED, versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True, removal_policy=removal,
            auto_delete_objects=removal == cdk.RemovalPolicy.DESTROY,
            server_access_logs_bucket=self.access_log_bucket, server_access_logs_prefix="data-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(id="old-transactions", prefix=f"{DATA_PREFIX}/", transitions=[
                    s3.Transition(storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                                  transition_after=cdk.Duration.days(60))],
                                 expiration=cdk.Duration.days(c.data_retention_days)),
                s3.LifecycleRule(id="old-run-reports", prefix=f"{RUNS_PREFIX}/",
                                 expiration=cdk.Duration.days(180)),
                s3.LifecycleRule(id="old-versions", noncurrent_version_expiration=cdk.Duration.days(90),
                                 abort_incomplete_multipart_upload_after=cdk.Duration.days(7)),
            ])

    def _table(self, name: str, removal) -> ddb.Table:
        table = ddb.Table(
            self, f"{name.title()}Table", table_name=f"{self.config.prefix}-{name}",
            partition_key=ddb.Attribute(name="pk", type=ddb.AttributeType.STRING),
            billing_mode=ddb.BillingMode.PAY_PER_REQUEST, time_to_live_attribute="expires_at",
            point_in_time_recovery_specification=ddb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            encryption=ddb.TableEncryption.AWS_MANAGED, removal_policy=removal)
        if name in TAGGED_TABLES:  # the sparse index that finds pending outbox records without a scan
            table.add_global_secondary_index(index_name=TAG_INDEX, projection_type=ddb.ProjectionType.ALL,
                                             partition_key=ddb.Attribute(name="tag", type=ddb.AttributeType.STRING))
        return table

    def _queues(self):
        prefix = self.config.prefix
        dlq = sqs.Queue(self, "ReviewDLQ", queue_name=f"{prefix}-review-dlq.fifo", fifo=True,
                        encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
                        retention_period=cdk.Duration.days(14))
        queue = sqs.Queue(self, "ReviewQueue", queue_name=f"{prefix}-review.fifo", fifo=True,
                          content_based_deduplication=False, encryption=sqs.QueueEncryption.SQS_MANAGED,
                          enforce_ssl=True, retention_period=cdk.Duration.days(14),
                          visibility_timeout=cdk.Duration.minutes(15),
                          dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=5))
        return dlq, queue

    def _secrets(self, removal):
        """API-key digests (operators add keys with `fraud api-key create --secret-arn`), and the
        generated key of the card/terminal pseudonyms (never rotated: state is keyed by it)."""
        c = self.config
        if c.api_key_secret_arn:
            api_keys = secretsmanager.Secret.from_secret_complete_arn(self, "ApiKeysSecret", c.api_key_secret_arn)
        else:
            api_keys = secretsmanager.Secret(
                self, "ApiKeysSecret", secret_name=f"{c.prefix}/api-keys", removal_policy=removal,
                description="SHA-256 digests of the scoring API's keys; add one with `fraud api-key create`",
                secret_string_value=cdk.SecretValue.unsafe_plain_text('{"api_key_hashes": []}'))
        hash_key = secretsmanager.Secret(
            self, "HashKeySecret", secret_name=f"{c.prefix}/hash-key", removal_policy=removal,
            description="HMAC key of card and terminal pseudonyms; do not rotate (state and lists are keyed by it)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template="{}", generate_string_key="hash_key", password_length=64,
                exclude_punctuation=True))
        return api_keys, hash_key

    # -- the API ---------------------------------------------------------------------------
    def _image(self):
        return lambda_.DockerImageCode.from_image_asset(
            str(REPO_ROOT), file="infra/docker/scoring.Dockerfile", exclude=ASSET_EXCLUDE,
            ignore_mode=cdk.IgnoreMode.DOCKER, platform=ecr_assets.Platform.LINUX_AMD64,
            cmd=None)

    def _lambdas(self):
        c = self.config
        env = {"FRAUD_BACKEND": "aws", "FRAUD_REGISTRY_URI": f"s3://{self.bucket.bucket_name}/{REGISTRY_PREFIX}",
               "FRAUD_REVIEW_QUEUE_URL": self.review_queue.queue_url, "FRAUD_METRICS": "emf",
               "FRAUD_METRICS_NAMESPACE": METRICS_NAMESPACE, "FRAUD_SERVICE_NAME": SERVICE,
               "FRAUD_RECALL_SLO": str(c.recall_slo), "FRAUD_MAX_BATCH": str(c.api_max_batch),
               "FRAUD_STATE_FALLBACK": "review", "FRAUD_STATE_MAX_AGE_S": str(int(c.state_max_age_hours * 3600)),
               "POWERTOOLS_SERVICE_NAME": SERVICE,
               "FRAUD_API_KEY_SECRET_ARN": self.api_keys_secret.secret_arn,
               "FRAUD_HASH_KEY_SECRET_ARN": self.hash_key_secret.secret_arn,
               "FRAUD_LABELS_URI": f"s3://{self.bucket.bucket_name}/{LABELS_PREFIX}",
               "FRAUD_DECISION_LOG_URI": self.decision_log.uri,
               **{f"FRAUD_{name.upper()}_TABLE": table.table_name for name, table in self.tables.items()}}
        log_group = logs.LogGroup(self, "ScoringLogs", retention=_retention(c.log_retention_days),
                                  removal_policy=cdk.RemovalPolicy.DESTROY)
        scoring = lambda_.DockerImageFunction(
            self, "ScoringFunction", function_name=f"{c.prefix}-score", code=self._image(),
            memory_size=c.lambda_memory_mb, timeout=cdk.Duration.seconds(c.lambda_timeout_s),
            reserved_concurrent_executions=c.reserved_concurrency, tracing=lambda_.Tracing.ACTIVE,
            architecture=lambda_.Architecture.X86_64, environment=env, log_group=log_group,
            description="Scores transactions, routes reviews, takes feedback")
        outbox_logs = logs.LogGroup(self, "OutboxLogs", retention=_retention(c.log_retention_days),
                                    removal_policy=cdk.RemovalPolicy.DESTROY)
        outbox = lambda_.DockerImageFunction(
            self, "OutboxDrainFunction", function_name=f"{c.prefix}-outbox-drain",
            code=lambda_.DockerImageCode.from_image_asset(
                str(REPO_ROOT), file="infra/docker/scoring.Dockerfile", exclude=ASSET_EXCLUDE,
                ignore_mode=cdk.IgnoreMode.DOCKER, platform=ecr_assets.Platform.LINUX_AMD64,
                cmd=["lambda_handler.outbox.handler"]),
            memory_size=1024, timeout=cdk.Duration.seconds(60), reserved_concurrent_executions=1,
            tracing=lambda_.Tracing.ACTIVE, environment=env, log_group=outbox_logs,
            description="Re-sends review messages kept in the outbox while SQS was failing")
        events.Rule(self, "OutboxDrainSchedule", schedule=events.Schedule.rate(cdk.Duration.minutes(1)),
                    targets=[event_targets.LambdaFunction(outbox)])
        self._grant_runtime(scoring.role, SCORING_TABLE_ACTIONS, [self.api_keys_secret, self.hash_key_secret])
        self._grant_runtime(outbox.role, DRAIN_TABLE_ACTIONS, [self.hash_key_secret])
        scoring.role.add_to_principal_policy(iam.PolicyStatement(  # /v1/feedback appends to the label store
            sid="WriteLabels", actions=["s3:PutObject"], resources=[self.bucket.arn_for_objects(f"{LABELS_PREFIX}/*")]))
        self.decision_log.grant_put(scoring.role)  # each request's decision records
        # the HTTP API invokes this alias, so provisioned concurrency (prod) serves the traffic
        self.scoring_alias = lambda_.Alias(
            self, "LiveAlias", alias_name="live", version=scoring.current_version,
            provisioned_concurrent_executions=c.provisioned_concurrency or None)
        return scoring, outbox

    def _grant_runtime(self, role: iam.IRole, table_actions: dict, secrets: list) -> None:
        """Exactly what the serving code calls, on exactly these resources (a test replays the
        API and the drain against moto as a principal holding just these statements)."""
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="ReadModelRegistry", actions=["s3:GetObject"],
            resources=[self.bucket.arn_for_objects(f"{REGISTRY_PREFIX}/*")]))
        for name, actions in table_actions.items():
            table_arn = self.tables[name].table_arn
            role.add_to_principal_policy(iam.PolicyStatement(
                sid=f"{name.title()}Table", actions=[f"dynamodb:{a}" for a in actions if a != "Query"],
                resources=[table_arn]))
            if "Query" in actions:  # queries go to the index, whose ARN is its own
                role.add_to_principal_policy(iam.PolicyStatement(
                    sid=f"{name.title()}TagIndex", actions=["dynamodb:Query"],
                    resources=[f"{table_arn}/index/{TAG_INDEX}"]))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="SendReviews", actions=["sqs:SendMessage"], resources=[self.review_queue.queue_arn]))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="ReadSecrets", actions=["secretsmanager:GetSecretValue"],
            resources=[secret.secret_arn for secret in secrets]))

    def _api(self) -> apigw.HttpApi:
        c = self.config
        if c.auth == "jwt":
            authorizer = authorizers.HttpJwtAuthorizer("JwtAuthorizer", jwt_issuer=c.jwt_issuer,
                                                       jwt_audience=list(c.jwt_audience))
        elif c.auth == "iam":
            authorizer = authorizers.HttpIamAuthorizer()
        else:
            raise ValueError("auth must be 'iam' or 'jwt'")
        api = apigw.HttpApi(self, "HttpApi", api_name=f"{c.prefix}-api", create_default_stage=False,
                            default_authorizer=authorizer)
        integration = integrations.HttpLambdaIntegration("ScoringIntegration", self.scoring_alias)
        api.add_routes(path="/v1/{proxy+}", methods=[apigw.HttpMethod.POST, apigw.HttpMethod.GET,
                                                     apigw.HttpMethod.PUT, apigw.HttpMethod.DELETE],
                       integration=integration)
        self.health_routes = api.add_routes(path="/v1/health", methods=[apigw.HttpMethod.GET],
                                            integration=integration, authorizer=apigw.HttpNoneAuthorizer())
        access_logs = logs.LogGroup(self, "ApiAccessLogs", retention=_retention(c.log_retention_days),
                                    removal_policy=cdk.RemovalPolicy.DESTROY)
        stage = apigw.HttpStage(self, "DefaultStage", http_api=api, stage_name="$default", auto_deploy=True,
                                throttle=apigw.ThrottleSettings(rate_limit=c.throttle_rate,
                                                                burst_limit=c.throttle_burst))
        cfn_stage = stage.node.default_child
        cfn_stage.access_log_settings = apigw.CfnStage.AccessLogSettingsProperty(
            destination_arn=access_logs.log_group_arn,
            format='{"requestId":"$context.requestId","status":"$context.status","latency":'
                   '"$context.responseLatency","route":"$context.routeKey"}')
        return api

    # -- nightly training --------------------------------------------------------------------
    def _training_image(self):
        return ecr_assets.DockerImageAsset(self, "TrainingImage", directory=str(REPO_ROOT),
                                           file="infra/docker/training.Dockerfile", exclude=ASSET_EXCLUDE,
                                           ignore_mode=cdk.IgnoreMode.DOCKER,
                                           platform=ecr_assets.Platform.LINUX_AMD64)

    def _training_env(self) -> dict:
        return {"FRAUD_REGISTRY_URI": f"s3://{self.bucket.bucket_name}/{REGISTRY_PREFIX}",
                "FRAUD_DATA_URI": f"s3://{self.bucket.bucket_name}/{DATA_PREFIX}",
                "FRAUD_RUNS_URI": f"s3://{self.bucket.bucket_name}/{RUNS_PREFIX}",
                "FRAUD_LABELS_URI": f"s3://{self.bucket.bucket_name}/{LABELS_PREFIX}",
                # the trigger log; runs are the schedule's unless the retrain rule overrides it (infra/retrain.py)
                "FRAUD_TRIGGERS_URI": f"s3://{self.bucket.bucket_name}/{TRIGGERS_PREFIX}", TRIGGER_ENV: "schedule",
                # the hard-example queue, whose reviewed rows [training] hard_example_weight up-weights
                "FRAUD_HARD_EXAMPLES_URI": f"s3://{self.bucket.bucket_name}/{HARD_EXAMPLES_PREFIX}",
                "FRAUD_TRAINING_METRICS": "emf", "FRAUD_METRICS_NAMESPACE": METRICS_NAMESPACE,
                # signs the registry's manifests (the API verifies them with the same key)
                "FRAUD_HASH_KEY_SECRET_ARN": self.hash_key_secret.secret_arn}

    def _grant_training(self, role: iam.IRole) -> None:
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="ReadHashKey", actions=["secretsmanager:GetSecretValue"], resources=[self.hash_key_secret.secret_arn]))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="ReadTransactions", actions=["s3:GetObject"],
            resources=[self.bucket.arn_for_objects(f"{DATA_PREFIX}/*")]))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="ReadLabels", actions=["s3:GetObject"], resources=[self.bucket.arn_for_objects(f"{LABELS_PREFIX}/*")]))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="ReadWriteRegistry", actions=["s3:GetObject", "s3:PutObject"],
            resources=[self.bucket.arn_for_objects(f"{REGISTRY_PREFIX}/*")]))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="WriteRunReports", actions=["s3:PutObject"], resources=[self.bucket.arn_for_objects(f"{RUNS_PREFIX}/*")]))
        grant_trigger_log(role, self.bucket)  # a triggered start checks the cooldown and records its decision
        grant_read_queue(role, self.bucket)  # the hard-example queue, read-only (infra/hard_examples.py)
        # Unconditioned: S3 answers a GET of a missing key (the first night's champion.json, a
        # new version's manifest) with 404 only to a caller allowed to list the bucket, and
        # with 403 to anyone else; a GET carries no s3:prefix for a condition to match.
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="ListBucketForMissingKeys", actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn]))

    def _training(self):
        c = self.config
        vpc = ec2.Vpc(self, "TrainingVpc", max_azs=2, nat_gateways=0,
                      subnet_configuration=[ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC)])
        vpc.add_gateway_endpoint("S3Endpoint", service=ec2.GatewayVpcEndpointAwsService.S3)
        flow_logs = logs.LogGroup(self, "TrainingVpcFlowLogs", retention=_retention(c.log_retention_days),
                                  removal_policy=cdk.RemovalPolicy.DESTROY)
        vpc.add_flow_log("FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
                         traffic_type=ec2.FlowLogTrafficType.ALL)
        cluster = ecs.Cluster(self, "TrainingCluster", vpc=vpc, cluster_name=f"{c.prefix}-training",
                              container_insights_v2=ecs.ContainerInsights.ENABLED)
        task = ecs.FargateTaskDefinition(self, "TrainingTask", cpu=c.training_cpu, memory_limit_mib=c.training_memory_mb,
                                         family=f"{c.prefix}-nightly-training")
        log_group = logs.LogGroup(self, "TrainingLogs", retention=_retention(c.log_retention_days),
                                  removal_policy=cdk.RemovalPolicy.DESTROY)
        self.training_image = self._training_image()
        task.add_container("train", image=ecs.ContainerImage.from_docker_image_asset(self.training_image),
                           environment=self._training_env(), essential=True,
                           logging=ecs.LogDrivers.aws_logs(stream_prefix="nightly", log_group=log_group))
        self._grant_training(task.task_role)
        dlq = sqs.Queue(self, "TrainingScheduleDLQ", queue_name=f"{c.prefix}-training-schedule-dlq",
                        encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
                        retention_period=cdk.Duration.days(14))
        self.state_load_task, self.state_catch_up_task = self._state_tasks(log_group)

        def run(task_definition):
            return fargate_target(cluster, task_definition, dlq)

        schedule = scheduler.Schedule(self, "NightlyTrainingSchedule", schedule_name=f"{c.prefix}-nightly-training",
                                      schedule=scheduler.ScheduleExpression.expression(c.training_schedule),
                                      target=run(task), description="Nightly: train, gate, promote, report")
        scheduler.Schedule(self, "StateCatchUpSchedule", schedule_name=f"{c.prefix}-state-catch-up",
                           schedule=scheduler.ScheduleExpression.expression(c.state_catch_up_schedule),
                           target=run(self.state_catch_up_task),
                           description="Nightly: what reached the data lake but not the API, into the feature state")
        return task, schedule, dlq

    def _state_tasks(self, log_group: logs.LogGroup) -> tuple[ecs.FargateTaskDefinition, ecs.FargateTaskDefinition]:
        """Two tasks of the training image with one role (README 'Loading the feature state'):
        `fraud state load`, one-off (`aws ecs run-task`): the data lake's history into the
        features table, for the champion's spec, under the API's hash key; and `fraud state
        catch-up`, scheduled nightly: what reached the lake but not the API. The role has
        exactly the calls they make (tested as deployed); the training role writes no state."""
        c = self.config
        features = self.tables["features"]
        role = iam.Role(self, "StateTaskRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
                        description="fraud state load / catch-up: history in, feature state out")
        history = f"s3://{self.bucket.bucket_name}/{DATA_PREFIX}"
        commands = {"load": ["state", "load", "--history", history, "--features-table", features.table_name,
                             "--no-progress"],
                    "catch-up": ["state", "catch-up", "--history", history, "--features-table", features.table_name,
                                 "--no-progress"]}
        tasks = []
        for action, construct_id in (("load", "StateLoadTask"), ("catch-up", "StateCatchUpTask")):
            task = ecs.FargateTaskDefinition(self, construct_id, cpu=c.training_cpu, task_role=role,
                                             memory_limit_mib=c.training_memory_mb, family=f"{c.prefix}-state-{action}")
            task.add_container(
                f"state-{action}", image=ecs.ContainerImage.from_docker_image_asset(self.training_image),
                essential=True, command=commands[action],
                environment={"FRAUD_REGISTRY_URI": f"s3://{self.bucket.bucket_name}/{REGISTRY_PREFIX}",
                             "FRAUD_HASH_KEY_SECRET_ARN": self.hash_key_secret.secret_arn},
                logging=ecs.LogDrivers.aws_logs(stream_prefix=f"state-{action}", log_group=log_group))
            tasks.append(task)
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="ReadHistoryAndChampion", actions=["s3:GetObject"],
            resources=[self.bucket.arn_for_objects(f"{DATA_PREFIX}/*"),
                       self.bucket.arn_for_objects(f"{REGISTRY_PREFIX}/*")]))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="ListHistory", actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{DATA_PREFIX}/*"]}}))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="WriteFeatureState", actions=[f"dynamodb:{a}" for a in STATE_LOAD_TABLE_ACTIONS],
            resources=[features.table_arn]))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="ReadHashKey", actions=["secretsmanager:GetSecretValue"], resources=[self.hash_key_secret.secret_arn]))
        cdk.CfnOutput(self, "StateLoadTaskDefinition", value=tasks[0].task_definition_arn,
                      description="aws ecs run-task --task-definition <this> (README: loading the feature state)")
        return tasks[0], tasks[1]

    def _gpu_training(self) -> batch.JobQueue:
        """AWS Batch on EC2 GPU instances (Fargate has no GPUs) for the CuPy training path."""
        c = self.config
        vpc = self.node.find_child("TrainingVpc")
        self.gpu_compute_environment = env = batch.ManagedEc2EcsComputeEnvironment(
            self, "GpuComputeEnvironment", vpc=vpc, vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            instance_types=[ec2.InstanceType(t) for t in c.gpu_instance_types], minv_cpus=0, maxv_cpus=64,
            images=[batch.EcsMachineImage(image=ecs.EcsOptimizedImage.amazon_linux2(ecs.AmiHardwareType.GPU),
                                          image_type=batch.EcsMachineImageType.ECS_AL2)],
            spot=False, use_optimal_instance_classes=False)
        queue = batch.JobQueue(self, "GpuJobQueue", job_queue_name=f"{c.prefix}-gpu-training",
                               compute_environments=[batch.OrderedComputeEnvironment(compute_environment=env,
                                                                                     order=1)])
        self.gpu_job_role = job_role = iam.Role(self, "GpuJobRole",
                                                assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"))
        self._grant_training(job_role)
        # its own log group (retention, and the execution role writes to it alone) instead of
        # Batch's default /aws/batch/job, which never expires
        log_group = logs.LogGroup(self, "GpuTrainingLogs", retention=_retention(c.log_retention_days),
                                  removal_policy=cdk.RemovalPolicy.DESTROY)
        self.gpu_container = container = batch.EcsEc2ContainerDefinition(
            self, "GpuTrainingContainer", image=ecs.ContainerImage.from_docker_image_asset(self.training_image),
            cpu=4, memory=cdk.Size.gibibytes(30), gpu=1, job_role=job_role,
            logging=ecs.LogDrivers.aws_logs(stream_prefix="nightly-gpu", log_group=log_group),
            environment={**self._training_env(), "FRAUD_DEVICE": "cuda"}, command=["train", "--no-progress"])
        job = batch.EcsJobDefinition(self, "GpuTrainingJob", job_definition_name=f"{c.prefix}-gpu-training",
                                     container=container, retry_attempts=2,
                                     timeout=cdk.Duration.hours(4))
        scheduler.Schedule(self, "NightlyGpuTrainingSchedule", schedule_name=f"{c.prefix}-nightly-gpu-training",
                           schedule=scheduler.ScheduleExpression.expression(c.training_schedule),
                           enabled=False,  # switch from the Fargate schedule by enabling this one
                           target=scheduler_targets.Universal(
                               service="batch", action="submitJob",
                               input=scheduler.ScheduleTargetInput.from_object({
                                   "JobName": f"{c.prefix}-nightly", "JobQueue": queue.job_queue_arn,
                                   "JobDefinition": job.job_definition_arn}),
                               policy_statements=[iam.PolicyStatement(actions=["batch:SubmitJob"],
                                                                      resources=[queue.job_queue_arn,
                                                                                 job.job_definition_arn])],
                               dead_letter_queue=self.node.find_child("TrainingScheduleDLQ"), retry_attempts=2))
        return queue

    # -- monitoring ----------------------------------------------------------------------------
    def _metric(self, name: str, statistic: str = "Sum", period_min: int = 5, **dims) -> cw.Metric:
        return cw.Metric(namespace=METRICS_NAMESPACE, metric_name=name, statistic=statistic,
                         period=cdk.Duration.minutes(period_min), dimensions_map={"service": SERVICE, **dims})

    def _alarm(self, construct_id: str, description: str, metric, threshold: float, comparison, periods: int = 1,
               missing=cw.TreatMissingData.NOT_BREACHING) -> cw.Alarm:
        alarm = cw.Alarm(self, construct_id, alarm_name=f"{self.config.prefix}-{construct_id}",
                         alarm_description=description, metric=metric, threshold=threshold,
                         evaluation_periods=periods, comparison_operator=comparison, treat_missing_data=missing)
        alarm.add_alarm_action(cw_actions.SnsAction(self.alarm_topic))
        return alarm

    def _alarms_and_dashboard(self) -> None:
        c = self.config
        GT, LT = cw.ComparisonOperator.GREATER_THAN_THRESHOLD, cw.ComparisonOperator.LESS_THAN_THRESHOLD
        self.alarms = {
            "recall": self._alarm("PolicyRecallBelowSLO",
                                  "Feedback shows review+decline recall below the SLO: fraud is slipping through. "
                                  "Runbook: README 'Alarms'.",
                                  self._metric("PolicyRecall", "Minimum", 60), c.recall_slo, LT),
            "review_dlq": self._alarm("ReviewDLQNotEmpty", "Review messages failed processing 5 times.",
                                      self.review_dlq.metric_approximate_number_of_messages_visible(
                                          period=cdk.Duration.minutes(5), statistic="Maximum"), 0, GT),
            "outbox": self._alarm("ReviewOutboxBacklog", "Review messages are waiting in the outbox (SQS sends fail).",
                                  self._metric("OutboxPending", "Maximum", 5), 0, GT, periods=3),
            "errors": self._alarm("ScoringErrorRate", "More than the allowed share of scoring invocations fail.",
                                  cw.MathExpression(expression="100 * errors / MAX([invocations, 1])",
                                                    using_metrics={"errors": self.scoring_fn.metric_errors(),
                                                                   "invocations": self.scoring_fn.metric_invocations()},
                                                    period=cdk.Duration.minutes(5)),
                                  c.error_rate_threshold * 100, GT, periods=2),
            "latency": self._alarm("ScoringLatencyP99", "p99 scoring latency above target.",
                                   self.scoring_fn.metric_duration(statistic="p99", period=cdk.Duration.minutes(5)),
                                   c.latency_p99_ms, GT, periods=3),
            "training": self._alarm("NightlyTrainingMissing", "No successful nightly training run in 26 hours.",
                                    cw.Metric(namespace=METRICS_NAMESPACE, metric_name="TrainingRunSucceeded",
                                              statistic="Sum", period=cdk.Duration.hours(26),
                                              dimensions_map={"service": "fraud-training"}),
                                    1, LT, missing=cw.TreatMissingData.BREACHING),
            "state": self._alarm("ScoringOnEmptyOrStaleState",
                                 "Transactions are decided by the fallback policy: the feature state is empty or "
                                 "older than its limit. Runbook: README 'Alarms' (load the state).",
                                 cw.MathExpression(expression="empty + stale", period=cdk.Duration.minutes(5),
                                                   using_metrics={s: self._metric("StateFallback", State=s)
                                                                  for s in ("empty", "stale")}), 0, GT),
            "review_volume": self._alarm(
                "ReviewVolumeAboveExpected",
                f"Over the last hour the share of transactions sent to review is more than {c.review_rate_multiple}x "
                "the share the thresholds were chosen for: broken features (empty state, a schema change) flood "
                "the reviewers first. Runbook: README 'Alarms'.",
                cw.MathExpression(
                    expression=f"IF(approve + review + decline >= {c.review_rate_min_decisions}, "
                               "(review / (approve + review + decline)) / MAX([expected, 0.000001]), 0)",
                    period=cdk.Duration.hours(1),
                    using_metrics={**{d: self._metric("Decisions", period_min=60, Decision=d)
                                      for d in ("approve", "review", "decline")},
                                   "expected": self._metric("ExpectedReviewShare", "Average", 60)}),
                c.review_rate_multiple, GT),
            "live_drift": self._alarm(
                "LivePSIAboveThreshold",
                f"The live traffic's score or an important feature moved (PSI > {PSI_THRESHOLD} against the champion's "
                "reference, each scoring instance judging windows of its own transactions, averaged over 15 "
                "minutes) for 30 minutes. The scoring log's 'live drift of champion' lines name the feature. "
                "Runbook: README 'Alarms'.",
                cw.MathExpression(expression="MAX([FILL(score, 0), FILL(feature, 0)])",
                                  period=cdk.Duration.minutes(15),
                                  using_metrics={"score": self._metric("LiveScorePSI", "Average", 15),
                                                 "feature": self._metric("LiveFeaturePSIMax", "Average", 15)}),
                PSI_THRESHOLD, GT, periods=2),
            "decision_log": self._alarm("DecisionLogFailures",
                                        "Decision records did not reach the decision log (Firehose failed or timed "
                                        "out); scoring went on. Runbook: README 'Decision log'.",
                                        self._metric("DecisionLogFailures"), 0, GT),
            "training_dlq": self._alarm("TrainingScheduleFailures", "The scheduler could not start the training task.",
                                        self.schedule_dlq.metric_approximate_number_of_messages_visible(
                                            period=cdk.Duration.minutes(5), statistic="Maximum"), 0, GT),
        }
        dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=f"{c.prefix}-fraud-scoring")
        decisions = [self._metric("Decisions", Decision=d) for d in ("approve", "review", "decline")]
        buckets = ["0-0.001", "0.001-0.01", "0.01-0.05", "0.05-0.1", "0.1-0.25", "0.25-0.5", "0.5-0.75", "0.75-0.9",
                   "0.9-1"]
        dashboard.add_widgets(
            cw.GraphWidget(title="Policy recall and precision (feedback window)", width=12,
                           left=[self._metric("PolicyRecall", "Average", 60),
                                 self._metric("PolicyPrecision", "Average", 60)],
                           left_annotations=[cw.HorizontalAnnotation(value=c.recall_slo, label="recall SLO")]),
            cw.GraphWidget(title="Hard-example rate and missed fraud", width=12,
                           left=[self._metric("HardExampleRate", "Average", 60)],
                           right=[self._metric("MissedFraudOnApproved", "Sum", 60)]),
            cw.GraphWidget(title="Score distribution (transactions per bucket)", width=12, stacked=True,
                           left=[self._metric("Scores", ScoreBucket=b) for b in buckets]),
            cw.GraphWidget(title="Latency (ms)", width=12,
                           left=[self._metric("LatencyMs", "p50", Endpoint="/v1/score"),
                                 self._metric("LatencyMs", "p99", Endpoint="/v1/score")]),
            cw.GraphWidget(title="Decisions and review volume", width=12, left=decisions),
            cw.GraphWidget(title="Review queue health", width=12,
                           left=[self._metric("OutboxPending", "Maximum"), self._metric("ReviewSendFailures")],
                           right=[self.review_dlq.metric_approximate_number_of_messages_visible()]),
            cw.GraphWidget(title="Decision log failures (records lost)", width=12,
                           left=[self._metric("DecisionLogFailures")]),
            cw.GraphWidget(title="Live drift (PSI per window of scored transactions)", width=12,
                           left=[self._metric("LiveScorePSI", "Average", 15),
                                 self._metric("LiveFeaturePSIMax", "Average", 15)],
                           right=[self._metric("LivePSIRows", "Sum", 15)],
                           left_annotations=[cw.HorizontalAnnotation(value=PSI_THRESHOLD, label="PSI threshold")]),
            cw.AlarmStatusWidget(title="Alarms", width=24, alarms=list(self.alarms.values())),
        )
        dashboard.add_widgets(*self.monitoring.widgets(c.recall_slo))

    # -- cdk-nag ---------------------------------------------------------------------------------
    def _nag_suppressions(self) -> None:
        """Every cdk-nag AwsSolutions finding this stack acknowledges, each with why it does not
        apply; any other finding fails tests/test_infra/test_stack.py. Each acknowledgement names
        one finding (an IAM4/IAM5 finding names the managed policy or the wildcard resource it is
        about) on the resource it is about: the CloudFormation resource itself, or a role's policy."""

        def ack(scope: Construct, rule: str, reason: str) -> None:
            cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=f"AwsSolutions-{rule}", reason=reason))

        def resource(construct: Construct) -> Construct:
            return construct.node.default_child

        def policy(role: iam.IRole) -> Construct:
            return role.node.find_child("DefaultPolicy")

        ack(resource(self.access_log_bucket), "S1",
            "This is the server-access-log bucket of the data bucket and holds only S3's own access logs: logging "
            "it to itself would log its own log deliveries, and logging it to a third bucket only moves the question.")
        ack(resource(self.hash_key_secret), "SMG4",
            "HMAC key of the card and terminal pseudonyms: feature state, lists and idempotency records are keyed "
            "by it, so a rotation would silently orphan all of them; it must never rotate (re-keying is a migration).")
        if isinstance(self.api_keys_secret, secretsmanager.Secret):  # not one passed in by ARN
            ack(resource(self.api_keys_secret), "SMG4",
                "Holds only SHA-256 digests of the API keys, nothing a rotation function could re-issue; keys are "
                "rotated by adding a digest (`fraud api-key create`) and removing the old one once callers moved.")

        bucket = self.resolve(self.bucket.bucket_arn)["Fn::GetAtt"][0]

        def object_prefixes(role: iam.IRole, *prefixes: str) -> None:
            for prefix in prefixes:
                ack(policy(role), f"IAM5[Resource::<{bucket}.Arn>/{prefix}/*]",
                    f"Objects under the fixed '{prefix}/' key prefix of the stack's own data bucket: S3 object "
                    f"permissions name objects by key pattern, and this one covers that prefix and nothing else.")

        for function in (self.scoring_fn, self.outbox_fn):
            ack(resource(function.role),
                "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                "AWSLambdaBasicExecutionRole is the AWS-managed policy Lambda needs to write the function's own "
                "CloudWatch logs; the function's data access is granted only by exact inline statements.")
            ack(policy(function.role), "IAM5[Resource::*]",
                "Active X-Ray tracing: xray:PutTraceSegments and xray:PutTelemetryRecords support no resource-level "
                "permissions, so '*' is the only resource they can be granted on.")
            object_prefixes(function.role, REGISTRY_PREFIX)
        object_prefixes(self.scoring_fn.role, LABELS_PREFIX)
        object_prefixes(self.training_task.task_role, DATA_PREFIX, REGISTRY_PREFIX, RUNS_PREFIX, LABELS_PREFIX,
                        TRIGGERS_PREFIX, HARD_EXAMPLES_PREFIX)
        ecr_token = ("ecr:GetAuthorizationToken supports no resource-level permissions (the registry token is "
                     "account-wide); the image pulls themselves are limited to the CDK container-assets repository.")
        ack(policy(self.training_task.execution_role), "IAM5[Resource::*]", ecr_token)
        object_prefixes(self.state_load_task.task_role, DATA_PREFIX, REGISTRY_PREFIX)
        object_prefixes(self.monitoring.role, REGISTRY_PREFIX, DECISIONS_PREFIX, LABELS_PREFIX)
        ack(policy(self.monitoring.task.execution_role), "IAM5[Resource::*]", ecr_token)
        ack(resource(self.monitoring.task), "ECS2",
            "The container environment holds the registry's S3 URI, the metrics namespace and the ARN of the "
            "hash-key secret (a name, not its value: the task reads the value from Secrets Manager), no secret.")
        object_prefixes(self.hard_examples.role, REGISTRY_PREFIX, DECISIONS_PREFIX, LABELS_PREFIX, HARD_EXAMPLES_PREFIX)
        ack(policy(self.hard_examples.task.execution_role), "IAM5[Resource::*]", ecr_token)
        ack(resource(self.hard_examples.task), "ECS2",
            "The container environment holds the registry's S3 URI and the ARN of the hash-key secret (a name, "
            "not its value: the task reads the value from Secrets Manager), no secret.")
        for task in (self.state_load_task, self.state_catch_up_task):
            ack(policy(task.execution_role), "IAM5[Resource::*]", ecr_token)
            ack(resource(task), "ECS2",
                "The container environment holds the registry's S3 URI and the ARN of the hash-key secret (a name, "
                "not its value: the task reads the value from Secrets Manager), no secret.")
        ack(resource(self.training_task), "ECS2",
            "The container environment holds only S3 URIs of the stack's data bucket, metrics settings and the ARN "
            "of the hash-key secret (a name, not its value: the job reads the value from Secrets Manager).")
        cluster = self.resolve(self.node.find_child("TrainingCluster").cluster_name)["Ref"]
        ack(policy(self.retrain.role), f"IAM5[Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:*:task/<{cluster}>/*]",
            "ecs:TagResource on the tasks the retrain rule starts, in the training cluster only: RunTask tags the "
            "task it launches, whose id ECS generates, so the tasks of that one cluster are named by pattern.")
        ack(resource(self.schedule_dlq), "SQS3",
            "This queue is itself a dead-letter queue: the nightly schedules' and the retrain rule's target DLQ (set "
            "in their DeadLetterConfig, which cdk-nag does not follow), alarmed on when not empty.")
        for route in self.health_routes:
            ack(resource(route), "APIG4",
                "GET /v1/health is open on purpose for uptime probes; it returns only the status, the serving "
                "model version and the outbox backlog count, no transaction, card or customer data.")
        if self.gpu_queue is not None:
            object_prefixes(self.gpu_job_role, DATA_PREFIX, REGISTRY_PREFIX, RUNS_PREFIX, LABELS_PREFIX, TRIGGERS_PREFIX,
                            HARD_EXAMPLES_PREFIX)
            ack(policy(self.gpu_container.execution_role), "IAM5[Resource::*]", ecr_token)
            ack(resource(self.gpu_compute_environment.node.find_child("InstanceProfileRole")),
                "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role]",
                "AmazonEC2ContainerServiceforEC2Role is the AWS-managed policy of ECS container instances (agent "
                "registration, image pull, logs) that Batch's EC2 compute environment needs; the job's data access "
                "is on GpuJobRole.")


def _retention(days: int) -> logs.RetentionDays:
    options = {1: logs.RetentionDays.ONE_DAY, 7: logs.RetentionDays.ONE_WEEK, 14: logs.RetentionDays.TWO_WEEKS,
               30: logs.RetentionDays.ONE_MONTH, 90: logs.RetentionDays.THREE_MONTHS,
               180: logs.RetentionDays.SIX_MONTHS, 365: logs.RetentionDays.ONE_YEAR}
    return options.get(days, logs.RetentionDays.TWO_WEEKS)
