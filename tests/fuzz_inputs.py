"""Arbitrary input for the three sources, for property tests (Hypothesis strategies) and for
`bench/fuzz.py` (a seeded generator fast enough for millions of records).

Both draw from the same kinds: arbitrary bytes; arbitrary JSON (any nesting, integers of any
size, floats at the edge of a double, strings with any code point, lone surrogates and NUL as
JSON escapes, huge and empty values); a valid message of the source with one field — at any
depth — replaced by arbitrary JSON or removed; and a valid message cut short.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

# -- valid messages, one per source and envelope -------------------------------------------

CDC_TOPIC = "cdc.crm.customers"


def debezium_value(pk: int = 1001, with_schema: bool = False) -> dict[str, Any]:
    envelope = {
        "before": None,
        "after": {"id": pk, "first_name": "Ada", "last_name": "Lovelace",
                  "email": "ada@example.com", "phone": "+44 20 7946 0958",
                  "date_of_birth": 4000, "country": "GB"},
        "source": {"version": "2.7.3.Final", "connector": "postgresql", "name": "crm",
                   "ts_ms": 1_700_000_000_000, "db": "crm", "schema": "public",
                   "table": "customers", "txId": 777, "lsn": 123456},
        "op": "c", "ts_ms": 1_700_000_000_100,
    }
    return {"schema": {"type": "struct"}, "payload": envelope} if with_schema else envelope


def dms_value(pk: int = 1001) -> dict[str, Any]:
    return {"data": {"id": pk, "first_name": "Ada", "email": "ada@example.com"},
            "metadata": {"timestamp": "2026-01-05T10:00:00.000000Z", "record-type": "data",
                         "operation": "update", "partition-key-type": "primary-key",
                         "schema-name": "public", "table-name": "customers",
                         "transaction-id": 42}}


def feedback_value(turn: int = 1) -> dict[str, Any]:
    return {"conversation_id": "conv-1", "turn_id": turn, "customer_ref": "crm:1001",
            "ts": "2026-01-05T10:00:00Z", "question": "How much baggage?", "answer": "23 kg",
            "model_id": "model-a", "latency_ms": 850.5, "retrieved_ids": ["kb-1", "kb-2"],
            "rating": 4, "comment": "helpful"}


def notification_value(key: str = "knowledge-base/a.md") -> dict[str, Any]:
    return {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3",
                         "eventTime": "2026-01-05T10:00:00.000Z", "eventName": "ObjectCreated:Put",
                         "s3": {"bucket": {"name": "kb"},
                                "object": {"key": key, "size": 120, "eTag": "abc",
                                           "sequencer": "0055AED6DCD90281E5"}}}]}


VALID_VALUES: dict[str, list[Callable[[], dict[str, Any]]]] = {
    "cdc": [debezium_value, lambda: debezium_value(with_schema=True), dms_value],
    "feedback": [feedback_value],
    "notification": [notification_value],
}


def encode(document: Any) -> bytes:
    """JSON text of any document, lone surrogates included (as escapes, as a producer may)."""
    return json.dumps(document).encode("utf-8")


def paths(document: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys and indexes) to a value inside `document`."""
    found = []
    if isinstance(document, dict):
        items = document.items()
    elif isinstance(document, list):
        items = enumerate(document)
    else:
        return found
    for name, value in items:
        found.append((*prefix, name))
        found.extend(paths(value, (*prefix, name)))
    return found


_REMOVE = object()


def replaced(document: Any, path: tuple, value: Any) -> Any:
    """A copy of `document` with the value at `path` replaced (or removed, for `_REMOVE`)."""
    document = json.loads(json.dumps(document))
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    if value is _REMOVE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return document


# -- Hypothesis strategies ------------------------------------------------------------------

_EDGE_NUMBERS = st.sampled_from([0, -1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30,
                                 1.7976931348623157e308, 5e-324, -0.0, 1e-300])
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), _EDGE_NUMBERS,
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters() | st.characters(categories=["Cs"]), max_size=30),
    st.sampled_from(["", " ", "\x00", "\ud800", "\u202e", "x" * 5000, "9" * 5000]),
)
json_values = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_messages(draw, source: str) -> bytes:
    """A valid message of `source` with one field anywhere replaced by arbitrary JSON or removed,
    or cut short, or arbitrary JSON or bytes."""
    base = draw(st.sampled_from(VALID_VALUES[source]))()
    kind = draw(st.sampled_from(["replace", "remove", "truncate", "json", "bytes", "deep"]))
    if kind == "replace":
        return encode(replaced(base, draw(st.sampled_from(paths(base))), draw(json_values)))
    if kind == "remove":
        return encode(replaced(base, draw(st.sampled_from(paths(base))), _REMOVE))
    if kind == "truncate":
        raw = encode(base)
        return raw[:draw(st.integers(0, len(raw) - 1))]
    if kind == "json":
        return encode(draw(json_values))
    if kind == "deep":
        depth = draw(st.integers(1, 100_000))
        return b"[" * depth + b"]" * depth
    return draw(st.binary(max_size=200))


# -- the seeded generator of bench/fuzz.py ----------------------------------------------------

class RandomInput:
    """The same kinds of input as `mutated_messages`, drawn from a seeded `random.Random`."""

    KINDS = ("replace", "remove", "truncate", "json", "bytes", "deep", "huge_number", "valid")

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def scalar(self) -> Any:
        rng = self.rng
        pick = rng.randrange(10)
        if pick == 0:
            return None
        if pick == 1:
            return rng.random() < 0.5
        if pick == 2:
            return rng.randint(-(2**70), 2**70)
        if pick == 3:
            return rng.choice([2**63, -(2**63) - 1, 10**30, 1.7976931348623157e308, -0.0])
        if pick == 4:
            return rng.uniform(-1e12, 1e12)
        if pick == 5:
            return "".join(chr(rng.randrange(0x110000)) for _ in range(rng.randrange(12)))
        if pick == 6:
            return rng.choice(["", "\x00", "\ud800", "x" * 5000, "9" * 5000])
        return "".join(rng.choice("abcdefghij@.+- 0123456789") for _ in range(rng.randrange(20)))

    def value(self, depth: int = 0) -> Any:
        pick = self.rng.randrange(6)
        if depth > 3 or pick < 4:
            return self.scalar()
        if pick == 4:
            return [self.value(depth + 1) for _ in range(self.rng.randrange(4))]
        return {str(self.scalar())[:10]: self.value(depth + 1) for _ in range(self.rng.randrange(4))}

    def message(self, source: str) -> tuple[str, bytes]:
        """(kind, value bytes) of one arbitrary message of `source`."""
        rng = self.rng
        base = rng.choice(VALID_VALUES[source])()
        if source == "feedback":  # many turns, not one turn delivered many times
            base["turn_id"] = rng.randrange(1 << 30)
        kind = rng.choice(self.KINDS)
        if kind == "replace":
            raw = encode(replaced(base, rng.choice(paths(base)), self.value()))
        elif kind == "remove":
            raw = encode(replaced(base, rng.choice(paths(base)), _REMOVE))
        elif kind == "truncate":
            full = encode(base)
            raw = full[:rng.randrange(len(full))]
        elif kind == "json":
            raw = encode(self.value())
        elif kind == "bytes":
            raw = rng.randbytes(rng.randrange(200))
        elif kind == "deep":
            depth = rng.randrange(1, 3_000)  # past the decoders' recursion limits (~1,000)
            raw = b"[" * depth + b"]" * depth
        elif kind == "huge_number":
            raw = encode(base).replace(b"1001", b"9" * rng.choice([19, 400, 5000]), 1)
        else:
            raw = encode(base)
        return kind, raw


# -- whole CDC records over the demo's tables, for the pipeline part of bench/fuzz.py ----------

CDC_TABLES = {
    ("crm", "customers"): ("first_name", "last_name", "email", "phone", "national_id",
                           "date_of_birth", "address_line1", "city", "postcode", "country"),
    ("loyalty", "members"): ("member_number", "email", "phone", "full_name", "date_of_birth",
                             "tier", "points"),
    ("booking", "bookings"): ("customer_email", "phone", "passenger_first_name",
                              "passenger_last_name", "flight_no", "origin", "destination",
                              "departure_date", "status"),
    ("support", "tickets"): ("customer_email", "customer_phone", "customer_name", "subject",
                             "status", "priority"),
}


def plausible(rng: random.Random, column: str, person: int) -> Any:
    """A value of the kind the column usually holds, for person number `person`."""
    if "email" in column:
        return f"person{person}@example.com"
    if "phone" in column:
        return f"+44 7700 9{person % 100000:05d}"
    if column == "member_number":
        return f"LY{person:07d}"
    if column == "date_of_birth":
        return f"19{50 + person % 50}-0{1 + person % 9}-1{person % 10}"
    return f"{column}-{rng.randrange(50)}"


def cdc_record(source: RandomInput, ts_ms: int) -> tuple[str, str, bytes, bytes]:
    """(kind, logical topic, key, value) of one CDC record: a change of a person's row whose
    columns hold plausible values, or arbitrary JSON ("wild_row"), or a mutated message."""
    rng = source.rng
    table = rng.choice(sorted(CDC_TABLES))
    pk = rng.randrange(1, 2000)
    topic = f"cdc.{table[0]}.{table[1]}"
    kind = rng.choice(("row", "row", "wild_row", "message"))
    if kind == "message":
        _, value = source.message("cdc")
        return "message", topic, json.dumps({"id": pk}).encode(), value
    row = {"id": pk}
    for column in CDC_TABLES[table]:
        row[column] = source.value() if kind == "wild_row" and rng.random() < 0.5 \
            else plausible(rng, column, pk % 700)
    envelope = {"op": rng.choice("cuu"), "before": None, "after": row,
                "source": {"ts_ms": ts_ms, "table": table[1], "lsn": ts_ms}}
    if rng.random() < 0.05:
        envelope = {"op": "d", "before": {"id": pk}, "after": None, "source": {"ts_ms": ts_ms}}
    return kind, topic, json.dumps({"id": pk}).encode(), json.dumps(envelope).encode()
