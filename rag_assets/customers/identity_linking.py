"""Taking changed source records into the identity graph, one bounded batch per transaction."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from rag_assets.catalogue import active_catalogue
from rag_assets.customers import source_store
from rag_assets.customers.catalogue_sync import sync_catalogue
from rag_assets.customers.cluster_locks import (
    MAX_CLUSTER_LOCKED_RECORDS,
    NeighbourhoodLocks,
    NeighbourhoodUnavailable,
    neighbourhood_keys,
)
from rag_assets.customers.identity_graph import (
    GraphDelta,
    IdentityGraph,
    NodeChange,
    node_from_record,
)
from rag_assets.customers.identity_store import (
    PostgresIdentityStore,
    lock_graph,
    lookup_pairs,
)
from rag_assets.customers.source_state import RecordKey
from rag_assets.platform.item_guard import apply_in_transaction, is_environment_failure
from rag_assets.platform.erasure_lock import lock_for_writing
from rag_assets.customers.dead_letter_ties import ties_of
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
    batches: int = 0
    batches_exclusive: int = 0  # under the exclusive graph lock, not neighbourhood locks
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
            "link_batches": self.batches,
            "link_batches_exclusive": self.batches_exclusive,
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


BATCH_LIMIT = 2000  # pending records linked per transaction


def link_batch(cur, stats: LinkStats, run_id: str | None = None, limit: int = BATCH_LIMIT,
               store: PostgresIdentityStore | None = None) -> int:
    """Link up to `limit` pending records; returns how many were taken. Pass the same `store`
    to the batches of a run: it keeps what earlier batches read of the graph. A record whose
    linking fails on its own is set aside as a dead letter (item_guard), the rest is linked.

    A batch of at most `MAX_CLUSTER_LOCKED_RECORDS` records locks only its neighbourhood, so
    linkers of other partitions or runs link at the same time; a larger one, or one that cannot
    lock its neighbourhood, holds the graph lock exclusive (`cluster_locks`)."""
    lock_for_writing(cur)
    store = store or PostgresIdentityStore()
    cur.execute("SAVEPOINT identity_batch")
    attempt = LinkStats()
    try:
        taken = _link_batch(cur, attempt, run_id, limit, store, exclusive=False)
    except NeighbourhoodUnavailable:
        cur.execute("ROLLBACK TO SAVEPOINT identity_batch")  # its locks and claims too
        attempt = LinkStats()
        taken = _link_batch(cur, attempt, run_id, limit, store, exclusive=True)
    stats.add(attempt)
    return taken


def _link_batch(cur, stats: LinkStats, run_id: str | None, limit: int,
                store: PostgresIdentityStore, *, exclusive: bool) -> int:
    lock_graph(cur, shared=not exclusive)
    stats.catalogue_changes.update(sync_catalogue(cur).requeued)
    keys = _pending_keys(cur, limit)
    if not keys:
        return 0
    if not exclusive and len(keys) > MAX_CLUSTER_LOCKED_RECORDS:
        raise NeighbourhoodUnavailable(f"{len(keys)} records in one batch")
    stats.batches += 1
    stats.batches_exclusive += exclusive
    locking = _BatchLocking(cur, exclusive)
    linked, set_aside = apply_in_transaction(
        cur, keys, lambda part, counts: _link(cur, part, counts, run_id, store, locking),
        LinkStats, "identity linking")
    stats.add(linked)
    if set_aside:
        _dequeue(cur, [aside.item for aside in set_aside])
        store_dead_letters(cur, [DeadLetter(DEAD_LETTER_SOURCE, aside.reason,
                                            object_key=str(aside.item),
                                            record_key=str(aside.item))
                                 for aside in set_aside], run_id, ties_of=ties_of)
        stats.records_set_aside += len(set_aside)
    return len(keys)


class _BatchLocking:
    """The neighbourhood locking of one batch's transaction, across the parts the item guard
    tries. Once a part has written the graph, later parts may not wait for a lock (they hold
    the stamp row and the written part's locks, outside the ascending order)."""

    def __init__(self, cur, exclusive: bool):
        self.exclusive = exclusive
        self.wrote = False
        self.schema = None
        if not exclusive:
            cur.execute("SELECT current_schema()")
            self.schema = cur.fetchone()[0]

    def start(self, cur) -> NeighbourhoodLocks:
        return NeighbourhoodLocks(cur, self.schema, exclusive=self.exclusive,
                                  may_wait=not self.wrote)

    def keys(self, pairs, customer_ids) -> set[int]:
        return set() if self.exclusive else neighbourhood_keys(self.schema, pairs, customer_ids)


@dataclass
class _Plan:
    """What one part of a batch will write, decided from one read of its neighbourhood."""

    changes: list[NodeChange]  # the records to relink
    unchanged: list[RecordKey]  # identity evidence unchanged: only their profiles are rebuilt
    unchanged_customers: set[str]
    delta: GraphDelta


def _link(cur, keys: list[RecordKey], stats: LinkStats, run_id: str | None,
          store: PostgresIdentityStore, locking: _BatchLocking) -> None:
    changes = _changes(cur, keys)
    locks = locking.start(cur)
    store.begin(cur)
    # Records' nodes change only with their claimed pending row: their old values are safe to
    # read before locking, and the batch rewrites the lookup rows of old and new values.
    old = store.nodes([c.key for c in changes])
    needed = locking.keys({p for n in [*old.values(), *(c.node for c in changes)] if n is not None
                           for p in lookup_pairs(n)}, ())
    plan = _plan_under_locks(changes, store, locks, locking, needed)
    locks.release_savepoint()
    locking.wrote = True
    _write(cur, keys, plan, stats, run_id, store)


def _plan_under_locks(changes: list[NodeChange], store: PostgresIdentityStore,
                      locks: NeighbourhoodLocks, locking: _BatchLocking,
                      needed: set[int]) -> _Plan:
    """Plan until the plan stands: read, add what was read to the locks, and stop when the read
    happened under locks covering it, or when no one wrote the graph since it began (it read
    the state the locks now hold still). The first read takes no lock: it names the whole
    neighbourhood, locked in one ascending pass, and usually stands."""
    while True:
        store.begin(locks.cur)
        try:
            plan = _plan(changes, store)
        except Exception as error:  # noqa: BLE001 — classified right below
            # A read not yet under its locks may mix states; only a failure of a wholly
            # locked read is the records' own (the item guard sets them aside).
            read = locking.keys(store.seen.pairs, store.seen.customer_ids)
            if is_environment_failure(error) or locks.cover(needed | read):
                raise
            needed |= read
            continue
        delta = plan.delta
        needed |= locking.keys(store.seen.pairs, store.seen.customer_ids | plan.unchanged_customers
                               | delta.affected_customer_ids | set(delta.new_customer_ids)
                               | set(delta.assignments.values()))
        if locks.cover(needed) or store.unchanged_since_begin():
            return plan


def _changes(cur, keys: list[RecordKey]) -> list[NodeChange]:
    records = source_store.load_records(cur, keys)
    catalogue = active_catalogue()
    changes = []
    for key in keys:
        record = records.get(key)
        change = (node_from_record(record, catalogue.default_phone_region,
                                   catalogue.identity_columns)
                  if record is not None else NodeChange(key, None))
        if change is not None:
            changes.append(change)
    return changes


def _plan(changes: list[NodeChange], store: PostgresIdentityStore) -> _Plan:
    """Decide the part's writes; reads only (through `store`, which notes what it read)."""
    # A record whose identity evidence did not change (a points balance, a booking status) has
    # nothing to relink: only its customer's profile is rebuilt.
    stored = store.nodes([c.key for c in changes if c.node is not None])
    unchanged = [c.key for c in changes if c.node is not None and stored.get(c.key) == c.node]
    skip = set(unchanged)
    changes = [c for c in changes if c.key not in skip]
    graph = IdentityGraph(store)
    # One set-based read of the batch's neighbourhood instead of a few queries per record.
    store.prefetch(changes, max(graph.rules.max_block_size, graph.rules.max_identifier_group) + 1)
    scored = graph.prescore(changes)
    store.prefetch_clusters({c.key for c in changes}, scored.likely_links)
    return _Plan(changes, unchanged, set(store.customer_ids(unchanged).values()),
                 graph.apply(changes, scored))


def _write(cur, keys: list[RecordKey], plan: _Plan, stats: LinkStats, run_id: str | None,
           store: PostgresIdentityStore) -> None:
    if plan.unchanged:
        cur.execute("INSERT INTO profile_pending (customer_id) SELECT unnest(%b::text[])"
                    f"{QUEUE_CUSTOMER_AGAIN}", (sorted(plan.unchanged_customers),))
        stats.identity_unchanged += len(plan.unchanged)
    delta = plan.delta
    store.write(delta, run_id)
    _dequeue(cur, keys)
    stats.records_linked += len(plan.changes)
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
