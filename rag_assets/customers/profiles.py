"""Unified customer profiles: the golden record of a cluster plus its recent activity.

Survivorship (configurable through `SurvivorshipPolicy`):

* Names, date of birth and postal address come from the highest-priority source that has a
  value (default crm > loyalty > booking > support); among records of the same priority, the most
  recently changed one wins.
* Email and phone come from the most recently changed record that has one (contact details go
  stale; the latest one the customer gave is the best guess); ties go to source priority.
* Loyalty number, tier and points come from the most recent loyalty record.
* Every golden field carries its provenance: the source record, its version time and the Kafka
  position of the change that produced it.
* All distinct emails, phones and addresses are kept as lists, with the records that hold them.

Activity: upcoming bookings (departure date on or after `today`, not cancelled), open support
tickets, and the latest interactions across all records.

`build_profile` returns a plain JSON-ready dict (stored as JSONB) with a `content_hash` over
everything else, so a profile whose content did not change need not be rewritten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from rag_assets.customers.identifiers import (
    DEFAULT_PHONE_REGION,
    IDENTITY_COLUMNS,
    IdentityColumns,
    normalize_country,
    normalize_date_of_birth,
    normalize_email,
    normalize_phone,
    normalize_postcode,
    parse_date,
)
from rag_assets.customers.source_state import SourceRecord

PROFILE_SCHEMA_VERSION = 1
CLOSED_TICKET_STATUSES = frozenset({"closed", "resolved", "cancelled", "canceled", "solved"})
CANCELLED_BOOKING_STATUSES = frozenset({"cancelled", "canceled", "refunded", "void"})


@dataclass(frozen=True)
class SurvivorshipPolicy:
    source_priority: tuple[str, ...] = ("crm", "loyalty", "booking", "support")
    by_priority: frozenset[str] = frozenset({"given_name", "surname", "date_of_birth", "address"})
    by_recency: frozenset[str] = frozenset({"email", "phone"})
    booking_tables: frozenset[tuple[str, str]] = frozenset({("booking", "bookings")})
    ticket_tables: frozenset[tuple[str, str]] = frozenset({("support", "tickets")})
    loyalty_tables: frozenset[tuple[str, str]] = frozenset({("loyalty", "members")})
    last_interactions: int = 5

    def priority(self, system: str) -> int:
        """Lower is better; unknown systems come last."""
        order = self.source_priority
        return order.index(system) if system in order else len(order)


DEFAULT_POLICY = SurvivorshipPolicy()


@dataclass(frozen=True)
class _Candidate:
    value: Any
    record: SourceRecord


def build_profile(
    customer_id: str,
    records: Iterable[SourceRecord],
    today: date,
    policy: SurvivorshipPolicy = DEFAULT_POLICY,
    columns: Mapping[tuple[str, str], IdentityColumns] = IDENTITY_COLUMNS,
    default_region: str = DEFAULT_PHONE_REGION,
) -> dict[str, Any]:
    """The profile of one customer from the live source records of its cluster."""
    live = sorted((r for r in records if not r.deleted), key=lambda r: str(r.key))
    values = {
        name: [] for name in ("given_name", "surname", "date_of_birth", "address", "email", "phone")
    }
    for record in live:
        mapping = columns.get((record.key.system, record.key.table))
        if mapping is not None:
            for name, found in _field_values(record.row, mapping, default_region).items():
                values[name].extend(_Candidate(v, record) for v in found)
    golden = {}
    for name, candidates in values.items():
        winner = _survivor(name, candidates, policy)
        if winner is not None:
            golden[name] = {"value": winner.value, **provenance(winner.record)}
    loyalty = _loyalty(live, policy)
    if loyalty is not None:
        golden["loyalty"] = loyalty
    profile = {
        "schema_version": PROFILE_SCHEMA_VERSION,
        "customer_id": customer_id,
        "golden": golden,
        "emails": _distinct(values["email"]),
        "phones": _distinct(values["phone"]),
        "addresses": _distinct(values["address"]),
        "upcoming_bookings": _upcoming_bookings(live, today, policy),
        "open_tickets": _open_tickets(live, policy),
        "last_interactions": _last_interactions(live, policy),
        "sources": [str(r.key) for r in live],
        "last_changed_ms": max((r.version.ts_ms for r in live), default=None),
    }
    profile["content_hash"] = profile_hash(profile)
    return profile


def profile_hash(profile: Mapping[str, Any]) -> str:
    """SHA-256 of the profile's canonical JSON, ignoring any `content_hash` it already has."""
    content = {k: v for k, v in profile.items() if k != "content_hash"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def provenance(record: SourceRecord) -> dict[str, Any]:
    position = record.position
    return {
        "source": str(record.key),
        "version_ts_ms": record.version.ts_ms,
        "cdc_position": f"{position.topic}/{position.partition}/{position.offset}",
    }


def _field_values(
    row: Mapping[str, Any], mapping: IdentityColumns, default_region: str
) -> dict[str, list[Any]]:
    country = normalize_country(row.get(mapping.country)) if mapping.country else None
    given, surname = _display_names(row, mapping)
    dob = normalize_date_of_birth(row.get(mapping.date_of_birth)) if mapping.date_of_birth else None
    emails = [e for c in mapping.email if (e := normalize_email(row.get(c)))]
    phones = [
        p for c in mapping.phone if (p := normalize_phone(row.get(c), country or default_region))
    ]
    return {
        "given_name": [given] if given else [],
        "surname": [surname] if surname else [],
        "date_of_birth": [dob] if dob else [],
        "address": [a] if (a := _address(row, mapping, country)) else [],
        "email": emails,
        "phone": phones,
    }


def _display_names(
    row: Mapping[str, Any], mapping: IdentityColumns
) -> tuple[str | None, str | None]:
    """Names as the customer wrote them (trimmed), not the folded matching form."""
    given = _text(row.get(mapping.given_name)) if mapping.given_name else None
    surname = _text(row.get(mapping.surname)) if mapping.surname else None
    if given or surname or not mapping.full_name:
        return given, surname
    full = _text(row.get(mapping.full_name))
    if not full:
        return None, None
    if "," in full:
        last, _, first = full.partition(",")
        return _text(first), _text(last)
    words = full.split()
    return (" ".join(words[:-1]) or None, words[-1])


def _address(row: Mapping[str, Any], mapping: IdentityColumns, country: str | None) -> dict | None:
    line = " ".join(t for c in mapping.address_line if (t := _text(row.get(c))))
    if not line:
        return None
    return {
        "line": line,
        "city": _text(row.get(mapping.city)) if mapping.city else None,
        "postcode": normalize_postcode(row.get(mapping.postcode), country)
        if mapping.postcode
        else None,
        "country": country,
    }


def _text(raw: Any) -> str | None:
    if raw is None:
        return None
    text = " ".join(str(raw).split())
    return text or None


def _survivor(
    name: str, candidates: list[_Candidate], policy: SurvivorshipPolicy
) -> _Candidate | None:
    if not candidates:
        return None

    def recency(c: _Candidate) -> tuple:
        return (-c.record.version.ts_ms, -c.record.version.lsn, str(c.record.key))

    def priority(c: _Candidate) -> int:
        return policy.priority(c.record.key.system)

    if name in policy.by_recency:
        return min(candidates, key=lambda c: (recency(c)[:2], priority(c), recency(c)[2:]))
    return min(candidates, key=lambda c: (priority(c), recency(c)))


def _distinct(candidates: list[_Candidate]) -> list[dict[str, Any]]:
    by_value: dict[str, dict[str, Any]] = {}
    for candidate in candidates:
        token = json.dumps(candidate.value, sort_keys=True)
        entry = by_value.setdefault(token, {"value": candidate.value, "sources": []})
        entry["sources"].append(str(candidate.record.key))
    return [
        {"value": entry["value"], "sources": sorted(set(entry["sources"]))}
        for _, entry in sorted(by_value.items())
    ]


def _newest_first(records: Iterable[SourceRecord]) -> list[SourceRecord]:
    return sorted(records, key=lambda r: (-r.version.ts_ms, -r.version.lsn, str(r.key)))


def _of(records: list[SourceRecord], tables: frozenset[tuple[str, str]]) -> list[SourceRecord]:
    return [r for r in records if (r.key.system, r.key.table) in tables]


def _loyalty(records: list[SourceRecord], policy: SurvivorshipPolicy) -> dict[str, Any] | None:
    members = _newest_first(_of(records, policy.loyalty_tables))
    if not members:
        return None
    latest = members[0]
    return {
        "member_number": _text(latest.row.get("member_number")),
        "tier": _text(latest.row.get("tier")),
        "points": latest.row.get("points"),
        **provenance(latest),
    }


def _upcoming_bookings(
    records: list[SourceRecord], today: date, policy: SurvivorshipPolicy
) -> list[dict[str, Any]]:
    upcoming = []
    for record in _of(records, policy.booking_tables):
        row = record.row
        departure = parse_date(row.get("departure_date"), day_first=True)
        status = (_text(row.get("status")) or "").lower()
        if departure is None or departure < today or status in CANCELLED_BOOKING_STATUSES:
            continue
        upcoming.append(
            {
                "flight_no": _text(row.get("flight_no")),
                "origin": _text(row.get("origin")),
                "destination": _text(row.get("destination")),
                "departure_date": departure.isoformat(),
                "status": status or None,
                **provenance(record),
            }
        )
    return sorted(upcoming, key=lambda b: (b["departure_date"], b["source"]))


def _open_tickets(records: list[SourceRecord], policy: SurvivorshipPolicy) -> list[dict[str, Any]]:
    tickets = []
    for record in _newest_first(_of(records, policy.ticket_tables)):
        status = (_text(record.row.get("status")) or "").lower()
        if status in CLOSED_TICKET_STATUSES:
            continue
        tickets.append(
            {
                "subject": _text(record.row.get("subject")),
                "status": status or None,
                "opened_at": _iso(record.row.get("opened_at")),
                "updated_at": _iso(record.row.get("updated_at")),
                **provenance(record),
            }
        )
    return tickets


def _iso(raw: Any) -> Any:
    return raw.isoformat() if hasattr(raw, "isoformat") else raw


def _last_interactions(
    records: list[SourceRecord], policy: SurvivorshipPolicy
) -> list[dict[str, Any]]:
    interactions = []
    for record in _newest_first(records)[: policy.last_interactions]:
        interactions.append(
            {
                "kind": _kind(record, policy),
                "summary": _summary(record, policy),
                **provenance(record),
            }
        )
    return interactions


def _kind(record: SourceRecord, policy: SurvivorshipPolicy) -> str:
    table = (record.key.system, record.key.table)
    if table in policy.booking_tables:
        return "booking"
    if table in policy.ticket_tables:
        return "support_ticket"
    if table in policy.loyalty_tables:
        return "loyalty"
    return "profile_update"


def _summary(record: SourceRecord, policy: SurvivorshipPolicy) -> str:
    row, kind = record.row, _kind(record, policy)
    if kind == "booking":
        route = f"{row.get('origin') or '?'}-{row.get('destination') or '?'}"
        return f"booking {row.get('flight_no') or '?'} {route} ({row.get('status') or 'unknown'})"
    if kind == "support_ticket":
        return f"ticket '{row.get('subject') or ''}' ({row.get('status') or 'unknown'})"
    if kind == "loyalty":
        return f"loyalty {row.get('tier') or 'member'}, {row.get('points') or 0} points"
    return f"{record.key.system}.{record.key.table} record changed"
