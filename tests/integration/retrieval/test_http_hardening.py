"""The retrieval HTTP endpoint on a real uvicorn server, closed until opened: it refuses to start
without a client, takes per-client tokens kept as digests, audits every look-up, throttles
enumeration, sheds load past its concurrency limit, cancels slow queries, refuses references in
URLs, answers 400 to any malformed body and speaks TLS when given a certificate.

The service runs over a real PostgreSQL schema and an empty LanceDB directory: these tests are
about the HTTP layer, so no model is loaded and no document indexed.
"""

import argparse
import http.client
import io
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from contextlib import contextmanager

import pytest

from rag_assets.privacy.request_log import ensure_erasure_schema
from rag_assets.retrieval.access import INSECURE_NO_AUTH_FLAG
from rag_assets.retrieval.cli import run_clients_command
from rag_assets.retrieval.context import RetrievalService
from rag_assets.retrieval.http import (
    BURST_ENV,
    CONCURRENCY_ENV,
    MAX_BODY_BYTES,
    RATE_ENV,
    TOKEN_ENV,
    EndpointRefused,
    server_config,
)

pytestmark = pytest.mark.integration

BODY = {"customer": "crm:1", "question": "Can I bring my dog?", "k": 1}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(service, insecure_no_auth=False, tls=None):
    """The endpoint as `rag-assets retrieval-serve` configures it, in a thread; yields its port."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(server_config(service, "127.0.0.1", port, insecure_no_auth,
                                          *(tls or (None, None))))
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


def call(port, method, path, body=None, headers=None, chunked=False, connection=None):
    conn = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
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


def clients(postgres, *argv) -> tuple[int, str]:
    """`rag-assets retrieval-clients ...` against the test's schema."""
    action, *name = argv
    out = io.StringIO()
    code = run_clients_command(argparse.Namespace(action=action, name=name[0] if name else None),
                               postgres, out)
    return code, out.getvalue()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def service(postgres, lancedb, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with postgres.transaction() as cur:
        ensure_erasure_schema(cur, postgres.db_schema)  # the customer and feedback tables
    return RetrievalService(postgres, lancedb, embedder=None)


@pytest.fixture
def token(postgres):
    code, out = clients(postgres, "add", "app-a")
    assert code == 0
    return out.strip()


def test_without_a_client_the_endpoint_refuses_to_start_and_says_what_to_do(service):
    with pytest.raises(EndpointRefused, match="rag-assets retrieval-clients add NAME"):
        server_config(service, "127.0.0.1", _free_port())
    with pytest.raises(EndpointRefused, match=f"{INSECURE_NO_AUTH_FLAG} is only allowed on a "
                                              "loopback address"):
        server_config(service, "0.0.0.0", _free_port(), insecure_no_auth=True)
    with pytest.raises(EndpointRefused, match="TLS needs both a certificate"):
        server_config(service, "127.0.0.1", _free_port(), tls_cert="cert.pem")
    # Opened on purpose, on loopback only: every call is the client `anonymous`.
    with serving(service, insecure_no_auth=True) as port:
        assert call(port, "POST", "/v1/context", BODY)[0] == 200
    with service.postgres.transaction() as cur:
        cur.execute("SELECT client_id FROM retrieval_audit")
        assert cur.fetchall() == [("anonymous",)]


def test_client_tokens_are_required_checked_kept_as_digests_and_revocable(service, postgres, token):
    with serving(service) as port:
        status, headers, body = call(port, "POST", "/v1/context", BODY)
        assert status == 401 and headers["www-authenticate"].startswith("Bearer")
        assert body == {"error": "a valid bearer token is required"}
        for header in [f"Bearer {token}x", f"Bearer {token[:-1]}", f"Basic {token}", token,
                       "Bearer ", f"Bearer {token.upper()}"]:
            assert call(port, "POST", "/v1/context", BODY, {"Authorization": header})[0] == 401
        status, _, bundle = call(port, "POST", "/v1/context", BODY, bearer(token))
        assert status == 200 and bundle["customer"] is None and bundle["chunks"] == []
        assert call(port, "GET", "/health")[0] == 200  # open for load balancers

        with postgres.transaction() as cur:
            cur.execute("SELECT client_id, token_sha256 FROM retrieval_clients")
            rows = cur.fetchall()
        assert [r[0] for r in rows] == ["app-a"] and token not in repr(rows)
        assert token not in clients(postgres, "list")[1]
        assert clients(postgres, "add", "app-a") == (2, "")  # a name is one client

        assert clients(postgres, "revoke", "app-a")[0] == 0
        time.sleep(5.5)  # the server caches a token's client for 5 s
        assert call(port, "POST", "/v1/context", BODY, bearer(token))[0] == 401


def test_the_environment_token_is_a_client_too(service, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "an-environment-token-with-entropy-5d1e")
    with serving(service) as port:
        assert call(port, "POST", "/v1/context", BODY)[0] == 401
        assert call(port, "POST", "/v1/context", BODY,
                    bearer("an-environment-token-with-entropy-5d1e"))[0] == 200


def test_every_look_up_is_audited_by_client_and_customer_id_never_by_reference(
        service, postgres, token):
    with postgres.transaction() as cur:
        cur.execute("INSERT INTO customer_profiles (customer_id, profile, content_hash, version)"
                    " VALUES ('cus_audit1', '{\"customer_id\": \"cus_audit1\", \"golden\": {}}',"
                    " 'h', 1)")
    with serving(service) as port:
        for customer in ("cus_audit1", "nobody@example.org"):
            assert call(port, "POST", "/v1/context", {**BODY, "customer": customer},
                        bearer(token))[0] == 200
    with postgres.transaction() as cur:
        cur.execute("SELECT client_id, customer_id, to_jsonb(a)::text FROM retrieval_audit a"
                    " ORDER BY id")
        rows = cur.fetchall()
    assert [r[:2] for r in rows] == [("app-a", "cus_audit1"), ("app-a", None)]
    assert not any("nobody@example.org" in r[2] for r in rows)


def test_references_never_travel_in_urls(service, token):
    with serving(service) as port:
        status, headers, body = call(port, "GET", "/v1/context?customer=crm%3A1&question=dog",
                                     headers=bearer(token))
        assert status == 405 and headers["allow"] == "POST"
        assert body["error"].startswith("use POST with a JSON body")


def test_enumeration_is_throttled_per_client(service, postgres, token, monkeypatch):
    monkeypatch.setenv(RATE_ENV, "2")
    monkeypatch.setenv(BURST_ENV, "5")
    other = clients(postgres, "add", "app-b")[1].strip()
    with serving(service) as port:
        started = time.monotonic()
        answers = [call(port, "POST", "/v1/context", {**BODY, "customer": f"crm:{n}"},
                        bearer(token)) for n in range(30)]
        elapsed = time.monotonic() - started
        allowed = sum(status == 200 for status, _, _ in answers)
        refused = [(headers, body) for status, headers, body in answers if status == 429]
        assert allowed + len(refused) == 30
        assert 5 <= allowed <= 5 + 2 * elapsed + 1
        assert all(int(h["retry-after"]) >= 1 and b == {"error": "too many requests for this client"}
                   for h, b in refused)
        assert call(port, "POST", "/v1/context", BODY, bearer(other))[0] == 200


def test_slow_queries_are_cancelled_and_load_past_the_limit_is_shed(service, postgres, token,
                                                                     monkeypatch):
    """A look-up stuck behind a lock runs into the statement timeout (503); while it is in
    flight, the concurrency limit of 1 answers the next call 503 at once."""
    monkeypatch.setenv(CONCURRENCY_ENV, "1")
    service.statement_timeout_ms = 1500
    with serving(service) as port, postgres.transaction() as locker:
        locker.execute("LOCK TABLE customer_assignments, identity_lookup, customer_profiles"
                       " IN ACCESS EXCLUSIVE MODE")
        stuck: list = []
        thread = threading.Thread(target=lambda: stuck.append(
            call(port, "POST", "/v1/context", BODY, bearer(token))))
        started = time.monotonic()
        thread.start()
        time.sleep(0.5)
        status, headers, body = call(port, "POST", "/v1/context", BODY, bearer(token))
        assert (status, headers["retry-after"], body) == (
            503, "1", {"error": "busy: too many requests in flight"})
        assert time.monotonic() - started < 1.5
        thread.join(timeout=30)
        status, _, body = stuck[0]
        assert (status, body) == (503, {"error": "retrieval ran past its statement timeout"})
        assert 1.5 <= time.monotonic() - started < 10
    with serving(service) as port:  # the lock gone, the same call is answered
        assert call(port, "POST", "/v1/context", BODY, bearer(token))[0] == 200


def test_sizes_are_limited_and_any_malformed_body_is_a_400(service, token):
    auth = bearer(token)
    with serving(service) as port:
        big = json.dumps({**BODY, "question": "x" * (MAX_BODY_BYTES + 10)}).encode()
        assert call(port, "POST", "/v1/context", big, auth)[0] == 413
        # No Content-Length (chunked): refused once the stream passes the limit.
        chunks = (big[i:i + 1024] for i in range(0, len(big), 1024))
        assert call(port, "POST", "/v1/context", chunks, auth, chunked=True)[0] == 413
        small = (json.dumps(BODY).encode()[i:i + 8] for i in range(0, 80, 8))
        assert call(port, "POST", "/v1/context", small, auth, chunked=True)[0] == 200
        assert call(port, "POST", "/v1/context", b"{}", {**auth, "Content-Length": "abc"})[0] == 400
        assert call(port, "GET", "/v1/context?" + "q" * 5000, headers=auth)[0] == 414
        for bad in [b"{not json", b"[1, 2]", json.dumps({**BODY, "k": 500}).encode(),
                    json.dumps({**BODY, "sql": "1"}).encode(),
                    json.dumps({**BODY, "customer": "bob\u0000@example.org"}).encode(),
                    json.dumps({**BODY, "customer": "a" * 400}).encode(),
                    json.dumps({**BODY, "question": ""}).encode(),
                    json.dumps({**BODY, "doc_keys": "not-a-list"}).encode(),
                    json.dumps({**BODY, "k": "\u00b2"}).encode(),
                    b'{"customer": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                    b"\xff\xfe\x00"]:
            status, _, body = call(port, "POST", "/v1/context", bad, auth)
            assert status == 400 and "error" in body, bad


def test_tls_when_a_certificate_is_configured(service, token, tmp_path):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command on this machine to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    with serving(service, tls=(str(cert), str(key))) as port:
        trusted = ssl.create_default_context(cafile=str(cert))
        tls = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=trusted)
        assert call(port, "POST", "/v1/context", BODY, bearer(token), connection=tls)[0] == 200
        with pytest.raises(ssl.SSLCertVerificationError):
            call(port, "POST", "/v1/context", BODY, bearer(token),
                 connection=http.client.HTTPSConnection("127.0.0.1", port, timeout=30,
                                                        context=ssl.create_default_context()))
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
            call(port, "POST", "/v1/context", BODY, bearer(token))  # plain HTTP
