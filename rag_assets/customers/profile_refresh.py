"""Rebuilding the profiles of customers whose cluster or records changed."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime, timezone

from psycopg.types.json import Jsonb

from rag_assets.customers import source_store
from rag_assets.catalogue import active_catalogue
from rag_assets.customers.profiles import build_profile
from rag_assets.customers.source_state import RecordKey
from rag_assets.customers.dead_letter_ties import ties_of
from rag_assets.platform.dead_letters import DeadLetter, store_dead_letters
from rag_assets.platform.erasure_lock import lock_for_writing
from rag_assets.platform.item_guard import apply_in_transaction
from rag_assets.platform.work_queue import QUEUE_CUSTOMER_AGAIN

DEAD_LETTER_SOURCE = "customer_profiles"


@dataclass
class RefreshStats:
    profiles_written: int = 0
    profiles_unchanged: int = 0
    profiles_removed: int = 0
    profiles_set_aside: int = 0  # their build failed on its own: dead letters

    @classmethod
    def total(cls, parts: list[RefreshStats]) -> RefreshStats:
        return cls(*(sum(getattr(p, f.name) for p in parts) for f in fields(cls)))

    def add(self, other: RefreshStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def metadata(self) -> dict:
        return {"profiles_written": self.profiles_written,
                "profiles_unchanged": self.profiles_unchanged,
                "profiles_removed": self.profiles_removed,
                "profiles_set_aside": self.profiles_set_aside}


def _pending(cur, limit: int) -> list[str]:
    cur.execute("SELECT customer_id FROM profile_pending ORDER BY customer_id LIMIT %s"
                " FOR UPDATE SKIP LOCKED", (limit,))
    return [row[0] for row in cur.fetchall()]


def _members(cur, customer_ids: list[str]) -> dict[str, list[RecordKey]]:
    cur.execute("SELECT customer_id, record_key FROM customer_assignments"
                " WHERE customer_id = ANY(%b)", (customer_ids,))
    members: dict[str, list[RecordKey]] = {cid: [] for cid in customer_ids}
    for customer_id, key in cur.fetchall():
        members[customer_id].append(RecordKey.parse(key))
    return members


def _save_all(cur, profiles: dict[str, dict], stats: RefreshStats) -> None:
    """Upsert profiles in one statement; a profile whose content hash is unchanged is left as is."""
    if not profiles:
        return
    ids = sorted(profiles)
    cur.execute(
        "INSERT INTO customer_profiles (customer_id, profile, content_hash, version)"
        " SELECT customer_id, profile, content_hash, 1"
        " FROM unnest(%b::text[], %b::jsonb[], %b::text[]) AS p(customer_id, profile, content_hash)"
        " ON CONFLICT (customer_id) DO UPDATE SET profile = EXCLUDED.profile,"
        " content_hash = EXCLUDED.content_hash, version = customer_profiles.version + 1,"
        " updated_at = now()"
        " WHERE customer_profiles.content_hash <> EXCLUDED.content_hash",
        (ids, [Jsonb(profiles[c]) for c in ids], [profiles[c]["content_hash"] for c in ids]))
    stats.profiles_written += cur.rowcount
    stats.profiles_unchanged += len(ids) - cur.rowcount


# Below this many queued customers a second process costs more (~1 s to start) than it saves.
PARALLEL_FROM = 5000


def worth_a_second_process(cur) -> bool:
    cur.execute("SELECT count(*) > %s FROM profile_pending", (PARALLEL_FROM,))
    return cur.fetchone()[0]


BATCH_LIMIT = 1000  # pending profiles rebuilt per transaction


def refresh_batch(cur, stats: RefreshStats, today: date | None = None,
                  limit: int = BATCH_LIMIT) -> int:
    """Rebuild up to `limit` pending profiles; returns how many were taken.

    Three set-based reads (pending ids, their members, the members' records) and two writes
    (upsert of the changed profiles, delete of the empty ones), whatever the batch size. A
    customer whose profile fails to build on its own is set aside as a dead letter (item_guard).
    """
    today = today or datetime.now(timezone.utc).date()
    lock_for_writing(cur)
    customer_ids = _pending(cur, limit)
    if not customer_ids:
        return 0

    refreshed, set_aside = apply_in_transaction(
        cur, customer_ids, lambda part, counts: _refresh(cur, part, counts, today), RefreshStats,
        "profile build")
    stats.add(refreshed)
    if set_aside:
        _dequeue(cur, [aside.item for aside in set_aside])
        store_dead_letters(cur, [DeadLetter(DEAD_LETTER_SOURCE, aside.reason, object_key=aside.item,
                                            customer_ref=aside.item)  # its customer id
                                 for aside in set_aside], ties_of=ties_of)
        stats.profiles_set_aside += len(set_aside)
    return len(customer_ids)


def _refresh(cur, customer_ids: list[str], stats: RefreshStats, today: date) -> None:
    members = _members(cur, customer_ids)
    records = source_store.load_records(cur, [k for keys in members.values() for k in keys])
    profiles, empty = {}, []
    catalogue = active_catalogue()
    for customer_id in customer_ids:
        live = [r for k in members[customer_id] if (r := records.get(k)) is not None and not r.deleted]
        if live:
            profiles[customer_id] = build_profile(
                customer_id, live, today, catalogue.survivorship, catalogue.identity_columns,
                catalogue.default_phone_region, catalogue.profile_roles)
        else:
            empty.append(customer_id)
    _save_all(cur, profiles, stats)
    if empty:
        cur.execute("DELETE FROM customer_profiles WHERE customer_id = ANY(%b)", (empty,))
        stats.profiles_removed += cur.rowcount
    _dequeue(cur, customer_ids)


def _dequeue(cur, customer_ids: list[str]) -> None:
    cur.execute("DELETE FROM profile_pending WHERE customer_id = ANY(%b)", (customer_ids,))


def queue_every_customer(cur) -> None:
    """For a rebuild: every customer's profile is recomputed; profiles of no one are removed."""
    cur.execute("INSERT INTO profile_pending (customer_id) SELECT DISTINCT customer_id"
                f" FROM customer_assignments{QUEUE_CUSTOMER_AGAIN}")
    cur.execute("INSERT INTO profile_pending (customer_id) SELECT customer_id FROM customer_profiles"
                f"{QUEUE_CUSTOMER_AGAIN}")
