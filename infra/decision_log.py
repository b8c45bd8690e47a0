"""The decision log in AWS: a Kinesis Data Firehose delivery stream (Direct PUT) that the
scoring function puts each request's decision records to, and that delivers them to the
data bucket as gzip-compressed newline-delimited JSON under
``decisions/date=YYYY-MM-DD/`` (the day Firehose received them; ``fraud.decisions.reader``
reads a day with one day of slack on each side and filters on ``scored_at``).

Buffering: Firehose writes an object every 5 minutes or 64 MiB, whichever comes first, so
a record is in S3 about 5 minutes after it was scored (the nightly monitor reads
yesterday's). Records Firehose cannot deliver go under ``decision-errors/<error type>/``
and its delivery errors to a CloudWatch log group.

Least privilege: the scoring role may only ``firehose:PutRecordBatch`` on this stream (the
one call ``fraud.decisions.firehose`` makes); Firehose's own role may put objects only
under ``decisions/`` and ``decision-errors/`` of the bucket, list the bucket and its
multipart uploads (which delivery needs), and write its own error log. The stream is
encrypted at rest with an AWS-owned key; the objects by the bucket's default encryption.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

ERRORS_PREFIX = "decision-errors"
BUFFER_SECONDS = 300
BUFFER_MIB = 64


class DecisionLogStream(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, stream_name: str, bucket: s3.IBucket, prefix: str,
                 log_retention: logs.RetentionDays):
        super().__init__(scope, construct_id)
        self.stream_name = stream_name
        self.uri = f"firehose://{stream_name}"  # FRAUD_DECISION_LOG_URI of the scoring function
        log_group = logs.LogGroup(self, "DeliveryErrors", retention=log_retention,
                                  removal_policy=cdk.RemovalPolicy.DESTROY)
        log_stream = logs.LogStream(self, "DeliveryErrorStream", log_group=log_group, log_stream_name="S3Delivery",
                                    removal_policy=cdk.RemovalPolicy.DESTROY)
        self.role = iam.Role(
            self, "DeliveryRole", description="Firehose: delivers decision records to decisions/ of the data bucket",
            assumed_by=iam.ServicePrincipal("firehose.amazonaws.com").with_conditions(
                {"StringEquals": {"sts:ExternalId": cdk.Aws.ACCOUNT_ID}}))
        self.role.add_to_principal_policy(iam.PolicyStatement(
            sid="WriteDecisions", actions=["s3:PutObject", "s3:AbortMultipartUpload"],
            resources=[bucket.arn_for_objects(f"{prefix}/*"), bucket.arn_for_objects(f"{ERRORS_PREFIX}/*")]))
        self.role.add_to_principal_policy(iam.PolicyStatement(
            sid="DeliverToBucket", actions=["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
            resources=[bucket.bucket_arn]))
        self.role.add_to_principal_policy(iam.PolicyStatement(
            sid="LogDeliveryErrors", actions=["logs:PutLogEvents"],
            resources=[cdk.Stack.of(self).format_arn(
                service="logs", resource="log-group",
                resource_name=f"{log_group.log_group_name}:log-stream:{log_stream.log_stream_name}",
                arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)]))
        cfn = firehose.CfnDeliveryStream
        self.stream = cfn(
            self, "Stream", delivery_stream_name=stream_name, delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=cfn.DeliveryStreamEncryptionConfigurationInputProperty(
                key_type="AWS_OWNED_CMK"),
            extended_s3_destination_configuration=cfn.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=bucket.bucket_arn, role_arn=self.role.role_arn,
                prefix=f"{prefix}/date=!{{timestamp:yyyy-MM-dd}}/",
                error_output_prefix=f"{ERRORS_PREFIX}/!{{firehose:error-output-type}}/date=!{{timestamp:yyyy-MM-dd}}/",
                buffering_hints=cfn.BufferingHintsProperty(interval_in_seconds=BUFFER_SECONDS,
                                                           size_in_m_bs=BUFFER_MIB),
                compression_format="GZIP",
                cloud_watch_logging_options=cfn.CloudWatchLoggingOptionsProperty(
                    enabled=True, log_group_name=log_group.log_group_name,
                    log_stream_name=log_stream.log_stream_name)))
        # Firehose checks its access to the bucket when the stream is created
        self.stream.node.add_dependency(self.role.node.find_child("DefaultPolicy"))
        self.stream_arn = self.stream.attr_arn
        bucket_logical = cdk.Stack.of(self).resolve(bucket.bucket_arn)["Fn::GetAtt"][0]
        for object_prefix in (prefix, ERRORS_PREFIX):
            cdk.Validations.of(self.role.node.find_child("DefaultPolicy")).acknowledge(cdk.Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::<{bucket_logical}.Arn>/{object_prefix}/*]",
                reason=f"Firehose writes objects under the fixed '{object_prefix}/' key prefix of the stack's own "
                       "data bucket (named per delivery by date): S3 object permissions name objects by key "
                       "pattern, and this one covers that prefix and nothing else."))

    def grant_put(self, role: iam.IRole) -> None:
        """PutRecordBatch on this stream: the only call the scoring path makes."""
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="WriteDecisionLog", actions=["firehose:PutRecordBatch"], resources=[self.stream_arn]))
