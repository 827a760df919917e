"""Retrieval over HTTP/JSON (Starlette, served by uvicorn).

    GET  /health                      → {"status": "ok"}
    POST /v1/context                  body {"customer": REF, "question": TEXT, "k": 5,
                                            "mode": "hybrid", "doc_keys": [...], "answer": false,
                                            "personalise": true}
    GET  /v1/context?customer=REF&question=TEXT&k=5&mode=hybrid&personalise=true

`mode` is hybrid (default), vector, text or rrf; `personalise=false` ranks without preferring
the passages that apply to the customer's profile.

200 with the context bundle; 400 {"error": ...} for invalid input; 413 for a body over 16 kB
(refused from its Content-Length before it is read, or once the stream passes the limit); 414
for a query string over 4 kB.

When the environment sets `RAG_RETRIEVAL_TOKEN` (or `create_app(token=...)`), `/v1/context`
requires `Authorization: Bearer <token>` and answers 401 otherwise; the token is compared in
constant time. `/health` stays open for load balancers.
Questions, references and profiles are not logged (uvicorn's access log is off).
"""

from __future__ import annotations

import hmac
import json
import os
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rag_assets.retrieval.context import InvalidRequest, RetrievalService

MAX_BODY_BYTES = 16 * 1024
MAX_QUERY_BYTES = 4 * 1024
TOKEN_ENV = "RAG_RETRIEVAL_TOKEN"


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (before reading it all) one longer than `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _authorised(request: Request, token: bytes | None) -> bool:
    if token is None:
        return True
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    # compare_digest on both: the time taken does not depend on how much of the token matched.
    valid_scheme = hmac.compare_digest(scheme.lower().encode(), b"bearer")
    return hmac.compare_digest(presented.strip().encode("utf-8", "replace"), token) and valid_scheme


def _json(payload: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(json.loads(json.dumps(payload, default=str)), status_code=status)


def create_app(service: RetrievalService, token: str | None = None) -> Starlette:
    """The app; `token` defaults to `RAG_RETRIEVAL_TOKEN` (unset or empty: no token needed)."""
    token = token if token is not None else os.environ.get(TOKEN_ENV)
    secret = token.encode() if token else None

    async def health(_: Request) -> JSONResponse:
        return _json({"status": "ok"})

    async def context(request: Request) -> JSONResponse:
        if not _authorised(request, secret):
            response = _json({"error": "a valid bearer token is required"}, 401)
            response.headers["WWW-Authenticate"] = 'Bearer realm="retrieval"'
            return response
        if len(request.scope.get("query_string", b"")) > MAX_QUERY_BYTES:
            return _json({"error": f"query string over {MAX_QUERY_BYTES} bytes"}, 414)
        if request.method == "POST":
            try:
                body = await _read_body(request, MAX_BODY_BYTES)
            except _TooLarge:
                return _json({"error": f"body over {MAX_BODY_BYTES} bytes"}, 413)
            try:
                params = json.loads(body or b"{}")
            except (json.JSONDecodeError, UnicodeDecodeError):
                return _json({"error": "body is not JSON"}, 400)
            if not isinstance(params, dict):
                return _json({"error": "body must be a JSON object"}, 400)
            unknown = set(params) - {"customer", "question", "k", "mode", "doc_keys", "answer",
                                     "personalise"}
            if unknown:
                return _json({"error": f"unknown fields: {', '.join(sorted(unknown))}"}, 400)
        else:
            query = request.query_params
            params = {"customer": query.get("customer"), "question": query.get("question"),
                      "k": query.get("k", 5), "mode": query.get("mode", "hybrid"),
                      "doc_keys": query.getlist("doc_key") or None,
                      "answer": query.get("answer", "false").lower() == "true",
                      "personalise": query.get("personalise", "true").lower() != "false"}
        try:
            bundle = await run_in_threadpool(
                service.context, params.get("customer"), params.get("question"),
                params.get("k", 5), params.get("mode", "hybrid"), params.get("doc_keys"),
                params.get("answer", False), params.get("personalise", True))
        except InvalidRequest as error:
            return _json({"error": str(error)}, 400)
        return _json(bundle)

    return Starlette(routes=[
        Route("/health", health, methods=["GET"]),
        Route("/v1/context", context, methods=["GET", "POST"]),
    ])


def serve(service: RetrievalService, host: str = "127.0.0.1", port: int = 8090) -> None:
    import uvicorn

    uvicorn.run(create_app(service), host=host, port=port, access_log=False, log_level="warning")
