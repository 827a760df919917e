"""Retrieval over HTTP/JSON (Starlette, served by uvicorn); closed until opened.

    GET  /health                      → {"status": "ok"}
    POST /v1/context                  body {"customer": REF, "question": TEXT, "k": 5,
                                            "mode": "hybrid", "doc_keys": [...], "answer": false,
                                            "personalise": true}

`mode` is hybrid (default), vector, text or rrf; `personalise=false` ranks without preferring
the passages that apply to the customer's profile. Customer references travel only in POST
bodies: a GET of /v1/context answers 405 (a reference in a URL ends up in proxies' logs).

Every call needs `Authorization: Bearer <token>` of a client (`rag-assets retrieval-clients add
NAME`, kept as a digest; or `RAG_RETRIEVAL_TOKEN`, the client `environment`), and each call that
names a customer leaves an audit row (client, customer id). The server refuses to start without
a client unless bound to loopback with `--insecure-no-auth` (access.py). TLS when a certificate
and key are given.

Answers: 200 with the context bundle; 400 {"error": ...} for any malformed body; 401 without a
valid token; 405 for GET; 413 for a body over 16 kB (refused from its Content-Length before it is
read, or once the stream passes the limit); 414 for a query string over 4 kB; 429 with
Retry-After beyond a client's rate; 503 with Retry-After when the concurrency limit is reached
or a query ran past the statement timeout. `/health` stays open for load balancers. Questions,
references and profiles are not logged (uvicorn's access log is off).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from psycopg.errors import QueryCanceled, UndefinedTable
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rag_assets.retrieval.access import ConcurrencyGate, RateLimiter, exposure_error
from rag_assets.retrieval.clients import (
    ClientDirectory,
    ClientStore,
    GrantsLacking,
    serving_clients,
)
from rag_assets.retrieval.context import InvalidRequest, RetrievalService

MAX_BODY_BYTES = 16 * 1024
MAX_QUERY_BYTES = 4 * 1024
TOKEN_ENV = "RAG_RETRIEVAL_TOKEN"
ANONYMOUS = "anonymous"  # the client of every call under --insecure-no-auth
FIELDS = frozenset({"customer", "question", "k", "mode", "doc_keys", "answer", "personalise"})


@dataclass
class Access:
    """Who is let in and how much: `client_of(token)` names the client of a bearer token (None:
    refused) — None for the whole callable means no authentication (--insecure-no-auth);
    `audit(client, customer_id)` records a lookup."""

    client_of: Callable[[str], str | None] | None
    audit: Callable[[str, str | None], None]
    limiter: RateLimiter
    gate: ConcurrencyGate


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (before reading it all) one longer than `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdecimal() or int(declared) > limit):
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(json.loads(json.dumps(payload, default=str)), status_code=status,
                        headers=headers)


def _client(request: Request, access: Access) -> str | None:
    if access.client_of is None:
        return ANONYMOUS
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return None
    return access.client_of(presented.strip())


def parse_body(body: bytes) -> dict[str, Any]:
    """The request's fields; InvalidRequest for anything that is not a JSON object of them."""
    try:
        params = json.loads(body or b"{}")
    except (ValueError, RecursionError):  # JSON, UTF-8, nesting deeper than the parser goes
        raise InvalidRequest("body is not JSON (or nested too deeply)") from None
    if not isinstance(params, dict):
        raise InvalidRequest("body must be a JSON object")
    unknown = set(params) - FIELDS
    if unknown:
        raise InvalidRequest(f"unknown fields: {', '.join(sorted(map(str, unknown)))[:200]}")
    return params


def create_app(service: RetrievalService, access: Access) -> Starlette:
    async def health(_: Request) -> JSONResponse:
        return _json({"status": "ok"})

    async def context(request: Request) -> JSONResponse:
        client = _client(request, access)
        if client is None:
            return _json({"error": "a valid bearer token is required"}, 401,
                         {"WWW-Authenticate": 'Bearer realm="retrieval"'})
        if len(request.scope.get("query_string", b"")) > MAX_QUERY_BYTES:
            return _json({"error": f"query string over {MAX_QUERY_BYTES} bytes"}, 414)
        if request.method != "POST":
            return _json({"error": "use POST with a JSON body: customer references do not "
                                   "belong in URLs"}, 405, {"Allow": "POST"})
        wait = access.limiter.wait_for(client)
        if wait > 0:
            return _json({"error": "too many requests for this client"}, 429,
                         {"Retry-After": str(math.ceil(wait))})
        if not access.gate.try_enter():
            return _json({"error": "busy: too many requests in flight"}, 503, {"Retry-After": "1"})
        try:
            return await _answer(request, client)
        finally:
            access.gate.leave()

    async def _answer(request: Request, client: str) -> JSONResponse:
        try:
            params = parse_body(await _read_body(request, MAX_BODY_BYTES))
            bundle = await run_in_threadpool(
                service.context, params.get("customer"), params.get("question"),
                params.get("k", 5), params.get("mode", "hybrid"), params.get("doc_keys"),
                params.get("answer", False), params.get("personalise", True))
        except _TooLarge:
            return _json({"error": f"body over {MAX_BODY_BYTES} bytes"}, 413)
        except InvalidRequest as error:
            return _json({"error": str(error)}, 400)
        except QueryCanceled:
            return _json({"error": "retrieval ran past its statement timeout"}, 503,
                         {"Retry-After": "1"})
        customer = bundle.get("customer")
        await run_in_threadpool(access.audit, client,
                                customer["customer_id"] if customer else None)
        return _json(bundle)

    return Starlette(routes=[
        Route("/health", health, methods=["GET"]),
        Route("/v1/context", context, methods=["GET", "POST"]),
    ])


RATE_ENV, BURST_ENV, CONCURRENCY_ENV = ("RAG_RETRIEVAL_RATE_PER_CLIENT", "RAG_RETRIEVAL_BURST",
                                        "RAG_RETRIEVAL_MAX_CONCURRENT")


class EndpointRefused(RuntimeError):
    """The endpoint will not start with these settings (the message says what to do)."""


def access_for(postgres, insecure_no_auth: bool, host: str) -> Access:
    """The server's access rules from the clients table and the environment; refuses (with
    `EndpointRefused`) what `access.exposure_error` refuses."""
    try:
        with postgres.transaction() as cur:
            clients = serving_clients(cur, postgres.db_schema)
    except UndefinedTable:
        raise EndpointRefused(
            f"the retrieval tables are not in schema {postgres.db_schema!r} yet and the role "
            f"{postgres.user!r} may not create them: add a client (`rag-assets retrieval-clients "
            "add NAME`) or run a pipeline with the pipelines' credentials first") from None
    except GrantsLacking as lacking:
        raise EndpointRefused(str(lacking)) from None
    environment_token = os.environ.get(TOKEN_ENV) or None
    refused = exposure_error(host, insecure_no_auth, bool(clients or environment_token))
    if refused:
        raise EndpointRefused(refused)
    store = ClientStore(postgres)
    directory = ClientDirectory(store.client_of_digest, environment_token)
    return Access(client_of=None if insecure_no_auth else directory.client_of, audit=store.audit,
                  limiter=RateLimiter(float(os.environ.get(RATE_ENV, 10)),
                                      int(os.environ.get(BURST_ENV, 20))),
                  gate=ConcurrencyGate(int(os.environ.get(CONCURRENCY_ENV, 8))))


def server_config(service: RetrievalService, host: str = "127.0.0.1", port: int = 8090,
                  insecure_no_auth: bool = False, tls_cert: str | None = None,
                  tls_key: str | None = None):
    """The uvicorn configuration of the endpoint; `EndpointRefused` for settings it refuses."""
    import uvicorn

    if bool(tls_cert) != bool(tls_key):
        raise EndpointRefused("TLS needs both a certificate (--tls-cert) and its key (--tls-key)")
    app = create_app(service, access_for(service.postgres, insecure_no_auth, host))
    return uvicorn.Config(app, host=host, port=port, access_log=False, log_level="warning",
                          ssl_certfile=tls_cert, ssl_keyfile=tls_key)


def serve(service: RetrievalService, host: str = "127.0.0.1", port: int = 8090,
          insecure_no_auth: bool = False, tls_cert: str | None = None,
          tls_key: str | None = None) -> None:
    import uvicorn

    uvicorn.Server(server_config(service, host, port, insecure_no_auth, tls_cert, tls_key)).run()
