"""What ``/docs`` and ``/openapi.json`` say: assets served from the package, every error documented.

Swagger UI and ReDoc load from the ``fastapi-offline`` package (no CDN, so the docs work
without internet); the API key is a security scheme (the Authorize button); each route
lists the errors it can answer, as RFC 9457 problems under ``application/problem+json``
(FastAPI would document them as ``application/json``, and its own 422 shape, which this API
does not return).
"""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI
from fastapi.security import APIKeyHeader
from fastapi_offline import FastAPIOffline

from .problems import MEDIA_TYPE, TYPES, Problem, problem_body

API_KEY_HEADER = APIKeyHeader(
    name="x-api-key", auto_error=False, scheme_name="ApiKey",
    description="Locally `fraud api-key create` prints one (only its digest is kept, in `.fraud/`); "
                "in AWS add one with `fraud api-key create --secret-arn <ApiKeysSecretArn>`.")

DESCRIPTION = """Scores payment transactions, routes risky ones to review, takes labels back.

Every route but health needs an API key in `x-api-key` (in `/docs`: the **Authorize**
button). Amounts are in the model's currency (EUR by default) unless `FRAUD_CURRENCY_RATES` converts others.

**Errors** are RFC 9457 problems (`application/problem+json`) with the request's
`request_id` (also the `x-request-id` response header). Their `type`:

""" + "\n".join(f"- `/problems/{name}`: {what}" for name, what in TYPES.items()) + """
- `about:blank`: the status says it all (401, 404 of an unknown path, 413, 500)
"""

_REQUEST_ID = "3f6c2a1e-8d4b-4c1a-9e77-0b5d2f9a6c10"
_PLAIN = {  # status: (what it means here, the example's detail)
    401: ("no `x-api-key`, or one that is not accepted", "missing or invalid API key"),
    413: ("the request body is over `FRAUD_MAX_BODY_BYTES` (1 MiB by default)", "request body over 1048576 bytes"),
}
_INVALID = [{"field": "body.amount", "message": "Input should be greater than or equal to 0",
             "type": "greater_than_equal"}]


def create_fastapi(**kwargs) -> FastAPI:
    """The FastAPI app with /docs and /redoc on packaged assets (under /docs-assets)."""
    return FastAPIOffline(description=DESCRIPTION, static_url="/docs-assets",
                          swagger_ui_parameters={"persistAuthorization": True, "validatorUrl": None}, **kwargs)


def _example(status: int, name: str | None, detail: str, path: str) -> dict:
    """The body the API sends (the same function makes both)."""
    return problem_body({"path": path, "state": {"request_id": _REQUEST_ID}}, status, detail, name,
                        _INVALID if status == 422 else None)


def errors(path: str, *statuses: int, **named: dict[str, str]) -> dict:
    """The ``responses=`` of the route at ``path``: the plain statuses (401, 413), 422 with
    its field errors, and ``named``: ``e404={"unknown-transaction": detail}``, one example per
    problem type that status can carry."""
    out = {}
    for status in statuses:
        if status == 422:
            examples = {"invalid-request": _example(422, "invalid-request", "1 field refused: body.amount: Input "
                                                    "should be greater than or equal to 0", path)}
            what = TYPES["invalid-request"]
        else:
            what, detail = _PLAIN[status]
            examples = {HTTPStatus(status).phrase: _example(status, None, detail, path)}
        out[status] = _documented(what, examples)
    for key, kinds in named.items():
        status = int(key[1:])
        out[status] = _documented("; ".join(f"`{name}`: {TYPES[name]}" for name in kinds),
                                  {name: _example(status, name, detail, path) for name, detail in kinds.items()})
    return out


def _documented(description: str, examples: dict) -> dict:
    return {"model": Problem, "description": description,
            "content": {"application/json": {"examples": {name: {"value": value} for name, value in examples.items()}}}}


def problems_as_problem_json(app: FastAPI) -> None:
    """Document every 4xx/5xx body under ``application/problem+json``, the type it is sent with."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = generate()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    for status, response in operation.get("responses", {}).items():
                        content = response.get("content", {})
                        if status[0] in "45" and "application/json" in content:
                            content[MEDIA_TYPE] = content.pop("application/json")
        return app.openapi_schema

    app.openapi = openapi
