"""The CDK app, offline: every resource and property the deployment depends on, least
privilege IAM, a full synth linted by cfn-lint, and the Dockerfiles."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
cdk = pytest.importorskip("aws_cdk")
from aws_cdk.assertions import Match, Template  # noqa: E402

from infra.app import build_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DATA_SERVICES = ("s3", "dynamodb", "sqs")


def template_for(tmp_path, **context) -> Template:
    app = build_app(context=context, outdir=str(tmp_path / "cdk.out"))
    stack = app.node.find_child(f"FraudScoring-{context.get('stage', 'dev')}")
    return Template.from_stack(stack)


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    return template_for(tmp_path_factory.mktemp("dev"))


def test_bucket_is_encrypted_versioned_private_tls_only_with_lifecycle(dev):
    dev.has_resource_properties("AWS::S3::Bucket", {
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
        "VersioningConfiguration": {"Status": "Enabled"},
        "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                           "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
        "LifecycleConfiguration": {"Rules": Match.array_with([
            Match.object_like({"Id": "old-transactions", "Prefix": "transactions/", "ExpirationInDays": 400,
                               "Status": "Enabled"}),
            Match.object_like({"Id": "old-versions", "NoncurrentVersionExpiration": {"NoncurrentDays": 90}})])},
    })
    dev.has_resource_properties("AWS::S3::BucketPolicy", {"PolicyDocument": {"Statement": Match.array_with([
        Match.object_like({"Effect": "Deny", "Action": "s3:*",
                           "Condition": {"Bool": {"aws:SecureTransport": "false"}}})])}})


def test_dynamodb_tables_on_demand_ttl_pitr_encrypted(dev):
    tables = dev.find_resources("AWS::DynamoDB::Table")
    assert len(tables) == 5
    names = {t["Properties"]["TableName"] for t in tables.values()}
    assert names == {f"fraud-dev-{n}" for n in ("features", "idempotency", "outbox", "lists", "feedback")}
    for table in tables.values():
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        assert props["SSESpecification"]["SSEEnabled"] is True


def test_review_queue_fifo_encrypted_with_dlq(dev):
    dev.has_resource_properties("AWS::SQS::Queue", {
        "QueueName": "fraud-dev-review.fifo", "FifoQueue": True, "SqsManagedSseEnabled": True,
        "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": [Match.string_like_regexp("ReviewDLQ"), "Arn"]},
                          "maxReceiveCount": 5}})
    dev.has_resource_properties("AWS::SQS::Queue", {"QueueName": "fraud-dev-review-dlq.fifo", "FifoQueue": True,
                                                    "SqsManagedSseEnabled": True})


def test_scoring_lambda_container_memory_tracing_env(dev):
    dev.has_resource_properties("AWS::Lambda::Function", {
        "FunctionName": "fraud-dev-score", "PackageType": "Image", "MemorySize": 2048, "Timeout": 10,
        "ReservedConcurrentExecutions": 20, "TracingConfig": {"Mode": "Active"},
        "Environment": {"Variables": Match.object_like({
            "FRAUD_BACKEND": "aws", "FRAUD_METRICS": "emf", "FRAUD_MAX_BATCH": "100",
            "FRAUD_REGISTRY_URI": {"Fn::Join": ["", ["s3://", {"Ref": Match.string_like_regexp("DataBucket")},
                                                     "/registry"]]},
            "FRAUD_REVIEW_QUEUE_URL": {"Ref": Match.string_like_regexp("ReviewQueue")},
            "FRAUD_FEATURES_TABLE": {"Ref": Match.string_like_regexp("FeaturesTable")},
            "FRAUD_LABELS_URI": {"Fn::Join": ["", ["s3://", {"Ref": Match.string_like_regexp("DataBucket")},
                                                   "/labels"]]}})}})
    dev.has_resource_properties("AWS::Lambda::Function", {
        "FunctionName": "fraud-dev-outbox-drain", "ImageConfig": {"Command": ["lambda_handler.outbox.handler"]}})
    dev.has_resource_properties("AWS::Events::Rule", {"ScheduleExpression": "rate(1 minute)"})
    dev.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 14})


def test_http_api_with_iam_auth_throttling_and_open_health(dev):
    routes = dev.find_resources("AWS::ApiGatewayV2::Route")
    auth = {r["Properties"]["RouteKey"]: r["Properties"].get("AuthorizationType") for r in routes.values()}
    assert auth["GET /v1/health"] == "NONE"
    assert {auth[k] for k in auth if k != "GET /v1/health"} == {"AWS_IAM"}
    assert "POST /v1/{proxy+}" in auth
    dev.has_resource_properties("AWS::ApiGatewayV2::Stage", {
        "StageName": "$default", "DefaultRouteSettings": {"ThrottlingRateLimit": 500, "ThrottlingBurstLimit": 1000},
        "AccessLogSettings": Match.object_like({"Format": Match.string_like_regexp("requestId")})})


def test_jwt_authorizer_option(tmp_path):
    jwt = template_for(tmp_path, auth="jwt", jwt_issuer="https://issuer.example.com/", jwt_audience="fraud-api")
    jwt.has_resource_properties("AWS::ApiGatewayV2::Authorizer", {
        "AuthorizerType": "JWT", "JwtConfiguration": {"Issuer": "https://issuer.example.com/",
                                                      "Audience": ["fraud-api"]}})
    routes = jwt.find_resources("AWS::ApiGatewayV2::Route")
    assert {r["Properties"].get("AuthorizationType") for r in routes.values()} == {"JWT", "NONE"}


def test_nightly_training_schedule_fargate_retries_dlq(dev):
    dev.has_resource_properties("AWS::Scheduler::Schedule", {
        "Name": "fraud-dev-nightly-training", "ScheduleExpression": "cron(0 2 * * ? *)",
        "Target": Match.object_like({
            "EcsParameters": Match.object_like({"LaunchType": "FARGATE",
                                                "TaskDefinitionArn": {"Ref": Match.string_like_regexp("TrainingTask")}}),
            "RetryPolicy": {"MaximumEventAgeInSeconds": 7200, "MaximumRetryAttempts": 2},
            "DeadLetterConfig": {"Arn": {"Fn::GetAtt": [Match.string_like_regexp("TrainingScheduleDLQ"), "Arn"]}}})})
    dev.has_resource_properties("AWS::ECS::TaskDefinition", {
        "Cpu": "4096", "Memory": "16384", "RequiresCompatibilities": ["FARGATE"],
        "ContainerDefinitions": [Match.object_like({"Environment": Match.array_with([
            {"Name": "FRAUD_TRAINING_METRICS", "Value": "emf"}])})]})
    dev.resource_count_is("AWS::Batch::ComputeEnvironment", 0)


def test_state_catch_up_runs_nightly_before_training_with_the_state_role(dev):
    """What reached the data lake but not the API goes into the feature state each night, as a
    task of the training image holding the state-load role (the training role writes no state)."""
    dev.has_resource_properties("AWS::Scheduler::Schedule", {
        "Name": "fraud-dev-state-catch-up", "ScheduleExpression": "cron(0 1 * * ? *)",
        "Target": Match.object_like({
            "EcsParameters": Match.object_like({"TaskDefinitionArn": {"Ref": Match.string_like_regexp(
                "StateCatchUpTask")}}),
            "DeadLetterConfig": {"Arn": {"Fn::GetAtt": [Match.string_like_regexp("TrainingScheduleDLQ"), "Arn"]}}})})
    tasks = {t["Properties"]["Family"]: t["Properties"] for t in dev.find_resources("AWS::ECS::TaskDefinition").values()}
    load, catch_up = tasks["fraud-dev-state-load"], tasks["fraud-dev-state-catch-up"]
    assert load["TaskRoleArn"] == catch_up["TaskRoleArn"] != tasks["fraud-dev-nightly-training"]["TaskRoleArn"]
    assert catch_up["ContainerDefinitions"][0]["Command"][:2] == ["state", "catch-up"]
    assert catch_up["ContainerDefinitions"][0]["Image"] == tasks["fraud-dev-nightly-training"][
        "ContainerDefinitions"][0]["Image"]


def test_gpu_training_option_on_aws_batch(tmp_path):
    gpu = template_for(tmp_path, gpu_training="true")
    gpu.has_resource_properties("AWS::Batch::ComputeEnvironment", {
        "Type": "managed", "ComputeResources": Match.object_like({
            "Type": "EC2", "InstanceTypes": ["g5.xlarge", "g6.xlarge"],
            "Ec2Configuration": [{"ImageType": "ECS_AL2", "ImageIdOverride": Match.any_value()}]})})
    gpu.has_resource_properties("AWS::Batch::JobDefinition", {"ContainerProperties": Match.object_like({
        "ResourceRequirements": Match.array_with([{"Type": "GPU", "Value": "1"}]),
        "Environment": Match.array_with([{"Name": "FRAUD_DEVICE", "Value": "cuda"}])})})
    gpu.has_resource_properties("AWS::Scheduler::Schedule", {"Name": "fraud-dev-nightly-gpu-training",
                                                             "State": "DISABLED"})


def test_alarms_with_sns_and_dashboard(dev):
    alarms = dev.find_resources("AWS::CloudWatch::Alarm")
    by_name = {a["Properties"]["AlarmName"]: a["Properties"] for a in alarms.values()}
    recall = by_name["fraud-dev-PolicyRecallBelowSLO"]
    assert recall["MetricName"] == "PolicyRecall" and recall["Threshold"] == 0.7
    assert recall["ComparisonOperator"] == "LessThanThreshold" and recall["Namespace"] == "FraudScoring"
    assert by_name["fraud-dev-ReviewDLQNotEmpty"]["Threshold"] == 0
    assert by_name["fraud-dev-ReviewOutboxBacklog"]["MetricName"] == "OutboxPending"
    assert by_name["fraud-dev-ScoringErrorRate"]["Threshold"] == 1.0
    assert by_name["fraud-dev-ScoringLatencyP99"]["ExtendedStatistic"] == "p99"
    assert by_name["fraud-dev-ScoringLatencyP99"]["Threshold"] == 250
    training = by_name["fraud-dev-NightlyTrainingMissing"]
    assert training["TreatMissingData"] == "breaching" and training["MetricName"] == "TrainingRunSucceeded"
    assert "fraud-dev-TrainingScheduleFailures" in by_name
    # the feature state: answers by the fallback policy alarm; a review flood against the expected share
    state = by_name["fraud-dev-ScoringOnEmptyOrStaleState"]
    assert [m["Expression"] for m in state["Metrics"] if "Expression" in m] == ["empty + stale"]
    assert {d["Value"] for m in state["Metrics"] if "MetricStat" in m for d in m["MetricStat"]["Metric"]["Dimensions"]
            if d["Name"] == "State"} == {"empty", "stale"}
    volume = by_name["fraud-dev-ReviewVolumeAboveExpected"]
    expression = next(m["Expression"] for m in volume["Metrics"] if "Expression" in m)
    assert expression.startswith("IF(approve + review + decline >= 200, (review / (approve + review + decline))")
    assert volume["Threshold"] == 3.0 and volume["ComparisonOperator"] == "GreaterThanThreshold"
    assert {m["MetricStat"]["Metric"]["MetricName"] for m in volume["Metrics"] if "MetricStat" in m} == {
        "Decisions", "ExpectedReviewShare"}
    dev.has_resource_properties("AWS::Lambda::Function", {"FunctionName": "fraud-dev-score", "Environment": {
        "Variables": Match.object_like({"FRAUD_STATE_FALLBACK": "review", "FRAUD_STATE_MAX_AGE_S": "172800"})}})
    for props in by_name.values():
        assert props["AlarmActions"] == [{"Ref": Match.string_like_regexp("AlarmTopic")}] or \
            "AlarmTopic" in json.dumps(props["AlarmActions"])
    dev.resource_count_is("AWS::SNS::Topic", 1)
    body = json.dumps(dev.find_resources("AWS::CloudWatch::Dashboard"))
    for panel in ("Policy recall and precision", "Hard-example rate", "Score distribution", "Latency",
                  "review volume"):
        assert panel in body


def _statements(template: Template):
    for policy in template.find_resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            yield policy, actions, resources


def test_iam_is_least_privilege_on_data_resources(dev):
    data_statements = 0
    for _, actions, resources in _statements(dev):
        for action in actions:
            service = action.split(":")[0]
            assert action != "*"
            if service in DATA_SERVICES:
                data_statements += 1
                assert "*" not in action, f"wildcard action {action}"
                assert "*" not in resources, f"{action} on every resource"
    assert data_statements > 10
    roles = dev.find_resources("AWS::IAM::Policy")
    scoring = next(p for name, p in roles.items() if name.startswith("ScoringFunctionServiceRole"))
    text = json.dumps(scoring)
    assert "registry/*" in text and "transactions/*" not in text
    puts = [s for s in scoring["Properties"]["PolicyDocument"]["Statement"] if "s3:PutObject" in s["Action"]]
    # /v1/feedback appends to the label store: PutObject on labels/* alone
    assert len(puts) == 1 and puts[0]["Action"] == "s3:PutObject" and puts[0]["Resource"]["Fn::Join"][1][-1] == \
        "/labels/*"
    assert "sqs:SendMessage" in text
    scans = [s for s in scoring["Properties"]["PolicyDocument"]["Statement"] if "dynamodb:Scan" in s["Action"]]
    assert len(scans) == 1 and "ListsTable" in json.dumps(scans[0]["Resource"])  # GET /v1/lists, one table
    queries = [s for s in scoring["Properties"]["PolicyDocument"]["Statement"] if "dynamodb:Query" in s["Action"]]
    assert len(queries) == 1 and queries[0]["Action"] == "dynamodb:Query"  # on the outbox's tag index alone
    assert queries[0]["Resource"]["Fn::Join"][1][-1] == "/index/by-tag"
    training = next(p for name, p in roles.items() if name.startswith("TrainingTaskTaskRole"))
    text = json.dumps(training)
    assert "transactions/*" in text and "runs/*" in text and "dynamodb" not in text
    labels = [s for s in training["Properties"]["PolicyDocument"]["Statement"] if s.get("Sid") == "ReadLabels"]
    assert len(labels) == 1 and labels[0]["Action"] == "s3:GetObject"  # reads the label store, never writes it
    assert labels[0]["Resource"]["Fn::Join"][1][-1] == "/labels/*"


def test_prod_stage_names_retention_and_provisioned_concurrency(tmp_path):
    prod = template_for(tmp_path, stage="prod")
    prod.has_resource_properties("AWS::Lambda::Alias", {"Name": "live", "ProvisionedConcurrencyConfig": {
        "ProvisionedConcurrentExecutions": 2}})
    prod.has_resource_properties("AWS::Lambda::Function", {"FunctionName": "fraud-prod-score", "MemorySize": 3008})
    prod.has_resource("AWS::DynamoDB::Table", {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"})
    prod.has_resource("AWS::S3::Bucket", {"DeletionPolicy": "Retain"})
    text = json.dumps(prod.to_json())
    assert not re.search(r"\b\d{12}\b", text.replace("123456789012", "")), "an account id is hard-coded"
    assert "us-east-1" not in text and "eu-west-1" not in text


def test_a_batch_limit_that_cannot_fit_the_timeout_is_refused(tmp_path):
    with pytest.raises(ValueError, match="api_max_batch=1000 needs about 32 s"):
        build_app(context={"api_max_batch": "1000"}, outdir=str(tmp_path))
    bigger = template_for(tmp_path, api_max_batch="400", lambda_timeout_s="30")
    bigger.has_resource_properties("AWS::Lambda::Function", {"FunctionName": "fraud-dev-score", "Timeout": 30,
                                                              "Environment": {"Variables": Match.object_like(
                                                                  {"FRAUD_MAX_BATCH": "400"})}})


def test_unknown_stage_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown stage"):
        build_app(context={"stage": "qa"}, outdir=str(tmp_path))


def test_cdk_synth_and_cfn_lint_have_zero_errors(tmp_path):
    out = tmp_path / "cdk.out"
    for context in ({"stage": "dev"}, {"stage": "prod", "gpu_training": "true", "auth": "jwt"}):
        build_app(context=context, outdir=str(out)).synth()
    templates = sorted(out.glob("*.template.json"))
    assert [t.name for t in templates] == ["FraudScoring-dev.template.json", "FraudScoring-prod.template.json"]
    lint = subprocess.run([sys.executable, "-m", "cfnlint", "--format", "json", *map(str, templates)],
                          capture_output=True, text=True)
    findings = json.loads(lint.stdout or "[]")
    errors = [f for f in findings if f["Level"] == "Error"]
    assert not errors, json.dumps(errors, indent=1)[:3000]


def test_dockerfiles_lint_and_run_the_documented_commands():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    dockerfiles = sorted((ROOT / "infra" / "docker").glob("*.Dockerfile"))
    assert len(dockerfiles) == 2
    result = subprocess.run([hadolint, "--failure-threshold", "info", *map(str, dockerfiles)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    readme = (ROOT / "README.md").read_text()

    def instruction(path, name):
        match = re.search(rf"^{name} (\[.*\])$", path.read_text(), re.MULTILINE)
        return json.loads(match.group(1)) if match else []

    scoring = ROOT / "infra" / "docker" / "scoring.Dockerfile"
    assert instruction(scoring, "CMD") == ["lambda_handler.app.handler"]
    assert "lambda_handler.app.handler" in readme
    training = ROOT / "infra" / "docker" / "training.Dockerfile"
    command = " ".join(instruction(training, "ENTRYPOINT") + instruction(training, "CMD"))
    assert command == "fraud train --no-progress"
    assert "fraud train" in readme


def test_http_api_invokes_the_live_alias(dev, tmp_path):
    """Provisioned concurrency (prod) is configured on the alias: only traffic sent to the
    alias uses it, so the API's integration and invoke permission must name the alias."""
    for template, provisioned in ((dev, None), (template_for(tmp_path, stage="prod"), 2)):
        (alias_id, alias), = template.find_resources("AWS::Lambda::Alias").items()
        assert alias["Properties"]["Name"] == "live"
        assert alias["Properties"].get("ProvisionedConcurrencyConfig", {}).get(
            "ProvisionedConcurrentExecutions") == provisioned
        (integration,) = template.find_resources("AWS::ApiGatewayV2::Integration").values()
        assert integration["Properties"]["IntegrationUri"] == {"Ref": alias_id}
        invokers = [p["Properties"] for p in template.find_resources("AWS::Lambda::Permission").values()
                    if p["Properties"]["Principal"] == "apigateway.amazonaws.com"]
        assert invokers and all(p["FunctionName"] == {"Ref": alias_id} for p in invokers)


def _secret_readers(template) -> dict[str, list]:
    """Policy name prefix -> the resources its secretsmanager:GetSecretValue statements name."""
    out = {}
    for name, policy in template.find_resources("AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if any(a.startswith("secretsmanager:") for a in actions):
                assert actions == ["secretsmanager:GetSecretValue"]
                resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                out.setdefault(name.split("ServiceRole")[0].split("TaskRole")[0], []).extend(resources)
    return out


def test_api_keys_and_the_hash_key_are_secrets_read_by_exactly_their_users(dev, tmp_path):
    secrets = dev.find_resources("AWS::SecretsManager::Secret")
    by_name = {s["Properties"]["Name"]: logical for logical, s in secrets.items()}
    assert set(by_name) == {"fraud-dev/api-keys", "fraud-dev/hash-key"}
    generated = secrets[by_name["fraud-dev/hash-key"]]["Properties"]["GenerateSecretString"]
    assert generated["GenerateStringKey"] == "hash_key" and generated["PasswordLength"] >= 64
    assert json.loads(secrets[by_name["fraud-dev/api-keys"]]["Properties"]["SecretString"]) == {"api_key_hashes": []}
    api_keys, hash_key = {"Ref": by_name["fraud-dev/api-keys"]}, {"Ref": by_name["fraud-dev/hash-key"]}
    for function in ("fraud-dev-score", "fraud-dev-outbox-drain"):
        dev.has_resource_properties("AWS::Lambda::Function", {"FunctionName": function, "Environment": {
            "Variables": Match.object_like({"FRAUD_API_KEY_SECRET_ARN": api_keys,
                                            "FRAUD_HASH_KEY_SECRET_ARN": hash_key})}})
    assert _secret_readers(dev) == {"ScoringFunction": [api_keys, hash_key], "OutboxDrainFunction": [hash_key],
                                    "TrainingTask": [hash_key],  # training signs the registry's manifests
                                    "State": [hash_key],  # load and catch-up: the state's keys are pseudonyms under it
                                    "ModelHealthMonitor": [hash_key],  # fraud monitor verifies the registry's manifests
                                    "HardExamples": [hash_key]}  # fraud hard-examples: the same, for thresholds.json
    dev.has_output("ApiKeysSecretArn", {"Value": api_keys})
    # an existing secret of key digests, by ARN: used and granted, none created
    arn = "arn:aws:secretsmanager:eu-central-1:111122223333:secret:fraud/api-keys-AbCdEf"
    existing = template_for(tmp_path, api_key_secret_arn=arn)
    names = {s["Properties"]["Name"] for s in existing.find_resources("AWS::SecretsManager::Secret").values()}
    assert names == {"fraud-dev/hash-key"}
    assert _secret_readers(existing)["ScoringFunction"][0] == arn


# cdk-nag's AwsSolutions pack over every shape of the stack: each stage and option adds resources
NAG_CONTEXTS = {
    "dev": {"stage": "dev"},
    "prod-jwt": {"stage": "prod", "alarm_email": "fraud-oncall@example.com", "auth": "jwt",
                 "jwt_issuer": "https://login.example.com/", "jwt_audience": "fraud-api"},
    "gpu": {"stage": "dev", "gpu_training": "true"},
}
MIN_REASON_CHARS = 40


@pytest.mark.parametrize("name", NAG_CONTEXTS)
def test_cdk_nag_aws_solutions_finds_nothing_unacknowledged(tmp_path, name):
    """Zero unacknowledged errors and warnings; every acknowledgement (all of them are in
    FraudScoringStack._nag_suppressions) sits on a resource, not the whole stack, and says why."""
    from cdk_nag import AwsSolutionsChecks

    context = NAG_CONTEXTS[name]
    out = tmp_path / "cdk.out"
    app = build_app(context=context, outdir=str(out))
    # the acknowledgements are also written into each resource's Metadata (cdk_nag.rules_to_suppress)
    pack = AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True)
    cdk.Validations.of(app).add_plugins(pack)
    try:
        app.synth()  # the plugin fails the synthesis on any finding
        synth_error = None
    except RuntimeError as error:
        synth_error = str(error)
    findings = {"error": [], "warning": []}
    for violation in pack.validate_scope(app).violations:
        for resource in violation.violating_resources:
            findings.setdefault(violation.severity, []).append(
                f"{violation.rule_name} on {resource.construct_path}: {violation.description}")
    assert findings == {"error": [], "warning": []}, (
        f"{name}: cdk-nag AwsSolutions findings (fix them, or acknowledge one with its reason in "
        f"FraudScoringStack._nag_suppressions):\n" + "\n".join(
            f"  {severity}: {line}" for severity, lines in findings.items() for line in lines))
    assert synth_error is None, synth_error

    stack = app.node.find_child(f"FraudScoring-{context['stage']}")
    for scope in (app, stack):
        stack_wide = [rule for entry in scope.node.metadata if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
                      for rule in entry.data if "AwsSolutions-" in rule]
        assert stack_wide == [], f"acknowledged for all of {scope.node.path or 'the app'}: {stack_wide}"
    template = json.loads((out / f"FraudScoring-{context['stage']}.template.json").read_text())
    acknowledged = {(logical, rule["id"]): rule["reason"] for logical, resource in template["Resources"].items()
                    for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
                    if rule["id"].startswith("AwsSolutions-")}
    assert acknowledged, "no acknowledgement reached the template's metadata"
    thin = {f"{rule} on {logical}": reason for (logical, rule), reason in acknowledged.items()
            if len(reason.strip()) < MIN_REASON_CHARS}
    assert thin == {}, f"acknowledgements without a reason of substance: {thin}"


def test_model_health_alarms_judge_only_days_with_enough_data(dev):
    """fraud monitor's PSI and recall alarms read a figure only when the night's sample count
    reached the minimum (metric math), on a one-day period, to SNS and on the dashboard; the
    thresholds are the runtime's [monitoring] defaults."""
    from fraud.config import MonitoringConfig
    from infra.monitoring import MIN_LABELS, MIN_ROWS, PSI_THRESHOLD

    defaults = MonitoringConfig()
    assert (PSI_THRESHOLD, MIN_ROWS, MIN_LABELS) == (defaults.psi_threshold, defaults.min_rows, defaults.min_labels)
    by_name = {a["Properties"]["AlarmName"]: a["Properties"] for a in dev.find_resources("AWS::CloudWatch::Alarm").values()}

    def parts(name):
        props = by_name[name]
        expression = next(m["Expression"] for m in props["Metrics"] if "Expression" in m)
        metrics = {m["Id"]: m["MetricStat"] for m in props["Metrics"] if "MetricStat" in m}
        for stat in metrics.values():
            assert stat["Period"] == 86400 and stat["Metric"]["Namespace"] == "FraudScoring"
            assert stat["Metric"]["Dimensions"] == [{"Name": "service", "Value": "fraud-monitoring"}]
        return props, expression, {k: v["Metric"]["MetricName"] for k, v in metrics.items()}

    for name, metric in (("fraud-dev-ScorePSIAboveThreshold", "ScorePSI"),
                         ("fraud-dev-FeaturePSIAboveThreshold", "FeaturePSIMax")):
        props, expression, metrics = parts(name)
        assert expression == "IF(rows >= 1000, FILL(psi, 0), 0)"
        assert metrics == {"rows": "ScoredRows", "psi": metric}
        assert props["Threshold"] == 0.2 and props["ComparisonOperator"] == "GreaterThanThreshold"
        assert props["TreatMissingData"] == "notBreaching" and "AlarmTopic" in json.dumps(props["AlarmActions"])
    props, expression, metrics = parts("fraud-dev-MonitoredRecallBelowSLO")
    assert expression == "IF(frauds >= 30, FILL(recall, 1), 1)"
    assert metrics == {"frauds": "LabelledFrauds", "recall": "PolicyRecall"}
    assert props["Threshold"] == 0.7 and props["ComparisonOperator"] == "LessThanThreshold"
    missing = by_name["fraud-dev-MonitorRunMissing"]  # no health at all: the monitor did not run
    assert (missing["MetricName"], missing["Statistic"], missing["Period"], missing["TreatMissingData"]) == (
        "ScoredRows", "SampleCount", 93600, "breaching")
    assert missing["Threshold"] == 1 and missing["ComparisonOperator"] == "LessThanThreshold"
    assert missing["Dimensions"] == [{"Name": "service", "Value": "fraud-monitoring"}]
    body = json.dumps(dev.find_resources("AWS::CloudWatch::Dashboard"))
    for panel in ("Drift per night (fraud monitor)", "Recall from labels (fraud monitor)", "Model health alarms"):
        assert panel in body


def test_fraud_monitor_runs_nightly_with_a_role_that_only_reads_registry_decisions_and_labels(dev):
    dev.has_resource_properties("AWS::Scheduler::Schedule", {
        "Name": "fraud-dev-monitor", "ScheduleExpression": "cron(0 4 * * ? *)",
        "Target": Match.object_like({
            "EcsParameters": Match.object_like({"LaunchType": "FARGATE", "TaskDefinitionArn": {
                "Ref": Match.string_like_regexp("MonitorTask")}}),
            "DeadLetterConfig": {"Arn": {"Fn::GetAtt": [Match.string_like_regexp("TrainingScheduleDLQ"), "Arn"]}}})})
    tasks = {t["Properties"]["Family"]: t["Properties"] for t in dev.find_resources("AWS::ECS::TaskDefinition").values()}
    monitor, training = tasks["fraud-dev-monitor"], tasks["fraud-dev-nightly-training"]
    container = monitor["ContainerDefinitions"][0]
    assert container["Image"] == training["ContainerDefinitions"][0]["Image"]  # the training image
    assert container["Command"][:3] == ["monitor", "--metrics", "emf"]
    assert monitor["TaskRoleArn"] != training["TaskRoleArn"]
    role = monitor["TaskRoleArn"]["Fn::GetAtt"][0]
    policies = [p for p in dev.find_resources("AWS::IAM::Policy").values()
                if {"Ref": role} in p["Properties"]["Roles"]]
    assert len(policies) == 1
    statements = policies[0]["Properties"]["PolicyDocument"]["Statement"]
    actions = sorted(a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))
    assert actions == ["s3:GetObject", "s3:ListBucket", "secretsmanager:GetSecretValue"]  # reads, never writes
    get = next(s for s in statements if s["Action"] == "s3:GetObject")
    assert sorted(r["Fn::Join"][1][-1] for r in get["Resource"]) == ["/decisions/*", "/labels/*", "/registry/*"]
    listing = next(s for s in statements if s["Action"] == "s3:ListBucket")
    assert sorted(listing["Condition"]["StringLike"]["s3:prefix"]) == ["decisions/*", "labels/*"]
    secret = next(s for s in statements if s["Action"] == "secretsmanager:GetSecretValue")
    assert "HashKeySecret" in json.dumps(secret["Resource"]) and "ApiKeys" not in json.dumps(secret["Resource"])


def _rendered(value, names: dict) -> str:
    """A synthesized string as text: a Ref as the name ``names`` gives its logical id's
    prefix (DataBucket -> BUCKET), a GetAtt of an Arn as that name + _ARN, a Join joined."""
    if isinstance(value, str):
        return value
    (fn, arg), = value.items()
    if fn in ("Ref", "Fn::GetAtt"):
        logical = arg if fn == "Ref" else arg[0]
        name = next(name for prefix, name in names.items() if logical.startswith(prefix))
        return name if fn == "Ref" else f"{name}_{arg[1].upper()}"
    separator, parts = arg
    assert fn == "Fn::Join", value
    return separator.join(_rendered(p, names) for p in parts)


def _role_statements(template, task: dict) -> list[dict]:
    """The statements of the one policy on a task definition's task role."""
    role = task["TaskRoleArn"]["Fn::GetAtt"][0]
    policies = [p for p in template.find_resources("AWS::IAM::Policy").values() if {"Ref": role} in p["Properties"]["Roles"]]
    assert len(policies) == 1
    return policies[0]["Properties"]["PolicyDocument"]["Statement"]


def _grants(statements: list[dict], names: dict) -> set[tuple]:
    """(action, resource as text, sorted s3:prefix patterns or None) of every statement."""
    out = set()
    for s in statements:
        assert s["Effect"] == "Allow" and set(s) <= {"Sid", "Effect", "Action", "Resource", "Condition"}, s
        condition = s.get("Condition")
        if condition is not None:
            assert list(condition) == ["StringLike"] and list(condition["StringLike"]) == ["s3:prefix"], condition
            condition = tuple(sorted(condition["StringLike"]["s3:prefix"]))
        for action in s["Action"] if isinstance(s["Action"], list) else [s["Action"]]:
            for resource in s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]:
                out.add((action, _rendered(resource, names), condition))
    return out


def test_hard_examples_are_queued_daily_by_a_task_that_may_only_append_to_the_queue(dev):
    """`fraud hard-examples` (no --day: yesterday, UTC) at 03:00 UTC as a Fargate task of the
    training image, retried, failed starts to the schedules' DLQ; its role reads the registry,
    decisions, labels and the queue, lists only under the last three, writes only the queue;
    the training task reads the queue and nothing writes it but this task."""
    dev.has_resource_properties("AWS::Scheduler::Schedule", {
        "Name": "fraud-dev-hard-examples", "ScheduleExpression": "cron(0 3 * * ? *)", "State": "ENABLED",
        "ScheduleExpressionTimezone": "Etc/UTC",  # the day the command defaults to is a UTC day
        "Target": Match.object_like({
            "EcsParameters": Match.object_like({"LaunchType": "FARGATE", "TaskDefinitionArn": {
                "Ref": Match.string_like_regexp("^HardExamplesTask")}}),
            "RetryPolicy": {"MaximumEventAgeInSeconds": 7200, "MaximumRetryAttempts": 2},
            "DeadLetterConfig": {"Arn": {"Fn::GetAtt": [Match.string_like_regexp("TrainingScheduleDLQ"), "Arn"]}}})})
    tasks = {t["Properties"]["Family"]: t["Properties"] for t in dev.find_resources("AWS::ECS::TaskDefinition").values()}
    task, training = tasks["fraud-dev-hard-examples"], tasks["fraud-dev-nightly-training"]
    names = {"DataBucket": "BUCKET", "HashKeySecret": "HASH_KEY_ARN"}
    (container,) = task["ContainerDefinitions"]
    assert container["Image"] == training["ContainerDefinitions"][0]["Image"]  # the training image: `fraud ...`
    assert [_rendered(a, names) for a in container["Command"]] == [
        "hard-examples", "--decisions", "s3://BUCKET/decisions", "--labels", "s3://BUCKET/labels",
        "--queue", "s3://BUCKET/hard-examples"]
    assert {e["Name"]: _rendered(e["Value"], names) for e in container["Environment"]} == {
        "FRAUD_REGISTRY_URI": "s3://BUCKET/registry", "FRAUD_HASH_KEY_SECRET_ARN": "HASH_KEY_ARN"}
    group = container["LogConfiguration"]["Options"]["awslogs-group"]["Ref"]
    assert group.startswith("HardExamplesLogs")
    assert dev.to_json()["Resources"][group]["Properties"]["RetentionInDays"] == 14
    roles = {t["TaskRoleArn"]["Fn::GetAtt"][0] for t in tasks.values()}
    assert len(roles) == len(tasks) - 1  # its own role (only state load and catch-up share one)

    bucket = "BUCKET_ARN"
    assert _grants(_role_statements(dev, task), names) == {
        *{("s3:GetObject", f"{bucket}/{p}/*", None) for p in ("registry", "decisions", "labels", "hard-examples")},
        ("s3:ListBucket", bucket, ("decisions/*", "hard-examples/*", "labels/*")),
        ("s3:PutObject", f"{bucket}/hard-examples/*", None),
        ("secretsmanager:GetSecretValue", "HASH_KEY_ARN", None)}

    env = {e["Name"]: _rendered(e["Value"], names) for e in training["ContainerDefinitions"][0]["Environment"]}
    assert env["FRAUD_HARD_EXAMPLES_URI"] == "s3://BUCKET/hard-examples"
    training_grants = _grants(_role_statements(dev, training), names)
    assert {g for g in training_grants if "hard-examples" in g[1]} == {
        ("s3:GetObject", f"{bucket}/hard-examples/*", None)}  # read, never written
    assert ("s3:ListBucket", bucket, None) in training_grants  # lists hard-examples/ too (ListBucketForMissingKeys)
    # no other role may touch the queue but these two (the GPU job role, off in dev, is the training role's twin)
    touching = {task["TaskRoleArn"]["Fn::GetAtt"][0], training["TaskRoleArn"]["Fn::GetAtt"][0]}
    for policy in dev.find_resources("AWS::IAM::Policy").values():
        if "hard-examples" in json.dumps(policy["Properties"]["PolicyDocument"]):
            assert {r["Ref"] for r in policy["Properties"]["Roles"]} <= touching


def test_decision_log_firehose_least_privilege_and_alarm(dev):
    """The scoring role may only PutRecordBatch on the decision stream; Firehose's role may
    write objects only under decisions/ and decision-errors/; a lost record alarms."""
    streams = dev.find_resources("AWS::KinesisFirehose::DeliveryStream")
    assert len(streams) == 1
    (stream_id, stream), = streams.items()
    props = stream["Properties"]
    assert props["DeliveryStreamName"] == "fraud-dev-decisions" and props["DeliveryStreamType"] == "DirectPut"
    assert props["DeliveryStreamEncryptionConfigurationInput"] == {"KeyType": "AWS_OWNED_CMK"}
    s3 = props["ExtendedS3DestinationConfiguration"]
    assert s3["Prefix"] == "decisions/date=!{timestamp:yyyy-MM-dd}/"
    assert s3["ErrorOutputPrefix"].startswith("decision-errors/!{firehose:error-output-type}/")
    assert s3["BucketARN"]["Fn::GetAtt"][0].startswith("DataBucket") and s3["CompressionFormat"] == "GZIP"
    assert s3["BufferingHints"] == {"IntervalInSeconds": 300, "SizeInMBs": 64}
    dev.has_resource_properties("AWS::Lambda::Function", {"FunctionName": "fraud-dev-score", "Environment": {
        "Variables": Match.object_like({"FRAUD_DECISION_LOG_URI": "firehose://fraud-dev-decisions"})}})

    firehose_grants = [(policy, actions, resources) for policy, actions, resources in _statements(dev)
                       if any(a.startswith("firehose:") for a in actions)]
    assert len(firehose_grants) == 1  # nobody else may put to (or manage) the stream
    policy, actions, resources = firehose_grants[0]
    assert policy["Properties"]["Roles"][0]["Ref"].startswith("ScoringFunctionServiceRole")
    assert actions == ["firehose:PutRecordBatch"] and resources == [{"Fn::GetAtt": [stream_id, "Arn"]}]

    role_id = props["ExtendedS3DestinationConfiguration"]["RoleARN"]["Fn::GetAtt"][0]
    role = dev.find_resources("AWS::IAM::Role")[role_id]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [{
        "Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "firehose.amazonaws.com"},
        "Condition": {"StringEquals": {"sts:ExternalId": {"Ref": "AWS::AccountId"}}}}]
    delivery = [(actions, resources) for policy, actions, resources in _statements(dev)
                if {"Ref": role_id} in policy["Properties"]["Roles"]]
    writes = [(a, r) for actions, resources in delivery for a in actions if a.startswith("s3:") and
              ("Put" in a or "Delete" in a or "Abort" in a) for r in resources]
    assert sorted((a, r["Fn::Join"][1][-1]) for a, r in writes) == [
        ("s3:AbortMultipartUpload", "/decision-errors/*"), ("s3:AbortMultipartUpload", "/decisions/*"),
        ("s3:PutObject", "/decision-errors/*"), ("s3:PutObject", "/decisions/*")]
    others = sorted(a for actions, _ in delivery for a in actions if a not in {w for w, _ in writes})
    assert others == ["logs:PutLogEvents", "s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"]
    for actions, resources in delivery:  # bucket-level reads on the bucket itself, the log on its stream
        if "s3:ListBucket" in actions:
            assert resources == [{"Fn::GetAtt": [s3["BucketARN"]["Fn::GetAtt"][0], "Arn"]}]
        if "logs:PutLogEvents" in actions:
            assert ":log-stream:" in json.dumps(resources)

    alarms = {a["Properties"]["AlarmName"]: (k, a["Properties"])
              for k, a in dev.find_resources("AWS::CloudWatch::Alarm").items()}
    alarm_id, alarm = alarms["fraud-dev-DecisionLogFailures"]
    assert (alarm["MetricName"], alarm["Namespace"], alarm["Statistic"], alarm["Period"]) == (
        "DecisionLogFailures", "FraudScoring", "Sum", 300)
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["EvaluationPeriods"] == 1 and alarm["Dimensions"] == [{"Name": "service", "Value": "fraud-scoring"}]
    assert "AlarmTopic" in json.dumps(alarm["AlarmActions"])
    body = json.dumps(dev.find_resources("AWS::CloudWatch::Dashboard"))
    assert "Decision log failures" in body and alarm_id in body  # a graph, and in the alarm status widget


def test_recall_and_psi_alarms_start_the_training_task_through_the_cooldown(dev):
    """An EventBridge rule on the monitored recall and feature-PSI alarms entering ALARM runs
    the nightly training task with FRAUD_TRAINING_TRIGGER=alarm:<name> (the job applies the
    cooldown); its role may run that task definition, on that cluster, and pass its two roles."""
    from batch_jobs.retrain import TRIGGER_DETAIL_ENV, TRIGGER_ENV, _alarm_reason

    rules = dev.find_resources("AWS::Events::Rule", {"Properties": {"Name": "fraud-dev-retrain-on-alarm"}})
    (rule,) = rules.values()
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.cloudwatch"] and pattern["detail-type"] == ["CloudWatch Alarm State Change"]
    assert pattern["detail"] == {"state": {"value": ["ALARM"]}}
    alarms = dev.find_resources("AWS::CloudWatch::Alarm")
    watched = {alarms[r["Fn::GetAtt"][0]]["Properties"]["AlarmName"] for r in pattern["resources"]}
    assert watched == {"fraud-dev-MonitoredRecallBelowSLO", "fraud-dev-FeaturePSIAboveThreshold"}
    assert sorted(_alarm_reason(name) for name in watched) == ["psi", "recall"]   # the job knows why
    (target,) = rule["Properties"]["Targets"]
    assert target["EcsParameters"]["TaskDefinitionArn"]["Ref"].startswith("TrainingTask")
    assert target["EcsParameters"]["LaunchType"] == "FARGATE" and target["Arn"]["Fn::GetAtt"][0].startswith(
        "TrainingCluster")
    assert target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0].startswith("TrainingScheduleDLQ")
    overrides = json.loads(target["InputTransformer"]["InputTemplate"].replace(
        "<detail-state-reason>", '"reason"'))["containerOverrides"]
    assert overrides == [{"name": "train", "environment": [
        {"name": TRIGGER_ENV, "value": "alarm:<detail-alarmName>"}, {"name": TRIGGER_DETAIL_ENV, "value": "reason"}]}]
    assert target["InputTransformer"]["InputPathsMap"] == {"detail-alarmName": "$.detail.alarmName",
                                                          "detail-state-reason": "$.detail.state.reason"}

    role = target["RoleArn"]["Fn::GetAtt"][0]
    policies = [p for p in dev.find_resources("AWS::IAM::Policy").values()
                if {"Ref": role} in p["Properties"]["Roles"]]
    assert len(policies) == 1 and "ManagedPolicyArns" not in dev.find_resources("AWS::IAM::Role")[role]["Properties"]
    statements = policies[0]["Properties"]["PolicyDocument"]["Statement"]
    by_action = {}
    for s in statements:
        by_action.setdefault(s["Action"], []).append(s)
    assert set(by_action) == {"ecs:RunTask", "ecs:TagResource", "iam:PassRole"}
    (run,) = by_action["ecs:RunTask"]
    assert run["Resource"]["Ref"].startswith("TrainingTask")
    assert run["Condition"]["ArnEquals"]["ecs:cluster"]["Fn::GetAtt"][0].startswith("TrainingCluster")
    (task,) = dev.find_resources("AWS::ECS::TaskDefinition", {"Properties": {
        "Family": "fraud-dev-nightly-training"}}).values()
    assert {s["Resource"]["Fn::GetAtt"][0] for s in by_action["iam:PassRole"]} == {
        task["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0], task["Properties"]["ExecutionRoleArn"]["Fn::GetAtt"][0]}
    assert len(by_action["iam:PassRole"]) == 2
    (tag,) = by_action["ecs:TagResource"]
    assert tag["Resource"]["Fn::Join"][1][-1] == "/*" and tag["Resource"]["Fn::Join"][1][-2]["Ref"].startswith(
        "TrainingCluster")

    # the job: a scheduled run by default, the trigger log under triggers/ read and written
    dev.has_resource_properties("AWS::ECS::TaskDefinition", {"Family": "fraud-dev-nightly-training",
                                                            "ContainerDefinitions": [Match.object_like({
        "Environment": Match.array_with([{"Name": TRIGGER_ENV, "Value": "schedule"}])})]})
    training = next(p for name, p in dev.find_resources("AWS::IAM::Policy").items()
                    if name.startswith("TrainingTaskTaskRole"))
    (log,) = [s for s in training["Properties"]["PolicyDocument"]["Statement"] if s.get("Sid") == "ReadWriteTriggerLog"]
    assert sorted(log["Action"]) == ["s3:GetObject", "s3:PutObject"] and log["Resource"]["Fn::Join"][1][-1] == \
        "/triggers/*"


def test_the_live_drift_alarm_watches_what_the_api_emits(dev):
    """LivePSIAboveThreshold: the larger of the live score and feature PSIs, averaged over 15
    minutes, above the nightly monitor's threshold for two periods; its metric names and
    dimensions are the ones the API's telemetry writes (a renamed metric would leave the
    alarm watching nothing)."""
    from fraud.monitoring.live import LiveWindow
    from fraud.storage.metrics import InMemoryMetricsSink
    from lambda_handler.telemetry import Telemetry

    sink = InMemoryMetricsSink()
    Telemetry(sink).live_drift(LiveWindow(1000, 0.05, {"amount": 0.3}))
    emitted = {name for metrics, _ in sink.records for name in metrics}
    alarms = {a["Properties"]["AlarmName"]: (k, a["Properties"])
              for k, a in dev.find_resources("AWS::CloudWatch::Alarm").items()}
    alarm_id, alarm = alarms["fraud-dev-LivePSIAboveThreshold"]
    assert [m["Expression"] for m in alarm["Metrics"] if "Expression" in m] == ["MAX([FILL(score, 0), FILL(feature, 0)])"]
    stats = {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert {i: s["Metric"]["MetricName"] for i, s in stats.items()} == {"score": "LiveScorePSI",
                                                                       "feature": "LiveFeaturePSIMax"}
    assert {s["Metric"]["MetricName"] for s in stats.values()} <= emitted
    for s in stats.values():
        assert (s["Stat"], s["Period"], s["Metric"]["Namespace"]) == ("Average", 900, "FraudScoring")
        assert s["Metric"]["Dimensions"] == [{"Name": "service", "Value": "fraud-scoring"}]
    assert alarm["Threshold"] == 0.2 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["EvaluationPeriods"] == 2 and alarm["TreatMissingData"] == "notBreaching"
    body = json.dumps(dev.find_resources("AWS::CloudWatch::Dashboard"))
    assert "Live drift" in body and alarm_id in body
