"""Taking changed source records into the identity graph, one bounded batch per transaction."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from rag_assets.catalogue import active_catalogue
from rag_assets.customers import source_store
from rag_assets.customers.catalogue_sync import sync_catalogue
from rag_assets.customers.identity_graph import IdentityGraph, NodeChange, node_from_record
from rag_assets.customers.identity_store import PostgresIdentityStore, lock_graph, record_key_text
from rag_assets.customers.source_state import RecordKey
from rag_assets.platform.item_guard import apply_in_transaction
from rag_assets.platform.erasure_lock import lock_for_writing
from rag_assets.platform.dead_letters import DeadLetter, store_dead_letters
from rag_assets.platform.work_queue import QUEUE_CUSTOMER_AGAIN, QUEUE_RECORD_AGAIN

DEAD_LETTER_SOURCE = "identity_graph"


@dataclass
class LinkStats:
    records_linked: int = 0
    edges_added: int = 0
    edges_removed: int = 0
    customers_affected: int = 0
    identity_unchanged: int = 0  # changed records whose identity evidence stayed the same
    cluster_events: Counter = field(default_factory=Counter)
    edge_rules: Counter = field(default_factory=Counter)
    records_set_aside: int = 0  # their linking failed on their own: dead letters
    # Tables whose catalogue entry changed -> records queued again for relinking.
    catalogue_changes: Counter = field(default_factory=Counter)

    def add(self, other: LinkStats) -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)

    def metadata(self) -> dict:
        return {
            **{f"catalogue_requeued {table}": n for table, n in sorted(self.catalogue_changes.items())},
            "records_linked": self.records_linked,
            "records_set_aside": self.records_set_aside,
            "edges_added": self.edges_added,
            "edges_removed": self.edges_removed,
            "customers_affected": self.customers_affected,
            "records_identity_unchanged": self.identity_unchanged,
            **{f"clusters_{kind}": n for kind, n in sorted(self.cluster_events.items())},
        }


def _pending_keys(cur, limit: int) -> list[RecordKey]:
    cur.execute(
        "SELECT system, table_name, pk FROM identity_pending ORDER BY system, table_name, pk"
        " LIMIT %s FOR UPDATE SKIP LOCKED", (limit,))
    return [RecordKey(*row) for row in cur.fetchall()]


def link_batch(cur, stats: LinkStats, run_id: str | None = None, limit: int = 2000,
               store: PostgresIdentityStore | None = None) -> int:
    """Link up to `limit` pending records; returns how many were taken. Pass the same `store`
    to the batches of a run: it keeps what earlier batches read of the graph. A record whose
    linking fails on its own is set aside as a dead letter (item_guard), the rest is linked."""
    lock_for_writing(cur)
    lock_graph(cur)
    stats.catalogue_changes.update(sync_catalogue(cur).requeued)
    keys = _pending_keys(cur, limit)
    if not keys:
        return 0
    store = store or PostgresIdentityStore()

    linked, set_aside = apply_in_transaction(
        cur, keys, lambda part, counts: _link(cur, part, counts, run_id, store), LinkStats,
        "identity linking")
    stats.add(linked)
    if set_aside:
        _dequeue(cur, [aside.item for aside in set_aside])
        store_dead_letters(cur, [DeadLetter(DEAD_LETTER_SOURCE, aside.reason,
                                            object_key=record_key_text(aside.item))
                                 for aside in set_aside], run_id)
        stats.records_set_aside += len(set_aside)
    return len(keys)


def _link(cur, keys: list[RecordKey], stats: LinkStats, run_id: str | None,
          store: PostgresIdentityStore) -> None:
    store.begin(cur)
    records = source_store.load_records(cur, keys)
    changes = []
    catalogue = active_catalogue()
    for key in keys:
        record = records.get(key)
        change = (node_from_record(record, catalogue.default_phone_region,
                                   catalogue.identity_columns)
                  if record is not None else NodeChange(key, None))
        if change is not None:
            changes.append(change)
    # A record whose identity evidence did not change (a points balance, a booking status) has
    # nothing to relink: only its customer's profile is rebuilt.
    stored = store.nodes([c.key for c in changes if c.node is not None])
    unchanged = [c.key for c in changes if c.node is not None and stored.get(c.key) == c.node]
    if unchanged:
        skip = set(unchanged)
        changes = [c for c in changes if c.key not in skip]
        cur.execute(
            "INSERT INTO profile_pending (customer_id) SELECT DISTINCT customer_id"
            f" FROM customer_assignments WHERE record_key = ANY(%b){QUEUE_CUSTOMER_AGAIN}",
            ([record_key_text(k) for k in unchanged],))
        stats.identity_unchanged += len(unchanged)
    graph = IdentityGraph(store)
    # One set-based read of the batch's neighbourhood instead of a few queries per record.
    store.prefetch(changes, max(graph.rules.max_block_size, graph.rules.max_identifier_group) + 1)
    scored = graph.prescore(changes)
    store.prefetch_clusters({c.key for c in changes}, scored.likely_links)
    delta = graph.apply(changes, scored)
    store.write(delta, run_id)
    _dequeue(cur, keys)
    stats.records_linked += len(changes)
    stats.edges_added += len(delta.edges_added)
    stats.edges_removed += len(delta.edges_removed)
    stats.customers_affected += len(delta.affected_customer_ids)
    stats.cluster_events.update(event.kind for event in delta.events)
    stats.edge_rules.update(edge.rule for edge in delta.edges_added)


def _dequeue(cur, keys: list[RecordKey]) -> None:
    cur.execute(
        "DELETE FROM identity_pending WHERE (system, table_name, pk) IN"
        " (SELECT * FROM unnest(%b::text[], %b::text[], %b::text[]))",
        ([k.system for k in keys], [k.table for k in keys], [k.pk for k in keys]))


def queue_every_record(cur) -> None:
    """For a rebuild: forget the graph and queue every source record again."""
    PostgresIdentityStore(cur).clear()
    cur.execute(
        "INSERT INTO identity_pending (system, table_name, pk)"
        f" SELECT system, table_name, pk FROM source_records{QUEUE_RECORD_AGAIN}")


def cluster_summary(cur) -> dict:
    cur.execute(
        "SELECT count(*), coalesce(max(n), 0) FROM"
        " (SELECT count(*) AS n FROM customer_assignments GROUP BY customer_id) sizes")
    customers, largest = cur.fetchone()
    cur.execute("SELECT count(*) FROM identity_edges")
    return {"customers": customers, "largest_cluster": largest, "edges_total": cur.fetchone()[0]}
