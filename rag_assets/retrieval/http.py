"""Retrieval over HTTP/JSON (Starlette, served by uvicorn).

    GET  /health                      → {"status": "ok"}
    POST /v1/context                  body {"customer": REF, "question": TEXT, "k": 5,
                                            "mode": "hybrid", "doc_keys": [...], "answer": false}
    GET  /v1/context?customer=REF&question=TEXT&k=5&mode=hybrid

200 with the context bundle; 400 {"error": ...} for invalid input; 413 for a body over 16 kB.
Questions, references and profiles are not logged (uvicorn's access log is off).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rag_assets.retrieval.context import InvalidRequest, RetrievalService

MAX_BODY_BYTES = 16 * 1024


def _json(payload: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(json.loads(json.dumps(payload, default=str)), status_code=status)


def create_app(service: RetrievalService) -> Starlette:
    async def health(_: Request) -> JSONResponse:
        return _json({"status": "ok"})

    async def context(request: Request) -> JSONResponse:
        if request.method == "POST":
            body = await request.body()
            if len(body) > MAX_BODY_BYTES:
                return _json({"error": f"body over {MAX_BODY_BYTES} bytes"}, 413)
            try:
                params = json.loads(body or b"{}")
            except (json.JSONDecodeError, UnicodeDecodeError):
                return _json({"error": "body is not JSON"}, 400)
            if not isinstance(params, dict):
                return _json({"error": "body must be a JSON object"}, 400)
            unknown = set(params) - {"customer", "question", "k", "mode", "doc_keys", "answer"}
            if unknown:
                return _json({"error": f"unknown fields: {', '.join(sorted(unknown))}"}, 400)
        else:
            query = request.query_params
            params = {"customer": query.get("customer"), "question": query.get("question"),
                      "k": query.get("k", 5), "mode": query.get("mode", "hybrid"),
                      "doc_keys": query.getlist("doc_key") or None,
                      "answer": query.get("answer", "false").lower() == "true"}
        try:
            bundle = await run_in_threadpool(
                service.context, params.get("customer"), params.get("question"),
                params.get("k", 5), params.get("mode", "hybrid"), params.get("doc_keys"),
                params.get("answer", False))
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
