"""Retrain on alarm (issue 16, section 5, in AWS): an EventBridge rule on the recall and PSI
alarms' change to ALARM runs the training task (the very task definition the nightly
schedule runs) with ``FRAUD_TRAINING_TRIGGER=alarm:<alarm name>`` and the alarm's reason in
``FRAUD_TRAINING_TRIGGER_DETAIL``. The job (``fraud train --trigger``, batch_jobs.retrain)
reads the trigger log ``triggers/`` first: within the cooldown, or without enough new
labels, it records the decision and exits 0 without training; otherwise it records the
start and trains. The nightly schedule's runs carry ``schedule`` and are recorded as starts,
so the cooldown counts from them too.

The rule's role may run that task definition alone, on the training cluster alone, and
pass exactly its two roles (task and execution) to ECS; failed deliveries go to the
training schedule's dead-letter queue, which is alarmed on.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from constructs import Construct

TRIGGERS_PREFIX = "triggers"                       # the trigger log (fraud.monitoring.triggers)
TRIGGER_ENV = "FRAUD_TRAINING_TRIGGER"             # batch_jobs.retrain.TRIGGER_ENV
TRIGGER_DETAIL_ENV = "FRAUD_TRAINING_TRIGGER_DETAIL"  # batch_jobs.retrain.TRIGGER_DETAIL_ENV


class RetrainOnAlarm(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, prefix: str, alarms: list[cw.IAlarm],
                 cluster: ecs.ICluster, task_definition: ecs.FargateTaskDefinition, container_name: str,
                 dead_letter_queue):
        super().__init__(scope, construct_id)
        self.role = iam.Role(self, "RunTrainingRole", assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
                             description="EventBridge: run the training task when a recall or PSI alarm fires")
        self.rule = events.Rule(
            self, "Rule", rule_name=f"{prefix}-retrain-on-alarm",
            description="Recall or PSI alarm in ALARM: start the training task (it applies the cooldown)",
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"], detail_type=["CloudWatch Alarm State Change"],
                resources=[a.alarm_arn for a in alarms], detail={"state": {"value": ["ALARM"]}}))
        self.rule.add_target(targets.EcsTask(
            cluster=cluster, task_definition=task_definition, role=self.role, launch_type=ecs.LaunchType.FARGATE,
            assign_public_ip=True, subnet_selection=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            container_overrides=[targets.ContainerOverride(container_name=container_name, environment=[
                targets.TaskEnvironmentVariable(name=TRIGGER_ENV,
                                                value="alarm:" + events.EventField.from_path("$.detail.alarmName")),
                targets.TaskEnvironmentVariable(name=TRIGGER_DETAIL_ENV,
                                                value=events.EventField.from_path("$.detail.state.reason"))])],
            dead_letter_queue=dead_letter_queue, max_event_age=cdk.Duration.hours(2), retry_attempts=2))


def grant_trigger_log(role: iam.IRole, bucket) -> None:
    """The training job reads the trigger log (the last start) and appends its decision."""
    role.add_to_principal_policy(iam.PolicyStatement(
        sid="ReadWriteTriggerLog", actions=["s3:GetObject", "s3:PutObject"],
        resources=[bucket.arn_for_objects(f"{TRIGGERS_PREFIX}/*")]))
