"""The identity graph, maintained incrementally: source records linked into customers.

Nodes are source records (system, table, pk). Edges link two records with the rule that linked
them and its score (see `matching`): a shared normalised identifier, or fuzzy person evidence
between records that share a blocking key. A customer is a connected component.

The graph lives in a store (PostgreSQL in production, `InMemoryIdentityStore` here and in tests)
behind `IdentityGraphStore`: lookups by identifier, by blocking key, edges of a node, cluster
membership. `IdentityGraph.apply` reads only the neighbourhood of the changed records and returns a
`GraphDelta` (nodes, edges added/removed, record -> customer id assignments, cluster events) that
the store writes in one transaction.

Incremental rules:

* An added or changed record drops its old edges and is matched again against the records that
  share one of its identifiers or blocking keys. A deleted record drops its edges.
* Connected components are recomputed only over the clusters that held an affected record (the
  changed records and their old and new neighbours). Removing the only link splits a cluster.

Stable customer ids:

* Every record has an age: the version at which its current incarnation was first seen in the
  source (`SourceRecord.first_version`), ties broken by record key.
* An id is minted from a record key (`cus_` + hash) and keeps the age of the record it was minted
  for. Each component chooses among the ids its members hold — a new record offers the id minted
  from its own key — and keeps the oldest. So on a merge the oldest id survives and the others are
  recorded as `merged` into it; a new record joining a cluster takes the cluster's id.
* On a split the components are served oldest-member first: the part holding the oldest member
  keeps the id, the other parts get an id minted from their oldest member (`split` event). An id
  that was merged away can come back this way when the merge is undone.
* The id of a cluster is thus decided by which records are in it and their ages, not by the
  order or batching in which the changes arrived.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple, Protocol

from rag_assets.customers.candidate_scoring import score_candidates, score_pairs
from rag_assets.customers.identifiers import (
    IdentityColumns,
    identity_settings,
    PersonIdentity,
    extract_identity,
)
from rag_assets.customers.matching import (
    DEFAULT_RULES,
    DETERMINISTIC_RULES,
    MatchRules,
    RuleMatch,
    blocking_keys,
    comparison_key,
)
from rag_assets.customers.source_state import RecordKey, SourceRecord

Rank = tuple[Any, ...]  # age of a record or an id: smaller is older


@dataclass(frozen=True)
class IdentityNode:
    key: RecordKey
    identity: PersonIdentity
    first_seen: tuple[int, int]  # RecordVersion.sort_key() of the incarnation's first version

    @property
    def rank(self) -> Rank:
        return (*self.first_seen, str(self.key))

    @cached_property
    def blocking_keys(self) -> frozenset[str]:
        # Derived from the (immutable) identity, so computed once per node: the graph reads it
        # for every candidate of every lookup. The dataclass has no __slots__, so the cache lives
        # in the instance __dict__ and takes no part in equality, hashing or repr.
        return blocking_keys(self.identity)

    @cached_property
    def comparison_key(self) -> tuple:
        # What fuzzy matching reads of the identity (see `matching.comparison_key`), once per
        # node: looking it up by identity hashes the whole identity every time.
        return comparison_key(self.identity)


class Edge(NamedTuple):
    """A link (a < b). A named tuple rather than a dataclass: edges live in sets, and a tuple
    hashes and compares in C (a frozen dataclass's `__hash__` is Python code)."""

    a: RecordKey
    b: RecordKey
    rule: str
    score: float

    @staticmethod
    def between(x: RecordKey, y: RecordKey, rule: str, score: float) -> Edge:
        a, b = sorted((x, y))
        return Edge(a, b, rule, score)

    def other(self, key: RecordKey) -> RecordKey:
        return self.b if key == self.a else self.a


@dataclass(frozen=True)
class NodeChange:
    """A record to (re)link, or to remove when `node` is None."""

    key: RecordKey
    node: IdentityNode | None


@dataclass(frozen=True)
class Prescored:
    """`IdentityGraph.prescore` of a batch: fuzzy results by pair of comparison keys, and the
    stored records the batch will likely link to."""

    results: dict[tuple[tuple, tuple], RuleMatch | None]
    likely_links: set[RecordKey]


@dataclass(frozen=True)
class ClusterEvent:
    """`created`, `merged` (customer_id merged into `other_id`), `split` (customer_id split off
    from `other_id`) or `retired` (every record of customer_id was deleted)."""

    kind: str
    customer_id: str
    other_id: str | None = None


@dataclass
class GraphDelta:
    nodes_upserted: dict[RecordKey, IdentityNode] = field(default_factory=dict)
    nodes_deleted: set[RecordKey] = field(default_factory=set)
    edges_added: set[Edge] = field(default_factory=set)
    edges_removed: set[Edge] = field(default_factory=set)
    assignments: dict[RecordKey, str] = field(default_factory=dict)  # new or changed only
    unassigned: set[RecordKey] = field(default_factory=set)
    new_customer_ids: dict[str, Rank] = field(default_factory=dict)
    events: list[ClusterEvent] = field(default_factory=list)
    affected_customer_ids: set[str] = field(default_factory=set)  # profiles to rebuild


class IdentityGraphStore(Protocol):
    """Read access to the stored graph; every method answers for the state before the batch.
    A key found by identifier or blocking key is that of a stored node holding it."""

    def nodes(self, keys: Iterable[RecordKey]) -> dict[RecordKey, IdentityNode]: ...

    def keys_with_identifier(self, kind: str, value: str, limit: int) -> set[RecordKey]: ...

    def keys_with_blocking_key(self, block: str, limit: int) -> set[RecordKey]: ...

    def edges_of(self, key: RecordKey) -> set[Edge]: ...

    def customer_ids(self, keys: Iterable[RecordKey]) -> dict[RecordKey, str]: ...

    def members(self, customer_id: str) -> set[RecordKey]: ...

    def customer_id_ranks(self, customer_ids: Iterable[str]) -> dict[str, Rank]: ...


def mint_customer_id(key: RecordKey, salt: int = 0) -> str:
    text = str(key) if salt == 0 else f"{key}#{salt}"
    return "cus_" + hashlib.sha256(text.encode()).hexdigest()[:16]


def node_from_record(
    record: SourceRecord,
    default_region: str | None = None,
    columns: Mapping[tuple[str, str], IdentityColumns] | None = None,
) -> NodeChange | None:
    """The graph change for a source record; None for a table that holds no person. The
    columns and the default phone region are the catalogue's unless given."""
    columns, default_region = identity_settings(columns, default_region)
    key = record.key
    if (key.system, key.table) not in columns:
        return None
    if record.deleted:
        return NodeChange(key, None)
    identity = extract_identity(key.system, key.table, record.row, default_region, columns)
    return NodeChange(key, IdentityNode(key, identity, record.first_version.sort_key()))


class _Overlay:
    """The store as seen after the changes applied so far in this batch."""

    def __init__(self, store: IdentityGraphStore) -> None:
        self.store = store
        self.nodes: dict[RecordKey, IdentityNode | None] = {}
        self.edges: dict[RecordKey, set[Edge]] = {}
        # Identifiers and blocking keys of nodes written in this batch (not yet in the store's
        # index).
        self.written_by_index: dict[tuple[str, ...], set[RecordKey]] = {}
        self.written: set[RecordKey] = set()  # records (re)written or deleted in this batch
        self.assigned: dict[RecordKey, str | None] = {}
        self.stored_assignment: dict[RecordKey, str | None] = {}
        self.member_sets: dict[str, set[RecordKey]] = {}
        self.ranks: dict[str, Rank] = {}
        # Fuzzy results for this batch by the pair of `comparison_key`s (the fields fuzzy
        # matching reads): a pure function of those values under the graph's rules, and records
        # of one person often carry equal ones (every booking of a passenger), so pairs recur.
        self.fuzzy_results: dict[tuple[tuple, tuple], RuleMatch | None] = {}

    def node(self, key: RecordKey) -> IdentityNode | None:
        if key not in self.nodes:
            self.nodes[key] = self.store.nodes([key]).get(key)
        return self.nodes[key]

    def edges_of(self, key: RecordKey) -> set[Edge]:
        if key not in self.edges:
            self.edges[key] = set(self.store.edges_of(key))
        return self.edges[key]

    def write_node(self, key: RecordKey, node: IdentityNode | None) -> None:
        self.node(key)  # load the stored version first, so the overlay knows it changed
        self.nodes[key] = node
        self.written.add(key)
        if node is not None:
            for index in _index_entries(node):
                self.written_by_index.setdefault(index, set()).add(key)

    def keys_with_identifier(self, kind: str, value: str, limit: int) -> set[RecordKey]:
        stored = self.store.keys_with_identifier(kind, value, limit)
        return self._current(stored, ("id", kind, value),
                             lambda node: (kind, value) in node.identity.identifiers)

    def keys_with_blocking_key(self, block: str, limit: int) -> set[RecordKey]:
        stored = self.store.keys_with_blocking_key(block, limit)
        return self._current(stored, ("block", block), lambda node: block in node.blocking_keys)

    def _current(self, stored: set[RecordKey], index: tuple[str, ...], holds) -> set[RecordKey]:
        """The keys of an index entry after this batch's writes. A stored entry names a stored
        node that holds it (the store writes nodes and entries together), so only the records
        written in this batch are checked again (`holds`: does the node still hold the entry),
        together with those this batch filed under it."""
        unchanged = stored - self.written
        recheck = (stored - unchanged) | self.written_by_index.get(index, set())
        return unchanged | {k for k in recheck if (n := self.node(k)) is not None and holds(n)}

    def customer_id(self, key: RecordKey) -> str | None:
        if key not in self.assigned:
            stored = self.store.customer_ids([key]).get(key)
            self.assigned[key] = self.stored_assignment[key] = stored
        return self.assigned[key]

    def members(self, customer_id: str) -> set[RecordKey]:
        if customer_id not in self.member_sets:
            stored = self.store.members(customer_id)
            for key in stored:
                self.customer_id(key)
            # `assign` loads both ids it touches, so the only overlay effect on a freshly loaded
            # id is records that already left it.
            self.member_sets[customer_id] = {k for k in stored if self.assigned[k] == customer_id}
        return self.member_sets[customer_id]

    def assign(self, key: RecordKey, customer_id: str | None) -> None:
        previous = self.customer_id(key)
        if previous is not None:
            self.members(previous).discard(key)
        if customer_id is not None:
            self.members(customer_id).add(key)
        self.assigned[key] = customer_id

    def rank(self, customer_id: str) -> Rank | None:
        if customer_id not in self.ranks:
            stored = self.store.customer_id_ranks([customer_id]).get(customer_id)
            if stored is not None:
                self.ranks[customer_id] = stored
        return self.ranks.get(customer_id)


class IdentityGraph:
    def __init__(self, store: IdentityGraphStore, rules: MatchRules = DEFAULT_RULES) -> None:
        self.store = store
        self.rules = rules

    def apply(self, changes: Iterable[NodeChange], scored: Prescored | None = None) -> GraphDelta:
        """Link the changed records (in order) and recompute the affected clusters. `scored`:
        the batch's `prescore`, when the caller needed it first (to prefetch)."""
        changes = list(changes)
        overlay = _Overlay(self.store)
        overlay.fuzzy_results.update((scored or self.prescore(changes)).results)
        delta = GraphDelta()
        # Clusters are settled after every change, so a batch is the same as its changes one
        # by one: ids depend on the sequence of changes, not on batch boundaries.
        for change in changes:
            before = overlay.node(change.key)
            linked_before = _neighbours(overlay, change.key)
            touched = self._relink(overlay, change, delta)
            if (
                before is not None
                and change.node is not None
                and before.first_seen == change.node.first_seen
                and _neighbours(overlay, change.key) == linked_before
                and (customer_id := overlay.customer_id(change.key)) is not None
            ):
                # The record kept its age and exactly the same neighbours (rules or scores may
                # differ): the components are the settled clusters as they were, so recomputing
                # them would keep every id and record no event. Only its profile changes.
                delta.affected_customer_ids.add(customer_id)
                continue
            self._assign_customer_ids(overlay, touched, delta)
        for key, customer_id in overlay.assigned.items():
            if customer_id == overlay.stored_assignment.get(key):
                continue
            if customer_id is None:
                delta.unassigned.add(key)
            else:
                delta.assignments[key] = customer_id
        return delta

    # --- edges -----------------------------------------------------------------------------

    def _relink(self, overlay: _Overlay, change: NodeChange, delta: GraphDelta) -> set[RecordKey]:
        key = change.key
        touched = {key}
        for edge in list(overlay.edges_of(key)):
            touched.add(edge.other(key))
            self._remove_edge(overlay, edge, delta)
        overlay.write_node(key, change.node)
        if change.node is None:
            delta.nodes_deleted.add(key)
            delta.nodes_upserted.pop(key, None)
            return touched
        delta.nodes_deleted.discard(key)
        delta.nodes_upserted[key] = change.node
        for edge in self._edges_for(overlay, change.node):
            touched.add(edge.other(key))
            self._add_edge(overlay, edge, delta)
        return touched

    def _edges_for(self, overlay: _Overlay, node: IdentityNode) -> set[Edge]:
        edges: set[Edge] = set()
        for kind, sharing in self._sharing(overlay, node):
            edges |= {Edge.between(node.key, k, DETERMINISTIC_RULES[kind], 1.0) for k in sharing}
        own = node.comparison_key
        candidates = {k: overlay.node(k).comparison_key for k in self._fuzzy_candidates(overlay, node)}
        results = self._score(overlay, node, candidates)
        for other, theirs in candidates.items():
            match = results[(own, theirs)]
            if match is not None:
                edges.add(Edge.between(node.key, other, match.rule, match.score))
        return edges

    def _score(
        self, overlay: _Overlay, node: IdentityNode, candidates: dict[RecordKey, tuple]
    ) -> dict[tuple[tuple, tuple], RuleMatch | None]:
        """Fuzzy results of `node` against its candidates (by `comparison_key`), scoring the
        pairs this batch has not scored yet in one bulk call."""
        results = overlay.fuzzy_results
        own = node.comparison_key
        unscored = list({theirs for theirs in candidates.values() if (own, theirs) not in results})
        if unscored:
            matches = score_candidates(own, unscored, self.rules)
            results.update(((own, theirs), m) for theirs, m in zip(unscored, matches, strict=True))
        return results

    def prescore(self, changes: list[NodeChange]) -> Prescored:
        """Score in one column-wise pass the pairs the batch will most likely compare: each new
        node against the stored nodes of its blocks and against the batch's nodes filed under
        them. `apply` memoises the results (a pair missed here is scored when it comes up, so
        this changes the speed, not the decisions). Also names the records the batch will
        likely link to: those sharing an identifier, and the candidates that match."""
        limit = self.rules.max_block_size
        nodes = [c.node for c in changes if c.node is not None]
        filed: dict[str, list[IdentityNode]] = {}
        for node in nodes:
            for block in node.blocking_keys:
                filed.setdefault(block, []).append(node)
        wanted: set[tuple[tuple, tuple]] = set()
        candidates: list[tuple[RecordKey, tuple[tuple, tuple]]] = []
        likely: set[RecordKey] = set()
        for node in nodes:
            for _, sharing in self._sharing(self.store, node):
                likely |= sharing
            others: dict[RecordKey, IdentityNode] = {}
            for block in node.blocking_keys:
                stored = self.store.keys_with_blocking_key(block, limit + 1)
                if len(stored) <= limit:
                    others.update(self.store.nodes(stored))
                    others.update((n.key, n) for n in filed[block])
            others.pop(node.key, None)
            own = node.comparison_key
            pairs = [(key, (own, other.comparison_key)) for key, other in others.items()]
            candidates += pairs
            wanted.update(pair for _, pair in pairs)
        pairs = list(wanted)
        results = dict(zip(pairs, score_pairs([a for a, _ in pairs], [b for _, b in pairs],
                                              self.rules))) if pairs else {}
        likely |= {key for key, pair in candidates if results[pair] is not None}
        return Prescored(results, likely)

    def _sharing(self, reader, node: IdentityNode) -> Iterator[tuple[str, set[RecordKey]]]:
        """Per deterministic identifier kind, the records sharing the node's value, where the
        value still identifies someone (shared by fewer than `max_identifier_group`)."""
        limit = self.rules.max_identifier_group
        for kind, value in node.identity.identifiers:
            if kind not in DETERMINISTIC_RULES:
                continue
            sharing = reader.keys_with_identifier(kind, value, limit + 1) - {node.key}
            if len(sharing) < limit:  # a value shared this widely does not identify a person
                yield kind, sharing

    def _fuzzy_candidates(self, overlay: _Overlay, node: IdentityNode) -> set[RecordKey]:
        limit = self.rules.max_block_size
        candidates: set[RecordKey] = set()
        for block in node.blocking_keys:
            members = overlay.keys_with_blocking_key(block, limit + 1)
            if len(members) <= limit:
                candidates |= members
        candidates.discard(node.key)
        return candidates

    @staticmethod
    def _add_edge(overlay: _Overlay, edge: Edge, delta: GraphDelta) -> None:
        overlay.edges_of(edge.a).add(edge)
        overlay.edges_of(edge.b).add(edge)
        if edge in delta.edges_removed:
            delta.edges_removed.discard(edge)
        else:
            delta.edges_added.add(edge)

    @staticmethod
    def _remove_edge(overlay: _Overlay, edge: Edge, delta: GraphDelta) -> None:
        overlay.edges_of(edge.a).discard(edge)
        overlay.edges_of(edge.b).discard(edge)
        if edge in delta.edges_added:
            delta.edges_added.discard(edge)
        else:
            delta.edges_removed.add(edge)

    # --- clusters --------------------------------------------------------------------------

    def _assign_customer_ids(
        self, overlay: _Overlay, affected: set[RecordKey], delta: GraphDelta
    ) -> None:
        old_ids = {k: cid for k in affected if (cid := overlay.customer_id(k)) is not None}
        universe = set(affected)
        for customer_id in set(old_ids.values()):
            universe |= overlay.members(customer_id)
        old_ids.update({k: cid for k in universe if (cid := overlay.customer_id(k)) is not None})
        live = {k for k in universe if overlay.node(k) is not None}
        components = _connected_components(live, overlay)
        chosen = self._choose_ids(components, overlay, old_ids, universe, delta)
        for component, customer_id in chosen:
            for key in component:
                if old_ids.get(key) != customer_id:
                    overlay.assign(key, customer_id)
        for key in universe - live:
            if key in old_ids:
                overlay.assign(key, None)
        _record_events(chosen, old_ids, delta)
        delta.affected_customer_ids |= set(old_ids.values()) | {cid for _, cid in chosen}

    def _choose_ids(
        self,
        components: list[set[RecordKey]],
        overlay: _Overlay,
        old_ids: dict[RecordKey, str],
        universe: set[RecordKey],
        delta: GraphDelta,
    ) -> list[tuple[set[RecordKey], str]]:
        def oldest(component: set[RecordKey]) -> IdentityNode:
            return min((overlay.node(k) for k in component), key=lambda n: n.rank)

        claimed: set[str] = set()
        chosen = []
        for component in sorted(components, key=lambda c: oldest(c).rank):
            offers = {old_ids[k]: overlay.rank(old_ids[k]) for k in component if k in old_ids}
            for key in component:
                if key not in old_ids:
                    own = mint_customer_id(key)
                    if _free(overlay, own, universe):
                        offers.setdefault(own, overlay.node(key).rank)
            available = {cid: rank for cid, rank in offers.items() if cid not in claimed}
            if available:
                customer_id = min(available, key=lambda cid: (available[cid] or (), cid))
                rank = available[customer_id]
            else:
                founder = oldest(component)
                customer_id = _mint_free(overlay, founder.key, universe, claimed)
                rank = founder.rank
            if overlay.rank(customer_id) is None:
                overlay.ranks[customer_id] = rank
                delta.new_customer_ids[customer_id] = rank
            claimed.add(customer_id)
            chosen.append((component, customer_id))
        return chosen


def _free(overlay: _Overlay, customer_id: str, universe: set[RecordKey]) -> bool:
    """An id may be (re)used unless records outside the recomputed clusters still hold it."""
    return not (overlay.members(customer_id) - universe)


def _mint_free(
    overlay: _Overlay, key: RecordKey, universe: set[RecordKey], claimed: set[str]
) -> str:
    salt = 0
    while True:
        customer_id = mint_customer_id(key, salt)
        if customer_id not in claimed and _free(overlay, customer_id, universe):
            return customer_id
        salt += 1


def _record_events(
    chosen: list[tuple[set[RecordKey], str]], old_ids: dict[RecordKey, str], delta: GraphDelta
) -> None:
    new_ids = {cid for _, cid in chosen}
    merged: set[str] = set()
    for component, customer_id in chosen:  # oldest component first
        previous = sorted({old_ids[k] for k in component if k in old_ids})
        if not previous:
            delta.events.append(ClusterEvent("created", customer_id))
        elif customer_id not in previous:
            kept_elsewhere = [old for old in previous if old in new_ids]
            if kept_elsewhere:
                delta.events.append(ClusterEvent("split", customer_id, kept_elsewhere[0]))
        for old in previous:
            if old not in new_ids and old not in merged:
                merged.add(old)
                delta.events.append(ClusterEvent("merged", old, customer_id))
    for old in sorted(set(old_ids.values()) - new_ids - merged):
        delta.events.append(ClusterEvent("retired", old))


def _index_entries(node: IdentityNode) -> list[tuple[str, ...]]:
    return [("id", kind, value) for kind, value in node.identity.identifiers] + [
        ("block", block) for block in node.blocking_keys
    ]


def _neighbours(overlay: _Overlay, key: RecordKey) -> set[RecordKey]:
    return {edge.other(key) for edge in overlay.edges_of(key)}


def _connected_components(keys: set[RecordKey], overlay: _Overlay) -> list[set[RecordKey]]:
    seen: set[RecordKey] = set()
    components = []
    for start in sorted(keys):
        if start in seen:
            continue
        component, frontier = {start}, [start]
        while frontier:
            key = frontier.pop()
            for edge in overlay.edges_of(key):
                other = edge.other(key)
                if other in keys and other not in component:
                    component.add(other)
                    frontier.append(other)
        seen |= component
        components.append(component)
    return components


class InMemoryIdentityStore:
    """The identity graph in dicts: the reference implementation of `IdentityGraphStore`."""

    def __init__(self) -> None:
        self._nodes: dict[RecordKey, IdentityNode] = {}
        self._by_identifier: dict[tuple[str, str], set[RecordKey]] = {}
        self._by_block: dict[str, set[RecordKey]] = {}
        self._edges: dict[RecordKey, set[Edge]] = {}
        self.assignments: dict[RecordKey, str] = {}
        self._members: dict[str, set[RecordKey]] = {}
        self.ranks: dict[str, Rank] = {}
        self.history: list[ClusterEvent] = []

    # reads
    def nodes(self, keys: Iterable[RecordKey]) -> dict[RecordKey, IdentityNode]:
        return {k: self._nodes[k] for k in keys if k in self._nodes}

    def keys_with_identifier(self, kind: str, value: str, limit: int) -> set[RecordKey]:
        return set(sorted(self._by_identifier.get((kind, value), ()))[:limit])

    def keys_with_blocking_key(self, block: str, limit: int) -> set[RecordKey]:
        return set(sorted(self._by_block.get(block, ()))[:limit])

    def edges_of(self, key: RecordKey) -> set[Edge]:
        return set(self._edges.get(key, ()))

    def customer_ids(self, keys: Iterable[RecordKey]) -> dict[RecordKey, str]:
        return {k: self.assignments[k] for k in keys if k in self.assignments}

    def members(self, customer_id: str) -> set[RecordKey]:
        return set(self._members.get(customer_id, ()))

    def customer_id_ranks(self, customer_ids: Iterable[str]) -> dict[str, Rank]:
        return {cid: self.ranks[cid] for cid in customer_ids if cid in self.ranks}

    def edges(self) -> set[Edge]:
        return {edge for edges in self._edges.values() for edge in edges}

    def clusters(self) -> dict[str, set[RecordKey]]:
        return {cid: set(keys) for cid, keys in self._members.items() if keys}

    # write
    def apply(self, delta: GraphDelta) -> None:
        for key in delta.nodes_deleted | set(delta.nodes_upserted):
            self._unindex(key)
        for key, node in delta.nodes_upserted.items():
            self._nodes[key] = node
            for identifier in node.identity.identifiers:
                self._by_identifier.setdefault(identifier, set()).add(key)
            for block in node.blocking_keys:
                self._by_block.setdefault(block, set()).add(key)
        for edge in delta.edges_removed:
            self._edges.get(edge.a, set()).discard(edge)
            self._edges.get(edge.b, set()).discard(edge)
        for edge in delta.edges_added:
            self._edges.setdefault(edge.a, set()).add(edge)
            self._edges.setdefault(edge.b, set()).add(edge)
        for key in delta.unassigned:
            self._members.get(self.assignments.pop(key, ""), set()).discard(key)
        for key, customer_id in delta.assignments.items():
            if key in self.assignments:
                self._members[self.assignments[key]].discard(key)
            self.assignments[key] = customer_id
            self._members.setdefault(customer_id, set()).add(key)
        self.ranks.update(delta.new_customer_ids)
        self.history.extend(delta.events)

    def _unindex(self, key: RecordKey) -> None:
        node = self._nodes.pop(key, None)
        if node is None:
            return
        for identifier in node.identity.identifiers:
            self._by_identifier.get(identifier, set()).discard(key)
        for block in node.blocking_keys:
            self._by_block.get(block, set()).discard(key)
