"""The API's documentation: /docs and /redoc work offline, the key is a security scheme, every
route says what it does and what errors it answers, and its examples are accepted as written."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from helpers.api import HEADERS

pytestmark = pytest.mark.filterwarnings("ignore")
PROBLEM_JSON = "application/problem+json"


@pytest.fixture
def client(local_settings):
    from lambda_handler.api import create_app
    from lambda_handler.container import build_container

    return TestClient(create_app(build_container(local_settings)))


@pytest.fixture
def spec(client):
    return client.get("/openapi.json").json()


def operations(spec):
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_everything_from_the_app_itself(client, page):
    """No CDN: every script, stylesheet and icon the page names is served by the app."""
    html = client.get(page)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html.text, re.I), "an external host in the page"
    assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
    scripts = [a for a in assets if a.endswith(".js")]
    assert scripts and any(a.endswith(".css") for a in assets) or page == "/redoc"
    spec_url = re.search(r"""(?:url: '|spec-url=")([^'"]+)""", html.text).group(1)
    for url in assets + [spec_url]:
        r = client.get(url)
        assert r.status_code == 200 and len(r.content) > 100, url
        kind = {"js": "javascript", "css": "text/css", "png": "image/png", "json": "application/json"}[url.rsplit(".", 1)[1]]
        assert kind in r.headers["content-type"], (url, r.headers["content-type"])
    assert max(len(client.get(url).content) for url in scripts) > 500_000  # the UI itself, not a stub
    if page == "/docs":
        assert '"validatorUrl": null' in html.text  # no spec URL sent to an online validator


def test_api_key_is_a_security_scheme_not_a_parameter(spec):
    schemes = spec["components"]["securitySchemes"]
    assert schemes == {"ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key",
                                  "description": schemes["ApiKey"]["description"]}}
    for path, method, operation in operations(spec):
        names = [p["name"].lower() for p in operation.get("parameters", [])]
        assert "x-api-key" not in names, (method, path)
        if path == "/v1/health":
            assert "security" not in operation
        else:
            assert operation["security"] == [{"ApiKey": []}], (method, path)


# where each error can happen: every route with a key 401, with a body 413, with input 422
EXPECTED_ERRORS = {
    ("get", "/v1/health"): set(),
    ("get", "/v1/model"): {"401"},
    ("post", "/v1/score"): {"401", "409", "413", "422"},
    ("post", "/v1/score/batch"): {"401", "409", "413", "422"},
    ("post", "/v1/feedback"): {"401", "404", "413", "422"},
    ("get", "/v1/lists/{list_name}/{entity}"): {"401", "422"},
    ("put", "/v1/lists/{list_name}/{entity}"): {"401", "413", "422"},
    ("post", "/v1/lists/{list_name}/{entity}/remove"): {"401", "404", "413", "422"},
    ("post", "/v1/outbox/drain"): {"401"},
}


def test_every_error_is_documented_as_a_problem(spec):
    seen = {}
    for path, method, operation in operations(spec):
        responses = operation["responses"]
        seen[(method, path)] = {code for code in responses if code[0] in "45"}
        for code in seen[(method, path)]:
            assert list(responses[code]["content"]) == [PROBLEM_JSON], (method, path, code)
            content = responses[code]["content"][PROBLEM_JSON]
            assert content["schema"] == {"$ref": "#/components/schemas/Problem"}
            for example in content["examples"].values():
                assert example["value"]["status"] == int(code) and example["value"]["request_id"]
    assert seen == EXPECTED_ERRORS
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # FastAPI's 422 shape, never sent
    problem = spec["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "instance", "request_id"} <= set(problem["required"])


def test_every_route_is_described_and_its_examples_are_realistic(spec):
    for path, method, operation in operations(spec):
        assert operation.get("summary") and len(operation.get("description", "")) > 40, (method, path)
    schemas = spec["components"]["schemas"]
    txn = schemas["Transaction"]["examples"][0]
    assert txn["currency"] == "EUR" and 1 <= txn["amount"] <= 1000, txn
    assert schemas["Transaction"]["properties"]["amount"]["examples"] == [42.5]
    for name in ("Transaction", "BatchRequest", "Feedback", "ListEntry", "ListItem", "ScoreResponse"):
        assert schemas[name].get("examples"), name
    for name, schema in schemas.items():  # every field a person fills in or reads has an example
        for field, prop in schema.get("properties", {}).items():
            leaf = "$ref" not in prop and prop.get("type") not in ("array", "object", "boolean") \
                and "enum" not in prop and "const" not in prop and "anyOf" not in prop
            if leaf or (prop.get("anyOf") and all(o.get("type") in ("string", "number", "null") and "enum" not in o
                                                  for o in prop["anyOf"])):
                assert prop.get("examples"), f"{name}.{field} has no example"


def test_the_documented_examples_are_accepted_as_written(client, spec):
    """Try it out with the defaults: each example request succeeds, in the order a user would go."""
    from lambda_handler import schemas

    scored = client.post("/v1/score", json=schemas.TRANSACTION_EXAMPLE, headers=HEADERS)
    assert scored.status_code == 200, scored.text
    assert scored.json()["policy_reason"] is None  # an amount and currency the model knows
    schemas.ScoreResponse.model_validate(spec["components"]["schemas"]["ScoreResponse"]["examples"][0])
    batch = client.post("/v1/score/batch", json=spec["components"]["schemas"]["BatchRequest"]["examples"][0],
                        headers=HEADERS)
    assert batch.status_code == 200 and [r["replayed"] for r in batch.json()["results"]] == [True, False]
    feedback = client.post("/v1/feedback", json=schemas.FEEDBACK_EXAMPLE, headers=HEADERS)
    assert feedback.status_code == 200 and feedback.json()["recorded"], feedback.text
    put = client.put("/v1/lists/block/card", json=schemas.LIST_ENTRY_EXAMPLE, headers=HEADERS)
    assert put.status_code == 204, put.text
    listed = client.get("/v1/lists/block/card", headers=HEADERS).json()["items"]
    assert [e["reason"] for e in listed] == [schemas.LIST_ENTRY_EXAMPLE["reason"]]
    removed = client.post("/v1/lists/block/card/remove", json=spec["components"]["schemas"]["ListItem"]["examples"][0],
                          headers=HEADERS)
    assert removed.status_code == 204, removed.text
