"""The source catalogue as typed data: which tables exist, where their changes arrive and what
each of their columns means to a customer profile. Built by `loader.py` from the YAML file;
plain frozen dataclasses, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

from rag_assets.knowledge.parsing import SUPPORTED_EXTENSIONS

TableKey = tuple[str, str]

PERSON, MEMBERSHIP, ACTIVITY = "person", "membership", "activity"
ROLES = (PERSON, MEMBERSHIP, ACTIVITY)
ENVELOPES = ("any", "debezium", "dms")
# A placeholder of a summary template: `{column}` or `{column|default}`.
SUMMARY_PLACEHOLDER = re.compile(r"\{([^{}|]+)(?:\|([^{}]*))?\}")
# The golden fields a survivorship rule can name.
FIELD_GROUPS = ("given_name", "surname", "date_of_birth", "address", "email", "phone")


@dataclass(frozen=True)
class IdentityColumns:
    """Which columns of one source table hold which identifier kind."""

    email: tuple[str, ...] = ()
    phone: tuple[str, ...] = ()
    loyalty_number: tuple[str, ...] = ()
    national_id: tuple[str, ...] = ()
    passport: tuple[str, ...] = ()
    given_name: str | None = None
    surname: str | None = None
    full_name: str | None = None  # used when given_name/surname are absent
    date_of_birth: str | None = None
    address_line: tuple[str, ...] = ()
    city: str | None = None
    postcode: str | None = None
    country: str | None = None
    phone_region: str | None = None  # phones without a country code, when the row has none


@dataclass(frozen=True)
class ProfileRole:
    """What the records of one table are to a profile.

    * person: identity only; its changes show as `profile_update` interactions.
    * membership: the newest record of the table becomes `golden[section]` with `fields`.
    * activity: the records become the list `section` with `fields`; `status` rows whose status
      is in `hidden_statuses` are left out; with `upcoming_by` (a field holding a date) only
      today's and later ones are listed, in date order, else newest first.
    `summary` renders a record in `last_interactions`: `{column}` or `{column|default}`.
    """

    role: str = PERSON
    kind: str = "profile_update"
    section: str | None = None
    fields: tuple[tuple[str, str], ...] = ()  # (profile field, column)
    summary: str | None = None
    status: str | None = None  # the column of the record's status
    hidden_statuses: frozenset[str] = frozenset()
    upcoming_by: str | None = None

    def column_of(self, profile_field: str) -> str | None:
        return dict(self.fields).get(profile_field)


@dataclass(frozen=True)
class SurvivorshipPolicy:
    """Which record wins each golden field: `by_priority` fields from the first system of
    `source_priority` that has a value (newest first among equals), `by_recency` fields from the
    newest record (ties to priority)."""

    source_priority: tuple[str, ...] = ()
    by_priority: frozenset[str] = frozenset({"given_name", "surname", "date_of_birth", "address"})
    by_recency: frozenset[str] = frozenset({"email", "phone"})
    last_interactions: int = 5

    def priority(self, system: str) -> int:
        """Lower is better; unknown systems come last."""
        order = self.source_priority
        return order.index(system) if system in order else len(order)


@dataclass(frozen=True)
class SourceTable:
    system: str
    table: str
    identity: IdentityColumns
    topics: tuple[str, ...] = ()
    topic_pattern: str | None = None
    envelope: str = "any"
    source_table: str | None = None  # the table name the events' source block carries
    primary_key: tuple[str, ...] = ("id",)
    version_column: str | None = None
    short_reference: str | None = None
    profile: ProfileRole = ProfileRole()
    line: int = 0  # where the entry starts in the file (1-based)

    @property
    def key(self) -> TableKey:
        return (self.system, self.table)

    @property
    def name(self) -> str:
        return f"{self.system}.{self.table}"

    @cached_property
    def _pattern(self) -> re.Pattern[str] | None:
        return re.compile(self.topic_pattern) if self.topic_pattern else None

    def carries(self, topic: str) -> bool:
        """True when `topic` (without the deployment's topic prefix) carries this table."""
        return topic in self.topics or bool(self._pattern and self._pattern.fullmatch(topic))

    def topic_regex(self) -> str:
        """One regular expression over every topic of the table."""
        parts = [re.escape(t) for t in self.topics]
        if self.topic_pattern:
            parts.append(self.topic_pattern)
        return "|".join(f"(?:{p})" for p in parts)


@dataclass(frozen=True)
class Knowledge:
    prefix: str = "knowledge-base/"
    document_types: tuple[str, ...] = tuple(sorted(SUPPORTED_EXTENSIONS))


@dataclass(frozen=True)
class Catalogue:
    path: str
    tables: tuple[SourceTable, ...]
    survivorship: SurvivorshipPolicy = field(default_factory=SurvivorshipPolicy)
    default_phone_region: str = "GB"
    # Every topic matching it is read as CDC; one that no table claims is dead-lettered.
    cdc_topics: str | None = None
    knowledge: Knowledge = field(default_factory=Knowledge)
    feedback_topic: str = "app.feedback"

    @cached_property
    def by_key(self) -> dict[TableKey, SourceTable]:
        return {t.key: t for t in self.tables}

    @cached_property
    def identity_columns(self) -> dict[TableKey, IdentityColumns]:
        return {t.key: t.identity for t in self.tables}

    @cached_property
    def version_columns(self) -> dict[TableKey, str]:
        return {t.key: t.version_column for t in self.tables if t.version_column}

    @cached_property
    def profile_roles(self) -> dict[TableKey, ProfileRole]:
        return {t.key: t.profile for t in self.tables}

    @cached_property
    def short_references(self) -> dict[str, TableKey]:
        """`shop` -> ("shop", "customers"): the table a reference `shop:1001` names."""
        return {t.short_reference: t.key for t in self.tables if t.short_reference}

    @cached_property
    def topic_pattern(self) -> str:
        """One regular expression over every topic the CDC consumer reads."""
        parts = [t.topic_regex() for t in self.tables]
        if self.cdc_topics:
            parts.append(self.cdc_topics)
        return "|".join(f"(?:{p})" for p in parts if p)

    def tables_of_topic(self, topic: str) -> list[SourceTable]:
        return [t for t in self.tables if t.carries(topic)]
