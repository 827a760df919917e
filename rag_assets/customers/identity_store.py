"""The identity graph in PostgreSQL: `IdentityGraphStore` reads and `GraphDelta` writes.

Reads answer for the state before the batch (the graph overlays its own changes); `write`
applies a delta inside the caller's transaction and queues the affected customers' profiles.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict

from psycopg.types.json import Jsonb

from rag_assets.customers.identifiers import PersonIdentity
from rag_assets.customers.identity_graph import Edge, GraphDelta, IdentityNode, Rank
from rag_assets.customers.source_state import RecordKey


def record_key_text(key: RecordKey) -> str:
    return str(key)


def parse_record_key(text: str) -> RecordKey:
    """Inverse of `str(RecordKey)`: "system.table:pk" (system and table hold no '.' or ':')."""
    system, rest = text.split(".", 1)
    table, pk = rest.split(":", 1)
    return RecordKey(system, table, pk)


def _identity_json(identity: PersonIdentity) -> Jsonb:
    fields = asdict(identity)
    fields["identifiers"] = sorted(list(pair) for pair in identity.identifiers)
    return Jsonb(fields)


def _identity(value: dict) -> PersonIdentity:
    return PersonIdentity(**{**value, "identifiers": frozenset(tuple(p) for p in value["identifiers"])})


def _keys(texts: Iterable[str]) -> set[RecordKey]:
    return {parse_record_key(t) for t in texts}


class PostgresIdentityStore:
    def __init__(self, cur):
        self.cur = cur

    # --- reads (IdentityGraphStore) ---
    def nodes(self, keys: Iterable[RecordKey]) -> dict[RecordKey, IdentityNode]:
        self.cur.execute(
            "SELECT record_key, identity, first_seen_ts, first_seen_lsn FROM identity_nodes"
            " WHERE record_key = ANY(%s)", ([record_key_text(k) for k in keys],))
        return {
            parse_record_key(k): IdentityNode(parse_record_key(k), _identity(i), (ts, lsn))
            for k, i, ts, lsn in self.cur.fetchall()
        }

    def _lookup(self, kind: str, value: str, limit: int) -> set[RecordKey]:
        self.cur.execute(
            "SELECT record_key FROM identity_lookup WHERE kind = %s AND value = %s"
            " ORDER BY record_key LIMIT %s", (kind, value, limit))
        return _keys(r[0] for r in self.cur.fetchall())

    def keys_with_identifier(self, kind: str, value: str, limit: int) -> set[RecordKey]:
        return self._lookup(kind, value, limit)

    def keys_with_blocking_key(self, block: str, limit: int) -> set[RecordKey]:
        return self._lookup("block", block, limit)

    def edges_of(self, key: RecordKey) -> set[Edge]:
        text = record_key_text(key)
        self.cur.execute(
            "SELECT a_key, b_key, rule, score FROM identity_edges WHERE a_key = %s OR b_key = %s",
            (text, text))
        return {Edge(parse_record_key(a), parse_record_key(b), rule, score)
                for a, b, rule, score in self.cur.fetchall()}

    def customer_ids(self, keys: Iterable[RecordKey]) -> dict[RecordKey, str]:
        self.cur.execute(
            "SELECT record_key, customer_id FROM customer_assignments WHERE record_key = ANY(%s)",
            ([record_key_text(k) for k in keys],))
        return {parse_record_key(k): c for k, c in self.cur.fetchall()}

    def members(self, customer_id: str) -> set[RecordKey]:
        self.cur.execute("SELECT record_key FROM customer_assignments WHERE customer_id = %s",
                         (customer_id,))
        return _keys(r[0] for r in self.cur.fetchall())

    def customer_id_ranks(self, customer_ids: Iterable[str]) -> dict[str, Rank]:
        self.cur.execute("SELECT customer_id, rank FROM customer_ids WHERE customer_id = ANY(%s)",
                         (list(customer_ids),))
        return {cid: tuple(rank) for cid, rank in self.cur.fetchall()}

    # --- write ---
    def write(self, delta: GraphDelta, run_id: str | None = None) -> None:
        cur = self.cur
        replaced = [record_key_text(k) for k in delta.nodes_deleted | set(delta.nodes_upserted)]
        cur.execute("DELETE FROM identity_nodes WHERE record_key = ANY(%s)", (replaced,))
        cur.execute("DELETE FROM identity_lookup WHERE record_key = ANY(%s)", (replaced,))
        nodes = delta.nodes_upserted.values()
        cur.executemany(
            "INSERT INTO identity_nodes (record_key, identity, first_seen_ts, first_seen_lsn)"
            " VALUES (%s, %s, %s, %s)",
            [(record_key_text(n.key), _identity_json(n.identity), *n.first_seen) for n in nodes])
        cur.executemany(
            "INSERT INTO identity_lookup (kind, value, record_key) VALUES (%s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            [(kind, value, record_key_text(n.key))
             for n in nodes
             for kind, value in [*n.identity.identifiers, *(("block", b) for b in n.blocking_keys)]])
        cur.executemany(
            "DELETE FROM identity_edges WHERE a_key = %s AND b_key = %s AND rule = %s",
            [(record_key_text(e.a), record_key_text(e.b), e.rule) for e in delta.edges_removed])
        cur.executemany(
            "INSERT INTO identity_edges (a_key, b_key, rule, score) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (a_key, b_key, rule) DO UPDATE SET score = EXCLUDED.score",
            [(record_key_text(e.a), record_key_text(e.b), e.rule, e.score) for e in delta.edges_added])
        cur.execute("DELETE FROM customer_assignments WHERE record_key = ANY(%s)",
                    ([record_key_text(k) for k in delta.unassigned],))
        cur.executemany(
            "INSERT INTO customer_assignments (record_key, customer_id) VALUES (%s, %s)"
            " ON CONFLICT (record_key) DO UPDATE SET customer_id = EXCLUDED.customer_id,"
            " assigned_at = now()",
            [(record_key_text(k), cid) for k, cid in delta.assignments.items()])
        cur.executemany(
            "INSERT INTO customer_ids (customer_id, rank) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            [(cid, Jsonb(list(rank))) for cid, rank in delta.new_customer_ids.items()])
        cur.executemany(
            "INSERT INTO cluster_history (kind, customer_id, other_id, run_id) VALUES (%s, %s, %s, %s)",
            [(e.kind, e.customer_id, e.other_id, run_id) for e in delta.events])
        cur.executemany(
            "INSERT INTO profile_pending (customer_id) VALUES (%s) ON CONFLICT DO NOTHING",
            [(cid,) for cid in delta.affected_customer_ids])

    def clear(self) -> None:
        self.cur.execute(
            "TRUNCATE identity_nodes, identity_lookup, identity_edges, customer_assignments,"
            " customer_ids, cluster_history, profile_pending")
