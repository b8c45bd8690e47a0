"""Hard examples in AWS (issue 16, section 6): `fraud hard-examples` daily as a Fargate task
of the training image, on the UTC day that just ended (the command's default day), after
the decision log's day is complete (Firehose delivers within 5 minutes of midnight;
the schedule runs at 03:00 UTC). It reads the day's decisions (``decisions/``), the labels
(``labels/``) and the review threshold of each model version that scored them (the
registry's ``thresholds.json``, verified against the version's manifest with the hash key),
and appends the day's hardest transactions to the queue under ``hard-examples/``, capped
per day; a re-run queues nothing twice. The nightly training reads the queue
(``FRAUD_HARD_EXAMPLES_URI``) to up-weight the reviewed ones (``[training]
hard_example_weight``).

The task's role, exactly what the command calls (tested as deployed, test_deployed_iam):
GetObject on ``registry/*``, ``decisions/*``, ``labels/*`` and ``hard-examples/*``;
ListBucket only with an ``s3:prefix`` under ``decisions/``, ``labels/`` or ``hard-examples/``
(the decision reader lists the day's partitions, the label store and the queue list their
files); PutObject on ``hard-examples/*`` alone; the hash key. No delete, no other prefix.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from .scheduled import fargate_target

HARD_EXAMPLES_PREFIX = "hard-examples"   # the queue (fraud.hard_examples); training reads it


class HardExampleQueueing(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, prefix: str, bucket, registry_prefix: str,
                 decisions_prefix: str, labels_prefix: str, hash_key_secret, image, cluster: ecs.ICluster,
                 dead_letter_queue, log_retention: logs.RetentionDays, schedule: str):
        """``schedule``: StageConfig.hard_examples_schedule (03:00 UTC by default)."""
        super().__init__(scope, construct_id)
        name = bucket.bucket_name
        self.uri = f"s3://{name}/{HARD_EXAMPLES_PREFIX}"  # the queue: this task writes it, training reads it
        self.role = self._role(bucket, registry_prefix, decisions_prefix, labels_prefix, hash_key_secret)
        self.task = ecs.FargateTaskDefinition(self, "Task", cpu=1024, memory_limit_mib=8192,
                                              task_role=self.role, family=f"{prefix}-hard-examples")
        log_group = logs.LogGroup(self, "Logs", retention=log_retention,
                                  removal_policy=cdk.RemovalPolicy.DESTROY)
        self.task.add_container(  # no --day: yesterday (UTC)
            "hard-examples", image=ecs.ContainerImage.from_docker_image_asset(image), essential=True,
            command=["hard-examples", "--decisions", f"s3://{name}/{decisions_prefix}",
                     "--labels", f"s3://{name}/{labels_prefix}", "--queue", self.uri],
            environment={"FRAUD_REGISTRY_URI": f"s3://{name}/{registry_prefix}",
                         "FRAUD_HASH_KEY_SECRET_ARN": hash_key_secret.secret_arn},
            logging=ecs.LogDrivers.aws_logs(stream_prefix="hard-examples", log_group=log_group))
        self.schedule = scheduler.Schedule(
            self, "Schedule", schedule_name=f"{prefix}-hard-examples",
            schedule=scheduler.ScheduleExpression.expression(schedule),
            description="Daily: fraud hard-examples (yesterday's hardest decisions queued for labelling)",
            target=fargate_target(cluster, self.task, dead_letter_queue))

    def _role(self, bucket, registry_prefix: str, decisions_prefix: str, labels_prefix: str,
              hash_key_secret) -> iam.Role:
        role = iam.Role(self, "TaskRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
                        description="fraud hard-examples: reads the registry, decisions and labels; "
                                    "appends to hard-examples/ only")
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="ReadRegistryDecisionsLabelsQueue", actions=["s3:GetObject"],
            resources=[bucket.arn_for_objects(f"{p}/*")
                       for p in (registry_prefix, decisions_prefix, labels_prefix, HARD_EXAMPLES_PREFIX)]))
        role.add_to_principal_policy(iam.PolicyStatement(  # the readers list days and files under these alone
            sid="ListDecisionsLabelsQueue", actions=["s3:ListBucket"], resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{p}/*" for p in (decisions_prefix, labels_prefix,
                                                                          HARD_EXAMPLES_PREFIX)]}}))
        role.add_to_principal_policy(iam.PolicyStatement(  # content-named files, one PUT each, never deleted
            sid="AppendToQueue", actions=["s3:PutObject"],
            resources=[bucket.arn_for_objects(f"{HARD_EXAMPLES_PREFIX}/*")]))
        role.add_to_principal_policy(iam.PolicyStatement(  # verifies the registry's signed manifests
            sid="ReadHashKey", actions=["secretsmanager:GetSecretValue"], resources=[hash_key_secret.secret_arn]))
        return role


def grant_read_queue(role: iam.IRole, bucket) -> None:
    """Training reads the queue (``hard_example_weights``: a listing of ``hard-examples/``,
    then each file); the list is covered by the training role's unconditioned ListBucket
    (infra/stack.py ``ListBucketForMissingKeys``), so this adds the objects alone."""
    role.add_to_principal_policy(iam.PolicyStatement(
        sid="ReadHardExamples", actions=["s3:GetObject"],
        resources=[bucket.arn_for_objects(f"{HARD_EXAMPLES_PREFIX}/*")]))
