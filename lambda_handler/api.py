"""The FastAPI application: thin routes over the services in a ``Container``.

Validation is pydantic's (422 names the field), authentication an API-key dependency,
and the work is in the services. ``lambda_handler.app`` builds the production instance.
"""

from __future__ import annotations

import logging
import time
import uuid

from fastapi import Depends, FastAPI, Header, HTTPException, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from .container import Container
from .schemas import (BatchRequest, BatchResponse, Feedback, FeedbackResponse, Health, ListEntry, ListItem, ModelInfo,
                      ScoreResponse, Transaction)
from .feedback import UnknownTransaction
from .scoring import InProgress, PayloadMismatch, RefusedField

log = logging.getLogger("lambda_handler")


class BodyLimit:
    """Refuse bodies over ``limit`` bytes (413) before they are parsed."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await _too_large(send, self.limit)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge()
            return message

        try:
            return await self.app(scope, limited, send)
        except _BodyTooLarge:
            return await _too_large(send, self.limit)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send, limit):
    body = f'{{"detail":"request body over {limit} bytes"}}'.encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app(container: Container) -> FastAPI:
    settings = container.settings
    app = FastAPI(title="Fraud scoring API", version="1.0",
                  description="Scores payment transactions, routes risky ones to review, takes labels back.")
    app.state.container = container

    def get_container(request: Request) -> Container:
        return request.app.state.container

    def request_id(request: Request) -> str:
        return request.state.request_id

    def api_key(x_api_key: str | None = Header(None, description="API key"),
                c: Container = Depends(get_container)) -> None:
        if not c.api_keys.is_valid(x_api_key):
            raise HTTPException(status_code=401, detail="missing or invalid API key")

    @app.middleware("http")
    async def observe(request: Request, call_next):
        context = request.scope.get("aws.context")
        request.state.request_id = (request.headers.get("x-request-id")
                                    or getattr(context, "aws_request_id", None) or str(uuid.uuid4()))
        container.telemetry.cold_start()
        start = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:  # noqa: BLE001 - never leak a stack trace to the caller
            log.exception("unhandled error in request %s", request.state.request_id)
            response = JSONResponse({"detail": "internal error", "request_id": request.state.request_id}, 500)
        response.headers["x-request-id"] = request.state.request_id
        route = request.scope.get("route")
        container.telemetry.request(getattr(route, "path", "unmatched"), response.status_code,
                                    (time.perf_counter() - start) * 1000)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "type": e["type"]}
                  for e in exc.errors()]
        return JSONResponse({"detail": errors, "request_id": request.state.request_id}, status_code=422)

    @app.exception_handler(InProgress)
    async def in_progress(request: Request, exc: InProgress):
        return JSONResponse({"detail": str(exc), "request_id": request.state.request_id}, status_code=409)

    @app.exception_handler(UnknownTransaction)
    async def unknown(request: Request, exc: UnknownTransaction):
        return JSONResponse({"detail": str(exc), "request_id": request.state.request_id}, status_code=404)

    @app.exception_handler(RefusedField)
    async def refused(request: Request, exc: RefusedField):
        where = "body." if request.url.path.endswith("/score") else f"body.transactions.{exc.index}."
        return JSONResponse({"detail": [{"field": where + exc.field, "message": str(exc), "type": "refused"}],
                             "request_id": request.state.request_id}, status_code=422)

    @app.exception_handler(PayloadMismatch)
    async def mismatch(request: Request, exc: PayloadMismatch):
        return JSONResponse({"detail": str(exc), "request_id": request.state.request_id}, status_code=422)

    @app.get("/v1/health", response_model=Health, response_model_exclude_none=True, tags=["operations"])
    def health(c: Container = Depends(get_container)) -> Health:
        pending = c.router.pending_count()
        state = c.coverage.current() if c.settings.state_fallback != "off" else None
        return Health(status="ok" if pending == 0 else "degraded", model_version=c.holder.current()[1],
                      outbox_pending=pending, state=state)

    @app.get("/v1/model", response_model=ModelInfo, dependencies=[Depends(api_key)], tags=["operations"])
    def model(c: Container = Depends(get_container)) -> ModelInfo:
        bundle, version = c.holder.current()
        return ModelInfo(version=version, manifest=c.holder.manifest, thresholds=bundle.thresholds.to_dict(),
                         features=bundle.feature_names, calibration=bundle.calibrator.method)

    @app.post("/v1/score", response_model=ScoreResponse, dependencies=[Depends(api_key)], tags=["scoring"])
    def score(txn: Transaction, c: Container = Depends(get_container), rid: str = Depends(request_id)):
        return c.scoring.score(txn, rid)

    @app.post("/v1/score/batch", response_model=BatchResponse, dependencies=[Depends(api_key)], tags=["scoring"])
    def score_batch(batch: BatchRequest, c: Container = Depends(get_container), rid: str = Depends(request_id)):
        if len(batch.transactions) > settings.max_batch:
            raise HTTPException(status_code=422, detail=[{"field": "body.transactions",
                                                          "message": f"at most {settings.max_batch} transactions"}])
        ids = [t.transaction_id for t in batch.transactions]
        if len(set(ids)) != len(ids):
            raise HTTPException(status_code=422, detail=[{"field": "body.transactions",
                                                          "message": "transaction_id repeated within the batch"}])
        return BatchResponse(results=c.scoring.score_many(batch.transactions, rid), request_id=rid)

    @app.post("/v1/feedback", response_model=FeedbackResponse, dependencies=[Depends(api_key)], tags=["feedback"])
    def feedback(fb: Feedback, c: Container = Depends(get_container), rid: str = Depends(request_id)):
        recorded, duplicate = c.feedback.record(fb)
        return FeedbackResponse(transaction_id=fb.transaction_id, recorded=recorded, duplicate=duplicate,
                                request_id=rid)

    list_name_path = Path(pattern="^(allow|block)$")
    entity_path = Path(pattern="^(card|terminal)$")

    @app.put("/v1/lists/{list_name}/{entity}", status_code=204, dependencies=[Depends(api_key)],
             tags=["overrides"])
    def add_to_list(entry: ListEntry, list_name: str = list_name_path, entity: str = entity_path,
                    c: Container = Depends(get_container)):
        c.overrides.set(list_name, entity, entry.id, entry.reason)

    @app.post("/v1/lists/{list_name}/{entity}/remove", status_code=204, dependencies=[Depends(api_key)],
              tags=["overrides"])
    def remove_from_list(item: ListItem, list_name: str = list_name_path, entity: str = entity_path,
                         c: Container = Depends(get_container)):
        if not c.overrides.remove(list_name, entity, item.id):
            raise HTTPException(status_code=404, detail="not on that list")

    @app.post("/v1/outbox/drain", dependencies=[Depends(api_key)], tags=["operations"])
    def drain(c: Container = Depends(get_container)) -> dict:
        return c.router.drain()

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app
