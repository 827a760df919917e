"""The identity graph in PostgreSQL: `IdentityGraphStore` reads and `GraphDelta` writes.

Reads answer for the state before the batch (the graph overlays its own changes); `write`
applies a delta inside the caller's transaction and queues the affected customers' profiles.

A store is meant to live across the batches of a run (or of a streaming worker): what it has
read stays valid after its own writes, which it applies to its snapshot as well, so the next
batch reads from PostgreSQL only what no earlier batch loaded. Every write to the graph tables
changes `identity_graph_stamp` (a trigger); `begin` compares it with the stamp the store's own
last write left and forgets everything when someone else wrote in between (or a write of its own
was rolled back). With concurrent linkers (`cluster_locks`) another linker can also commit
between a batch's `begin` and its write; `write` then forgets the snapshot after writing. So a
snapshot survives only while this store is the graph's only writer: with linkers taking turns
or running at once, each batch reads its neighbourhood again (correct, at the cost of the reads
the snapshot saved).

`seen` collects what the graph read through the store (lookup values, customer ids) since
`begin`: the neighbourhood the linker must hold locked (`cluster_locks`).

Array parameters go in binary (`%b`): psycopg's text form quotes and escapes every element in
Python, 4-6 times slower for the tens of thousands of keys and JSON values of a batch.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from functools import lru_cache

from psycopg.types.json import Jsonb

from rag_assets.customers.identifiers import PersonIdentity
from rag_assets.customers.identity_graph import Edge, GraphDelta, IdentityNode, Rank, mint_customer_id
from rag_assets.customers.source_state import RecordKey
from rag_assets.platform import json_codec
from rag_assets.platform.db import fill_scratch_table
from rag_assets.platform.work_queue import QUEUE_CUSTOMER_AGAIN


_IDENTITY_FIELDS = tuple(f.name for f in fields(PersonIdentity) if f.name != "identifiers")


def _identity_json(identity: PersonIdentity) -> Jsonb:
    # What `dataclasses.asdict` gives, without its recursive deep copy.
    value = {"identifiers": sorted([kind, v] for kind, v in identity.identifiers)}
    value.update((name, getattr(identity, name)) for name in _IDENTITY_FIELDS)
    return Jsonb(value)


def _columns(rows: list[tuple], width: int) -> tuple[list, ...]:
    """Rows as column lists, the parameters of an `unnest(...)` insert."""
    return tuple([row[i] for row in rows] for i in range(width))


def _identity(value: dict) -> PersonIdentity:
    return PersonIdentity(**{**value, "identifiers": frozenset(tuple(p) for p in value["identifiers"])})


@lru_cache(maxsize=1 << 16)
def identity_from_text(text: str) -> PersonIdentity:
    """An identity from its stored JSON text, memoised by value: every batch loads the nodes of
    its neighbourhood again, and equal identities then share one object (cheap to compare)."""
    return _identity(json_codec.loads(text))


def _keys(texts: Iterable[str]) -> set[RecordKey]:
    return {RecordKey.parse(t) for t in texts}


def lookup_pairs(node: IdentityNode) -> list[tuple[str, str]]:
    """The `identity_lookup` rows of a node: its identifiers and ("block", key) pairs."""
    return [*node.identity.identifiers, *(("block", b) for b in node.blocking_keys)]


def lock_graph(cur, *, shared: bool = False) -> None:
    """The graph-wide lock of the schema, until the transaction ends. Exclusive (erasure,
    rebuild, a link batch too large for neighbourhood locks): the only writer of the graph.
    Shared: a link batch that locks its neighbourhood (`cluster_locks`), so such batches run
    together and none overlaps an exclusive holder."""
    if shared:
        cur.execute("SELECT pg_advisory_xact_lock_shared("
                    "hashtext('identity-graph:' || current_schema()))")
    else:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('identity-graph:' || current_schema()))")


@dataclass
class Seen:
    """What the graph read through a store: lookup values (kind, value) and customer ids."""

    pairs: set[tuple[str, str]] = field(default_factory=set)
    customer_ids: set[str] = field(default_factory=set)


# Beyond this many nodes a store starts again from an empty snapshot (memory stays bounded).
MAX_REMEMBERED_NODES = 500_000


class PostgresIdentityStore:
    """The graph in PostgreSQL. Reads answer for the stored state before the batch.

    `prefetch(changes)` loads, in a handful of set-based queries, everything `IdentityGraph.apply`
    will read for those changes (their lookups, the candidates' nodes and edges, the customers
    they belong to, those customers' members and id ranks). Later reads are answered from that
    snapshot and fall back to a query for anything it does not cover, so the result is the same
    with or without the prefetch — only the number of round trips differs. The snapshot is kept
    across batches (see the module doc): call `begin(cur)` at the start of each transaction.
    """

    def __init__(self, cur=None):
        self.cur = cur
        self._stamp: int | None = None  # the graph's stamp the snapshot describes
        self.seen = Seen()
        self._forget()

    def begin(self, cur) -> None:
        """Use `cur` (a transaction holding the graph lock, or the neighbourhood's locks); keep
        the snapshot only if the graph is still as this store last saw it. Starts `seen` anew."""
        self.cur = cur
        self.seen = Seen()
        cur.execute("SELECT stamp FROM identity_graph_stamp")
        row = cur.fetchone()
        stamp = row[0] if row else None
        if stamp is None or stamp != self._stamp or len(self._nodes) > MAX_REMEMBERED_NODES:
            self._forget()
        self._stamp = stamp

    def unchanged_since_begin(self) -> bool:
        """No one wrote the graph since `begin` (committed): what was read since describes it."""
        self.cur.execute("SELECT stamp FROM identity_graph_stamp")
        return self.cur.fetchone()[0] == self._stamp

    def _forget(self) -> None:
        self._nodes: dict[RecordKey, IdentityNode | None] = {}
        self._edges: dict[RecordKey, set[Edge]] = {}
        self._customer: dict[RecordKey, str | None] = {}
        self._members: dict[str, set[RecordKey]] = {}
        self._ranks: dict[str, Rank | None] = {}
        self._lookups: dict[tuple[str, str], list[RecordKey]] = {}
        self._lookup_limit = 0

    # --- bulk loading ---
    def prefetch(self, changes: Iterable, lookup_limit: int) -> None:
        """Load what linking `changes` (NodeChanges) reads first, in bulk: their lookups and the
        nodes found under them (to score candidates). See the class doc."""
        pairs = set()
        for change in changes:
            if change.node is not None:
                pairs |= set(lookup_pairs(change.node))
        self._prefetch_lookups(pairs, lookup_limit)
        self._prefetch_nodes({k for pair in pairs for k in self._lookups.get(pair, ())})

    def prefetch_clusters(self, changed: set[RecordKey], linked: set[RecordKey]) -> None:
        """Load, in bulk, the clusters linking will recompute: the changed records and those
        they will likely link to (`linked`), their edges and neighbours, the customers all of
        them belong to, those customers' members with their nodes and edges, and id ranks."""
        first = changed | linked
        self._prefetch_edges(first)
        neighbours = {e.other(k) for k in first for e in self._edges.get(k, ())}
        self._prefetch_customer_ids(first | neighbours)
        customer_ids = {c for k in first | neighbours if (c := self._customer[k]) is not None}
        # A new record offers the id minted from its key; the graph checks that no one else
        # holds it (members) and reads its rank.
        minted = {mint_customer_id(k) for k in changed}
        self._prefetch_members(customer_ids | minted)
        members = {k for c in customer_ids | minted for k in self._members.get(c, ())}
        everyone = first | neighbours | members
        self._prefetch_nodes(everyone)
        self._prefetch_edges(everyone)
        self._prefetch_ranks(customer_ids | minted)

    def _prefetch_lookups(self, pairs: set[tuple[str, str]], limit: int) -> None:
        pairs = [p for p in pairs if p not in self._lookups]
        if not pairs:
            return
        self.cur.execute(
            "SELECT kind, value, record_key FROM ("
            " SELECT l.kind, l.value, l.record_key, row_number() OVER"
            "  (PARTITION BY l.kind, l.value ORDER BY l.record_key COLLATE \"C\") AS n"
            " FROM identity_lookup l JOIN unnest(%b::text[], %b::text[]) AS w(kind, value)"
            " ON l.kind = w.kind AND l.value = w.value) ranked"
            " WHERE n <= %s ORDER BY kind, value, record_key COLLATE \"C\"",
            ([k for k, _ in pairs], [v for _, v in pairs], limit))
        for pair in pairs:
            self._lookups[pair] = []
        for kind, value, key in self.cur.fetchall():
            self._lookups[(kind, value)].append(RecordKey.parse(key))
        self._lookup_limit = limit if not self._lookup_limit else min(self._lookup_limit, limit)

    def _prefetch_nodes(self, keys: set[RecordKey]) -> None:
        keys = [k for k in keys if k not in self._nodes]
        if keys:
            found = self._load_nodes(keys)
            self._nodes.update({k: found.get(k) for k in keys})

    def _prefetch_edges(self, keys: set[RecordKey]) -> None:
        keys = [k for k in keys if k not in self._edges]
        if not keys:
            return
        wanted = set(keys)
        texts = [str(k) for k in keys]
        self.cur.execute(
            "SELECT a_key, b_key, rule, score FROM identity_edges WHERE a_key = ANY(%b)"
            " UNION SELECT a_key, b_key, rule, score FROM identity_edges WHERE b_key = ANY(%b)",
            (texts, texts))
        for key in keys:
            self._edges[key] = set()
        for a, b, rule, score in self.cur.fetchall():
            edge = Edge(RecordKey.parse(a), RecordKey.parse(b), rule, score)
            for end in (edge.a, edge.b):
                if end in wanted:
                    self._edges[end].add(edge)

    def _prefetch_customer_ids(self, keys: set[RecordKey]) -> None:
        keys = [k for k in keys if k not in self._customer]
        if keys:
            found = self._load_customer_ids(keys)
            self._customer.update({k: found.get(k) for k in keys})

    def _prefetch_members(self, customer_ids: set[str]) -> None:
        ids = [c for c in customer_ids if c not in self._members]
        if not ids:
            return
        self.cur.execute("SELECT customer_id, record_key FROM customer_assignments"
                         " WHERE customer_id = ANY(%b)", (ids,))
        for cid in ids:
            self._members[cid] = set()
        for cid, key in self.cur.fetchall():
            record = RecordKey.parse(key)
            self._members[cid].add(record)
            self._customer[record] = cid

    def _prefetch_ranks(self, customer_ids: set[str]) -> None:
        ids = [c for c in customer_ids if c not in self._ranks]
        if ids:
            found = self._load_ranks(ids)
            self._ranks.update({c: found.get(c) for c in ids})

    # --- reads (IdentityGraphStore) ---
    def _load_nodes(self, keys: list[RecordKey]) -> dict[RecordKey, IdentityNode]:
        self.cur.execute(
            "SELECT record_key, identity::text, first_seen_ts, first_seen_lsn FROM identity_nodes"
            " WHERE record_key = ANY(%b)", ([str(k) for k in keys],))
        return {
            (key := RecordKey.parse(k)): IdentityNode(key, identity_from_text(i), (ts, lsn))
            for k, i, ts, lsn in self.cur.fetchall()
        }

    def nodes(self, keys: Iterable[RecordKey]) -> dict[RecordKey, IdentityNode]:
        keys = list(keys)
        missing = [k for k in keys if k not in self._nodes]
        if missing:
            found = self._load_nodes(missing)
            self._nodes.update({k: found.get(k) for k in missing})
        return {k: n for k in keys if (n := self._nodes.get(k)) is not None}

    def _lookup(self, kind: str, value: str, limit: int) -> set[RecordKey]:
        self.seen.pairs.add((kind, value))
        cached = self._lookups.get((kind, value))
        if cached is not None and limit <= self._lookup_limit:
            return set(cached[:limit])
        self.cur.execute(
            "SELECT record_key FROM identity_lookup WHERE kind = %s AND value = %s"
            " ORDER BY record_key COLLATE \"C\" LIMIT %s", (kind, value, limit))
        return _keys(r[0] for r in self.cur.fetchall())

    def keys_with_identifier(self, kind: str, value: str, limit: int) -> set[RecordKey]:
        return self._lookup(kind, value, limit)

    def keys_with_blocking_key(self, block: str, limit: int) -> set[RecordKey]:
        return self._lookup("block", block, limit)

    def edges_of(self, key: RecordKey) -> set[Edge]:
        if key in self._edges:
            return set(self._edges[key])
        text = str(key)
        self.cur.execute(
            "SELECT a_key, b_key, rule, score FROM identity_edges WHERE a_key = %s OR b_key = %s",
            (text, text))
        return {Edge(RecordKey.parse(a), RecordKey.parse(b), rule, score)
                for a, b, rule, score in self.cur.fetchall()}

    def _load_customer_ids(self, keys: list[RecordKey]) -> dict[RecordKey, str]:
        self.cur.execute(
            "SELECT record_key, customer_id FROM customer_assignments WHERE record_key = ANY(%b)",
            ([str(k) for k in keys],))
        return {RecordKey.parse(k): c for k, c in self.cur.fetchall()}

    def customer_ids(self, keys: Iterable[RecordKey]) -> dict[RecordKey, str]:
        keys = list(keys)
        missing = [k for k in keys if k not in self._customer]
        result = {k: c for k in keys if (c := self._customer.get(k)) is not None}
        if missing:
            found = self._load_customer_ids(missing)
            self._customer.update({k: found.get(k) for k in missing})
            result.update(found)
        self.seen.customer_ids.update(result.values())
        return result

    def members(self, customer_id: str) -> set[RecordKey]:
        self.seen.customer_ids.add(customer_id)
        if customer_id in self._members:
            return set(self._members[customer_id])
        self.cur.execute("SELECT record_key FROM customer_assignments WHERE customer_id = %s",
                         (customer_id,))
        return _keys(r[0] for r in self.cur.fetchall())

    def _load_ranks(self, customer_ids: list[str]) -> dict[str, Rank]:
        self.cur.execute("SELECT customer_id, rank FROM customer_ids WHERE customer_id = ANY(%b)",
                         (list(customer_ids),))
        return {cid: tuple(rank) for cid, rank in self.cur.fetchall()}

    def customer_id_ranks(self, customer_ids: Iterable[str]) -> dict[str, Rank]:
        ids = list(customer_ids)
        self.seen.customer_ids.update(ids)
        missing = [c for c in ids if c not in self._ranks]
        result = {c: r for c in ids if (r := self._ranks.get(c)) is not None}
        if missing:
            result.update(self._load_ranks(missing))
        return result

    # --- write ---
    def write(self, delta: GraphDelta, run_id: str | None = None) -> None:
        """Apply `delta` in a fixed number of statements: each table gets one set-based write
        (`unnest` of column arrays), whatever the size of the batch."""
        cur = self.cur
        # Waits for a concurrent writer's commit (the trigger updates this row) and tells
        # whether one committed since `begin`: then the snapshot may hold what it changed.
        cur.execute("SELECT stamp FROM identity_graph_stamp FOR UPDATE")
        unchanged_since_begin = cur.fetchone()[0] == self._stamp
        self._stamp = None  # until the write is done, the snapshot describes no stored state
        self._remember(delta)
        self._write_nodes(delta)
        self._write_edges(delta)
        self._write_assignments(delta)
        self._write_consequences(delta, run_id)
        if unchanged_since_begin:
            cur.execute("SELECT stamp FROM identity_graph_stamp")
            self._stamp = cur.fetchone()[0]
        else:
            self._forget()

    def _write_nodes(self, delta: GraphDelta) -> None:
        """The records' nodes and their look-up rows (identifiers and blocking keys)."""
        cur = self.cur
        replaced = [str(k) for k in delta.nodes_deleted | set(delta.nodes_upserted)]
        cur.execute("DELETE FROM identity_nodes WHERE record_key = ANY(%b)", (replaced,))
        nodes = list(delta.nodes_upserted.values())
        node_keys = [str(n.key) for n in nodes]
        if nodes:
            cur.execute(
                "INSERT INTO identity_nodes (record_key, identity, first_seen_ts, first_seen_lsn)"
                " SELECT * FROM unnest(%b::text[], %b::jsonb[], %b::bigint[], %b::bigint[])",
                (node_keys, [_identity_json(n.identity) for n in nodes],
                 [n.first_seen[0] for n in nodes], [n.first_seen[1] for n in nodes]))
        lookup = [(kind, value, text)
                  for n, text in zip(nodes, node_keys, strict=True)
                  for kind, value in lookup_pairs(n)]
        # The batch's lookup rows (~20 a node), read by the next two statements.
        fill_scratch_table(cur, "written_lookup", "kind text, value text, record_key text", lookup)
        # Of the replaced records' lookup rows only those the new versions no longer hold go (a
        # relinked record keeps most of its ~20 identifiers and blocking keys); the insert then
        # adds only the new ones. The rows are those of a delete-all and insert.
        cur.execute(
            "DELETE FROM identity_lookup l WHERE l.record_key = ANY(%b) AND NOT EXISTS"
            " (SELECT FROM written_lookup n"
            " WHERE n.kind = l.kind AND n.value = l.value AND n.record_key = l.record_key)",
            (replaced,))
        if lookup:
            cur.execute(
                "INSERT INTO identity_lookup (kind, value, record_key)"
                " SELECT kind, value, record_key FROM written_lookup ON CONFLICT DO NOTHING")

    def _write_edges(self, delta: GraphDelta) -> None:
        removed = [(str(e.a), str(e.b), e.rule) for e in delta.edges_removed]
        if removed:
            self.cur.execute(
                "DELETE FROM identity_edges e USING unnest(%b::text[], %b::text[], %b::text[])"
                " AS d(a_key, b_key, rule)"
                " WHERE e.a_key = d.a_key AND e.b_key = d.b_key AND e.rule = d.rule",
                _columns(removed, 3))
        # One row per (a, b, rule): an upsert of a set may not touch a row twice.
        added = {(str(e.a), str(e.b), e.rule): e.score
                 for e in sorted(delta.edges_added)}
        if added:
            self.cur.execute(
                "INSERT INTO identity_edges (a_key, b_key, rule, score)"
                " SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::float8[])"
                " ON CONFLICT (a_key, b_key, rule) DO UPDATE SET score = EXCLUDED.score",
                _columns([(*k, score) for k, score in added.items()], 4))

    def _write_assignments(self, delta: GraphDelta) -> None:
        """Records to customers, and the customer ids minted with their ranks."""
        cur = self.cur
        if delta.unassigned:
            cur.execute("DELETE FROM customer_assignments WHERE record_key = ANY(%b)",
                        ([str(k) for k in delta.unassigned],))
        if delta.assignments:
            cur.execute(
                "INSERT INTO customer_assignments (record_key, customer_id)"
                " SELECT * FROM unnest(%b::text[], %b::text[])"
                " ON CONFLICT (record_key) DO UPDATE SET customer_id = EXCLUDED.customer_id,"
                " assigned_at = now()",
                _columns([(str(k), cid) for k, cid in delta.assignments.items()], 2))
        if delta.new_customer_ids:
            cur.execute(
                "INSERT INTO customer_ids (customer_id, rank)"
                " SELECT * FROM unnest(%b::text[], %b::jsonb[]) ON CONFLICT DO NOTHING",
                _columns([(cid, Jsonb(list(rank))) for cid, rank in delta.new_customer_ids.items()], 2))

    def _write_consequences(self, delta: GraphDelta, run_id: str | None) -> None:
        """The clusters' history (merges, splits) and the profiles to rebuild."""
        if delta.events:
            # WITH ORDINALITY and ORDER BY keep the events in the order they happened.
            self.cur.execute(
                "INSERT INTO cluster_history (kind, customer_id, other_id, run_id)"
                " SELECT kind, customer_id, other_id, %s FROM"
                " unnest(%b::text[], %b::text[], %b::text[]) WITH ORDINALITY"
                " AS e(kind, customer_id, other_id, n) ORDER BY n",
                (run_id, *_columns([(e.kind, e.customer_id, e.other_id) for e in delta.events], 3)))
        if delta.affected_customer_ids:
            self.cur.execute(
                "INSERT INTO profile_pending (customer_id) SELECT unnest(%b::text[])"
                f"{QUEUE_CUSTOMER_AGAIN}", (sorted(delta.affected_customer_ids),))

    # --- the snapshot after a write ---
    def _remember(self, delta: GraphDelta) -> None:
        """Bring the snapshot to the state `write` stores; what was unknown stays unknown."""
        for key in delta.nodes_deleted | set(delta.nodes_upserted):
            new = delta.nodes_upserted.get(key)
            if key in self._nodes:
                self._refile(key, self._nodes[key], new)
            else:  # never read: the lookup rows it leaves are unknown
                self._lookups.clear()
            self._nodes[key] = new
        for edge in delta.edges_removed:
            for end in (edge.a, edge.b):
                self._edges.get(end, set()).discard(edge)
        for edge in delta.edges_added:
            for end in (edge.a, edge.b):
                if end in self._edges:
                    self._edges[end].add(edge)
        for key in delta.unassigned:
            self._reassign(key, None)
        for key, customer_id in delta.assignments.items():
            self._reassign(key, customer_id)
        for customer_id, rank in delta.new_customer_ids.items():
            if customer_id in self._ranks and self._ranks[customer_id] is None:
                self._ranks[customer_id] = rank  # an existing rank is kept (ON CONFLICT DO NOTHING)

    def _refile(self, key: RecordKey, old: IdentityNode | None, new: IdentityNode | None) -> None:
        before = set(lookup_pairs(old)) if old is not None else set()
        after = set(lookup_pairs(new)) if new is not None else set()
        for pair in before - after:
            keys = self._lookups.get(pair)
            if keys is None:
                continue
            if len(keys) >= self._lookup_limit:  # cut at the limit: the next one is unknown
                del self._lookups[pair]
            elif key in keys:
                keys.remove(key)
        for pair in after - before:
            keys = self._lookups.get(pair)
            if keys is not None:  # the first `limit` keys in the query's (byte) order
                bisect.insort(keys, key, key=str)
                del keys[self._lookup_limit:]

    def _reassign(self, key: RecordKey, customer_id: str | None) -> None:
        if key not in self._customer:  # never read: the member set it leaves is unknown
            self._members.clear()
        elif (old := self._customer[key]) is not None and old in self._members:
            self._members[old].discard(key)
        self._customer[key] = customer_id
        if customer_id is not None and customer_id in self._members:
            self._members[customer_id].add(key)

    def clear(self) -> None:
        lock_graph(self.cur)
        self.cur.execute(
            "TRUNCATE identity_nodes, identity_lookup, identity_edges, customer_assignments,"
            " customer_ids, cluster_history, profile_pending")


# --------------------------------------------------------------------------- erasure


def forget_records(cur, keys: Iterable[str], customer_id: str | None) -> dict[str, int]:
    """Delete the records' nodes, lookup rows and edges, and the assignments of the records
    and of `customer_id` (an erasure; the caller holds `lock_graph`). Counts by table."""
    keys = sorted(keys)
    counts = {}
    cur.execute("DELETE FROM identity_nodes WHERE record_key = ANY(%s)", (keys,))
    counts["identity_nodes_deleted"] = cur.rowcount
    cur.execute("DELETE FROM identity_lookup WHERE record_key = ANY(%s)", (keys,))
    counts["identity_lookup_rows_deleted"] = cur.rowcount
    cur.execute("DELETE FROM identity_edges WHERE a_key = ANY(%s) OR b_key = ANY(%s)", (keys, keys))
    counts["identity_edges_deleted"] = cur.rowcount
    cur.execute("DELETE FROM customer_assignments WHERE record_key = ANY(%s) OR customer_id = %s",
                (keys, customer_id))
    counts["assignments_deleted"] = cur.rowcount
    return counts


def retire_customer(cur, customer_id: str, run_id: str | None) -> int:
    """Delete a customer's profile, its refresh and its id, recording a `retired` event in
    `cluster_history`; how many profiles went (0 or 1)."""
    cur.execute("DELETE FROM customer_profiles WHERE customer_id = %s", (customer_id,))
    deleted = cur.rowcount
    cur.execute("DELETE FROM profile_pending WHERE customer_id = %s", (customer_id,))
    cur.execute("DELETE FROM customer_ids WHERE customer_id = %s", (customer_id,))
    cur.execute("INSERT INTO cluster_history (kind, customer_id, other_id, run_id)"
                " VALUES ('retired', %s, NULL, %s)", (customer_id, run_id))
    return deleted
