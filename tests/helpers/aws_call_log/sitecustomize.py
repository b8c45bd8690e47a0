"""Loaded at start-up by a Python process that has this directory on PYTHONPATH: when
``FRAUD_TEST_AWS_CALL_LOG`` names a file, every AWS API call the process makes through
botocore is appended to it as one JSON line (service, operation, the parameters that name
resources, the error code if the call failed). It observes only: each call still goes to
the endpoint as it would. The IAM test checks these calls against the synthesized policies.
"""

import json
import os

_LOG = os.environ.get("FRAUD_TEST_AWS_CALL_LOG")
_NAMING = ("TableName", "IndexName", "Bucket", "Key", "Prefix", "QueueUrl", "SecretId", "Name", "Namespace",
           "DeliveryStreamName")

if _LOG:
    import botocore.client
    import botocore.exceptions

    _original = botocore.client.BaseClient._make_api_call

    def _resources(params: dict) -> dict:
        out = {k: params[k] for k in _NAMING if isinstance(params.get(k), str)}
        if "RequestItems" in params:
            out["RequestItems"] = sorted(params["RequestItems"])
        if "TransactItems" in params:
            out["TransactItems"] = [[kind, body.get("TableName")] for item in params["TransactItems"]
                                    for kind, body in item.items()]
        return out

    def _logged(self, operation_name, api_params):
        entry = {"service": self.meta.service_model.service_name, "operation": operation_name,
                 "params": _resources(api_params), "error": None}
        try:
            return _original(self, operation_name, api_params)
        except botocore.exceptions.ClientError as exc:
            entry["error"] = exc.response.get("Error", {}).get("Code", "ClientError")
            raise
        except Exception as exc:  # noqa: BLE001 - recorded, then raised as it was
            entry["error"] = type(exc).__name__
            raise
        finally:
            with open(_LOG, "a") as fh:
                fh.write(json.dumps(entry) + "\n")

    botocore.client.BaseClient._make_api_call = _logged
