"""IAM as the synthesized template grants it, evaluated the way AWS does for the calls our
code makes.

- ``Resolver`` turns the template's intrinsic functions (Ref, Fn::GetAtt, Fn::Join, ...)
  into the names and ARNs of the resources created on moto's server.
- ``role_statements`` collects the policy statements attached to one role.
- ``for_moto`` adapts them to what moto's basic evaluator can check (see its docstring);
  ``required`` and ``allowed`` then check every recorded call exactly, as AWS authorises it.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

ACCOUNT, REGION, PARTITION = "123456789012", "us-east-1", "aws"
PSEUDO = {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": PARTITION,
          "AWS::URLSuffix": "amazonaws.com"}


class Resolver:
    """``refs``: logical id -> {"Ref": value, "Arn": value, <attribute>: value}."""

    def __init__(self, refs: dict[str, dict[str, str]]):
        self.refs = refs

    def __call__(self, value):
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self(v) for k, v in value.items()}
        (fn, arg), = value.items()
        if fn == "Ref":
            return PSEUDO[arg] if arg in PSEUDO else self._lookup(arg, "Ref")
        if fn == "Fn::GetAtt":
            logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return self._lookup(logical, attribute)
        if fn == "Fn::Join":
            separator, parts = arg
            return separator.join(str(self(p)) for p in parts)
        if fn == "Fn::Select":
            index, items = arg
            return self(items)[int(index)]
        if fn == "Fn::Split":
            separator, text = arg
            return str(self(text)).split(separator)
        if fn.startswith("Fn::") or fn == "Condition":
            raise NotImplementedError(f"the IAM test cannot resolve {fn}: teach tests/helpers/iam.py")
        return {fn: self(arg)}

    def _lookup(self, logical: str, attribute: str) -> str:
        try:
            return self.refs[logical][attribute]
        except KeyError:
            raise KeyError(f"{logical}.{attribute} is not among the resources the test created") from None


def role_of(template: dict, logical_id: str, property_name: str) -> str:
    """The role logical id that a resource's ``property_name`` (Role, TaskRoleArn) points to."""
    ref = template["Resources"][logical_id]["Properties"][property_name]
    return ref["Fn::GetAtt"][0]


def role_statements(template: dict, role: str, resolve: Resolver) -> list[dict]:
    """Every statement of the AWS::IAM::Policy resources attached to ``role``, resolved."""
    statements = []
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        if {"Ref": role} in resource["Properties"].get("Roles", []):
            statements += resolve(resource["Properties"]["PolicyDocument"]["Statement"])
    return statements


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


# Services whose calls moto authorises against resource "*" (it only passes a resource for
# S3, SQS, IAM and STS): a statement naming ARNs would never match there.
MOTO_STAR_RESOURCE_SERVICES = ("dynamodb", "secretsmanager", "cloudwatch", "firehose")


def for_moto(statements: list[dict]) -> list[dict]:
    """The statements as moto's evaluator can apply them to a live principal. Each change
    only widens what moto checks; ``allowed`` checks the exact statements:
    - conditions are dropped: moto evaluates none against the request (s3:prefix);
    - resources of services that moto authorises against "*" become "*";
    - ``dynamodb:PutItem`` also grants ``dynamodb:TransactWriteItems``: AWS authorises each
      Put of a transaction as PutItem, moto authorises the call as one action.
    """
    out = []
    for statement in statements:
        actions = _as_list(statement["Action"])
        adapted = {k: v for k, v in statement.items() if k not in ("Condition", "Sid")}
        if any(a.split(":")[0] in MOTO_STAR_RESOURCE_SERVICES for a in actions):
            adapted["Resource"] = "*"
        if "dynamodb:PutItem" in actions:
            adapted["Action"] = actions + ["dynamodb:TransactWriteItems"]
        out.append(adapted)
    return out


# -- exact evaluation of recorded calls ----------------------------------------------------
_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
_MISSING = ("NoSuchKey", "404", "NotFound")
_NO_PERMISSION = ("GetCallerIdentity",)


def read_calls(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def required(call: dict, arns: dict[str, str]) -> list[tuple[str, str, dict]]:
    """(action, resource ARN, request context) that AWS authorises for one recorded call.
    ``arns`` maps table names, queue URLs, secret names and delivery stream names to their ARNs."""
    service, op, p = call["service"], call["operation"], call["params"]
    if op in _NO_PERMISSION:
        return []
    if service == "dynamodb":
        if op == "TransactWriteItems":
            return [(f"dynamodb:{_TRANSACT[kind]}", arns[table], {}) for kind, table in p["TransactItems"]]
        if op == "TransactGetItems":
            return [("dynamodb:GetItem", arns[table], {}) for _, table in p["TransactItems"]]
        if op in ("Query", "Scan") and "IndexName" in p:  # an index has an ARN of its own
            return [(f"dynamodb:{op}", f"{arns[p['TableName']]}/index/{p['IndexName']}", {})]
        tables = p["RequestItems"] if op in ("BatchGetItem", "BatchWriteItem") else [p["TableName"]]
        return [(f"dynamodb:{op}", arns[t], {}) for t in tables]
    if service == "s3":
        bucket = f"arn:{PARTITION}:s3:::{p['Bucket']}"
        if op in ("ListObjectsV2", "ListObjects"):
            return [("s3:ListBucket", bucket, {"s3:prefix": p.get("Prefix", "")})]
        if op in ("GetObject", "HeadObject", "PutObject", "DeleteObject"):
            action = "s3:GetObject" if op == "HeadObject" else f"s3:{op}"
            needs = [(action, f"{bucket}/{p['Key']}", {})]
            if call["error"] in _MISSING:
                # AWS answers 404 for a missing key only to a caller that may list the bucket
                # (without, it is 403 AccessDenied), and the request has no s3:prefix.
                needs.append(("s3:ListBucket", bucket, {}))
            return needs
    if service == "sqs" and op in ("SendMessage", "SendMessageBatch", "ReceiveMessage", "DeleteMessage",
                                   "GetQueueAttributes", "ChangeMessageVisibility"):
        return [(f"sqs:{op}", arns[p["QueueUrl"]], {})]
    if service == "secretsmanager" and op in ("GetSecretValue", "PutSecretValue", "DescribeSecret"):
        return [(f"secretsmanager:{op}", arns.get(p["SecretId"], p["SecretId"]), {})]
    if service == "firehose" and op in ("PutRecord", "PutRecordBatch"):
        return [(f"firehose:{op}", arns[p["DeliveryStreamName"]], {})]
    if service == "cloudwatch" and op == "PutMetricData":
        return [("cloudwatch:PutMetricData", "*", {})]
    raise NotImplementedError(f"{service}:{op} is new to the IAM test: add how AWS authorises it")


def _condition_holds(condition: dict, context: dict) -> bool:
    for operator, tests in condition.items():
        if_exists = operator.endswith("IfExists")
        base = operator[:-len("IfExists")] if if_exists else operator
        for key, expected in tests.items():
            if key not in context:
                if if_exists:
                    continue
                return False
            value = context[key]
            patterns = _as_list(expected)
            if base == "StringLike":
                ok = any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)
            elif base == "StringEquals":
                ok = value in patterns
            else:
                raise NotImplementedError(f"condition operator {operator}")
            if not ok:
                return False
    return True


def matches(statement: dict, action: str, resource: str, context: dict) -> bool:
    if not any(fnmatch.fnmatch(action.lower(), a.lower()) for a in _as_list(statement["Action"])):
        return False
    if not any(fnmatch.fnmatchcase(resource, r) for r in _as_list(statement["Resource"])):
        return False
    return _condition_holds(statement.get("Condition", {}), context)


def allowed(statements: list[dict], action: str, resource: str, context: dict) -> bool:
    relevant = [s for s in statements if matches(s, action, resource, context)]
    return any(s["Effect"] == "Allow" for s in relevant) and not any(s["Effect"] == "Deny" for s in relevant)


def denied_calls(calls: list[dict], statements: list[dict], arns: dict[str, str]) -> list[str]:
    """Calls that AWS would refuse under ``statements``, described."""
    out = []
    for call in calls:
        for action, resource, context in required(call, arns):
            if not allowed(statements, action, resource, context):
                out.append(f"{call['operation']} needs {action} on {resource} {context or ''}".strip())
    return sorted(set(out))


def unused_grants(calls: list[dict], statements: list[dict], arns: dict[str, str]) -> list[str]:
    """(statement, action, resource) granted that no recorded call needed."""
    needed = [need for call in calls for need in required(call, arns)]
    out = []
    for statement in statements:
        if statement["Effect"] != "Allow":
            continue
        for action in _as_list(statement["Action"]):
            for resource in _as_list(statement["Resource"]):
                probe = {**statement, "Action": action, "Resource": resource}
                if not any(matches(probe, a, r, c) for a, r, c in needed):
                    out.append(f"{statement.get('Sid', '?')}: {action} on {resource}")
    return sorted(out)
