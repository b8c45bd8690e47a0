"""Entry points: real Lambda event payloads through Mangum, uvicorn over real HTTP, and the
input and security rules (auth, 422 naming the field, body and batch limits, no stack
traces, no card ids in logs)."""

from __future__ import annotations

import base64
import importlib
import json
import logging
import threading
import time
from types import SimpleNamespace

import httpx
import pytest

from helpers.api import API_KEY, HEADERS, free_port

TXN = {"transaction_id": "ev-1", "timestamp": "2026-02-10T10:00:00Z", "card_id": "4111-secret-card",
       "terminal_id": "term-1", "amount": 42.0, "currency": "EUR"}


def rest_v1(body: dict) -> dict:
    return {"resource": "/{proxy+}", "path": "/v1/score", "httpMethod": "POST",
            "headers": {"content-type": "application/json", "x-api-key": API_KEY},
            "multiValueHeaders": {"content-type": ["application/json"], "x-api-key": [API_KEY]},
            "queryStringParameters": None, "multiValueQueryStringParameters": None,
            "pathParameters": {"proxy": "v1/score"}, "stageVariables": None,
            "requestContext": {"resourcePath": "/{proxy+}", "httpMethod": "POST", "path": "/prod/v1/score",
                               "stage": "prod", "requestId": "rest-req-1", "accountId": "123456789012",
                               "apiId": "abc123", "identity": {"sourceIp": "203.0.113.1", "userAgent": "pytest"}},
            "body": json.dumps(body), "isBase64Encoded": False}


def http_v2(body: dict, domain="abc123.execute-api.us-east-1.amazonaws.com", route="POST /v1/score") -> dict:
    return {"version": "2.0", "routeKey": route, "rawPath": "/v1/score", "rawQueryString": "",
            "headers": {"content-type": "application/json", "x-api-key": API_KEY},
            "requestContext": {"accountId": "123456789012", "apiId": "abc123", "domainName": domain,
                               "domainPrefix": domain.split(".")[0],
                               "http": {"method": "POST", "path": "/v1/score", "protocol": "HTTP/1.1",
                                        "sourceIp": "203.0.113.1", "userAgent": "pytest"},
                               "requestId": "v2-req-1", "routeKey": route, "stage": "$default",
                               "time": "10/Feb/2026:10:00:00 +0000", "timeEpoch": 1770717600000},
            "body": base64.b64encode(json.dumps(body).encode()).decode(), "isBase64Encoded": True}


def function_url(body: dict) -> dict:
    return http_v2(body, domain="xyz789.lambda-url.us-east-1.on.aws", route="$default")


def alb(body: dict) -> dict:
    return {"requestContext": {"elb": {"targetGroupArn":
                                       "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/fraud/1"}},
            "httpMethod": "POST", "path": "/v1/score", "queryStringParameters": {},
            "headers": {"content-type": "application/json", "x-api-key": API_KEY, "host": "fraud.example.com"},
            "body": json.dumps(body), "isBase64Encoded": False}


@pytest.fixture
def lambda_module(aws_settings, monkeypatch):
    """Import ``lambda_handler.app`` as Lambda would: configured only by the environment."""
    for name, value in aws_settings.model_dump().items():
        if value is not None:
            monkeypatch.setenv(f"FRAUD_{name.upper()}", str(value))
    from lambda_handler import settings

    settings.get_settings.cache_clear()
    import lambda_handler.app as module

    module = importlib.reload(module)
    yield module
    settings.get_settings.cache_clear()


@pytest.mark.parametrize("make_event", [rest_v1, http_v2, function_url, alb], ids=["rest-v1", "http-v2",
                                                                                 "function-url", "alb"])
def test_lambda_events_through_mangum(lambda_module, make_event):
    context = SimpleNamespace(aws_request_id="lambda-req-1", function_name="fraud-score", memory_limit_in_mb=1024,
                              invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:fraud-score",
                              get_remaining_time_in_millis=lambda: 5000)
    event = make_event({**TXN, "transaction_id": f"ev-{make_event.__name__}"})
    response = lambda_module.handler(event, context)
    assert response["statusCode"] == 200, response
    body = response["body"]
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    payload = json.loads(body)
    assert payload["decision"] in ("approve", "review", "decline")
    assert payload["request_id"] == "lambda-req-1"
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    multi = {k.lower(): v for k, v in (response.get("multiValueHeaders") or {}).items()}
    assert headers.get("x-request-id") == "lambda-req-1" or multi.get("x-request-id") == ["lambda-req-1"]
    unauthorised = make_event({**TXN, "transaction_id": "ev-unauth"})
    unauthorised["headers"].pop("x-api-key")
    unauthorised.get("multiValueHeaders", {}).pop("x-api-key", None)
    assert lambda_module.handler(unauthorised, context)["statusCode"] == 401


@pytest.fixture
def server(local_settings):
    """The app under uvicorn on a real socket."""
    import uvicorn

    from lambda_handler.api import create_app
    from lambda_handler.container import build_container

    container = build_container(local_settings)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(container), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", container
    srv.should_exit = True
    thread.join(5)


def test_uvicorn_over_real_http(server, caplog):
    base, container = server
    with caplog.at_level(logging.DEBUG), httpx.Client(base_url=base, timeout=10) as http:
        health = http.get("/v1/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        scored = http.post("/v1/score", json=TXN, headers=HEADERS)
        assert scored.status_code == 200 and scored.headers["x-request-id"] == scored.json()["request_id"]
        assert http.post("/v1/score", json=TXN).status_code == 401
        assert http.post("/v1/score", json=TXN, headers={"x-api-key": "wrong"}).status_code == 401
        assert http.get("/v1/model", headers=HEADERS).json()["features"] == container.holder.bundle.feature_names
        assert http.get("/docs").status_code == 200 and http.get("/openapi.json").status_code == 200
    assert "4111-secret-card" not in caplog.text  # card ids never logged in clear


@pytest.mark.parametrize("change,field", [
    ({"amount": -1}, "body.amount"), ({"amount": "NaN"}, "body.amount"), ({"currency": "eur"}, "body.currency"),
    ({"timestamp": "2026-02-10T10:00:00"}, "body.timestamp"), ({"surprise": 1}, "body.surprise"),
    ({"card_lat": 123.0}, "body.card_lat"), ({"transaction_id": "a b"}, "body.transaction_id"),
    # no coercion: a string or a boolean is not an amount, a number is not an id or a time
    ({"amount": "12"}, "body.amount"), ({"amount": True}, "body.amount"), ({"card_id": 4111}, "body.card_id"),
    ({"timestamp": 1770717600}, "body.timestamp"), ({"card_lat": "45.1"}, "body.card_lat"),
])
def test_bad_input_is_422_naming_the_field(server, change, field):
    base, _ = server
    r = httpx.post(f"{base}/v1/score", json={**TXN, **change}, headers=HEADERS)
    assert r.status_code == 422
    assert field in [e["field"] for e in r.json()["errors"]]


def test_body_and_batch_limits(server):
    base, _ = server
    many = {"transactions": [{**TXN, "transaction_id": f"b{i}"} for i in range(6)]}
    r = httpx.post(f"{base}/v1/score/batch", json=many, headers=HEADERS)
    assert r.status_code == 422 and "at most 5" in r.text
    row = {"transactions": [{**TXN, "transaction_id": "r0"}, {**TXN, "transaction_id": "r1", "amount": -5}]}
    r = httpx.post(f"{base}/v1/score/batch", json=row, headers=HEADERS)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.transactions.1.amount"
    huge = {**TXN, "device_id": "x" * 30_000}
    assert httpx.post(f"{base}/v1/score", json=huge, headers=HEADERS).status_code == 413
    ok = {"transactions": [{**TXN, "transaction_id": f"ok{i}"} for i in range(5)]}
    assert len(httpx.post(f"{base}/v1/score/batch", json=ok, headers=HEADERS).json()["results"]) == 5


def test_errors_do_not_leak_stack_traces(server, monkeypatch):
    base, container = server

    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(container.scoring, "score", broken)
    r = httpx.post(f"{base}/v1/score", json={**TXN, "transaction_id": "boom"}, headers=HEADERS)
    assert r.status_code == 500
    assert r.json()["detail"] == "internal error" and "secret" not in r.text and "Traceback" not in r.text


def test_card_checks_then_a_purchase_score_without_error(server):
    """Zero-amount card checks, then a purchase on the same card (found by schemathesis: the
    amount ratio to a zero mean was infinite and the model refused it with a 500)."""
    base, _ = server
    batch = {"transactions": [{**TXN, "transaction_id": f"zc{i}", "card_id": "card-check-only",
                               "amount": 0.0 if i < 2 else 1e9,
                               "timestamp": f"2026-02-10T10:0{i}:00Z"} for i in range(3)]}
    r = httpx.post(f"{base}/v1/score/batch", json=batch, headers=HEADERS)
    assert r.status_code == 200, r.text
    assert [res["transaction_id"] for res in r.json()["results"]] == ["zc0", "zc1", "zc2"]


@pytest.mark.parametrize("kind", ["focal_xgb", "focal_lgbm"])
def test_lambda_cold_start_and_scoring_stay_lean(champion_registry, kind):
    """The Lambda image's import and a scored transaction need neither pandas, pyarrow, numba
    nor scikit-learn (each would add hundreds of milliseconds to every cold start), with an
    XGBoost or a LightGBM champion. They are blocked here as the image does not install
    them (LightGBM would otherwise import pandas itself, only because it is installed), so
    any import of them on the serving path fails. tests/test_infra/test_images.py runs the
    same from the image's real package set."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys\n"
            "for name in ('pandas', 'pyarrow', 'numba', 'sklearn'):\n"
            "    sys.modules[name] = None  # as in the image: not installed\n"
            "import lambda_handler.app as app\n"
            "from lambda_handler.schemas import Transaction\n"
            f"r = app.container.scoring.score(Transaction.model_validate({TXN!r}), 'lean')\n"
            "print(app.container.holder.bundle.model.kind, r.decision)\n")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "FRAUD_REGISTRY_URI": str(champion_registry(kind)), "FRAUD_METRICS": "off",
           "FRAUD_API_KEY_HASHES": "", "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    model_kind, decision = out.stdout.strip().splitlines()[-1].split()
    assert model_kind == kind and decision in ("approve", "review", "decline")


def test_serving_model_predicts_on_one_thread_with_the_same_numbers(local_settings):
    import numpy as np

    from lambda_handler.container import build_container

    model = build_container(local_settings).holder.bundle.model  # FRAUD_MODEL_THREADS defaults to 1
    if model.kind == "focal_lgbm":
        assert model.estimator_.lightgbm_predict_kwargs == {"num_threads": 1}
    else:
        booster = model.estimator_.booster_ if model.kind == "focal_xgb" else model.estimator_.get_booster()
        assert json.loads(booster.save_config())["learner"]["generic_param"]["nthread"] == "1"
    X = np.random.default_rng(0).normal(size=(300, len(model.feature_names_))) * 5
    single = model.predict_proba(X), model.contributions(X, exact=False)
    model.set_threads(0)
    np.testing.assert_array_equal(model.predict_proba(X), single[0])
    np.testing.assert_allclose(model.contributions(X, exact=False), single[1], rtol=1e-6, atol=1e-7)
