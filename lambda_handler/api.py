"""The FastAPI application: thin routes over the services in a ``Container``.

Validation is pydantic's (422 names the field), authentication an API-key dependency
(a security scheme in the OpenAPI document), every error an RFC 9457 problem
(``problems``), and the work is in the services. ``lambda_handler.app`` builds the production instance.
"""

from __future__ import annotations

import logging
import time

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .body_limit import BodyLimit
from .container import Container
from .feedback import UnknownTransaction
from .lists import PSEUDONYM, read_list
from .openapi_docs import API_KEY_HEADER, create_fastapi, errors, problems_as_problem_json
from .problems import ApiProblem, invalid, problem, request_id_of
from .schemas import (BatchRequest, BatchResponse, DrainResult, Feedback, FeedbackResponse, Health, ListEntry,
                      ListItem, ListPage, ModelInfo, ScoreResponse, Transaction)
from .scoring import InProgress, PayloadMismatch, RefusedField

log = logging.getLogger("lambda_handler")


def create_app(container: Container) -> FastAPI:
    settings = container.settings
    app = create_fastapi(title="Fraud scoring API", version="1.0")
    app.state.container = container
    problems_as_problem_json(app)

    def get_container(request: Request) -> Container:
        return request.app.state.container

    def request_id(request: Request) -> str:
        return request_id_of(request.scope)

    def api_key(x_api_key: str | None = Security(API_KEY_HEADER), c: Container = Depends(get_container)) -> None:
        if not c.api_keys.is_valid(x_api_key):
            raise HTTPException(status_code=401, detail="missing or invalid API key")

    @app.middleware("http")
    async def observe(request: Request, call_next):
        rid = request_id_of(request.scope)
        container.telemetry.cold_start()
        start = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:  # noqa: BLE001 - never leak a stack trace to the caller
            log.exception("unhandled error in request %s", rid)
            response = problem(request, 500, "internal error")
        response.headers["x-request-id"] = rid
        route = request.scope.get("route")
        container.telemetry.request(getattr(route, "path", "unmatched"), response.status_code,
                                    (time.perf_counter() - start) * 1000)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        return invalid(request, [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "type": e["type"]}
                                 for e in exc.errors()])

    @app.exception_handler(RefusedField)
    async def refused(request: Request, exc: RefusedField):
        where = "body." if request.url.path.endswith("/score") else f"body.transactions.{exc.index}."
        return invalid(request, [{"field": where + exc.field, "message": str(exc), "type": "refused"}])

    @app.exception_handler(ApiProblem)
    async def api_problem(request: Request, exc: ApiProblem):
        if exc.status == 422:
            return invalid(request, exc.errors or [])
        return problem(request, exc.status, exc.detail, exc.name)

    @app.exception_handler(InProgress)
    async def in_progress(request: Request, exc: InProgress):
        return problem(request, 409, str(exc), "in-progress")

    @app.exception_handler(PayloadMismatch)
    async def mismatch(request: Request, exc: PayloadMismatch):
        return problem(request, 409, str(exc), "transaction-id-reused")

    @app.exception_handler(UnknownTransaction)
    async def unknown(request: Request, exc: UnknownTransaction):
        return problem(request, 404, str(exc), "unknown-transaction")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return problem(request, exc.status_code, str(exc.detail), headers=exc.headers)

    authed = [Depends(api_key)]
    taken = {"e409": {"transaction-id-reused": "transaction_id T0181000042 was already scored with different content",
                      "in-progress": "transaction T0181000042 is being scored by another request; retry"}}

    @app.get("/v1/health", response_model=Health, response_model_exclude_none=True, tags=["operations"],
             summary="Is the service up, and with which model")
    def health(c: Container = Depends(get_container)) -> Health:
        """No API key needed. `degraded` while review messages wait in the outbox; `state` says how
        recent the feature state is, where a fallback policy is configured."""
        pending = c.router.pending_count()
        state = c.coverage.current() if c.settings.state_fallback != "off" else None
        return Health(status="ok" if pending == 0 else "degraded", model_version=c.holder.current()[1],
                      outbox_pending=pending, state=state)

    @app.get("/v1/model", response_model=ModelInfo, dependencies=authed, tags=["operations"],
             summary="The model that is scoring", responses=errors("/v1/model", 401))
    def model(c: Container = Depends(get_container)) -> ModelInfo:
        """The champion's version, its signed manifest, decision thresholds, features and calibration."""
        bundle, version = c.holder.current()
        return ModelInfo(version=version, manifest=c.holder.manifest, thresholds=bundle.thresholds.to_dict(),
                         features=bundle.feature_names, calibration=bundle.calibrator.method)

    @app.post("/v1/score", response_model=ScoreResponse, dependencies=authed, tags=["scoring"],
              summary="Score one transaction", responses=errors("/v1/score", 401, 413, 422, **taken))
    def score(txn: Transaction, c: Container = Depends(get_container), rid: str = Depends(request_id)):
        """The calibrated fraud probability, the decision (approve, review or decline) and the
        features that moved the score most. A review puts exactly one message on the review queue.
        Idempotent per `transaction_id`: a retry with the same content replays the stored answer
        (`replayed: true`); the same id with other content is a 409."""
        return c.scoring.score(txn, rid)

    @app.post("/v1/score/batch", response_model=BatchResponse, dependencies=authed, tags=["scoring"],
              summary="Score several transactions in order",
              responses=errors("/v1/score/batch", 401, 413, 422, **taken))
    def score_batch(batch: BatchRequest, c: Container = Depends(get_container), rid: str = Depends(request_id)):
        """Up to `FRAUD_MAX_BATCH` transactions, scored in order (each one's features see the ones
        before it). Every id is claimed before anything changes, so a refused batch leaves nothing
        behind. For bulk scoring use `fraud score-batch`."""
        if len(batch.transactions) > settings.max_batch:
            raise ApiProblem(422, "invalid-request", "batch too large", [
                {"field": "body.transactions", "message": f"at most {settings.max_batch} transactions",
                 "type": "too_long"}])
        ids = [t.transaction_id for t in batch.transactions]
        if len(set(ids)) != len(ids):
            raise ApiProblem(422, "invalid-request", "repeated transaction id", [
                {"field": "body.transactions", "message": "transaction_id repeated within the batch",
                 "type": "refused"}])
        return BatchResponse(results=c.scoring.score_many(batch.transactions, rid), request_id=rid)

    @app.post("/v1/feedback", response_model=FeedbackResponse, dependencies=authed, tags=["feedback"],
              summary="Label a scored transaction",
              responses=errors("/v1/feedback", 401, 413, 422, e404={
                  "unknown-transaction": "transaction T0181000099 was not scored by this service"}))
    def feedback(fb: Feedback, c: Container = Depends(get_container), rid: str = Depends(request_id)):
        """A reviewer's verdict or a chargeback for a transaction this service scored. Labels feed
        the terminal's fraud-rate features and the recall/precision metrics; sending the same label
        again is recorded once."""
        recorded, duplicate = c.feedback.record(fb)
        return FeedbackResponse(transaction_id=fb.transaction_id, recorded=recorded, duplicate=duplicate,
                                request_id=rid)

    list_name_path = Path(pattern="^(allow|block)$", description="`block` declines, `allow` approves; "
                                                                 "a block wins over an allow")
    entity_path = Path(pattern="^(card|terminal)$")

    @app.get("/v1/lists/{list_name}/{entity}", response_model=ListPage, dependencies=authed, tags=["overrides"],
             summary="Read an allow/block list, a page at a time",
             responses=errors("/v1/lists/block/card", 401, 422))
    def read_list_page(list_name: str = list_name_path, entity: str = entity_path,
                       limit: int = Query(100, ge=1, le=1000, description="entries per page"),
                       cursor: str | None = Query(None, pattern=PSEUDONYM,
                                                  description="`next_cursor` of the previous page"),
                       c: Container = Depends(get_container)) -> ListPage:
        """Entries in pseudonym order. Only a keyed hash of each id is stored, so an entry shows its
        pseudonym (and for a card the `card_…` token that logs and review messages carry), never
        the id itself. To check one id, score it or put it again."""
        return read_list(c.overrides, list_name, entity, limit, cursor)

    @app.put("/v1/lists/{list_name}/{entity}", status_code=204, dependencies=authed, tags=["overrides"],
             summary="Put a card or terminal on a list", responses=errors("/v1/lists/block/card", 401, 413, 422))
    def add_to_list(entry: ListEntry, list_name: str = list_name_path, entity: str = entity_path,
                    c: Container = Depends(get_container)):
        """Takes effect on the next request. The id travels in the body, never in the URL (paths end
        up in access logs); putting it again replaces the reason."""
        c.overrides.set(list_name, entity, entry.id, entry.reason)

    @app.post("/v1/lists/{list_name}/{entity}/remove", status_code=204, dependencies=authed, tags=["overrides"],
              summary="Take a card or terminal off a list",
              responses=errors("/v1/lists/block/card/remove", 401, 413, 422,
                               e404={"not-on-list": "not on that list"}))
    def remove_from_list(item: ListItem, list_name: str = list_name_path, entity: str = entity_path,
                         c: Container = Depends(get_container)):
        """The id in the body, as for putting it on the list."""
        if not c.overrides.remove(list_name, entity, item.id):
            raise ApiProblem(404, "not-on-list", "not on that list")

    @app.post("/v1/outbox/drain", response_model=DrainResult, dependencies=authed, tags=["operations"],
              summary="Send the review messages still pending", responses=errors("/v1/outbox/drain", 401))
    def drain(c: Container = Depends(get_container)) -> dict:
        """What the scheduled drain does every minute, on demand: sends the pending review messages
        (and those whose sender died mid-send) and says how many went."""
        return c.router.drain()

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app
