"""A realistic CDC change mix for the freshness benchmark, with its own ground truth.

A population of bench people lives in the demo's four source systems (CRM, bookings, loyalty,
support), each person with identifiers nobody else has: an e-mail, a phone, a loyalty number.
Changes are drawn from a stated mix of kinds, and each comes with what a user must see once it
is applied (`Expectation`): which records the customer found by a reference holds or does not
hold, what its profile must show. The expectations follow from how the bench built the data —
records that share an identifier are one customer, records that share none and cannot match on
name, birth date or address are not — never from the product's code.

* `new_customer` — a CRM insert of a new person; seen when their e-mail finds them.
* `email_change` — a CRM e-mail replaced by a new one; seen when the new e-mail finds the record.
* `merge` — a *twin* (a loyalty record of the same person under another name, no phone, no
  birth date, an e-mail of its own) takes the person's e-mail; seen when the person's e-mail and
  the twin's loyalty number both find one customer holding both records.
* `split` — a merged twin's e-mail replaced by a new one; seen when each lookup finds its own
  record without the other.
* `delete` — a CRM record deleted; seen when the record no longer belongs to any customer.
* `name_address` — a CRM surname and street address changed; seen when the profile holds the
  new address.
* `booking`, `ticket` — an activity row inserted; seen when the customer holds it.
* `points` — a loyalty points update; seen when the profile shows at least those points.

Everything is deterministic for a seed; nothing here talks to a service.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from rag_assets.demo.source_systems import BOOKING, CRM, LOYALTY, SUPPORT, RowChange

REALISTIC_KINDS = ("new_customer", "email_change", "merge", "split", "delete", "name_address",
                   "booking", "ticket", "points")
# The stated mix (shares of the profile changes): activity and points dominate real CDC, the
# identity-changing kinds are a fifth of it.
DEFAULT_REALISTIC_MIX = {"new_customer": 8, "email_change": 6, "merge": 5, "split": 5,
                         "delete": 3, "name_address": 8, "booking": 25, "ticket": 10, "points": 30}
# Bench rows get primary keys far above the demo's (1001…, 500001…, 70001…, 900001…).
PK_BASE = 50_000_000
# A person or twin touched less than this long ago is not picked again, so that one change is
# normally seen before the next one to the same customer is sent.
REST_S = 30.0
CONSONANTS, VOWELS = "bcdfghjklmnprstvz", "aeiou"


@dataclass(frozen=True)
class Expectation:
    """What lookups must show once a change is applied. `holds` / `lacks`: (reference, record
    key) — the customer the reference finds holds, or does not hold, that record (a reference
    that finds no customer holds nothing); `shows`: (reference, text) — that customer's profile
    contains the text; `points`: (reference, n) — its loyalty points are at least n."""

    holds: tuple[tuple[str, str], ...] = ()
    lacks: tuple[tuple[str, str], ...] = ()
    shows: tuple[tuple[str, str], ...] = ()
    points: tuple[str, int] | None = None

    def references(self) -> tuple[str, ...]:
        refs = [ref for ref, _ in (*self.holds, *self.lacks, *self.shows)]
        if self.points:
            refs.append(self.points[0])
        return tuple(dict.fromkeys(refs))

    def met(self, profiles: Mapping[str, Mapping[str, Any] | None]) -> bool:
        """Whether the profiles found by `references()` (None: no customer) show the change."""
        def sources(ref: str) -> set[str]:
            return set((profiles.get(ref) or {}).get("sources") or ())

        if any(key not in sources(ref) for ref, key in self.holds):
            return False
        if any(key in sources(ref) for ref, key in self.lacks):
            return False
        if any(profiles.get(ref) is None or text not in json.dumps(profiles[ref])
               for ref, text in self.shows):
            return False
        if self.points:
            ref, at_least = self.points
            golden = (profiles.get(ref) or {}).get("golden") or {}
            return ((golden.get("loyalty") or {}).get("points") or 0) >= at_least
        return True


@dataclass(frozen=True)
class MixChange:
    """One change to send: its row changes (in order), the customer it concerns (`target`: the
    probe settles a target's changes in order) and what must become visible."""

    kind: str
    target: str
    rows: tuple[RowChange, ...]
    expectation: Expectation


@dataclass
class BenchPerson:
    serial: int
    given: str
    surname: str
    birth: date
    email: str
    crm_pk: int | None = None
    loyalty_pk: int | None = None
    member_number: str | None = None
    twin_pk: int | None = None  # a loyalty record of this person under another name
    twin_member: str | None = None
    twin_merged: bool = False
    touched: float = float("-inf")


def record_key(table: tuple[str, str], pk: int) -> str:
    return f"{table[0]}.{table[1]}:{pk}"


@dataclass
class RealisticCdc:
    """The bench population and the change stream over it (mutates its own state)."""

    people: int = 50_000
    seed: int = 11
    twins: int = 1_000
    today: date = field(default_factory=lambda: datetime.now(timezone.utc).date())

    def __post_init__(self) -> None:
        self.rng = random.Random(f"cdc-mix:{self.seed}")
        self.population: list[BenchPerson] = []
        self._rows: dict[tuple[tuple[str, str], int], dict[str, Any]] = {}
        self._next_pk = {table: PK_BASE for table in (CRM, BOOKING, LOYALTY, SUPPORT)}
        self.truth: dict[str, int] = {}  # record key -> the serial of the person it belongs to
        self.twin_keys: set[str] = set()
        self._serial = 0
        self._unique = 0
        self._names_used: set[str] = set()
        self._points = 1_000_000

    # ------------------------------------------------------------------ the population

    def seed_rows(self) -> Iterator[RowChange]:
        """Inserts of every record of the initial population (twins not merged yet)."""
        for index in range(self.people):
            person = self._new_person()
            yield from self._person_rows(person, twin=index < self.twins)

    def _new_person(self) -> BenchPerson:
        """A person whose names are random syllables and whose e-mail and phone are theirs
        alone, so that only records built from them here can match one another."""
        self._serial += 1
        birth = date(1940, 1, 1) + timedelta(days=self.rng.randrange(25_000))
        person = BenchPerson(self._serial, self._name(), self._name(), birth, self._email())
        self.population.append(person)
        return person

    def _person_rows(self, person: BenchPerson, twin: bool) -> Iterator[RowChange]:
        yield self._new_crm_record(person)
        if self.rng.random() < 0.6:
            person.member_number = f"SKB{person.serial:09d}"
            change = self._insert(LOYALTY, self._loyalty_row(
                person, person.member_number, f"{person.given} {person.surname}", person.email),
                person)
            person.loyalty_pk = change.pk
            yield change
        for _ in range(self.rng.choice((0, 1, 1, 2))):
            yield self._insert(BOOKING, self._booking_row(person), person)
        if self.rng.random() < 0.3:
            yield self._insert(SUPPORT, self._ticket_row(person), person)
        if twin:  # the same person under a name of another alphabet: no evidence links it
            person.twin_member = f"SKT{person.serial:09d}"
            change = self._insert(LOYALTY, self._loyalty_row(
                person, person.twin_member, f"{self._word(2)} {self._word(3)}", self._email(),
                twin=True), person)
            person.twin_pk = change.pk
            self.twin_keys.add(record_key(LOYALTY, change.pk))
            yield change

    def _new_crm_record(self, person: BenchPerson) -> RowChange:
        change = self._insert(CRM, self._crm_row(person), person)
        person.crm_pk = change.pk
        return change

    # ------------------------------------------------------------------ the changes

    def next_change(self, kind: str, now: float) -> MixChange | None:
        """A change of this kind, or None when no person can take one now."""
        return getattr(self, f"_change_{kind}")(now)

    def _pick(self, now: float, where) -> BenchPerson | None:
        for _ in range(50):
            person = self.rng.choice(self.population)
            if now - person.touched >= REST_S and where(person):
                person.touched = now
                return person
        return None

    def _change_new_customer(self, now: float) -> MixChange:
        person = self._new_person()
        person.touched = now
        change = self._new_crm_record(person)
        crm = record_key(CRM, person.crm_pk)
        return MixChange("new_customer", crm, (change,), Expectation(holds=((person.email, crm),)))

    def _change_email_change(self, now: float) -> MixChange | None:
        person = self._pick(now, lambda p: p.crm_pk is not None and p.twin_pk is None)
        if person is None:
            return None
        new = self._email()
        change = self._update(CRM, person.crm_pk, email=new)
        person.email = new  # bookings and tickets keep the old one: a second address of theirs
        crm = record_key(CRM, person.crm_pk)
        return MixChange("email_change", crm, (change,), Expectation(holds=((new, crm),)))

    def _change_merge(self, now: float) -> MixChange | None:
        person = self._pick(now, lambda p: p.twin_pk is not None and not p.twin_merged
                            and p.crm_pk is not None)
        if person is None:
            return None
        change = self._update(LOYALTY, person.twin_pk, email=person.email)
        person.twin_merged = True
        crm, twin = record_key(CRM, person.crm_pk), record_key(LOYALTY, person.twin_pk)
        return MixChange("merge", f"twin:{person.serial}", (change,), Expectation(holds=(
            (person.email, crm), (person.email, twin), (person.twin_member, crm),
            (person.twin_member, twin))))

    def _change_split(self, now: float) -> MixChange | None:
        person = self._pick(now, lambda p: p.twin_merged and p.crm_pk is not None)
        if person is None:
            return None
        change = self._update(LOYALTY, person.twin_pk, email=self._email())
        person.twin_merged = False
        crm, twin = record_key(CRM, person.crm_pk), record_key(LOYALTY, person.twin_pk)
        return MixChange("split", f"twin:{person.serial}", (change,), Expectation(
            holds=((person.email, crm), (person.twin_member, twin)),
            lacks=((person.email, twin), (person.twin_member, crm))))

    def _change_delete(self, now: float) -> MixChange | None:
        person = self._pick(now, lambda p: p.crm_pk is not None and p.twin_pk is None)
        if person is None:
            return None
        pk, person.crm_pk = person.crm_pk, None
        before = self._rows.pop((CRM, pk))
        crm = record_key(CRM, pk)
        del self.truth[crm]
        return MixChange("delete", crm, (RowChange(*CRM, "d", pk, before, None, "bench_delete"),),
                         Expectation(lacks=((crm, crm),)))

    def _change_name_address(self, now: float) -> MixChange | None:
        person = self._pick(now, lambda p: p.crm_pk is not None)
        if person is None:
            return None
        street = f"{self.rng.randrange(1, 400)} {self._word(3)} Street"
        person.surname = self._name()
        change = self._update(CRM, person.crm_pk, last_name=person.surname, address_line1=street)
        return MixChange("name_address", record_key(CRM, person.crm_pk), (change,),
                         Expectation(shows=((person.email, street),)))

    def _change_booking(self, now: float) -> MixChange | None:
        return self._activity("booking", BOOKING, lambda p: self._booking_row(p, upcoming=True), now)

    def _change_ticket(self, now: float) -> MixChange | None:
        return self._activity("ticket", SUPPORT, lambda p: self._ticket_row(p, opened=True), now)

    def _activity(self, kind: str, table: tuple[str, str], row_of, now: float) -> MixChange | None:
        """A new activity row of a person, who must then hold it."""
        person = self._pick(now, lambda p: p.crm_pk is not None)
        if person is None:
            return None
        change = self._insert(table, row_of(person), person)
        key = record_key(table, change.pk)
        return MixChange(kind, key, (change,), Expectation(holds=((person.email, key),)))

    def _change_points(self, now: float) -> MixChange | None:
        person = self._pick(now, lambda p: p.loyalty_pk is not None)
        if person is None:
            return None
        self._points += 1
        change = self._update(LOYALTY, person.loyalty_pk, points=self._points)
        return MixChange("points", record_key(LOYALTY, person.loyalty_pk), (change,),
                         Expectation(points=(person.member_number, self._points)))

    # ------------------------------------------------------------------ rows

    def _name(self) -> str:
        """A name no other bench person has: the fuzzy rule links an equal given name and birth
        date despite different surnames (a name change), so names must never repeat."""
        while (name := self._word(4)) in self._names_used:
            pass
        self._names_used.add(name)
        return name

    def _word(self, syllables: int) -> str:
        return "".join(self.rng.choice(CONSONANTS) + self.rng.choice(VOWELS)
                       for _ in range(syllables)).capitalize()

    def _email(self) -> str:
        self._unique += 1
        return f"b{self._unique}.{self.rng.randrange(16**6):06x}@bench-mail.example"

    @staticmethod
    def _phone(person: BenchPerson) -> str:
        return f"+4474{person.serial:08d}"

    def _crm_row(self, person: BenchPerson) -> dict[str, Any]:
        return {"first_name": person.given, "last_name": person.surname, "email": person.email,
                "phone": self._phone(person), "date_of_birth": person.birth,
                "address_line1": f"{self.rng.randrange(1, 400)} {self._word(3)} Road",
                "city": self._word(3), "postcode": None, "country": "GB", "national_id": None}

    def _loyalty_row(self, person: BenchPerson, member: str, name: str, email: str,
                     twin: bool = False) -> dict[str, Any]:
        return {"member_number": member, "full_name": name, "email": email,
                "phone": None if twin else self._phone(person), "tier": "Blue", "points": 100,
                "date_of_birth": None if twin else person.birth.strftime("%d/%m/%Y")}

    def _booking_row(self, person: BenchPerson, upcoming: bool = False) -> dict[str, Any]:
        given, surname = person.given, person.surname
        departure = self.today + timedelta(days=self.rng.randrange(3, 120) if upcoming
                                           else self.rng.randrange(-300, 120))
        return {"customer_email": person.email, "passenger_first_name": given,
                "passenger_last_name": surname, "phone": None,
                "flight_no": f"SK{self.rng.randrange(1, 2999)}", "origin": "LHR",
                "destination": self.rng.choice(("JFK", "CDG", "DXB", "NRT")),
                "departure_date": departure, "status": "confirmed",
                "created_at": datetime.now(timezone.utc)}

    def _ticket_row(self, person: BenchPerson, opened: bool = False) -> dict[str, Any]:
        now = datetime.now(timezone.utc)
        return {"customer_email": person.email, "customer_phone": None,
                "customer_name": f"{person.given} {person.surname}", "subject": "Seat allocation problem",
                "status": "open" if opened else "closed", "opened_at": now, "updated_at": now}

    def _insert(self, table: tuple[str, str], row: dict[str, Any],
                owner: BenchPerson) -> RowChange:
        self._next_pk[table] += 1
        pk = self._next_pk[table]
        row = {"id": pk, **row}
        self._rows[(table, pk)] = row
        self.truth[record_key(table, pk)] = owner.serial
        return RowChange(*table, "c", pk, None, dict(row), "bench_insert")

    def current_rows(self) -> dict[tuple[tuple[str, str], int], dict[str, Any]]:
        """Every live bench row, as the sources hold it now."""
        return dict(self._rows)

    def _update(self, table: tuple[str, str], pk: int, **values: Any) -> RowChange:
        before = self._rows[(table, pk)]
        after = {**before, **values}
        self._rows[(table, pk)] = after
        return RowChange(*table, "u", pk, dict(before), dict(after), "bench_update")
