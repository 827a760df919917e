"""The retrieval HTTP endpoint on a real uvicorn server: bearer token, size limits, validation.

The service runs over a real (empty) PostgreSQL schema and an empty LanceDB directory: these
tests are about the HTTP layer, so no model is loaded and no document indexed.
"""

import http.client
import json
import socket
import threading
import time
from contextlib import contextmanager
from urllib.parse import urlencode

import pytest

from rag_assets.retrieval.context import RetrievalService
from rag_assets.retrieval.http import MAX_BODY_BYTES, TOKEN_ENV, create_app

pytestmark = pytest.mark.integration

TOKEN = "t0k3n-with-enough-entropy-9f2c"
BODY = {"customer": "crm:1", "question": "Can I bring my dog?", "k": 1}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(app):
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def call(port, method, path, body=None, headers=None, chunked=False):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": "application/json", **(headers or {})}
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        conn.request(method, path, body=body, headers=headers, encode_chunked=chunked)
        response = conn.getresponse()
        payload = response.read()
        try:
            parsed = json.loads(payload or b"null")
        except ValueError:  # the HTTP server's own plain-text refusal of a malformed request
            parsed = payload.decode("utf-8", "replace")
        return response.status, {k.lower(): v for k, v in response.getheaders()}, parsed
    finally:
        conn.close()


@pytest.fixture
def service(postgres, lancedb):
    return RetrievalService(postgres, lancedb, embedder=None)


def test_a_configured_token_is_required_and_checked(service, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with serving(create_app(service)) as port:
        status, headers, body = call(port, "POST", "/v1/context", BODY)
        assert status == 401 and headers.get("www-authenticate", "").startswith("Bearer")
        assert "error" in body
        for header in [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN,
                       "Bearer ", f"bearer  {TOKEN.upper()}"]:
            assert call(port, "POST", "/v1/context", BODY, {"Authorization": header})[0] == 401
        ok = {"Authorization": f"Bearer {TOKEN}"}
        status, _, bundle = call(port, "POST", "/v1/context", BODY, ok)
        assert status == 200 and bundle["customer"] is None and bundle["chunks"] == []
        query = urlencode({"customer": "crm:1", "question": "lounge"})
        assert call(port, "GET", f"/v1/context?{query}")[0] == 401
        assert call(port, "GET", f"/v1/context?{query}", headers=ok)[0] == 200
        assert call(port, "GET", "/health")[0] == 200  # open for load balancers


def test_without_a_token_the_endpoint_is_open(service, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with serving(create_app(service)) as port:
        assert call(port, "POST", "/v1/context", BODY)[0] == 200


def test_sizes_are_limited_and_input_validated(service):
    with serving(create_app(service, token=TOKEN)) as port:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        big = json.dumps({**BODY, "question": "x" * (MAX_BODY_BYTES + 10)}).encode()
        assert call(port, "POST", "/v1/context", big, auth)[0] == 413
        # No Content-Length (chunked): refused once the stream passes the limit.
        chunks = (big[i:i + 1024] for i in range(0, len(big), 1024))
        assert call(port, "POST", "/v1/context", chunks, auth, chunked=True)[0] == 413
        small = (json.dumps(BODY).encode()[i:i + 8] for i in range(0, 80, 8))
        assert call(port, "POST", "/v1/context", small, auth, chunked=True)[0] == 200
        assert call(port, "POST", "/v1/context", b"{}", {**auth, "Content-Length": "abc"})[0] == 400
        long_query = urlencode({"customer": "crm:1", "question": "q" * 5000})
        assert call(port, "GET", f"/v1/context?{long_query}", headers=auth)[0] == 414
        for bad in [b"{not json", b"[1, 2]", json.dumps({**BODY, "k": 500}).encode(),
                    json.dumps({**BODY, "sql": "1"}).encode(),
                    json.dumps({**BODY, "customer": "bob\u0000@example.org"}).encode(),
                    json.dumps({**BODY, "customer": "a" * 400}).encode(),
                    json.dumps({**BODY, "question": ""}).encode(),
                    json.dumps({**BODY, "doc_keys": "not-a-list"}).encode(),
                    b"\xff\xfe\x00"]:
            status, _, body = call(port, "POST", "/v1/context", bad, auth)
            assert status == 400 and "error" in body, bad
