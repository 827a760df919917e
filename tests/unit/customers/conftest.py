"""Shared builders for the Customer 360 unit tests."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rag_assets.customers.cdc_events import ChangeEvent, KafkaPosition


def debezium_value(
    op: str,
    after: dict[str, Any] | None = None,
    before: dict[str, Any] | None = None,
    ts_ms: int = 1_700_000_000_000,
    tx_id: int | None = 596,
    lsn: int | None = 33816576,
    table: str = "customers",
    wrapped: bool = False,
) -> bytes:
    envelope = {
        "before": before,
        "after": after,
        "source": {
            "version": "2.1.3.Final",
            "connector": "postgresql",
            "name": "dbserver1",
            "ts_ms": ts_ms,
            "db": "postgres",
            "schema": "public",
            "table": table,
            "txId": tx_id,
            "lsn": lsn,
        },
        "op": op,
        "ts_ms": ts_ms + 2,
    }
    if wrapped:
        envelope = {"schema": {"type": "struct"}, "payload": envelope}
    return json.dumps(envelope).encode()


def debezium_key(pk: Any, wrapped: bool = False) -> bytes:
    key: dict[str, Any] = {"id": pk}
    if wrapped:
        key = {"schema": {"type": "struct"}, "payload": key}
    return json.dumps(key).encode()


def change(
    pk: str,
    op: str = "u",
    ts: int = 1000,
    lsn: int | None = None,
    tx: int | None = None,
    row: dict[str, Any] | None = None,
    system: str = "crm",
    table: str = "customers",
    partition: int = 0,
    offset: int = 0,
) -> ChangeEvent:
    """A ChangeEvent as the parser would produce it; `row` defaults to a small customer row."""
    if row is None and op in ("c", "u", "r"):
        row = {"id": pk, "email": f"{pk}@example.com", "ts": ts}
    if row is None and op == "d":
        row = {"id": pk}
    return ChangeEvent(
        system=system,
        table=table,
        pk=pk if op != "t" else "",
        op=op,
        row=row,
        source_ts_ms=ts,
        tx_id=tx if tx is not None else ts,
        lsn=lsn if lsn is not None else ts * 10,
        position=KafkaPosition(f"cdc.{system}.{table}", partition, offset),
    )


@pytest.fixture
def make_change():
    return change


@pytest.fixture
def dbz_value():
    return debezium_value


@pytest.fixture
def dbz_key():
    return debezium_key
