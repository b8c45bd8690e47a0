"""Every error the API answers, in one shape: RFC 9457 problem details (``application/problem+json``).

``type`` tells a client what to do (retry an ``in-progress``, never a ``transaction-id-reused``),
``detail`` says it in words, ``instance`` is the request's path, ``request_id`` matches the
``x-request-id`` header and the server's logs, and a 422 lists each refused field in ``errors``.
The request id is made once per request here, before any route runs, so even a body refused
for its size (413, before the app) carries one.
"""

from __future__ import annotations

import uuid
from http import HTTPStatus

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse

MEDIA_TYPE = "application/problem+json"
TYPES = {  # the problem types a client may branch on; any other error is "about:blank"
    "invalid-request": "a field is missing, malformed or refused; `errors` names each one",
    "transaction-id-reused": "the transaction id was already scored with other content; do not retry",
    "in-progress": "the same transaction id is being scored by another request right now; retry",
    "unknown-transaction": "feedback for a transaction this service never scored",
    "not-on-list": "the id is not on that allow/block list",
}


class FieldError(BaseModel):
    field: str = Field(description="where in the request, e.g. body.transactions.2.amount",
                       examples=["body.amount"])
    message: str = Field(examples=["Input should be greater than or equal to 0"])
    type: str = Field(description="pydantic's error type, or `refused` for a valid value the service "
                                  "does not accept", examples=["greater_than_equal"])


class Problem(BaseModel):
    """An RFC 9457 problem: the body of every error response."""
    type: str = Field(description="`/problems/<name>` for the types listed in the API description, "
                                  "`about:blank` where the status says it all", examples=["/problems/invalid-request"])
    title: str = Field(examples=["Invalid request"])
    status: int = Field(ge=400, le=599, examples=[422])
    detail: str = Field(examples=["1 field refused"])
    instance: str = Field(description="the request's path", examples=["/v1/score"])
    request_id: str = Field(description="also in the x-request-id header (and the server's log line of a 500)",
                            examples=["3f6c2a1e-8d4b-4c1a-9e77-0b5d2f9a6c10"])
    errors: list[FieldError] | None = Field(None, description="422 only: each refused field")


class ApiProblem(Exception):
    """Raised by a route to answer with a typed problem."""

    def __init__(self, status: int, name: str, detail: str, errors: list[dict] | None = None):
        super().__init__(detail)
        self.status, self.name, self.detail, self.errors = status, name, detail, errors


def request_id_of(scope) -> str:
    """The request's id, made on first use: the caller's ``x-request-id``, else Lambda's
    request id (through Mangum), else a new UUID. Kept in the ASGI scope's state, which
    ``request.state`` reads."""
    state = scope.setdefault("state", {})
    if "request_id" not in state:
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1").strip()
        context = scope.get("aws.context")
        state["request_id"] = given or getattr(context, "aws_request_id", None) or str(uuid.uuid4())
    return state["request_id"]


def problem_body(scope, status: int, detail: str, name: str | None = None,
                 errors: list[dict] | None = None) -> dict:
    title = name.replace("-", " ").capitalize() if name else HTTPStatus(status).phrase
    body = {"type": f"/problems/{name}" if name else "about:blank", "title": title, "status": status,
            "detail": detail, "instance": scope.get("path", ""), "request_id": request_id_of(scope)}
    if errors is not None:
        body["errors"] = errors
    return body


def problem(request: Request, status: int, detail: str, name: str | None = None,
            errors: list[dict] | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(problem_body(request.scope, status, detail, name, errors), status_code=status,
                        media_type=MEDIA_TYPE, headers=headers)


def invalid(request: Request, errors: list[dict]) -> JSONResponse:
    """422: each refused field, named the same way whether pydantic or the service refused it."""
    named = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:3]) + ("; ..." if len(errors) > 3 else "")
    return problem(request, 422, f"{len(errors)} field{'s' if len(errors) != 1 else ''} refused: {named}",
                   "invalid-request", errors)
