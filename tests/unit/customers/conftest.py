"""Shared builders for the Customer 360 unit tests."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from typing import Any

import pytest

from rag_assets.customers.cdc_events import ChangeEvent, KafkaPosition
from rag_assets.customers.identifiers import NATIONAL_ID, PersonIdentity


def random_people(seed: int, count: int, national_ids: bool = False) -> list[PersonIdentity]:
    """People drawn from small pools of values, with typos and missing fields: many exact and
    near agreements between them, for comparing scoring implementations."""
    rng = random.Random(seed)

    def typo(value):
        if not value or rng.random() < 0.5:
            return value
        i = rng.randrange(len(value))
        return value[:i] + rng.choice("aeiorst") + value[i + 1:]

    def draw() -> PersonIdentity:
        person = PersonIdentity(
            identifiers=frozenset(),
            given_name=typo(rng.choice(["sally", "sal", "bill", "william", "kate", "jon", None])),
            surname=typo(rng.choice(["thomas", "tomas", "smith", "okafor", "ng", None])),
            date_of_birth=rng.choice([None, "1985-03-12", "1985-12-03", "1985-03-13", "1990-01-01"]),
            address_line=rng.choice([None, "12 baker st", "12 bakerst", "21 baker st", "4 high rd"]),
            postcode=rng.choice([None, "NW1 6XE", "NW1 6XF", "LS1 4AB"]),
            city=rng.choice([None, "london", "londn", "leeds"]),
        )
        if national_ids and (value := typo(rng.choice([None, "QQ123456C", "AB999999D"]))):
            return replace(person, identifiers=frozenset({(NATIONAL_ID, value)}))
        return person

    return [draw() for _ in range(count)]


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
