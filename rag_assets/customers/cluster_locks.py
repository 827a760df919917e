"""Cluster-level locking of the identity graph: linkers on disjoint neighbourhoods run at once.

What a link batch reads and writes, and what covers it (a lock is a transaction-scoped advisory
lock on a 64-bit hash of the item, one lock space per schema):

* the lookup group of an identifier or blocking-key value (who holds `email=x`): the value's
  lock. A batch locks every value its records held before and hold now (it rewrites their lookup
  rows) and every value it looked up;
* a customer: its members' assignments, nodes and edges, and the id's rank: the customer id's
  lock. An edge joins two records of one customer, so whoever adds or removes one has read (and
  locked) the customer ids of both ends; a record's node changes only with its pending row,
  claimed `FOR UPDATE SKIP LOCKED` by one linker, which locks the record's old and new values
  and customer ids.

The linker does not know the customer ids, nor the ids a merge or a split will use, before it
has read the graph. So it reads (the first time without any lock), collects what it actually
read (`PostgresIdentityStore.seen`), locks that with what it writes, and accepts the read when
the locks held during it already covered everything (`NeighbourhoodLocks.cover`), or when no
writer committed since the read began (`identity_graph_stamp` unchanged, checked once the locks
are held: the read saw the state the locks now keep). Otherwise it reads again, from
`PostgresIdentityStore.begin`, which drops the remembered snapshot when another writer committed,
so each round reads the current graph. The set of locks only grows, so this ends.

**Deadlock freedom.** Every batch acquires its neighbourhood locks in ascending key order, one
statement per step. When a round needs a key below one it already holds, it rolls back to the
savepoint taken before its first neighbourhood lock (PostgreSQL releases the advisory locks
taken after it) and takes the whole larger set again in ascending order. So a batch waiting for
key k holds only keys < k: a wait-for cycle would need a strictly increasing cycle of keys. A
batch waits for no lock after its first graph write (its later parts, when the item guard sets a
record aside, only *try* locks and escalate when one is busy), and the other waits of a linker —
the single stamp row, `profile_pending` rows held by a profile refresh — are either taken only
after every neighbourhood lock or held by transactions that never wait for one.

**The graph-wide lock** stays as the mode switch: a cluster-locking batch holds it shared;
erasure and rebuild (`identity_store.lock_graph`) hold it exclusive and so still exclude every
linker. A batch whose neighbourhood is too large for the lock table (a backlog, a rebuild), or
whose later part finds a lock busy, rolls back to before its shared lock and runs exclusive —
one linker at a time, as before, with no neighbourhood locks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import psycopg

# Advisory locks live in PostgreSQL's shared lock table: `max_locks_per_transaction` (64 by
# default) times `max_connections` slots, for every session together. A batch linking more
# records than this, or needing more locks than the budget, takes the graph lock exclusive;
# so does one that finds the table full ("out of shared memory").
MAX_CLUSTER_LOCKED_RECORDS = 200
LOCK_BUDGET = 3000

class NeighbourhoodUnavailable(TimeoutError):
    """The batch cannot lock its neighbourhood (too large, or a lock is busy when it may no
    longer wait). A TimeoutError, so that the item guard treats it as the environment's
    failure and lets it through untouched; `link_batch` catches it and runs the batch under the
    exclusive graph lock."""


def lock_key(schema: str, kind: str, value: str) -> int:
    """A signed 64-bit advisory-lock key for an item of the schema's graph, of magnitude at
    least 2^62: none falls into the 32-bit range of the `hashtext(...)` keys of the other
    advisory locks (the graph lock, the erasure lock, the offsets ledger)."""
    digest = hashlib.blake2b(f"{schema}\x1f{kind}\x1f{value}".encode(), digest_size=8).digest()
    bits = int.from_bytes(digest, "big")
    magnitude = (1 << 62) + (bits & ((1 << 62) - 1))
    return -magnitude if bits >> 63 else magnitude


def neighbourhood_keys(schema: str, pairs: Iterable[tuple[str, str]],
                       customer_ids: Iterable[str]) -> set[int]:
    """The lock keys of lookup values (kind, value) and of customer ids."""
    return ({lock_key(schema, f"value:{kind}", value) for kind, value in pairs}
            | {lock_key(schema, "customer", cid) for cid in customer_ids})


@dataclass(frozen=True)
class Step:
    """What to do to hold `needed`: lock `keys` (ascending), after releasing everything held
    when `restart`."""

    restart: bool
    keys: list[int]


def next_step(held: set[int], needed: set[int]) -> Step | None:
    """None when `held` covers `needed`. Otherwise the keys to lock so that locks are always
    taken in ascending order: the missing keys when they all sort after every held key, else
    a restart taking the union from nothing."""
    extra = needed - held
    if not extra:
        return None
    if held and min(extra) < max(held):
        return Step(True, sorted(held | extra))
    return Step(False, sorted(extra))


class NeighbourhoodLocks:
    """The neighbourhood locks of one part of a link batch (see the module doc). With
    `may_wait` false (the transaction already wrote the graph) locks are only tried.
    `exclusive`: the transaction holds the graph lock exclusive, every key is covered."""

    def __init__(self, cur, schema: str, *, exclusive: bool = False, may_wait: bool = True):
        self.cur = cur
        self.schema = schema
        self.exclusive = exclusive
        self.may_wait = may_wait
        self.held: set[int] = set()
        self.restarts = 0
        if not exclusive:
            cur.execute("SAVEPOINT identity_neighbourhood")

    def cover(self, needed: set[int]) -> bool:
        """Hold every key of `needed`; True when the locks held already did (nothing taken)."""
        if self.exclusive:
            return True
        if len(needed) > LOCK_BUDGET:
            raise NeighbourhoodUnavailable(f"{len(needed)} neighbourhood locks needed")
        step = next_step(self.held, needed)
        if step is None:
            return True
        if step.restart:
            self.cur.execute("ROLLBACK TO SAVEPOINT identity_neighbourhood")
            self.held.clear()
            self.restarts += 1
        self._lock(step.keys)
        self.held.update(step.keys)
        return False

    def _lock(self, keys: list[int]) -> None:
        try:
            self._take(keys)
        except psycopg.errors.OutOfMemory as error:  # the shared lock table is full
            raise NeighbourhoodUnavailable("no lock table slots left") from error

    def _take(self, keys: list[int]) -> None:
        # unnest yields the array in order and the aggregate takes its rows in that order, so
        # the locks are taken ascending within the one statement.
        if self.may_wait:
            self.cur.execute("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(%b::bigint[]) k",
                             (keys,))
            return
        self.cur.execute(
            "SELECT count(*) FILTER (WHERE NOT pg_try_advisory_xact_lock(k))"
            " FROM unnest(%b::bigint[]) k", (keys,))
        busy = self.cur.fetchone()[0]
        if busy:
            raise NeighbourhoodUnavailable(f"{busy} neighbourhood locks busy after a write")

    def release_savepoint(self) -> None:
        if not self.exclusive:
            self.cur.execute("RELEASE SAVEPOINT identity_neighbourhood")
