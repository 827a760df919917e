"""Parsing CDC records from Kafka into `ChangeEvent`s.

Accepted value formats:

* Debezium JSON envelope (`before`, `after`, `source`, `op`, `ts_ms`), with or without the
  `{"schema": ..., "payload": ...}` wrapper that the JSON converter adds when schemas are enabled.
* AWS DMS Kafka messages (`{"data": {...}, "metadata": {"operation": ..., ...}}`).
* Tombstones (a null value after a delete): returned as a `ChangeEvent` with op "tombstone", a
  no-op that confirms the delete.

System and table come from the topic: through `CdcParserConfig.routes` (the source catalogue's
topics and patterns, so Debezium's default names, routed names and DMS topics all work), or
without routes from the convention `cdc.<system>.<table>`. Anything unusable is returned as a
`DeadLetter(source="cdc")` with a specific reason; nothing here raises on bad input.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

from rag_assets.platform import json_codec
from rag_assets.platform.dead_letters import DeadLetter
from rag_assets.platform.item_guard import failure_reason

DEFAULT_MAX_VALUE_BYTES = 1024 * 1024
# PostgreSQL indexes the primary key (a btree entry holds at most ~2,700 bytes).
MAX_PK_BYTES = 1024
DEFAULT_PK_COLUMNS: tuple[str, ...] = ("id",)

DEBEZIUM_OPS = frozenset({"c", "u", "d", "r", "t"})
TOMBSTONE = "tombstone"
DMS_OPERATIONS = {"load": "r", "insert": "c", "update": "u", "delete": "d", "truncate": "t"}


class KafkaPosition(NamedTuple):
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class ChangeEvent:
    """One row change of a source table.

    `row` is the after image for c/u/r, the before image for d (possibly only its key), and None
    for t and tombstones. `pk` is canonical: the bare value for a one-column key, else
    `col=value` pairs sorted by column and joined with "|". `pk` is "" for a truncate.
    """

    system: str
    table: str
    pk: str
    op: str
    row: dict[str, Any] | None
    source_ts_ms: int | None
    tx_id: int | str | None
    lsn: int | str | None
    position: KafkaPosition


@dataclass(frozen=True)
class TableRoute:
    """The source table a topic carries, and how to read its events."""

    system: str
    table: str
    source_table: str | None = None  # the `source.table` its events carry (None: `table`)
    pk_columns: tuple[str, ...] | None = None
    envelope: str = "any"  # any, debezium or dms


@dataclass(frozen=True)
class CdcParserConfig:
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    # Without routes: None accepts any (system, table) named by a well-formed topic.
    known_tables: Collection[tuple[str, str]] | None = None
    pk_columns: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    # Debezium routing transforms can rename topics; switch off if the topic table is an alias.
    check_source_table: bool = True
    # topic -> the routes of every table claiming it (the catalogue); None: `cdc.<system>.<table>`.
    routes: Callable[[str], Sequence[TableRoute]] | None = None
    catalogue_path: str | None = None  # named in the dead letter of an unknown table

    def pk_columns_for(self, route: TableRoute) -> tuple[str, ...]:
        if route.pk_columns:
            return route.pk_columns
        return tuple(self.pk_columns.get((route.system, route.table), DEFAULT_PK_COLUMNS))


# What PostgreSQL text and JSONB cannot store: NUL (JSON "\u0000") and lone surrogates (JSON
# "\ud800" without its pair). JSON text can only carry them as escapes, hence the fast check.
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_UNSTORABLE_CHAR = re.compile("[\x00\ud800-\udfff]")


class _Rejected(Exception):
    """Internal: the record is unusable; the message is the dead-letter reason."""


def parse_cdc_record(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    config: CdcParserConfig | None = None,
) -> ChangeEvent | DeadLetter:
    """Parse one Kafka record of a `cdc.<system>.<table>` topic."""
    config = config or CdcParserConfig()
    position = KafkaPosition(topic, partition, offset)
    try:
        return _parse(position, key, value, config)
    except _Rejected as rejected:
        reason = str(rejected)
    except Exception as error:  # noqa: BLE001 — input nobody foresaw: a dead letter, not a stall
        reason = failure_reason("cdc parser", error)
    oversized = value is not None and len(value) > config.max_value_bytes
    return DeadLetter(
        source="cdc",
        reason=reason,
        payload=None if oversized else value,
        topic=topic,
        partition=partition,
        offset=offset,
        record_key=_record_key_of(topic, key, config),
    )


def _record_key_of(topic: str, key: bytes | None, config: CdcParserConfig) -> str | None:
    """`system.table:pk` of a rejected record when its topic names a table and its Kafka key
    the row (what ties its dead letter to a person); None when either is unusable."""
    try:
        route = _route(topic, config, None)
        key_fields = _parse_key(key)
        if not key_fields:
            return None
        pk = _resolve_pk(key_fields, {}, config.pk_columns_for(route), prefer="key")
    except Exception:  # noqa: BLE001 — the letter is stored without it
        return None
    return f"{route.system}.{route.table}:{pk}"


def _parse(
    position: KafkaPosition, key: bytes | None, value: bytes | None, config: CdcParserConfig
) -> ChangeEvent:
    if value is not None and len(value) > config.max_value_bytes:
        _route(position.topic, config, None)
        raise _Rejected(
            f"value of {len(value)} bytes exceeds the limit of {config.max_value_bytes} bytes"
        )
    document = None if value is None else _decode_value(value)
    route = _route(position.topic, config, document)
    key_fields = _parse_key(key)
    if document is None:
        return _tombstone(position, route, key_fields)
    if "metadata" in document and "data" in document:
        _expect_envelope(route, "dms", "an AWS DMS message")
        return _from_dms(position, route, key_fields, document, config)
    if "op" in document:
        _expect_envelope(route, "debezium", "a Debezium envelope")
        return _from_debezium(position, route, key_fields, document, config)
    raise _Rejected("value is neither a Debezium envelope (no 'op') nor a DMS message")


def _decode_value(value: bytes) -> dict[str, Any] | None:
    """The envelope of a value (schema wrapper removed); None for a null payload."""
    document = _decode_json(value, "value")
    if not isinstance(document, dict):
        raise _Rejected(f"value is JSON {_json_type(document)}, expected an object")
    return _unwrap_schema(document, "value")


def _expect_envelope(route: TableRoute, envelope: str, found: str) -> None:
    if route.envelope not in ("any", envelope):
        raise _Rejected(f"table {route.system}.{route.table} has envelope: {route.envelope} in "
                        f"the source catalogue, but this value is {found}")


def _route(topic: str, config: CdcParserConfig, document: dict[str, Any] | None) -> TableRoute:
    if config.routes is None:
        return _conventional_route(topic, config)
    routes = list(config.routes(topic))
    if len(routes) == 1:
        return routes[0]
    catalogue = config.catalogue_path or "the source catalogue"
    if routes:
        names = " and ".join(f"{r.system}.{r.table}" for r in routes)
        raise _Rejected(f"topic {topic!r} is claimed by tables {names} in {catalogue}; make their "
                        "topics or topic_pattern disjoint")
    seen = _source_description(document)
    raise _Rejected(f"topic {topic!r}{seen} is not a known source table: add it under `sources:` "
                    f"in {catalogue} (topics: [{topic}]), then replay the dead letters")


def _source_description(document: dict[str, Any] | None) -> str:
    """What an event says of its own table: Debezium's source block or DMS metadata."""
    if not document:
        return ""
    block = document.get("source")
    names = ("db", "schema", "table")
    if not isinstance(block, dict):
        block, names = document.get("metadata"), ("schema-name", "table-name")
    if not isinstance(block, dict):
        return ""
    parts = [f"{name}={block[name]}" for name in names if isinstance(block.get(name), (str, int))]
    return f" (source {', '.join(parts)})" if parts else ""


def _conventional_route(topic: str, config: CdcParserConfig) -> TableRoute:
    parts = topic.split(".")
    if len(parts) != 3 or parts[0] != "cdc" or not all(parts):
        raise _Rejected(f"topic {topic!r} is not of the form cdc.<system>.<table>")
    system, table = parts[1], parts[2]
    if config.known_tables is not None and (system, table) not in config.known_tables:
        raise _Rejected(f"table {system}.{table} is not a known source table")
    return TableRoute(system, table)


def _decode_json(raw: bytes, what: str) -> Any:
    if not raw:
        raise _Rejected(f"{what} is empty (zero bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _Rejected(f"{what} is not valid UTF-8 (byte {error.start})") from None
    try:
        # What orjson rejects or might read differently (NaN, huge numbers) goes to the standard
        # library, whose errors name the reason.
        document = json_codec.loads(raw, fallback=lambda _: json.loads(
            text, parse_constant=_reject_constant, parse_float=_finite_float))
    except json.JSONDecodeError as error:
        raise _Rejected(f"{what} is malformed JSON: {error.msg} at char {error.pos}") from None
    except RecursionError:
        raise _Rejected(f"{what} JSON is nested too deeply") from None
    except ValueError as error:  # e.g. an integer beyond Python's conversion limit (4300 digits)
        raise _Rejected(f"{what} is JSON that cannot be decoded: {error}") from None
    if _UNSTORABLE_ESCAPE.search(text):
        _reject_unstorable(document, what)
    return document


def _reject_unstorable(document: Any, what: str) -> None:
    """Reject a NUL or a lone surrogate anywhere in the document (keys included)."""
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and (found := _UNSTORABLE_CHAR.search(item)):
            kind = "a NUL character" if found.group() == "\x00" else "a lone surrogate"
            raise _Rejected(f"{what} holds {kind}, which PostgreSQL text cannot store")


def _reject_constant(name: str) -> Any:
    raise _Rejected(f"JSON contains the non-standard constant {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # e.g. 1e400: JSON allows it, a double (and jsonb via orjson) cannot
        raise _Rejected(f"JSON number {text[:40]} is beyond the range of a double")
    return value


def _json_type(document: Any) -> str:
    if isinstance(document, list):
        return "an array"
    if isinstance(document, str):
        return "a string"
    if isinstance(document, bool):
        return "a boolean"
    if isinstance(document, (int, float)):
        return "a number"
    if isinstance(document, dict):
        return "an object"
    return "null" if document is None else type(document).__name__


def _unwrap_schema(document: dict[str, Any], what: str) -> dict[str, Any] | None:
    if set(document) != {"schema", "payload"}:
        return document
    payload = document["payload"]
    if payload is not None and not isinstance(payload, dict):
        raise _Rejected(f"{what} 'payload' is {_json_type(payload)}, expected an object")
    return payload


def _parse_key(key: bytes | None) -> dict[str, Any] | None:
    if key is None:
        return None
    document = _decode_json(key, "key")
    if isinstance(document, dict):
        document = _unwrap_schema(document, "key")
        return document or None
    if isinstance(document, (str, int)) and not isinstance(document, bool):
        return {"": document}
    raise _Rejected(f"key is JSON {_json_type(document)}, expected an object or a scalar")


def _tombstone(
    position: KafkaPosition, route: TableRoute, key_fields: dict[str, Any] | None
) -> ChangeEvent:
    if key_fields is None:
        raise _Rejected("tombstone (null value) without a key")
    return ChangeEvent(
        system=route.system,
        table=route.table,
        pk=_canonical_pk(key_fields),
        op=TOMBSTONE,
        row=None,
        source_ts_ms=None,
        tx_id=None,
        lsn=None,
        position=position,
    )


def _from_debezium(
    position: KafkaPosition,
    route: TableRoute,
    key_fields: dict[str, Any] | None,
    envelope: dict[str, Any],
    config: CdcParserConfig,
) -> ChangeEvent:
    op = envelope["op"]
    if not isinstance(op, str) or op not in DEBEZIUM_OPS:
        raise _Rejected(f"unknown op {op!r}; expected one of c, u, d, r, t")
    before = _optional_object(envelope, "before")
    after = _optional_object(envelope, "after")
    source = _optional_object(envelope, "source") or {}
    system, table = route.system, route.table
    expected = route.source_table or table
    if config.check_source_table and "table" in source and source["table"] != expected:
        raise _Rejected(f"source.table {source['table']!r} does not match topic table {expected!r}")
    ts_ms = _optional_int(source, "ts_ms", "source.ts_ms")
    if ts_ms is None:
        ts_ms = _optional_int(envelope, "ts_ms", "ts_ms")
    tx_id = _optional_scalar(source, "txId", "source.txId")
    lsn = _optional_scalar(source, "lsn", "source.lsn")
    if isinstance(lsn, int):
        _check_64_bits(lsn, "source.lsn")
    if op == "t":
        pk, row = "", None
    else:
        row = before if op == "d" else after
        if row is None:
            if op != "d":
                raise _Rejected(f"op {op!r} without an 'after' image")
            if key_fields is None:
                raise _Rejected("op 'd' without a 'before' image or a Kafka key")
            row = {}
        pk = _resolve_pk(key_fields, row, config.pk_columns_for(route), prefer="key")
        if op == "d" and not row and key_fields:
            row = {name: v for name, v in key_fields.items() if name}
    return ChangeEvent(system, table, pk, op, row, ts_ms, tx_id, lsn, position)


def _from_dms(
    position: KafkaPosition,
    route: TableRoute,
    key_fields: dict[str, Any] | None,
    message: dict[str, Any],
    config: CdcParserConfig,
) -> ChangeEvent:
    metadata = message["metadata"]
    if not isinstance(metadata, dict):
        raise _Rejected(f"DMS 'metadata' is {_json_type(metadata)}, expected an object")
    record_type = metadata.get("record-type", "data")
    operation = metadata.get("operation")
    if record_type != "data" and operation != "truncate":
        raise _Rejected(f"DMS {record_type} record ({operation!r}) carries no row change")
    if not isinstance(operation, str) or operation not in DMS_OPERATIONS:
        raise _Rejected(f"unknown DMS operation {operation!r}")
    op = DMS_OPERATIONS[operation]
    system, table = route.system, route.table
    expected = route.source_table or table
    table_name = metadata.get("table-name")
    if config.check_source_table and table_name is not None and table_name != expected:
        raise _Rejected(f"DMS table-name {table_name!r} does not match topic table {expected!r}")
    ts_ms = _dms_timestamp_ms(metadata.get("timestamp"))
    tx_id = _optional_scalar(metadata, "transaction-id", "metadata.transaction-id")
    if op == "t":
        return ChangeEvent(system, table, "", op, None, ts_ms, tx_id, None, position)
    data = message["data"]
    if not isinstance(data, dict):
        raise _Rejected(f"DMS 'data' is {_json_type(data)}, expected an object")
    # A DMS Kafka key is often the partition key ("schema.table"), not the primary key.
    pk = _resolve_pk(key_fields, data, config.pk_columns_for(route), prefer="row")
    return ChangeEvent(system, table, pk, op, data, ts_ms, tx_id, None, position)


def _dms_timestamp_ms(raw: Any) -> int | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise _Rejected(f"DMS metadata.timestamp is {_json_type(raw)}, expected an ISO string")
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise _Rejected(f"DMS metadata.timestamp {raw!r} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)  # DMS writes UTC
    return math.floor(moment.timestamp() * 1000)


def _optional_object(container: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = container.get(name)
    if value is None or isinstance(value, dict):
        return value
    raise _Rejected(f"'{name}' is {_json_type(value)}, expected an object or null")


def _optional_int(container: dict[str, Any], name: str, label: str) -> int | None:
    value = container.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Rejected(f"{label} is {_json_type(value)}, expected an integer")
    return _check_64_bits(value, label)


def _check_64_bits(value: int, label: str) -> int:
    """Versions are stored as 64-bit integers (PostgreSQL bigint)."""
    if not -(2**63) <= value < 2**63:
        raise _Rejected(f"{label} is outside the 64-bit integer range")
    return value


def _optional_scalar(container: dict[str, Any], name: str, label: str) -> int | str | None:
    value = container.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _Rejected(f"{label} is {_json_type(value)}, expected an integer or a string")
    return value


def _resolve_pk(
    key_fields: dict[str, Any] | None,
    row: dict[str, Any],
    pk_columns: tuple[str, ...],
    prefer: str,
) -> str:
    from_row = _pk_from_row(row, pk_columns)
    from_key = _canonical_pk(key_fields) if key_fields else None
    if prefer == "row":
        pk = from_row or from_key
    else:
        pk = from_key or from_row
        if from_key and from_row and from_key != from_row:
            raise _Rejected(f"key {from_key!r} does not match the row's primary key {from_row!r}")
    if pk is None:
        raise _Rejected(f"missing key: no Kafka key and no {'/'.join(pk_columns)} in the row")
    return pk


def _pk_from_row(row: dict[str, Any], pk_columns: tuple[str, ...]) -> str | None:
    if not all(column in row for column in pk_columns):
        return None
    return _canonical_pk({column: row[column] for column in pk_columns})


def _canonical_pk(key_fields: Mapping[str, Any]) -> str:
    """The canonical string of a primary key: `1001` or `a=1|b=x` for a composite key."""
    for name, value in key_fields.items():
        if value is None:
            raise _Rejected(f"key column {name or 'value'!r} is null")
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            label = name or "value"
            raise _Rejected(
                f"key column {label!r} is {_json_type(value)}, expected an integer or a string"
            )
    if len(key_fields) == 1:
        pk = str(next(iter(key_fields.values())))
    else:
        pk = "|".join(f"{name}={key_fields[name]}" for name in sorted(key_fields))
    if len(pk.encode("utf-8", "surrogatepass")) > MAX_PK_BYTES:
        raise _Rejected(f"primary key of {len(pk)} characters exceeds the {MAX_PK_BYTES}-byte limit")
    return pk
