"""`context` over Python, the CLI and HTTP, against real PostgreSQL, S3 and LanceDB."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from rag_assets.retrieval.context import InvalidRequest
from tests.integration.retrieval.conftest import ALICE, BOB

pytestmark = pytest.mark.integration


def test_context_returns_the_profile_and_top_chunks_with_provenance_and_age(retrieval_world):
    service, run_id = retrieval_world
    bundle = service.context("alice@example.org", "How heavy can my cabin bag be?", k=2)
    customer = bundle["customer"]
    assert bundle["customer_found"] and customer["customer_id"].startswith("cus_")
    assert customer["profile"]["golden"]["given_name"]["value"] == "Alice"
    assert customer["provenance"]["profile_version"] >= 1
    assert customer["provenance"]["cdc_positions"]  # topic/partition/offset of the CDC events
    assert customer["age_seconds"] >= 0

    assert len(bundle["chunks"]) == 2
    top = bundle["chunks"][0]
    assert top["provenance"]["doc_key"].endswith("baggage/cabin.md")
    assert "8 kg" in top["text"]
    assert top["provenance"]["run_id"] == run_id
    assert top["provenance"]["doc_version"] and top["provenance"]["chunk_no"] == 0
    assert "all-MiniLM-L6-v2" in top["provenance"]["embedding_model"]  # +openvino-bf16 on AMX
    assert top["indexed_at"] and 0 <= top["age_seconds"] < 600

    for mode in ("vector", "text"):
        hits = service.context("alice@example.org", "refund original payment", k=1, mode=mode)
        assert hits["chunks"][0]["provenance"]["doc_key"].endswith("o'brien-policy.md")

    # Bob's reference gives Bob's profile; Alice's bundle holds nothing of Bob's.
    bob = service.context("+44 7700 900002", "lounge", k=1)
    assert bob["customer"]["profile"]["golden"]["given_name"]["value"] == "Bob"
    assert bob["customer"]["customer_id"] != customer["customer_id"]
    text = json.dumps(bundle, default=str)
    assert BOB["email"] not in text and BOB["last_name"] not in text and "900002" not in text
    assert ALICE["email"] in text

    # Unknown reference: no profile, knowledge still served.
    nobody = service.context("nobody@example.org", "lounge access", k=1)
    assert nobody["customer"] is None and nobody["chunks"]


def test_input_is_validated_and_filter_values_escaped(retrieval_world):
    service, _ = retrieval_world
    for bad in [dict(customer_ref="", question="q"), dict(customer_ref="a" * 400, question="q"),
                dict(customer_ref="alice@example.org", question=" "),
                dict(customer_ref="alice@example.org", question="q", k=0),
                dict(customer_ref="alice@example.org", question="q", k=True),
                dict(customer_ref="alice@example.org", question="q", mode="sql"),
                dict(customer_ref="bob\x00@example.org", question="q")]:
        with pytest.raises(InvalidRequest):
            service.context(**bad)
    # A key with a quote is data, and an injection attempt matches nothing.
    prefix = "knowledge-base/"
    only = service.context("alice@example.org", "refund", k=5,
                           doc_keys=[prefix + "refunds/o'brien-policy.md"])
    assert {c["provenance"]["doc_key"] for c in only["chunks"]} == {
        prefix + "refunds/o'brien-policy.md"}
    injected = service.context("alice@example.org", "bag", k=5,
                               doc_keys=["x') OR (doc_key <> '"])
    assert injected["chunks"] == []


def _env(service):
    pg = service.postgres
    return {**os.environ, "PGHOST": pg.host, "PGPORT": str(pg.port), "PGUSER": pg.user,
            "PGPASSWORD": pg.password, "PGDATABASE": pg.database, "RAG_PG_SCHEMA": pg.db_schema,
            "LANCEDB_URI": service.lancedb.uri}


def test_context_on_the_command_line(retrieval_world):
    service, run_id = retrieval_world
    command = [sys.executable, "-m", "rag_assets.retrieval.cli", "context",
               "--customer", "alice@example.org", "--question", "cabin bag weight", "--k", "1"]
    done = subprocess.run([*command, "--json"], capture_output=True, text=True,
                          env=_env(service), timeout=120)
    assert done.returncode == 0, done.stderr
    bundle = json.loads(done.stdout)
    assert bundle["customer"]["profile"]["golden"]["given_name"]["value"] == "Alice"
    assert bundle["chunks"][0]["provenance"]["run_id"] == run_id

    text = subprocess.run(command, capture_output=True, text=True, env=_env(service), timeout=120)
    assert text.returncode == 0 and "baggage/cabin.md#0" in text.stdout
    bad = subprocess.run([*command[:-1], "99"], capture_output=True, text=True,
                         env=_env(service), timeout=120)
    assert bad.returncode == 2 and "k:" in bad.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(url, payload):
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_context_over_http(retrieval_world):
    import uvicorn

    from rag_assets.retrieval.http import server_config

    service, run_id = retrieval_world
    port = _free_port()
    # Opened on purpose on loopback (the client tokens are tested in test_http_hardening.py).
    server = uvicorn.Server(server_config(service, "127.0.0.1", port, insecure_no_auth=True))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        status, bundle = _post(base + "/v1/context", {"customer": "crm:1", "k": 2,
                                                      "question": "Can I bring a guest to the lounge?"})
        assert status == 200
        assert bundle["customer"]["profile"]["golden"]["surname"]["value"] == "Moreau"
        assert bundle["chunks"][0]["provenance"]["doc_key"].endswith("lounges/access.txt")
        assert bundle["chunks"][0]["provenance"]["run_id"] == run_id

        status, got = _post(base + "/v1/context", {"customer": "bob@example.org",
                                                   "question": "refunds", "k": 1, "mode": "text"})
        assert status == 200
        assert got["customer"]["profile"]["golden"]["given_name"]["value"] == "Bob"
        assert len(got["chunks"]) == 1

        assert _post(base + "/v1/context", {"customer": "crm:1", "question": "q", "k": 500})[0] == 400
        assert _post(base + "/v1/context", {"customer": "crm:1", "question": "q", "sql": 1})[0] == 400
        assert _post(base + "/v1/context", ["not", "an", "object"])[0] == 400
    finally:
        server.should_exit = True
        thread.join(timeout=10)
