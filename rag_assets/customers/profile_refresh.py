"""Rebuilding the profiles of customers whose cluster or records changed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone

from psycopg.types.json import Jsonb

from rag_assets.customers import source_store
from rag_assets.customers.identity_store import PostgresIdentityStore
from rag_assets.customers.profiles import build_profile


@dataclass
class RefreshStats:
    profiles_written: int = 0
    profiles_unchanged: int = 0
    profiles_removed: int = 0

    def metadata(self) -> dict:
        return {"profiles_written": self.profiles_written,
                "profiles_unchanged": self.profiles_unchanged,
                "profiles_removed": self.profiles_removed}


def _pending(cur, limit: int) -> list[str]:
    cur.execute("SELECT customer_id FROM profile_pending ORDER BY customer_id LIMIT %s"
                " FOR UPDATE SKIP LOCKED", (limit,))
    return [row[0] for row in cur.fetchall()]


def _save(cur, customer_id: str, profile: dict, stats: RefreshStats) -> None:
    cur.execute(
        "INSERT INTO customer_profiles (customer_id, profile, content_hash, version)"
        " VALUES (%s, %s, %s, 1)"
        " ON CONFLICT (customer_id) DO UPDATE SET profile = EXCLUDED.profile,"
        " content_hash = EXCLUDED.content_hash, version = customer_profiles.version + 1,"
        " updated_at = now()"
        " WHERE customer_profiles.content_hash <> EXCLUDED.content_hash",
        (customer_id, Jsonb(profile), profile["content_hash"]))
    if cur.rowcount:
        stats.profiles_written += 1
    else:
        stats.profiles_unchanged += 1


def refresh_batch(cur, stats: RefreshStats, today: date | None = None, limit: int = 1000) -> int:
    """Rebuild up to `limit` pending profiles; returns how many were taken."""
    today = today or datetime.now(timezone.utc).date()
    customer_ids = _pending(cur, limit)
    graph = PostgresIdentityStore(cur)
    for customer_id in customer_ids:
        records = source_store.load_records(cur, graph.members(customer_id))
        live = [r for r in records.values() if not r.deleted]
        if live:
            _save(cur, customer_id, build_profile(customer_id, live, today), stats)
        else:
            cur.execute("DELETE FROM customer_profiles WHERE customer_id = %s", (customer_id,))
            stats.profiles_removed += cur.rowcount
    cur.execute("DELETE FROM profile_pending WHERE customer_id = ANY(%s)", (customer_ids,))
    return len(customer_ids)


def queue_every_customer(cur) -> None:
    """For a rebuild: every customer's profile is recomputed; profiles of no one are removed."""
    cur.execute("INSERT INTO profile_pending (customer_id) SELECT DISTINCT customer_id"
                " FROM customer_assignments ON CONFLICT DO NOTHING")
    cur.execute("INSERT INTO profile_pending (customer_id) SELECT customer_id FROM customer_profiles"
                " ON CONFLICT DO NOTHING")
