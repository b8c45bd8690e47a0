"""Refuse a request body over the limit (413) before anything parses it.

The body is read here, up to the limit, and handed on whole: a declared ``content-length``
over the limit is refused at once, and a chunked body (no length) as soon as it passes the
limit. Refusing from inside the app instead would reach FastAPI's body parser as a read
error, which it answers with a 400.
"""

from __future__ import annotations

import json

from .problems import MEDIA_TYPE, problem_body, request_id_of


class BodyLimit:
    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._too_large(scope, send)
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: pass that on
                break
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.limit:
                return await self._too_large(scope, send)
            if not message.get("more_body", False):
                message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                break
        pending = [message]

        async def replay():
            return pending.pop() if pending else await receive()

        return await self.app(scope, replay, send)

    async def _too_large(self, scope, send):
        body = json.dumps(problem_body(scope, 413, f"request body over {self.limit} bytes")).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode()),
                                (b"x-request-id", request_id_of(scope).encode())]})
        await send({"type": "http.response.body", "body": body})
