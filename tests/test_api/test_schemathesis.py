"""Property-based requests generated from the OpenAPI schema: the API never answers 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from helpers.api import API_KEY_HASH, HEADERS

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def api(local_registry_dir):
    from lambda_handler.api import create_app
    from lambda_handler.container import build_container
    from lambda_handler.settings import Settings

    return create_app(build_container(Settings(backend="local", registry_uri=str(local_registry_dir),
                                               api_key_hashes=API_KEY_HASH, metrics="off", max_batch=20)))


def test_no_server_errors(api):
    schema = schemathesis.openapi.from_asgi("/openapi.json", api)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    seen = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            for headers in (HEADERS, {}):
                response = case.call(headers=headers)
                seen.append(response.status_code)
                assert response.status_code < 500, \
                    f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"

        check()
    assert any(code == 200 for code in seen) and any(code in (401, 422) for code in seen)
