"""Model health in AWS: `fraud monitor` nightly as a Fargate task of the training image, its
EMF metrics (service ``fraud-monitoring``), alarms that judge a day only when it had enough
data, and the dashboard's drift and recall panels.

The alarms use metric math so a small day cannot flap them: ``IF(rows >= MIN_ROWS,
FILL(psi, 0), 0)`` for the PSIs, ``IF(frauds >= MIN_LABELS, FILL(recall, 1), 1)`` for the
recall (a day without enough labelled frauds reads as perfect recall, not as a breach).
The thresholds mirror ``fraud/defaults/config.toml`` ``[monitoring]`` (infra imports none of
the runtime; tests/test_infra checks they agree).

The task's role reads the registry (champion and reference), ``decisions/*`` and
``labels/*``, lists only the last two (their readers list days), and reads the hash key that verifies the
registry's manifests; it writes nothing (the report stays in the task; the health goes out
as metrics and log lines).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from .scheduled import fargate_target

MONITOR_SERVICE = "fraud-monitoring"   # fraud.monitoring.emit.SERVICE
DECISIONS_PREFIX = "decisions"
PSI_THRESHOLD = 0.2                    # [monitoring] psi_threshold
MIN_ROWS = 1000                        # [monitoring] min_rows
MIN_LABELS = 30                        # [monitoring] min_labels (labelled frauds)
SCHEDULE = "cron(0 4 * * ? *)"         # after the nightly training (02:00), on yesterday's log
PERIOD = cdk.Duration.days(1)          # one health datapoint a night


class ModelHealthMonitoring(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, prefix: str, bucket, registry_prefix: str,
                 labels_prefix: str, hash_key_secret, image, cluster: ecs.ICluster, dead_letter_queue,
                 alarm_topic, namespace: str, recall_slo: float, log_retention: logs.RetentionDays,
                 schedule: str = SCHEDULE):
        super().__init__(scope, construct_id)
        self.namespace = namespace
        self.role = self._role(bucket, registry_prefix, labels_prefix, hash_key_secret)
        self.task = ecs.FargateTaskDefinition(self, "MonitorTask", cpu=1024, memory_limit_mib=8192,
                                              task_role=self.role, family=f"{prefix}-monitor")
        log_group = logs.LogGroup(self, "MonitorLogs", retention=log_retention,
                                  removal_policy=cdk.RemovalPolicy.DESTROY)
        name = bucket.bucket_name
        self.task.add_container(
            "monitor", image=ecs.ContainerImage.from_docker_image_asset(image), essential=True,
            command=["monitor", "--metrics", "emf", "--out", "/tmp/monitor",
                     "--decisions", f"s3://{name}/{DECISIONS_PREFIX}", "--labels", f"s3://{name}/{labels_prefix}"],
            environment={"FRAUD_REGISTRY_URI": f"s3://{name}/{registry_prefix}",
                         "FRAUD_HASH_KEY_SECRET_ARN": hash_key_secret.secret_arn,
                         "FRAUD_METRICS_NAMESPACE": namespace},
            logging=ecs.LogDrivers.aws_logs(stream_prefix="monitor", log_group=log_group))
        self.schedule = scheduler.Schedule(
            self, "MonitorSchedule", schedule_name=f"{prefix}-monitor",
            schedule=scheduler.ScheduleExpression.expression(schedule),
            description="Nightly: fraud monitor (drift and recall of the champion) as EMF metrics",
            target=fargate_target(cluster, self.task, dead_letter_queue))
        self.alarms = self._alarms(prefix, alarm_topic, recall_slo)

    def _role(self, bucket, registry_prefix: str, labels_prefix: str, hash_key_secret) -> iam.Role:
        role = iam.Role(self, "MonitorTaskRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
                        description="fraud monitor: reads the registry, the decision log and the labels; writes nothing")
        prefixes = (registry_prefix, DECISIONS_PREFIX, labels_prefix)
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="ReadRegistryDecisionsLabels", actions=["s3:GetObject"],
            resources=[bucket.arn_for_objects(f"{p}/*") for p in prefixes]))
        role.add_to_principal_policy(iam.PolicyStatement(  # the reader and the label store list their days
            sid="ListDecisionsLabels", actions=["s3:ListBucket"], resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{p}/*" for p in (DECISIONS_PREFIX, labels_prefix)]}}))
        role.add_to_principal_policy(iam.PolicyStatement(  # verifies the registry's signed manifests
            sid="ReadHashKey", actions=["secretsmanager:GetSecretValue"], resources=[hash_key_secret.secret_arn]))
        return role

    def metric(self, name: str, statistic: str = "Maximum") -> cw.Metric:
        return cw.Metric(namespace=self.namespace, metric_name=name, statistic=statistic, period=PERIOD,
                         dimensions_map={"service": MONITOR_SERVICE})

    def _alarms(self, prefix: str, topic, recall_slo: float) -> dict[str, cw.Alarm]:
        gt, lt = cw.ComparisonOperator.GREATER_THAN_THRESHOLD, cw.ComparisonOperator.LESS_THAN_THRESHOLD

        def alarm(construct_id: str, description: str, expression: str, using: dict, threshold: float, op):
            made = cw.Alarm(self, construct_id, alarm_name=f"{prefix}-{construct_id}", alarm_description=description,
                            metric=cw.MathExpression(expression=expression, using_metrics=using, period=PERIOD,
                                                     label=construct_id),
                            threshold=threshold, evaluation_periods=1, comparison_operator=op,
                            treat_missing_data=cw.TreatMissingData.NOT_BREACHING)
            made.add_alarm_action(cw_actions.SnsAction(topic))
            return made

        rows, frauds = self.metric("ScoredRows"), self.metric("LabelledFrauds")
        # every run emits ScoredRows (0 on a quiet day): none for 26 h means the monitor did not run
        missing = cw.Alarm(self, "MonitorRunMissing", alarm_name=f"{prefix}-MonitorRunMissing",
                           alarm_description="No fraud monitor health in 26 hours: drift and recall are not watched. "
                                             "Runbook: README 'Monitoring'.",
                           metric=cw.Metric(namespace=self.namespace, metric_name="ScoredRows", statistic="SampleCount",
                                            period=cdk.Duration.hours(26),
                                            dimensions_map={"service": MONITOR_SERVICE}),
                           threshold=1, evaluation_periods=1, comparison_operator=lt,
                           treat_missing_data=cw.TreatMissingData.BREACHING)
        missing.add_alarm_action(cw_actions.SnsAction(topic))
        return {"missing": missing,
            "score_psi": alarm("ScorePSIAboveThreshold",
                               f"The champion's score distribution moved (PSI > {PSI_THRESHOLD}) on a day with at "
                               f"least {MIN_ROWS} scored rows. Runbook: README 'Monitoring'.",
                               f"IF(rows >= {MIN_ROWS}, FILL(psi, 0), 0)", {"rows": rows, "psi": self.metric("ScorePSI")},
                               PSI_THRESHOLD, gt),
            "feature_psi": alarm("FeaturePSIAboveThreshold",
                                 f"An important feature's distribution moved (PSI > {PSI_THRESHOLD}) on a day with at "
                                 f"least {MIN_ROWS} scored rows. Runbook: README 'Monitoring'.",
                                 f"IF(rows >= {MIN_ROWS}, FILL(psi, 0), 0)",
                                 {"rows": rows, "psi": self.metric("FeaturePSIMax")}, PSI_THRESHOLD, gt),
            "recall": alarm("MonitoredRecallBelowSLO",
                            f"Labels known so far show review+decline recall below {recall_slo} over at least "
                            f"{MIN_LABELS} labelled frauds (fraud monitor). Runbook: README 'Monitoring'.",
                            f"IF(frauds >= {MIN_LABELS}, FILL(recall, 1), 1)",
                            {"frauds": frauds, "recall": self.metric("PolicyRecall", "Minimum")}, recall_slo, lt),
        }

    def widgets(self, recall_slo: float) -> list[cw.IWidget]:
        """The dashboard's panels: PSI and rows per night, recall and labelled frauds, the alarms."""
        return [
            cw.GraphWidget(title="Drift per night (fraud monitor)", width=12,
                           left=[self.metric("ScorePSI"), self.metric("FeaturePSIMax")],
                           right=[self.metric("ScoredRows")],
                           left_annotations=[cw.HorizontalAnnotation(value=PSI_THRESHOLD, label="PSI threshold")]),
            cw.GraphWidget(title="Recall from labels (fraud monitor)", width=12,
                           left=[self.metric("PolicyRecall", "Minimum"), self.metric("PolicyPrecision")],
                           right=[self.metric("LabelledFrauds"), self.metric("LabelledRows")],
                           left_annotations=[cw.HorizontalAnnotation(value=recall_slo, label="recall SLO")]),
            cw.AlarmStatusWidget(title="Model health alarms", width=24, alarms=list(self.alarms.values())),
        ]
