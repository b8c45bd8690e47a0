"""The one way this stack runs a scheduled Fargate task (EventBridge Scheduler target): in
the public subnets of the training VPC (no NAT), two retries within two hours, failures to
the schedules' dead-letter queue, which is alarmed on."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_scheduler_targets as scheduler_targets


def fargate_target(cluster, task_definition, dead_letter_queue) -> scheduler_targets.EcsRunFargateTask:
    return scheduler_targets.EcsRunFargateTask(
        cluster, task_definition=task_definition, assign_public_ip=True,
        vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
        dead_letter_queue=dead_letter_queue, max_event_age=cdk.Duration.hours(2), retry_attempts=2)
