"""Recall and precision of the fine-tuning masker (`rag_assets.feedback.pii.PiiMasker`), per kind.

No labelled PII set ships in a registry package that works offline (presidio-evaluator 0.3.2
ships templates and a name list for its own generator, which needs spaCy and Faker, and no
travel identifiers), so this generates one, seeded: airline customers (names, e-mail, UK phone,
date of birth, street address and postcode, passport, national insurance number, loyalty number,
as a source row the identity graph reads) type turns from varied templates in varied spellings —
their own identifiers (known to the product: the masker gets their `KnownIdentifiers`, built by
`extract_identity` and `known_identifiers` as the export builds them) and other people's
(a companion's passport, someone's IBAN, SSN or card, an unknown address: not known), with
and without a keyword before them — beside travel text that must stay (flights, booking
references, order numbers, travel dates, prices).

Scoring: the masked text is aligned to the generated one (the text between tokens is kept as
typed), giving the regions each token replaced. A true span is *masked* when every letter and
digit of it lies in replaced regions (recall, per kind, split known / not known); a replaced
region is *correct* when it overlaps a true span (precision, per token). Prints the conditions
and one line per kind.

    .venv/bin/python bench/pii_masking.py [--customers 400] [--turns 6] [--seed 17]
"""

from __future__ import annotations

import argparse
import platform
import random
import re
import sys
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stdnum import iban  # noqa: E402

from rag_assets.catalogue.model import IdentityColumns  # noqa: E402
from rag_assets.customers.identifiers import extract_identity  # noqa: E402
from rag_assets.customers.known_identifiers import known_identifiers  # noqa: E402
from rag_assets.feedback.pii import PiiMasker  # noqa: E402

FIRST = ["Alice", "Bilal", "Chloé", "Dmitri", "Eilidh", "Farah", "Gareth", "Hana", "Ioana",
         "Jamal", "Keiko", "Lars", "Maëlle", "Nikhil", "Orla", "Pedro", "Quentin", "Rosa",
         "Siobhan", "Tomasz", "Uma", "Vikram", "Wen", "Yusuf", "Zofia"]
LAST = ["Moreau", "Okafor", "Fairweather", "Nakamura", "O'Brien", "Kowalski", "Haddad",
        "Lindqvist", "MacLeod", "Ferreira", "Chatterjee", "Novak", "Abernathy", "Whitlock"]
STREETS = ["Quay", "Mill", "Baker", "Station", "Church", "Victoria", "Albion", "Kingsley",
           "Old Mill", "Harbour View"]
STREET_TYPES = {"Street": "St", "Road": "Rd", "Lane": "Ln", "Avenue": "Ave", "Crescent": "Cres",
                "Terrace": "Tce", "Gardens": "Gdns"}
POSTCODES = ["LS1 4AB", "YO1 7HH", "M4 5JD", "EH3 9QG", "SW1A 1AA", "B15 2TT", "CF10 3AT",
             "BS8 1QU", "G12 8QQ", "NE1 7RU"]
CITIES = ["Leeds", "York", "Lisbon", "Oslo", "Madrid", "New York", "Dubai", "Singapore"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
NINO_LETTERS = "ABCEGHJKLMNPRSTWXYZ"
COLUMNS = {("crm", "customers"): IdentityColumns(
    email=("email",), phone=("phone",), loyalty_number=("loyalty",), national_id=("nino",),
    passport=("passport",), given_name="first", surname="last", date_of_birth="dob",
    address_line=("street",), postcode="postcode", country="country")}
TOKENS = re.compile(r"\[(EMAIL|CARD|PHONE|NAME|IBAN|NATIONAL_ID|PASSPORT|DOB|ADDRESS|LOYALTY)\]")


# --- people and their identifiers -----------------------------------------------------------

def person(rng: random.Random) -> dict:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    born = date(1940, 1, 1) + timedelta(days=rng.randrange(60 * 365))
    return {
        "first": first, "last": last, "dob": born,
        "email": f"{first.lower()}.{re.sub('[^a-z]', '', last.lower())}{rng.randrange(99)}"
                 f"@{rng.choice(['example.com', 'mail.example.org', 'example.co.uk'])}",
        "phone": f"07700 900{rng.randrange(1000):03d}",
        "street": f"{rng.randrange(1, 300)} {rng.choice(STREETS)} {rng.choice(list(STREET_TYPES))}",
        "postcode": rng.choice(POSTCODES), "country": "GB",
        "passport": f"{rng.randrange(10**8, 10**9)}",
        "nino": nino(rng), "loyalty": f"LY-{rng.randrange(10**4, 10**6)}",
    }


def nino(rng: random.Random) -> str:
    while True:
        prefix = rng.choice(NINO_LETTERS[:-1].replace("O", "") + "O") + rng.choice(NINO_LETTERS)
        if prefix not in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}:
            return f"{prefix}{rng.randrange(10**6):06d}{rng.choice('ABCD')}"


def luhn_card(rng: random.Random) -> str:
    body = "4" + "".join(str(rng.randrange(10)) for _ in range(14))
    for check in "0123456789":
        digits = body + check
        total = sum(int(c) if i % 2 == 0 else (int(c) * 2 - 9 if int(c) > 4 else int(c) * 2)
                    for i, c in enumerate(reversed(digits)))
        if total % 10 == 0:
            return digits
    raise AssertionError


def an_iban(rng: random.Random) -> str:
    bban = f"{rng.choice(['NWBK', 'WEST', 'BARC', 'MIDL'])}{rng.randrange(10**14):014d}"
    return "GB" + iban.calc_check_digits(f"GB00{bban}") + bban


def an_ssn(rng: random.Random) -> str:
    return f"{rng.randrange(1, 666):03d}-{rng.randrange(1, 100):02d}-{rng.randrange(1, 10**4):04d}"


# --- spellings ---------------------------------------------------------------------------------

def grouped(value: str, rng: random.Random, sizes=(3, 4)) -> str:
    size = rng.choice(sizes)
    gap = rng.choice(["", " ", "-"])
    return gap.join(value[i:i + size] for i in range(0, len(value), size))


def spell(kind: str, value, rng: random.Random) -> str:
    if kind == "dob":
        d = value
        return rng.choice([f"{d.day} {MONTHS[d.month - 1]} {d.year}", f"{d:%d/%m/%Y}",
                           f"{d:%Y-%m-%d}", f"{MONTHS[d.month - 1]} {d.day}, {d.year}",
                           f"{d.day}.{d.month}.{d.year % 100:02d}", f"{d:%d-%b-%Y}"])
    if kind == "phone":
        local = value.replace(" ", "")[1:]
        return rng.choice([value, f"+44 {local[:4]} {local[4:]}", f"0{local}",
                           f"+44 (0){local[:4]} {local[4:7]} {local[7:]}", f"0044 {local}"])
    if kind == "email":
        return rng.choice([value, value.upper(), value.replace("@", " @ ")])
    if kind == "address":
        number, *words = value.split()
        street = " ".join(words)
        return rng.choice([value, value.lower(), f"{number}, {street}",
                           f"{number} {' '.join(words[:-1])} {STREET_TYPES[words[-1]]}"])
    if kind == "postcode":
        return rng.choice([value, value.lower(), value.replace(" ", "")])
    if kind in ("passport", "iban", "card"):
        return grouped(value, rng, (3,) if kind == "passport" else (4,))
    if kind == "nino":
        spaced = f"{value[:2]} {value[2:4]} {value[4:6]} {value[6:8]} {value[8]}"
        return rng.choice([value, spaced, spaced.lower()])
    if kind == "loyalty":
        return rng.choice([value, value.replace("-", ""), value.replace("-", " ").lower()])
    if kind == "name":
        return rng.choice([value, value.lower(), value.upper()])
    return value


# Template slots: {kind} the customer's own (known), {other:kind} someone else's (not known).
TEMPLATES = [
    "Hi, I'm {name}, my passport number is {passport}.",
    "Can you put {passport} on booking {ref} as the document number?",
    "My wife's passport is {other:passport}, please add it for flight {flight}.",
    "Please refund to my IBAN {other:iban}, the ticket was {price}.",
    "The refund should go to account {other:iban} not the card.",
    "My date of birth is {dob} but the booking shows {travel}.",
    "Is {dob} the date you have on file? I fly on {travel}.",
    "I was born on {other:dob}, can I get the senior fare?",
    "Send the new card to {address}, {postcode} please.",
    "We moved, the new address is {other:address}, {other:postcode}.",
    "My NI number is {nino}, do you need it for the refund?",
    "The form asks for {nino}, where do I type it?",
    "For the US ESTA my SSN is {other:ssn}.",
    "Points for flight {flight} are missing on membership {loyalty}.",
    "Can you add my miles to {loyalty}? Order {order}.",
    "My son's frequent flyer number is {other:loyalty_ff}.",
    "Email me at {email} or call {phone} about booking {ref}.",
    "You can reach me on {other:phone} or {other:email}.",
    "I paid with card {other:card} on {travel}, order {order}.",
    "This is {name}, my phone is {phone} and I live at {address}.",
]
KINDS = {"name": "name", "passport": "passport", "iban": "iban", "dob": "dob",
         "address": "address", "postcode": "address", "nino": "national_id", "ssn": "national_id",
         "loyalty": "loyalty", "loyalty_ff": "loyalty", "email": "email", "phone": "phone",
         "card": "card"}
TOKEN_KIND = {"NAME": "name", "PASSPORT": "passport", "IBAN": "iban", "DOB": "dob",
              "ADDRESS": "address", "NATIONAL_ID": "national_id", "LOYALTY": "loyalty",
              "EMAIL": "email", "PHONE": "phone", "CARD": "card"}


def filler(slot: str, rng: random.Random) -> str:
    return {"ref": lambda: "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(6)),
            "flight": lambda: f"{rng.choice(['BA', 'LH', 'IB', 'EK'])}{rng.randrange(10, 2999)}",
            "price": lambda: f"£{rng.randrange(40, 2000)}.{rng.randrange(100):02d}",
            "travel": lambda: (date(2025, 1, 1) + timedelta(days=rng.randrange(700))).isoformat(),
            "order": lambda: str(rng.randrange(10**8, 10**9))}[slot]()


def render(template: str, me: dict, rng: random.Random) -> tuple[str, list[tuple[int, int, str, bool]]]:
    """The text and its true spans (start, end, kind, known)."""
    other = person(rng)
    text, spans, position = "", [], 0
    for match in re.finditer(r"\{(other:)?(\w+)\}", template):
        text += template[position:match.start()]
        foreign, slot = bool(match.group(1)), match.group(2)
        if slot in KINDS:
            value = _value(slot, other if foreign else me, rng)
            typed = spell("postcode" if slot == "postcode" else slot.split("_")[0], value, rng)
            spans.append((len(text), len(text) + len(typed), KINDS[slot], not foreign))
        else:
            typed = filler(slot, rng)
        text += typed
        position = match.end()
    return text + template[position:], spans


def _value(slot: str, who: dict, rng: random.Random):
    if slot == "name":
        return f"{who['first']} {who['last']}"
    if slot == "iban":
        return an_iban(rng)
    if slot == "ssn":
        return an_ssn(rng)
    if slot == "card":
        return luhn_card(rng)
    if slot == "loyalty_ff":
        return f"BA {rng.randrange(10**7, 10**8)}"
    return who[{"address": "street"}.get(slot, slot)]


def known_of(me: dict):
    row = {**me, "dob": me["dob"].isoformat()}
    identity = extract_identity("crm", "customers", row, "GB", COLUMNS)
    return known_identifiers([identity], {"golden": {"given_name": {"value": me["first"]},
                                                     "surname": {"value": me["last"]}}})


# --- scoring -----------------------------------------------------------------------------------

def replaced_regions(original: str, masked: str) -> list[tuple[int, int, str]] | None:
    """(start, end, token) of the original text each token of `masked` replaced."""
    pieces = TOKENS.split(masked)
    literals, tokens = pieces[0::2], pieces[1::2]
    pattern = re.escape(literals[0]) + "".join(
        f"(.+?){re.escape(literal)}" for literal in literals[1:])
    found = re.fullmatch(pattern, original, re.DOTALL)
    if found is None:
        return None
    return [(found.start(i + 1), found.end(i + 1), tokens[i]) for i in range(len(tokens))]


def score(text: str, spans, masked: str, recall: Counter, precision: Counter) -> None:
    regions = replaced_regions(text, masked) or []
    covered = set()
    for start, end, _ in regions:
        covered.update(range(start, end))
    for start, end, kind, known in spans:
        needed = {i for i in range(start, end) if text[i].isalnum()}
        recall[(kind, known, "total")] += 1
        recall[(kind, known, "masked")] += needed <= covered
    for start, end, token in regions:
        kind = TOKEN_KIND[token]
        precision[(kind, "total")] += 1
        precision[(kind, "correct")] += any(s < end and start < e for s, e, _, _ in spans)


def population_names(count: int, rng: random.Random) -> list[str]:
    """`count` distinct made-up names (syllables no template or travel word contains)."""
    syllables = ["zor", "vex", "qua", "plin", "drom", "kesh", "yulf", "trav", "onx", "wib",
                 "gral", "mip", "stoz", "funk", "lurb", "nax", "pev", "rilk", "sorb", "tuv"]
    if count > len(syllables) ** 4:
        raise SystemExit(f"--population-names: at most {len(syllables) ** 4:,}")
    names: set[str] = set()
    while len(names) < count:
        names.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 5))).capitalize())
    return sorted(names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--population-names", type=int, default=0,
                        help="made-up names of other customers in the masker, as an export holds "
                             "every customer's names (the size of the name pattern)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    names = population_names(args.population_names, random.Random(args.seed + 1))
    built = time.perf_counter()
    base = PiiMasker(names)
    built = time.perf_counter() - built
    recall, precision, texts, started = Counter(), Counter(), 0, time.perf_counter()
    for _ in range(args.customers):
        me = person(rng)
        masker = base.with_known(known_of(me))
        for _ in range(args.turns):
            text, spans = render(rng.choice(TEMPLATES), me, rng)
            score(text, spans, masker.mask(text), recall, precision)
            texts += 1
    elapsed = time.perf_counter() - started
    print(f"conditions: seed={args.seed} customers={args.customers} turns={texts} "
          f"templates={len(TEMPLATES)} population_names={len(names)} (masker built in "
          f"{built:.2f} s) python={platform.python_version()} "
          f"({elapsed:.1f} s, {1000 * elapsed / texts:.2f} ms a turn including generation)")
    print(f"{'kind':<12} {'recall known':>18} {'recall not known':>18} {'precision':>16}")
    for kind in sorted(set(KINDS.values())):
        cells = []
        for known in (True, False):
            total = recall[(kind, known, "total")]
            cells.append(f"{recall[(kind, known, 'masked')] / total:.4f} ({total})" if total
                         else "-")
        total = precision[(kind, "total")]
        cells.append(f"{precision[(kind, 'correct')] / total:.4f} ({total})" if total else "-")
        print(f"{kind:<12} {cells[0]:>18} {cells[1]:>18} {cells[2]:>16}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
