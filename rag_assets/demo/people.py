"""Synthetic airline customers: the ground truth the demo source systems are derived from.

Everything is invented and deterministic for a seed. Contact details use ranges reserved for
fiction or documentation, so no generated value can reach a real person:

* e-mail domains are `example.com/.org/.net` (RFC 2606);
* UK mobiles are in Ofcom's drama range `07700 900000–900999`;
* US numbers are `NXX-555-01XX` (the range reserved for fiction);
* other countries use plausible national formats with random subscriber digits;
* UK national ids use the `QQ` prefix (never issued), US ids use the `9xx` ITIN-style area
  that is never a real SSN.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass, replace
from datetime import date, timedelta

AIRLINE_NAME = "Skylark Airways"
AIRLINE_CODE = "SK"
LOYALTY_PREFIX = "SKL"
TIERS = ("Blue", "Silver", "Gold", "Platinum")
TIER_WEIGHTS = (60, 25, 11, 4)


@dataclass(frozen=True)
class Country:
    code: str  # ISO 3166-1 alpha-2
    dial: str  # country calling code without "+"
    cities: tuple[tuple[str, str], ...]  # (city, postcode pattern: 9 = digit, A = letter)
    streets: tuple[str, ...]
    street_first: bool  # "12 High Street" (False) vs "Hauptstraße 12" (True)
    weight: int


COUNTRIES: dict[str, Country] = {
    "GB": Country("GB", "44", (("London", "SW9 9AA"), ("Manchester", "M99 9AA"), ("Leeds", "LS9 9AA"),
                              ("Bristol", "BS9 9AA"), ("Glasgow", "G99 9AA"), ("Cardiff", "CF99 9AA"),
                              ("Birmingham", "B99 9AA"), ("Edinburgh", "EH9 9AA")),
                  ("High Street", "Station Road", "Church Lane", "Victoria Road", "Park Avenue",
                   "Mill Lane", "Queens Road", "Kings Way", "Orchard Close", "Riverside Walk"),
                  False, 40),
    "US": Country("US", "1", (("New York", "99999"), ("Boston", "99999"), ("Chicago", "99999"),
                             ("Seattle", "99999"), ("Austin", "99999"), ("Denver", "99999"),
                             ("Atlanta", "99999"), ("San Diego", "99999")),
                  ("Maple Street", "Oak Avenue", "Washington Blvd", "Lakeview Drive", "Cedar Lane",
                   "Elm Street", "Sunset Boulevard", "Pine Road"),
                  False, 25),
    "IE": Country("IE", "353", (("Dublin", "D99 A9A9"), ("Cork", "T99 A9A9"), ("Galway", "H99 A9A9")),
                  ("Main Street", "Harbour Road", "Abbey Street", "Strand Road"), False, 6),
    "DE": Country("DE", "49", (("Berlin", "99999"), ("Hamburg", "99999"), ("München", "99999"),
                              ("Köln", "99999")),
                  ("Hauptstraße", "Bahnhofstraße", "Gartenweg", "Schillerstraße", "Lindenallee"),
                  True, 8),
    "FR": Country("FR", "33", (("Paris", "75099"), ("Lyon", "69099"), ("Marseille", "13099"),
                              ("Toulouse", "31099")),
                  ("Rue de la Paix", "Avenue Victor Hugo", "Rue des Lilas", "Boulevard Voltaire"),
                  False, 6),
    "ES": Country("ES", "34", (("Madrid", "28099"), ("Barcelona", "08099"), ("Valencia", "46099")),
                  ("Calle Mayor", "Avenida de la Constitución", "Calle del Sol"), True, 5),
    "IN": Country("IN", "91", (("Mumbai", "400099"), ("Bengaluru", "560099"), ("Delhi", "110099")),
                  ("MG Road", "Park Street", "Nehru Marg", "Residency Road"), False, 5),
    "NG": Country("NG", "234", (("Lagos", "100999"), ("Abuja", "900999")),
                  ("Allen Avenue", "Adeola Odeku Street", "Broad Street"), False, 3),
    "JP": Country("JP", "81", (("Tokyo", "999-9999"), ("Osaka", "999-9999")),
                  ("Chuo-dori", "Sakura-dori", "Meiji-dori"), False, 2),
}

# Given names and surnames by naming tradition; a person draws both from one tradition, with a
# minority mixing traditions as real populations do.
NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "anglo": (("Oliver", "Amelia", "Harry", "Isla", "George", "Olivia", "Jack", "Emily", "Thomas",
               "Sophie", "James", "Charlotte", "William", "Grace", "Daniel", "Hannah", "Samuel",
               "Megan", "Christopher", "Katherine", "Jonathan", "Elizabeth", "Matthew", "Rebecca"),
              ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies",
               "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green",
               "Hall", "Wood", "Harris", "Clarke", "Patterson", "Fitzgerald", "Henderson")),
    "irish": (("Aoife", "Siobhán", "Niamh", "Ciarán", "Seán", "Órla", "Pádraig", "Eoin", "Caoimhe"),
              ("O'Brien", "Murphy", "Kelly", "O'Sullivan", "Byrne", "McCarthy", "Ní Bhriain", "Doyle")),
    "hispanic": (("María", "José", "Lucía", "Javier", "Sofía", "Alejandro", "Valentina", "Diego",
                  "Camila", "Mateo"),
                 ("García", "Martínez", "Rodríguez", "López", "Hernández", "González", "Pérez",
                  "Sánchez", "Ramírez", "Torres")),
    "german": (("Lukas", "Anna", "Jonas", "Lea", "Felix", "Marie", "Maximilian", "Johanna", "Jürgen"),
               ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker")),
    "french": (("Camille", "Louis", "Chloé", "Hugo", "Léa", "Gabriel", "Manon", "Étienne", "Inès"),
               ("Martin", "Bernard", "Dubois", "Durand", "Lefèvre", "Moreau", "Laurent", "Girard")),
    "south_asian": (("Aarav", "Priya", "Rohan", "Ananya", "Vikram", "Kavya", "Arjun", "Meera",
                     "Sanjay", "Deepika", "Imran", "Ayesha"),
                    ("Patel", "Sharma", "Singh", "Gupta", "Iyer", "Reddy", "Khan", "Chaudhry",
                     "Nair", "Banerjee")),
    "east_asian": (("Wei", "Mei", "Hiroshi", "Yuki", "Min-jun", "Seo-yeon", "Jian", "Haruto", "Xin"),
                   ("Wang", "Li", "Zhang", "Chen", "Tanaka", "Suzuki", "Kim", "Park", "Nguyen")),
    "african": (("Chinedu", "Amara", "Oluwaseun", "Ngozi", "Kwame", "Abena", "Tunde", "Zainab",
                 "Kofi", "Adaeze"),
                ("Okafor", "Adeyemi", "Mensah", "Okonkwo", "Boateng", "Abubakar", "Eze", "Balogun")),
    "arabic": (("Omar", "Fatima", "Yusuf", "Layla", "Hassan", "Noor", "Karim", "Mariam"),
               ("Haddad", "Rahman", "Aziz", "Mansour", "Hussein", "Farouk", "Nasser")),
}

# Which naming traditions are common in each country (weights).
TRADITIONS: dict[str, dict[str, int]] = {
    "GB": {"anglo": 55, "south_asian": 12, "african": 8, "irish": 6, "east_asian": 5, "arabic": 5,
           "hispanic": 3, "french": 3, "german": 3},
    "US": {"anglo": 45, "hispanic": 22, "african": 8, "east_asian": 10, "south_asian": 7, "irish": 5,
           "arabic": 3},
    "IE": {"irish": 60, "anglo": 30, "african": 5, "south_asian": 5},
    "DE": {"german": 70, "arabic": 10, "anglo": 5, "east_asian": 5, "french": 5, "hispanic": 5},
    "FR": {"french": 70, "arabic": 15, "african": 10, "german": 5},
    "ES": {"hispanic": 85, "arabic": 5, "anglo": 5, "french": 5},
    "IN": {"south_asian": 95, "anglo": 5},
    "NG": {"african": 95, "anglo": 5},
    "JP": {"east_asian": 100},
}

EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com", "post.example.net")
NICKNAMES = {"Christopher": "Chris", "Katherine": "Kate", "Jonathan": "Jon", "Elizabeth": "Liz",
             "Matthew": "Matt", "Rebecca": "Becky", "William": "Will", "Samuel": "Sam",
             "Alejandro": "Alex", "Maximilian": "Max", "Daniel": "Dan", "Thomas": "Tom",
             "Oluwaseun": "Seun", "Valentina": "Vale", "Javier": "Javi"}


@dataclass(frozen=True)
class Person:
    """One synthetic customer: the truth every source-system record of them derives from."""

    person_id: str
    first_name: str
    last_name: str
    date_of_birth: date
    email: str
    phone: str  # E.164, e.g. "+447700900123"
    country: str  # ISO alpha-2
    address_line1: str
    city: str
    postcode: str
    national_id: str
    passport_number: str
    loyalty_number: str
    tier: str

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def nickname(self) -> str | None:
        return NICKNAMES.get(self.first_name)


def ascii_fold(text: str) -> str:
    """'Siobhán O'Brien' -> 'Siobhan OBrien'-style folding for e-mail local parts."""
    decomposed = unicodedata.normalize("NFKD", text.replace("ß", "ss"))
    return "".join(c for c in decomposed if c.isascii() and (c.isalnum() or c in " -."))


def national_phone(e164: str, country: str) -> str:
    """The same number as a customer would type it at home (national format)."""
    dial = COUNTRIES[country].dial
    subscriber = e164[1 + len(dial):]
    if country == "US":
        return f"({subscriber[:3]}) {subscriber[3:6]}-{subscriber[6:]}"
    if country == "GB":
        return f"0{subscriber[:4]} {subscriber[4:]}"
    return f"0{subscriber[:3]} {subscriber[3:]}"


def spaced_international(e164: str, country: str) -> str:
    """'+44 7700 900123'-style: international but with spaces."""
    dial = COUNTRIES[country].dial
    subscriber = e164[1 + len(dial):]
    if country == "US":
        return f"+1 {subscriber[:3]} {subscriber[3:6]} {subscriber[6:]}"
    if country == "GB":
        return f"+44 {subscriber[:4]} {subscriber[4:]}"
    return f"+{dial} {subscriber[:3]} {subscriber[3:6]} {subscriber[6:]}"


def _phone(rng: random.Random, country: str, serial: int) -> str:
    if country == "GB":
        return f"+447700900{serial % 1000:03d}"
    if country == "US":
        area = rng.choice(("212", "617", "312", "206", "512", "303", "404", "619"))
        return f"+1{area}55501{serial % 100:02d}"
    dial = COUNTRIES[country].dial
    mobile_prefix = {"IE": "85", "DE": "151", "FR": "6", "ES": "6", "IN": "98", "NG": "803",
                     "JP": "90"}[country]
    length = {"IE": 7, "DE": 8, "FR": 8, "ES": 8, "IN": 8, "NG": 7, "JP": 8}[country]
    digits = "".join(str(rng.randrange(10)) for _ in range(length))
    return f"+{dial}{mobile_prefix}{digits}"


def _pattern(rng: random.Random, pattern: str) -> str:
    out = []
    for ch in pattern:
        if ch == "9":
            out.append(str(rng.randrange(10)))
        elif ch == "A":
            out.append(rng.choice("ABDEFGHJLNPQRSTUWXYZ"))
        else:
            out.append(ch)
    return "".join(out)


def _national_id(rng: random.Random, country: str) -> str:
    if country == "GB":  # NI number with the never-issued QQ prefix
        return f"QQ{rng.randrange(10**6):06d}{rng.choice('ABCD')}"
    if country == "US":  # 9xx area numbers are never SSNs
        return f"9{rng.randrange(10**2):02d}-{rng.randrange(70, 100)}-{rng.randrange(10**4):04d}"
    return f"{country}{rng.randrange(10**9):09d}"


def _email(rng: random.Random, first: str, last: str) -> str:
    f, l = ascii_fold(first).lower().replace(" ", ""), ascii_fold(last).lower().replace(" ", "")
    f, l = f.replace("'", ""), l.replace("'", "")
    style = rng.randrange(5)
    local = (f"{f}.{l}", f"{f[0]}{l}", f"{f}{l}{rng.randrange(10, 99)}", f"{f}_{l}",
             f"{l}.{f}")[style]
    return f"{local}@{rng.choice(EMAIL_DOMAINS)}"


def _birth_date(rng: random.Random, today: date) -> date:
    age_days = rng.randrange(18 * 365, 85 * 365)
    return today - timedelta(days=age_days)


def _weighted(rng: random.Random, weights: dict[str, int]) -> str:
    keys = sorted(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def make_person(rng: random.Random, index: int, today: date = date(2025, 1, 15)) -> Person:
    """One person; `index` makes the person id and the fictional phone ranges unique."""
    countries = sorted(COUNTRIES)
    country = rng.choices(countries, weights=[COUNTRIES[c].weight for c in countries])[0]
    tradition = _weighted(rng, TRADITIONS[country])
    first = rng.choice(NAMES[tradition][0])
    # about one in eight mixes traditions (marriage, heritage)
    surname_tradition = tradition if rng.random() > 0.12 else _weighted(rng, TRADITIONS["GB"])
    last = rng.choice(NAMES[surname_tradition][1])
    if rng.random() < 0.05:  # a double-barrelled surname
        last = f"{last}-{rng.choice(NAMES[_weighted(rng, TRADITIONS[country])][1])}"
    spec = COUNTRIES[country]
    city, postcode_pattern = rng.choice(spec.cities)
    street = rng.choice(spec.streets)
    number = rng.randrange(1, 240)
    address = f"{street} {number}" if spec.street_first else f"{number} {street}"
    if rng.random() < 0.15 and not spec.street_first:
        address = f"Flat {rng.randrange(1, 30)}, {address}"
    return Person(
        person_id=f"P{index:05d}",
        first_name=first,
        last_name=last,
        date_of_birth=_birth_date(rng, today),
        email=_email(rng, first, last),
        phone=_phone(rng, country, index),
        country=country,
        address_line1=address,
        city=city,
        postcode=_pattern(rng, postcode_pattern),
        national_id=_national_id(rng, country),
        passport_number=f"{rng.randrange(10**8, 10**9)}",
        loyalty_number=f"{LOYALTY_PREFIX}{index:04d}{rng.randrange(10**5):05d}",
        tier=rng.choices(TIERS, weights=TIER_WEIGHTS)[0],
    )


def generate_people(count: int = 300, seed: int = 7, today: date = date(2025, 1, 15)) -> list[Person]:
    """`count` synthetic customers, identical for the same (count, seed, today).

    E-mail addresses and phone numbers are unique across the population (a collision is
    re-drawn), so that the ground truth is unambiguous; names and birthdays may collide, as in
    life, which is what makes fuzzy matching interesting.
    """
    rng = random.Random(f"people:{seed}")
    people: list[Person] = []
    emails: set[str] = set()
    phones: set[str] = set()
    for index in range(1, count + 1):
        person = make_person(rng, index, today)
        while person.email in emails:
            person = replace(person, email=_email(rng, person.first_name, person.last_name + "x"))
        while person.phone in phones:
            person = replace(person, phone=_phone(rng, person.country, rng.randrange(10**6)))
        emails.add(person.email)
        phones.add(person.phone)
        people.append(person)
    return people
