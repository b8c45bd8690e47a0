"""Property-based requests generated from the OpenAPI schema: the API never answers 5xx, and
every answer is one it documents (status code, content type, body schema)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (FailureGroup, content_type_conformance, not_a_server_error,
                                 response_schema_conformance, status_code_conformance)
from schemathesis.openapi.checks import JsonSchemaError

from helpers.api import API_KEY_HASH, HEADERS

pytestmark = pytest.mark.filterwarnings("ignore")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def api(local_registry_dir):
    from lambda_handler.api import create_app
    from lambda_handler.container import build_container
    from lambda_handler.settings import Settings

    return create_app(build_container(Settings(backend="local", registry_uri=str(local_registry_dir),
                                               api_key_hashes=API_KEY_HASH, metrics="off", max_batch=20)))


def test_answers_are_the_documented_ones(api):
    schema = schemathesis.openapi.from_asgi("/openapi.json", api)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9
    seen = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            for headers in (HEADERS, {}):
                response = case.call(headers=headers)
                seen.append((operation.method.upper(), response.status_code))
                case.validate_response(response, checks=CHECKS, headers=headers)

        check()
    codes = {code for _, code in seen}
    assert {200, 204, 401, 422} <= codes, codes  # the checks saw successes and each kind of refusal
    assert {method for method, code in seen if code in (200, 204)} >= {"GET", "POST", "PUT"}


def test_the_checks_catch_an_undocumented_answer(api):
    """The conformance checks do fail on a body the schema does not describe (so the test above
    cannot pass by checking nothing)."""
    from fastapi.responses import JSONResponse

    schema = schemathesis.openapi.from_asgi("/openapi.json", api)
    operation = schema["/v1/health"]["GET"]
    case = operation.Case()
    response = case.call()
    case.validate_response(response, checks=CHECKS)  # the real one conforms
    api.router.routes.insert(0, _route("/v1/health", lambda: JSONResponse({"status": "sunny"})))
    try:
        with pytest.raises(FailureGroup) as failed:
            case.validate_response(case.call(), checks=CHECKS)
        assert any(isinstance(e, JsonSchemaError) for e in failed.value.exceptions)
    finally:
        api.router.routes.pop(0)


def _route(path, endpoint):
    from starlette.routing import Route

    return Route(path, endpoint=lambda request: endpoint(), methods=["GET"])
