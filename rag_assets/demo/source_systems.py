"""How each synthetic person appears in the four source systems, noise included.

Tables and columns (PostgreSQL types in brackets; `date` becomes Debezium's days-since-epoch,
`timestamptz` an ISO-8601 string, as the Debezium PostgreSQL connector emits them):

* `crm.customers(id, first_name, last_name, email, phone, date_of_birth [date], address_line1,
  city, postcode, country, national_id)`
* `booking.bookings(id, customer_email, passenger_first_name, passenger_last_name, phone,
  flight_no, origin, destination, departure_date [date], status, created_at [timestamptz])`
* `loyalty.members(id, member_number, full_name, email, phone, tier, points [int],
  date_of_birth [varchar, "DD/MM/YYYY" — a legacy system])`
* `support.tickets(id, customer_email, customer_phone, customer_name, subject, status,
  opened_at [timestamptz], updated_at [timestamptz])`

Noise, as real systems accumulate it: typos in names (swapped, dropped or doubled letter),
stripped accents, upper-case PNR names, nicknames, "LAST/FIRST" names, e-mail case variants and a
second e-mail address, phones in E.164, national or spaced international format, missing fields,
duplicate CRM registrations, and people who exist in only one system.

The ground truth (which person each source record belongs to) is kept in `SourceSnapshot.truth`
for tests and evaluation; it never goes into the change events.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from rag_assets.demo.people import (
    AIRLINE_CODE,
    EMAIL_DOMAINS,
    NAMES,
    TIERS,
    Person,
    ascii_fold,
    make_person,
    national_phone,
    spaced_international,
)

CRM, BOOKING, LOYALTY, SUPPORT = ("crm", "customers"), ("booking", "bookings"), ("loyalty", "members"), ("support", "tickets")
TABLES: tuple[tuple[str, str], ...] = (CRM, BOOKING, LOYALTY, SUPPORT)

# column -> PostgreSQL-ish type used by the Debezium encoder (values and the schema wrapper)
COLUMNS: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    CRM: (("id", "int64"), ("first_name", "string"), ("last_name", "string"), ("email", "string"),
          ("phone", "string"), ("date_of_birth", "date"), ("address_line1", "string"),
          ("city", "string"), ("postcode", "string"), ("country", "string"),
          ("national_id", "string")),
    BOOKING: (("id", "int64"), ("customer_email", "string"), ("passenger_first_name", "string"),
              ("passenger_last_name", "string"), ("phone", "string"), ("flight_no", "string"),
              ("origin", "string"), ("destination", "string"), ("departure_date", "date"),
              ("status", "string"), ("created_at", "timestamptz")),
    LOYALTY: (("id", "int64"), ("member_number", "string"), ("full_name", "string"),
              ("email", "string"), ("phone", "string"), ("tier", "string"), ("points", "int32"),
              ("date_of_birth", "string")),
    SUPPORT: (("id", "int64"), ("customer_email", "string"), ("customer_phone", "string"),
              ("customer_name", "string"), ("subject", "string"), ("status", "string"),
              ("opened_at", "timestamptz"), ("updated_at", "timestamptz")),
}
FIRST_ID = {CRM: 1001, BOOKING: 500001, LOYALTY: 70001, SUPPORT: 900001}

AIRPORTS = ("LHR", "LGW", "MAN", "EDI", "DUB", "JFK", "BOS", "ORD", "SEA", "AUS", "CDG", "FRA",
            "MUC", "MAD", "BCN", "BOM", "BLR", "LOS", "NRT", "DXB", "AMS", "LIS", "ATH", "YYZ")
HUBS = ("LHR", "LGW", "MAN")
TICKET_SUBJECTS = (
    "Checked bag did not arrive", "Refund for cancelled flight", "Change of name on booking",
    "Seat allocation problem", "Missing loyalty points", "Request wheelchair assistance",
    "Flight delayed over 3 hours - compensation", "Travelling with a dog", "Invoice for booking",
    "Unable to check in online", "Damaged suitcase", "Upgrade with points", "Visa question",
    "Special meal request", "Infant on lap booking", "Duplicate charge on card",
)
TICKET_FLOW = {"open": ("pending", "resolved"), "pending": ("open", "resolved"),
               "resolved": ("closed", "open"), "closed": ()}
TIER_POINTS = {"Blue": (0, 4_000), "Silver": (4_000, 15_000), "Gold": (15_000, 40_000),
               "Platinum": (40_000, 120_000)}
DEFAULT_TODAY = date(2025, 1, 15)


@dataclass
class SourceSnapshot:
    """Current rows of every source table, plus the ground truth and the noise applied."""

    tables: dict[tuple[str, str], dict[int, dict[str, Any]]] = field(
        default_factory=lambda: {t: {} for t in TABLES})
    truth: dict[tuple[str, str, int], str] = field(default_factory=dict)
    noise: dict[tuple[str, str, int], list[str]] = field(default_factory=dict)

    def rows(self, system: str, table: str) -> list[dict[str, Any]]:
        return [dict(row) for _, row in sorted(self.tables[(system, table)].items())]

    def record_count(self) -> int:
        return sum(len(rows) for rows in self.tables.values())

    def systems_of(self, person_id: str) -> set[str]:
        return {system for (system, _, _), pid in self.truth.items() if pid == person_id}

    def next_id(self, key: tuple[str, str]) -> int:
        rows = self.tables[key]
        return max(rows, default=FIRST_ID[key] - 1) + 1


def ground_truth(snapshot: SourceSnapshot) -> dict[tuple[str, str, int], str]:
    """(system, table, primary key) -> person id of every record ever generated."""
    return dict(snapshot.truth)


# ---------------------------------------------------------------- noise


def typo(rng: random.Random, name: str) -> str:
    """Swap two adjacent letters, drop one or double one (never the first letter)."""
    if len(name) < 4:
        return name + name[-1]
    i = rng.randrange(1, len(name) - 1)
    kind = rng.randrange(3)
    if kind == 0 and name[i] != name[i + 1]:
        return name[:i] + name[i + 1] + name[i] + name[i + 2:]
    if kind == 1:
        return name[:i] + name[i + 1:]
    return name[:i] + name[i] + name[i:]


def second_email(rng: random.Random, person: Person) -> str:
    first = ascii_fold(person.first_name).lower().replace(" ", "").replace("'", "")
    last = ascii_fold(person.last_name).lower().replace(" ", "").replace("'", "")
    domain = rng.choice([d for d in EMAIL_DOMAINS if not person.email.endswith("@" + d)])
    local = rng.choice((f"{first}{rng.randrange(70, 99)}", f"{first[0]}.{last}.work",
                        f"{last}{first[0]}", f"{first}.travel"))
    return f"{local}@{domain}"


def email_case_variant(rng: random.Random, email: str) -> str:
    local, _, domain = email.partition("@")
    if rng.random() < 0.5:
        return email.upper()
    return ".".join(p.capitalize() for p in local.split(".")) + "@" + domain.capitalize()


def phone_variant(rng: random.Random, person: Person, weights=(50, 30, 20)) -> tuple[str, str | None]:
    kind = rng.choices(("e164", "national", "spaced"), weights=weights)[0]
    if kind == "e164":
        return person.phone, None
    if kind == "national":
        return national_phone(person.phone, person.country), "phone_national_format"
    return spaced_international(person.phone, person.country), "phone_spaced_format"


def _strip_accents(text: str) -> str:
    folded = ascii_fold(text)
    return folded if folded != text and len(folded) == len(text) else text


def _noisy_name(rng: random.Random, name: str, p_typo: float, noise: list[str], what: str) -> str:
    if rng.random() < p_typo:
        noise.append(f"{what}_typo")
        return typo(rng, name)
    stripped = _strip_accents(name)
    if stripped != name and rng.random() < 0.5:
        noise.append(f"{what}_accent_stripped")
        return stripped
    return name


# ---------------------------------------------------------------- records


def _ts(day: date, rng: random.Random) -> datetime:
    return datetime.combine(day, time(rng.randrange(6, 23), rng.randrange(60), rng.randrange(60)),
                            tzinfo=timezone.utc)


def crm_row(rng: random.Random, person: Person, pk: int, noise: list[str]) -> dict[str, Any]:
    email = person.email
    if rng.random() < 0.12:
        email = email_case_variant(rng, email)
        noise.append("email_case")
    phone, kind = phone_variant(rng, person)
    if kind:
        noise.append(kind)
    row = {
        "id": pk,
        "first_name": _noisy_name(rng, person.first_name, 0.08, noise, "first_name"),
        "last_name": _noisy_name(rng, person.last_name, 0.08, noise, "last_name"),
        "email": email,
        "phone": phone,
        "date_of_birth": person.date_of_birth,
        "address_line1": person.address_line1,
        "city": person.city,
        "postcode": person.postcode,
        "country": person.country,
        "national_id": person.national_id,
    }
    for column, p in (("phone", 0.07), ("date_of_birth", 0.06), ("national_id", 0.3),
                      ("address_line1", 0.05), ("postcode", 0.05)):
        if rng.random() < p:
            row[column] = None
            noise.append(f"missing_{column}")
    return row


def booking_row(rng: random.Random, person: Person, pk: int, today: date, noise: list[str],
                alt_email: str | None = None, departure: date | None = None) -> dict[str, Any]:
    first, last = person.first_name, person.last_name
    r = rng.random()
    if r < 0.15:  # PNR style: upper case, accents gone
        first, last = ascii_fold(first).upper(), ascii_fold(last).upper()
        noise.append("name_pnr_upper")
    else:
        first = _noisy_name(rng, first, 0.08, noise, "first_name")
        last = _noisy_name(rng, last, 0.08, noise, "last_name")
    r = rng.random()
    if r < 0.12 and alt_email:
        email = alt_email
        noise.append("second_email")
    elif r < 0.22:
        email = email_case_variant(rng, person.email)
        noise.append("email_case")
    else:
        email = person.email
    phone, kind = phone_variant(rng, person, weights=(70, 15, 15))
    if kind:
        noise.append(kind)
    if rng.random() < 0.2:
        phone = None
        noise.append("missing_phone")
    if departure is None:
        departure = today + timedelta(days=rng.randrange(-330, 240))
    created = min(departure - timedelta(days=rng.randrange(1, 150)), today)
    origin = rng.choice(HUBS) if rng.random() < 0.6 else rng.choice(AIRPORTS)
    destination = rng.choice([a for a in AIRPORTS if a != origin])
    if departure < today:
        status = rng.choices(("flown", "cancelled", "no_show"), weights=(85, 10, 5))[0]
    elif departure <= today + timedelta(days=1):
        status = rng.choice(("confirmed", "checked_in"))
    else:
        status = rng.choices(("confirmed", "cancelled"), weights=(92, 8))[0]
    return {
        "id": pk,
        "customer_email": email,
        "passenger_first_name": first,
        "passenger_last_name": last,
        "phone": phone,
        "flight_no": f"{AIRLINE_CODE}{rng.randrange(1, 2999)}",
        "origin": origin,
        "destination": destination,
        "departure_date": departure,
        "status": status,
        "created_at": _ts(created, rng),
    }


def loyalty_row(rng: random.Random, person: Person, pk: int, noise: list[str],
                alt_email: str | None = None) -> dict[str, Any]:
    r = rng.random()
    if r < 0.2:
        full_name = f"{ascii_fold(person.last_name).upper()}/{ascii_fold(person.first_name).upper()}"
        noise.append("name_last_slash_first")
    elif r < 0.3 and person.nickname:
        full_name = f"{person.nickname} {person.last_name}"
        noise.append("nickname")
    else:
        first = _noisy_name(rng, person.first_name, 0.06, noise, "first_name")
        last = _noisy_name(rng, person.last_name, 0.06, noise, "last_name")
        full_name = f"{first} {last}"
    r = rng.random()
    if r < 0.1 and alt_email:
        email, _ = alt_email, noise.append("second_email")
    elif r < 0.2:
        email, _ = email_case_variant(rng, person.email), noise.append("email_case")
    elif r < 0.25:
        email, _ = None, noise.append("missing_email")
    else:
        email = person.email
    phone, kind = phone_variant(rng, person, weights=(30, 50, 20))
    if kind:
        noise.append(kind)
    member_number = person.loyalty_number
    if rng.random() < 0.1:
        member_number = f"{member_number[:3]} {member_number[3:7]} {member_number[7:]}".lower()
        noise.append("member_number_format")
    low, high = TIER_POINTS[person.tier]
    dob = person.date_of_birth.strftime("%d/%m/%Y")
    if rng.random() < 0.08:
        dob = None
        noise.append("missing_date_of_birth")
    return {"id": pk, "member_number": member_number, "full_name": full_name, "email": email,
            "phone": phone, "tier": person.tier, "points": rng.randrange(low, high),
            "date_of_birth": dob}


def ticket_row(rng: random.Random, person: Person, pk: int, today: date, noise: list[str],
               alt_email: str | None = None) -> dict[str, Any]:
    r = rng.random()
    if r < 0.25:
        name, _ = person.first_name, noise.append("first_name_only")
    elif r < 0.35:
        name, _ = person.full_name.lower(), noise.append("name_lower")
    elif r < 0.45:
        name, _ = f"{typo(rng, person.first_name)} {person.last_name}", noise.append("first_name_typo")
    else:
        name = person.full_name
    r = rng.random()
    if r < 0.2 and alt_email:
        email, _ = alt_email, noise.append("second_email")
    elif r < 0.3:
        email, _ = email_case_variant(rng, person.email), noise.append("email_case")
    else:
        email = person.email
    phone = None
    if rng.random() < 0.5:
        phone, kind = phone_variant(rng, person, weights=(20, 50, 30))
        if kind:
            noise.append(kind)
    else:
        noise.append("missing_phone")
    opened = _ts(today - timedelta(days=rng.randrange(0, 200)), rng)
    age = (datetime.combine(today, time(), tzinfo=timezone.utc) - opened).days
    status = ("open" if age < 3 else rng.choices(("open", "pending", "resolved", "closed"),
                                                   weights=(10, 15, 25, 50))[0])
    updated = opened + timedelta(hours=rng.randrange(0, max(1, min(age, 30)) * 24 + 1))
    return {"id": pk, "customer_email": email, "customer_phone": phone, "customer_name": name,
            "subject": rng.choice(TICKET_SUBJECTS), "status": status, "opened_at": opened,
            "updated_at": updated}


def _presence(rng: random.Random) -> set[tuple[str, str]]:
    if rng.random() < 0.12:  # known to one system only: guest checkout, walk-in complaint...
        return {rng.choices(TABLES, weights=(30, 40, 15, 15))[0]}
    present = {t for t, p in zip(TABLES, (0.85, 0.9, 0.65, 0.45)) if rng.random() < p}
    return present or {BOOKING}


def build_source_systems(people: Iterable[Person], seed: int = 7,
                         today: date = DEFAULT_TODAY) -> SourceSnapshot:
    """The initial content of every source table, deterministic for (people, seed, today)."""
    rng = random.Random(f"sources:{seed}")
    snapshot = SourceSnapshot()
    for person in people:
        add_person(snapshot, rng, person, today, _presence(rng))
    return snapshot


def add_person(snapshot: SourceSnapshot, rng: random.Random, person: Person, today: date,
               systems: set[tuple[str, str]]) -> list[tuple[tuple[str, str], int]]:
    """Insert every record of one person into the snapshot; returns (table, pk) of each."""
    created: list[tuple[tuple[str, str], int]] = []
    alt = second_email(rng, person) if rng.random() < 0.3 else None

    def insert(key: tuple[str, str], row: dict[str, Any], noise: list[str]) -> None:
        snapshot.tables[key][row["id"]] = row
        snapshot.truth[(*key, row["id"])] = person.person_id
        snapshot.noise[(*key, row["id"])] = noise
        created.append((key, row["id"]))

    if CRM in systems:
        noise: list[str] = []
        insert(CRM, crm_row(rng, person, snapshot.next_id(CRM), noise), noise)
        if rng.random() < 0.04:  # registered twice, years apart
            noise = ["duplicate_registration"]
            row = crm_row(rng, person, snapshot.next_id(CRM), noise)
            if alt:
                row["email"] = alt
                noise.append("second_email")
            insert(CRM, row, noise)
    if BOOKING in systems:
        for _ in range(rng.choices((1, 2, 3, 4, 5, 6), weights=(20, 25, 20, 15, 12, 8))[0]):
            noise = []
            insert(BOOKING, booking_row(rng, person, snapshot.next_id(BOOKING), today, noise, alt), noise)
    if LOYALTY in systems:
        noise = []
        insert(LOYALTY, loyalty_row(rng, person, snapshot.next_id(LOYALTY), noise, alt), noise)
    if SUPPORT in systems:
        for _ in range(rng.choices((1, 2, 3), weights=(65, 25, 10))[0]):
            noise = []
            insert(SUPPORT, ticket_row(rng, person, snapshot.next_id(SUPPORT), today, noise, alt), noise)
    return created


# ---------------------------------------------------------------- changes over time


@dataclass(frozen=True)
class RowChange:
    """One row change of a source table: op c/u/d with before/after images."""

    system: str
    table: str
    op: str
    pk: int
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    kind: str  # what happened, for the summary ("crm_moved_house", "booking_new", ...)


class SourceChangeGenerator:
    """A plausible stream of changes applied to a `SourceSnapshot` (which it mutates).

    `id_offset` is added to the primary keys of rows created here, so two publisher runs
    against the same topics do not reuse keys for different rows.
    """

    KINDS = {
        "crm_profile_update": 22, "booking_new": 16, "booking_status": 12, "ticket_new": 10,
        "ticket_status": 14, "loyalty_points": 12, "loyalty_tier": 3, "new_customer": 3,
        "booking_delete": 4, "ticket_delete": 2, "crm_delete": 1,
    }

    def __init__(self, snapshot: SourceSnapshot, people: list[Person], seed: int = 7,
                 today: date = DEFAULT_TODAY, id_offset: int = 0) -> None:
        self.snapshot = snapshot
        self.people = {p.person_id: p for p in people}
        self.rng = random.Random(f"changes:{seed}")
        self.today = today
        self.id_offset = id_offset
        self._next_person = len(people) + 1
        self._created: dict[tuple[str, str], int] = {}
        self._used_phones: set[str] = set()

    def _new_id(self, key: tuple[str, str]) -> int:
        base = self.snapshot.next_id(key)
        n = self._created.get(key, 0)
        self._created[key] = n + 1
        return max(base, FIRST_ID[key] + self.id_offset + n)

    def _pick(self, key: tuple[str, str], where=None) -> int | None:
        rows = self.snapshot.tables[key]
        candidates = [pk for pk, row in rows.items() if where is None or where(row)]
        return self.rng.choice(sorted(candidates)) if candidates else None

    def _person_of(self, key: tuple[str, str], pk: int) -> Person:
        return self.people[self.snapshot.truth[(*key, pk)]]

    def _update(self, key, pk, changes: dict[str, Any], kind: str) -> RowChange | None:
        before = dict(self.snapshot.tables[key][pk])
        after = {**before, **changes}
        if after == before:  # not a change; the caller draws another one
            return None
        self.snapshot.tables[key][pk] = after
        return RowChange(*key, "u", pk, before, after, kind)

    def _insert(self, key, row, person_id: str, kind: str, noise: list[str]) -> RowChange:
        self.snapshot.tables[key][row["id"]] = row
        self.snapshot.truth[(*key, row["id"])] = person_id
        self.snapshot.noise[(*key, row["id"])] = noise
        return RowChange(*key, "c", row["id"], None, dict(row), kind)

    def _delete(self, key, pk, kind: str) -> RowChange:
        before = self.snapshot.tables[key].pop(pk)
        return RowChange(*key, "d", pk, before, None, kind)

    def next_change(self, now: datetime | None = None) -> RowChange:
        now = now or datetime.now(timezone.utc)
        for _ in range(20):
            kind = self.rng.choices(list(self.KINDS), weights=list(self.KINDS.values()))[0]
            change = getattr(self, f"_{kind}")(now)
            if change is not None:
                return change
        return self._new_customer(now)

    def _crm_profile_update(self, now: datetime) -> RowChange | None:
        pk = self._pick(CRM)
        if pk is None:
            return None
        person = self._person_of(CRM, pk)
        what = self.rng.choice(("phone", "email", "address", "last_name", "fill_missing"))
        if what == "phone":
            value = self._fresh_phone(person)
            if value is None:
                return None
            return self._update(CRM, pk, {"phone": value}, "crm_phone_changed")
        if what == "email":
            return self._update(CRM, pk, {"email": second_email(self.rng, person)}, "crm_email_changed")
        if what == "address":
            number = self.rng.randrange(1, 240)
            street = self.rng.choice(("Elm Grove", "Harbour View", "Chapel Street", "Meadow Way"))
            return self._update(CRM, pk, {"address_line1": f"{number} {street}",
                                          "postcode": person.postcode[:-2] + "ZZ"}, "crm_moved_house")
        if what == "last_name":
            surname = self.rng.choice(NAMES[self.rng.choice(sorted(NAMES))][1])
            return self._update(CRM, pk, {"last_name": surname}, "crm_surname_changed")
        row = self.snapshot.tables[CRM][pk]
        missing = [c for c in ("phone", "date_of_birth", "national_id", "postcode") if row.get(c) is None]
        if not missing:
            return None
        column = missing[0]
        value = {"phone": person.phone, "date_of_birth": person.date_of_birth,
                 "national_id": person.national_id, "postcode": person.postcode}[column]
        return self._update(CRM, pk, {column: value}, "crm_field_completed")

    def _fresh_phone(self, person: Person) -> str | None:
        """A new number in a fictional range that no other record uses."""
        if not self._used_phones:
            for rows in self.snapshot.tables.values():
                for row in rows.values():
                    for column in ("phone", "customer_phone"):
                        if row.get(column):
                            self._used_phones.add(row[column])
            self._used_phones.update(p.phone for p in self.people.values())
        for _ in range(50):
            if person.country == "GB":  # Ofcom drama range for London landlines
                value = f"+442079460{self.rng.randrange(1000):03d}"
            elif person.country == "US":
                value = f"+1{self.rng.choice(('415', '718', '202', '305'))}55501{self.rng.randrange(100):02d}"
            else:
                value = person.phone[:-4] + f"{self.rng.randrange(10000):04d}"
            if value not in self._used_phones:
                self._used_phones.add(value)
                return value
        return None

    def _booking_new(self, now: datetime) -> RowChange | None:
        pk = self._pick(BOOKING)
        if pk is None:
            return None
        person = self._person_of(BOOKING, pk)
        noise: list[str] = []
        departure = now.date() + timedelta(days=self.rng.randrange(3, 200))
        row = booking_row(self.rng, person, self._new_id(BOOKING), now.date(), noise,
                          departure=departure)
        row["status"], row["created_at"] = "confirmed", now
        return self._insert(BOOKING, row, person.person_id, "booking_new", noise)

    def _booking_status(self, now: datetime) -> RowChange | None:
        pk = self._pick(BOOKING, lambda r: r["status"] in ("confirmed", "checked_in"))
        if pk is None:
            return None
        status = self.snapshot.tables[BOOKING][pk]["status"]
        new = {"confirmed": self.rng.choice(("checked_in", "cancelled", "checked_in")),
               "checked_in": "flown"}[status]
        return self._update(BOOKING, pk, {"status": new}, f"booking_{new}")

    def _ticket_new(self, now: datetime) -> RowChange | None:
        key = self.rng.choice((CRM, BOOKING, SUPPORT))
        pk = self._pick(key)
        if pk is None:
            return None
        person = self._person_of(key, pk)
        noise: list[str] = []
        row = ticket_row(self.rng, person, self._new_id(SUPPORT), now.date(), noise)
        row.update(status="open", opened_at=now, updated_at=now)
        return self._insert(SUPPORT, row, person.person_id, "ticket_new", noise)

    def _ticket_status(self, now: datetime) -> RowChange | None:
        pk = self._pick(SUPPORT, lambda r: r["status"] != "closed")
        if pk is None:
            return None
        status = self.snapshot.tables[SUPPORT][pk]["status"]
        new = self.rng.choice(TICKET_FLOW[status])
        return self._update(SUPPORT, pk, {"status": new, "updated_at": now}, f"ticket_{new}")

    def _loyalty_points(self, now: datetime) -> RowChange | None:
        pk = self._pick(LOYALTY)
        if pk is None:
            return None
        points = self.snapshot.tables[LOYALTY][pk]["points"]
        delta = self.rng.choice((250, 500, 1200, 2400, -5000, 3100))
        return self._update(LOYALTY, pk, {"points": max(0, points + delta)}, "loyalty_points")

    def _loyalty_tier(self, now: datetime) -> RowChange | None:
        pk = self._pick(LOYALTY, lambda r: r["tier"] != TIERS[-1])
        if pk is None:
            return None
        tier = self.snapshot.tables[LOYALTY][pk]["tier"]
        new = TIERS[TIERS.index(tier) + 1]
        return self._update(LOYALTY, pk, {"tier": new, "points": TIER_POINTS[new][0] + 100},
                            "loyalty_tier_upgrade")

    def _new_customer(self, now: datetime) -> RowChange | None:
        person = make_person(self.rng, self._next_person, now.date())
        self._next_person += 1
        fresh = self._fresh_phone(person)
        if fresh is None:
            return None
        local, _, domain = person.email.partition("@")
        person = replace(person, phone=fresh, email=f"{local}.{self._next_person}@{domain}")
        self.people[person.person_id] = person
        noise: list[str] = []
        row = crm_row(self.rng, person, self._new_id(CRM), noise)
        return self._insert(CRM, row, person.person_id, "crm_new_customer", noise)

    def _booking_delete(self, now: datetime) -> RowChange | None:
        pk = self._pick(BOOKING, lambda r: r["status"] == "cancelled")
        return None if pk is None else self._delete(BOOKING, pk, "booking_purged")

    def _ticket_delete(self, now: datetime) -> RowChange | None:
        pk = self._pick(SUPPORT, lambda r: r["status"] == "closed")
        return None if pk is None else self._delete(SUPPORT, pk, "ticket_purged")

    def _crm_delete(self, now: datetime) -> RowChange | None:
        pk = self._pick(CRM)
        return None if pk is None else self._delete(CRM, pk, "crm_erasure_request")
