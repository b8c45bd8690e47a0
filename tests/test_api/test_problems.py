"""Every error the API answers is one shape, RFC 9457 problem+json, carrying the request id,
and is the response documented for that route and status."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from helpers.api import HEADERS

pytestmark = pytest.mark.filterwarnings("ignore")
TXN = {"transaction_id": "pb-1", "timestamp": "2026-02-12T08:00:00Z", "card_id": "card-p", "terminal_id": "term-p",
       "amount": 42.5, "currency": "EUR"}


@pytest.fixture
def service(local_settings):
    from lambda_handler.api import create_app
    from lambda_handler.container import build_container

    container = build_container(local_settings)
    return container, TestClient(create_app(container), raise_server_exceptions=False)


def in_progress(container, monkeypatch):
    from lambda_handler.scoring import InProgress

    def busy(*args, **kwargs):
        raise InProgress("transaction pb-1 is being scored by another request; retry")

    monkeypatch.setattr(container.scoring, "score", busy)


def broken(container, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(container.scoring, "score", fail)


# (what, method, path, documented path, body, headers, set-up, status, problem type)
CASES = [
    ("no key", "get", "/v1/model", "/v1/model", None, {}, None, 401, "about:blank"),
    ("wrong key", "post", "/v1/score", "/v1/score", TXN, {"x-api-key": "nope"}, None, 401, "about:blank"),
    ("unknown path", "get", "/v1/nothing-here", None, None, HEADERS, None, 404, "about:blank"),
    ("wrong method", "get", "/v1/score", None, None, HEADERS, None, 405, "about:blank"),
    ("unscored feedback", "post", "/v1/feedback", "/v1/feedback",
     {"transaction_id": "never", "label": "fraud", "source": "chargeback", "time": "2026-02-13T00:00:00Z"},
     HEADERS, None, 404, "/problems/unknown-transaction"),
    ("not on the list", "post", "/v1/lists/block/card/remove", "/v1/lists/{list_name}/{entity}/remove",
     {"id": "card-p"}, HEADERS, None, 404, "/problems/not-on-list"),
    ("id reused", "post", "/v1/score", "/v1/score", {**TXN, "amount": 43.0}, HEADERS, "score", 409,
     "/problems/transaction-id-reused"),
    ("reused in a batch", "post", "/v1/score/batch", "/v1/score/batch", {"transactions": [{**TXN, "amount": 1.0}]},
     HEADERS, "score", 409, "/problems/transaction-id-reused"),
    ("in progress", "post", "/v1/score", "/v1/score", TXN, HEADERS, in_progress, 409, "/problems/in-progress"),
    ("too large", "post", "/v1/score", "/v1/score", {**TXN, "device_id": "x" * 30_000}, HEADERS, None, 413,
     "about:blank"),
    ("bad field", "post", "/v1/score", "/v1/score", {**TXN, "amount": -1}, HEADERS, None, 422,
     "/problems/invalid-request"),
    ("bad query", "get", "/v1/lists/block/card?limit=0", "/v1/lists/{list_name}/{entity}", None, HEADERS, None, 422,
     "/problems/invalid-request"),
    ("refused currency", "post", "/v1/score", "/v1/score", {**TXN, "currency": "USD"}, HEADERS, None, 422,
     "/problems/invalid-request"),
    ("batch too large", "post", "/v1/score/batch", "/v1/score/batch",
     {"transactions": [{**TXN, "transaction_id": f"pb-{i}"} for i in range(6)]}, HEADERS, None, 422,
     "/problems/invalid-request"),
    ("server error", "post", "/v1/score", None, TXN, HEADERS, broken, 500, "about:blank"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_error_is_a_problem_with_the_request_id(service, monkeypatch, case):
    from lambda_handler.problems import Problem

    _, method, path, documented, body, headers, setup, status, kind = case
    container, client = service
    if setup == "score":
        assert client.post("/v1/score", json=TXN, headers=HEADERS).status_code == 200
    elif setup is not None:
        setup(container, monkeypatch)
    rid = f"caller-{case[0].replace(' ', '-')}"
    r = client.request(method.upper(), path, json=body, headers={**headers, "x-request-id": rid})
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = Problem.model_validate(r.json())
    assert (problem.status, problem.type, problem.instance) == (status, kind, path.split("?")[0])
    assert problem.request_id == rid == r.headers["x-request-id"]
    assert problem.title and problem.detail and "Traceback" not in r.text and "secret" not in r.text
    assert (problem.errors is not None) == (status == 422)
    if status == 422:
        assert all(e.field.startswith(("body", "query")) and e.message for e in problem.errors)
        assert problem.errors[0].field in problem.detail  # readable without parsing `errors`
    if documented:  # the route documents this status, with this very schema
        spec = client.get("/openapi.json").json()
        content = spec["paths"][documented][method]["responses"][str(status)]["content"]
        assert content["application/problem+json"]["schema"]["$ref"].endswith("/Problem")


def test_a_request_id_is_made_when_the_caller_sends_none(service):
    _, client = service
    first, second = (client.get("/v1/model") for _ in range(2))
    assert first.json()["request_id"] == first.headers["x-request-id"]
    assert len({first.json()["request_id"], second.json()["request_id"]}) == 2  # one per request
    huge = client.post("/v1/score", json={**TXN, "device_id": "x" * 30_000}, headers=HEADERS)
    assert huge.status_code == 413 and huge.json()["request_id"] == huge.headers["x-request-id"]


def test_the_documented_422_is_the_one_returned(service):
    """The schema of the documented 422 validates the body actually sent (FastAPI's default
    would document {"detail": [{"loc", "msg", "type"}]})."""
    import jsonschema

    _, client = service
    spec = client.get("/openapi.json").json()
    documented = spec["paths"]["/v1/score"]["post"]["responses"]["422"]["content"]["application/problem+json"]
    resolver_schema = _inline_refs(documented["schema"], spec["components"]["schemas"])
    sent = client.post("/v1/score", json={**TXN, "amount": "12"}, headers=HEADERS).json()
    jsonschema.validate(sent, resolver_schema)
    for example in documented["examples"].values():
        jsonschema.validate(example["value"], resolver_schema)
        assert set(example["value"]) == set(sent)  # the same members as the real one


def _inline_refs(node, schemas):
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline_refs(schemas[node["$ref"].rsplit("/", 1)[1]], schemas)
        return {k: _inline_refs(v, schemas) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, schemas) for v in node]
    return node


def test_a_chunked_body_over_the_limit_is_413(service):
    """No content-length (chunked upload): refused once it passes the limit, not left to the
    body parser (which answers a read error with 400)."""
    import json

    _, client = service
    big = json.dumps({**TXN, "device_id": "x" * 30_000}).encode()
    chunks = (big[i:i + 1000] for i in range(0, len(big), 1000))
    r = client.post("/v1/score", content=chunks, headers={**HEADERS, "content-type": "application/json"})
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json", r.text
    assert r.json()["request_id"] == r.headers["x-request-id"]


@pytest.mark.parametrize("parts", [[b""], [b"ab", b"cd", b"e"], [b"x" * 10, b"", b"y" * 10]])
def test_a_body_under_the_limit_reaches_the_app_whole(parts):
    """The limit reads the body as it arrives (several ASGI messages) and hands it on in one."""
    import asyncio

    from lambda_handler.body_limit import BodyLimit

    received, sent = [], []

    async def app(scope, receive, send):
        while True:
            message = await receive()
            received.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})

    messages = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(BodyLimit(app, limit=25)({"type": "http", "headers": [], "path": "/"}, receive, send))
    assert b"".join(received) == b"".join(parts) and sent[0]["status"] == 200
    over = [{"type": "http.request", "body": b"z" * 20, "more_body": True}] * 2
    messages[:] = list(over)
    sent.clear()
    asyncio.run(BodyLimit(app, limit=25)({"type": "http", "headers": [], "path": "/"}, receive, send))
    assert sent[0]["status"] == 413
