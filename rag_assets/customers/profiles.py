"""Unified customer profiles: the golden record of a cluster plus its recent activity.

Survivorship (the catalogue's `survivorship:`, a `SurvivorshipPolicy`):

* `by_priority` fields (names, date of birth, postal address by default) come from the
  highest-priority source that has a value; among records of the same priority, the most
  recently changed one wins.
* `by_recency` fields (email and phone by default) come from the most recently changed record
  that has one (contact details go stale; the latest one the customer gave is the best guess);
  ties go to source priority.
* Every golden field carries its provenance: the source record, its version time and the Kafka
  position of the change that produced it.
* All distinct emails, phones and addresses are kept as lists, with the records that hold them.

What else a table contributes is its role in the catalogue (`ProfileRole`): a membership table's
newest record becomes a golden section (e.g. a loyalty tier); an activity table's records
become a list (e.g. upcoming bookings, open tickets); every record may appear among the latest
interactions, rendered by its table's summary template.

`build_profile` returns a plain JSON-ready dict (stored as JSONB) with a `content_hash` over
everything else, so a profile whose content did not change need not be rewritten.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from rag_assets.catalogue import active_catalogue
from rag_assets.catalogue.model import (
    ACTIVITY,
    MEMBERSHIP,
    SUMMARY_PLACEHOLDER,
    ProfileRole,
    SurvivorshipPolicy,
)
from rag_assets.customers.identifiers import (
    IdentityColumns,
    identity_settings,
    normalize_country,
    normalize_date_of_birth,
    normalize_email,
    normalize_phone,
    normalize_postcode,
    parse_date,
)
from rag_assets.customers.source_state import SourceRecord

PROFILE_SCHEMA_VERSION = 1
Roles = Mapping[tuple[str, str], ProfileRole]


@dataclass(frozen=True)
class _Candidate:
    value: Any
    record: SourceRecord


def build_profile(
    customer_id: str,
    records: Iterable[SourceRecord],
    today: date,
    policy: SurvivorshipPolicy | None = None,
    columns: Mapping[tuple[str, str], IdentityColumns] | None = None,
    default_region: str | None = None,
    roles: Roles | None = None,
) -> dict[str, Any]:
    """The profile of one customer from the live source records of its cluster. Policy,
    columns, phone region and table roles are the catalogue's unless given."""
    columns, default_region = identity_settings(columns, default_region)
    policy = policy or active_catalogue().survivorship
    roles = active_catalogue().profile_roles if roles is None else roles
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
    golden.update(_memberships(live, roles))
    profile = {
        "schema_version": PROFILE_SCHEMA_VERSION,
        "customer_id": customer_id,
        "golden": golden,
        "emails": _distinct(values["email"]),
        "phones": _distinct(values["phone"]),
        "addresses": _distinct(values["address"]),
        **_activities(live, today, roles),
        "last_interactions": _last_interactions(live, policy, roles),
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


def _of(records: list[SourceRecord], roles: Roles, role: str) -> dict[str, list[SourceRecord]]:
    """The records of the tables with `role`, by the section they go to."""
    sections: dict[str, list[SourceRecord]] = {}
    for record in records:
        found = roles.get((record.key.system, record.key.table))
        if found is not None and found.role == role and found.section:
            sections.setdefault(found.section, []).append(record)
    return sections


def _role(record: SourceRecord, roles: Roles) -> ProfileRole:
    return roles.get((record.key.system, record.key.table)) or ProfileRole()


def _shown(record: SourceRecord, role: ProfileRole) -> dict[str, Any]:
    """The fields of a record that its table's role shows, as they are shown."""
    return {name: _display(record.row.get(column)) for name, column in role.fields}


def _display(raw: Any) -> Any:
    if isinstance(raw, str):
        return _text(raw)
    return raw.isoformat() if hasattr(raw, "isoformat") else raw


def _memberships(records: list[SourceRecord], roles: Roles) -> dict[str, dict[str, Any]]:
    """Per membership section, the fields of its newest record."""
    golden = {}
    for section, members in _of(records, roles, MEMBERSHIP).items():
        latest = _newest_first(members)[0]
        golden[section] = {**_shown(latest, _role(latest, roles)), **provenance(latest)}
    return golden


def _activities(records: list[SourceRecord], today: date, roles: Roles) -> dict[str, list]:
    """Every activity section of the catalogue, with the records of this customer it shows:
    in date order when the section lists what is upcoming, else newest first."""
    sections = {role.section: [] for role in roles.values() if role.role == ACTIVITY}
    for section, members in _of(records, roles, ACTIVITY).items():
        items = [item for record in _newest_first(members)
                 if (item := _activity_item(record, _role(record, roles), today)) is not None]
        upcoming_by = _role(members[0], roles).upcoming_by
        if upcoming_by:
            items.sort(key=lambda item: (item[upcoming_by], item["source"]))
        sections[section] = items
    return sections


def _activity_item(record: SourceRecord, role: ProfileRole, today: date) -> dict | None:
    """The record as an entry of its activity list; None when the list does not show it."""
    item = _shown(record, role)
    if role.status:
        status = (_text(record.row.get(role.status)) or "").lower()
        if status in role.hidden_statuses:
            return None
        item["status"] = status or None
    if role.upcoming_by:
        when = parse_date(record.row.get(role.column_of(role.upcoming_by)), day_first=True)
        if when is None or when < today:
            return None
        item[role.upcoming_by] = when.isoformat()
    return {**item, **provenance(record)}


def _last_interactions(
    records: list[SourceRecord], policy: SurvivorshipPolicy, roles: Roles
) -> list[dict[str, Any]]:
    interactions = []
    for record in _newest_first(records)[: policy.last_interactions]:
        role = _role(record, roles)
        interactions.append(
            {"kind": role.kind, "summary": render_summary(record, role), **provenance(record)}
        )
    return interactions


def render_summary(record: SourceRecord, role: ProfileRole) -> str:
    """The role's summary template over the record's row: `{column}` or `{column|default}`
    (the default when the column is empty)."""
    if not role.summary:
        return f"{record.key.system}.{record.key.table} record changed"

    def value(match: re.Match) -> str:
        raw = record.row.get(match[1].strip())
        return str(raw) if raw not in (None, "") else (match[2] or "")

    return SUMMARY_PLACEHOLDER.sub(value, role.summary)
