"""Row changes encoded as Debezium PostgreSQL-connector JSON change events.

Value: `{"before", "after", "source": {version, connector, name, ts_ms, snapshot, db,
sequence, schema, table, txId, lsn, xmin}, "op", "ts_ms"}`, optionally inside the JSON
converter's `{"schema": ..., "payload": ...}` wrapper. Key: `{"id": <pk>}`. Topic:
`cdc.<system>.<table>`.

What the connector really does, and so do we:

* an initial snapshot emits op "r" for every row, all in one transaction at one LSN, with
  `source.snapshot` "first" ... "true" ... "last" (and "false" once streaming);
* streaming changes get increasing txId / LSN and `ts_ms`; a transaction may hold several rows;
* `before` depends on the table's REPLICA IDENTITY: FULL gives the old row on updates and
  deletes; DEFAULT gives no `before` on updates and only the key (other columns null) on deletes;
* a delete is followed by a tombstone (same key, null value) for log compaction;
* `date` columns are days since the epoch (`io.debezium.time.Date`), `timestamptz` columns are
  ISO-8601 strings (`io.debezium.time.ZonedTimestamp`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from rag_assets.demo.source_systems import COLUMNS, RowChange

DEBEZIUM_VERSION = "2.7.3.Final"
_EPOCH = date(1970, 1, 1)


def topic_for(system: str, table: str, prefix: str = "") -> str:
    return f"{prefix}cdc.{system}.{table}"


@dataclass(frozen=True)
class KafkaMessage:
    topic: str
    key: bytes | None
    value: bytes | None  # None = tombstone
    op: str  # "r","c","u","d" or "tombstone"; "feedback" for app.feedback


def encode_value(value: Any, column_type: str) -> Any:
    if value is None:
        return None
    if column_type == "date":
        return (value - _EPOCH).days if isinstance(value, date) else value
    if column_type == "timestamptz" and isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return value


def encode_row(system: str, table: str, row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {name: encode_value(row.get(name), kind) for name, kind in COLUMNS[(system, table)]}


_CONNECT_TYPES = {"int64": "int64", "int32": "int32", "string": "string", "date": "int32",
                  "timestamptz": "string"}
_LOGICAL = {"date": "io.debezium.time.Date", "timestamptz": "io.debezium.time.ZonedTimestamp"}


def connect_schema(server: str, db_schema: str, system: str, table: str) -> dict[str, Any]:
    """The Kafka Connect JSON schema the converter puts beside the payload."""
    prefix = f"{server}.{db_schema}.{table}"
    value_fields = []
    for name, kind in COLUMNS[(system, table)]:
        entry: dict[str, Any] = {"type": _CONNECT_TYPES[kind], "optional": name != "id",
                                 "field": name}
        if kind in _LOGICAL:
            entry.update(name=_LOGICAL[kind], version=1)
        value_fields.append(entry)
    value = {"type": "struct", "fields": value_fields, "optional": True, "name": f"{prefix}.Value"}
    source_fields = [
        {"type": "string", "optional": False, "field": "version"},
        {"type": "string", "optional": False, "field": "connector"},
        {"type": "string", "optional": False, "field": "name"},
        {"type": "int64", "optional": False, "field": "ts_ms"},
        {"type": "string", "optional": True, "name": "io.debezium.data.Enum", "version": 1,
         "parameters": {"allowed": "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"}, "default": "false",
         "field": "snapshot"},
        {"type": "string", "optional": False, "field": "db"},
        {"type": "string", "optional": True, "field": "sequence"},
        {"type": "string", "optional": False, "field": "schema"},
        {"type": "string", "optional": False, "field": "table"},
        {"type": "int64", "optional": True, "field": "txId"},
        {"type": "int64", "optional": True, "field": "lsn"},
        {"type": "int64", "optional": True, "field": "xmin"},
    ]
    return {
        "type": "struct",
        "fields": [
            {**value, "field": "before"},
            {**value, "field": "after"},
            {"type": "struct", "fields": source_fields, "optional": False,
             "name": "io.debezium.connector.postgresql.Source", "field": "source"},
            {"type": "string", "optional": False, "field": "op"},
            {"type": "int64", "optional": True, "field": "ts_ms"},
        ],
        "optional": False,
        "name": f"{prefix}.Envelope",
        "version": 1,
    }


@dataclass
class DebeziumEncoder:
    """Stateful encoder: it owns the transaction id and LSN counters of the fake databases.

    `tx_id` / `lsn` are where the counters start; the publisher derives them from the wall
    clock so that a second run continues above the first. `wrapped_tables` get the
    `{"schema","payload"}` wrapper; `replica_identity_full` tables carry full `before` images.
    """

    server_name: str = "airline"
    topic_prefix: str = ""
    tx_id: int = 7_000
    lsn: int = 33_816_576
    wrapped_tables: frozenset[tuple[str, str]] = frozenset({("loyalty", "members")})
    replica_identity_full: frozenset[tuple[str, str]] = frozenset(
        {("crm", "customers"), ("loyalty", "members")})
    db_schema: str = "public"
    _schemas: dict[tuple[str, str], dict] = field(default_factory=dict, repr=False)

    def topic(self, system: str, table: str) -> str:
        return topic_for(system, table, self.topic_prefix)

    @staticmethod
    def key(pk: int) -> bytes:
        return json.dumps({"id": pk}, separators=(",", ":")).encode()

    def _source(self, system: str, table: str, ts_ms: int, snapshot: str, tx_id: int,
                lsn: int) -> dict[str, Any]:
        return {
            "version": DEBEZIUM_VERSION,
            "connector": "postgresql",
            "name": self.server_name,
            "ts_ms": ts_ms,
            "snapshot": snapshot,
            "db": system,
            "sequence": json.dumps([str(lsn - 8), str(lsn)], separators=(",", ":")),
            "schema": self.db_schema,
            "table": table,
            "txId": tx_id,
            "lsn": lsn,
            "xmin": None,
        }

    def _value(self, system: str, table: str, envelope: dict[str, Any]) -> bytes:
        if (system, table) in self.wrapped_tables:
            schema = self._schemas.get((system, table))
            if schema is None:
                schema = self._schemas[(system, table)] = connect_schema(
                    self.server_name, self.db_schema, system, table)
            envelope = {"schema": schema, "payload": envelope}
        return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()

    def snapshot(self, system: str, table: str, rows: Iterable[Mapping[str, Any]], ts_ms: int,
                 last_table: bool = True) -> list[KafkaMessage]:
        """Snapshot reads (op "r") of a table's rows: one transaction, one LSN.

        `ts_ms` is when the snapshot ran; each event's own `ts_ms` is a few ms later.
        """
        rows = list(rows)
        self.tx_id += 1
        self.lsn += 4096
        messages = []
        for i, row in enumerate(rows):
            marker = "first" if i == 0 else "true"
            if i == len(rows) - 1 and last_table:
                marker = "last"
            envelope = {
                "before": None,
                "after": encode_row(system, table, row),
                "source": self._source(system, table, ts_ms, marker, self.tx_id, self.lsn),
                "op": "r",
                "ts_ms": ts_ms + 2 + i // 50,
            }
            messages.append(KafkaMessage(self.topic(system, table), self.key(row["id"]),
                                         self._value(system, table, envelope), "r"))
        return messages

    def change(self, change: RowChange, ts_ms: int, new_transaction: bool = True) -> list[KafkaMessage]:
        """A streamed c/u/d event (and the tombstone that follows a delete)."""
        system, table = change.system, change.table
        if new_transaction:
            self.tx_id += 1
        self.lsn += 8 * (1 + len(json.dumps(encode_row(system, table, change.after or change.before))))
        full = (system, table) in self.replica_identity_full
        if change.op == "c":
            before = None
        elif change.op == "u":
            before = encode_row(system, table, change.before) if full else None
        elif change.op == "d":
            if full:
                before = encode_row(system, table, change.before)
            else:  # REPLICA IDENTITY DEFAULT: only the key columns are known
                before = {name: (change.pk if name == "id" else None)
                          for name, _ in COLUMNS[(system, table)]}
        else:
            raise ValueError(f"unsupported op {change.op!r}")
        envelope = {
            "before": before,
            "after": encode_row(system, table, change.after) if change.op != "d" else None,
            "source": self._source(system, table, ts_ms, "false", self.tx_id, self.lsn),
            "op": change.op,
            "ts_ms": ts_ms + 3,
        }
        topic, key = self.topic(system, table), self.key(change.pk)
        messages = [KafkaMessage(topic, key, self._value(system, table, envelope), change.op)]
        if change.op == "d":
            messages.append(KafkaMessage(topic, key, None, "tombstone"))
        return messages
