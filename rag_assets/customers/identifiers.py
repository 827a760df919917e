"""Normalising the identifiers of a person found in source rows.

Every normaliser takes a raw value and returns a canonical string, or None when the value is
empty or unusable (so an unusable value never links two records):

* email: trimmed, `mailto:` removed, lower-cased. No provider tricks (Gmail dots, `+tags`): two
  addresses that the provider may treat as one are still two identifiers here.
* phone: E.164 via `phonenumbers`, read in the row's country when it has one, else the default
  region. Numbers must be *possible* (right length for the country), not *valid*: validity
  metadata rejects reserved fictional ranges and lags behind new number ranges.
* loyalty number, national id, passport: upper-case letters and digits only.
* names: Unicode folded to ASCII letters, lower-case, punctuation removed, titles dropped.
* date of birth: ISO `YYYY-MM-DD` from ISO strings, `YYYYMMDD`, `DD/MM/YYYY` (or month first when
  configured), `12 Mar 1985`, `March 12, 1985`, Debezium's days-since-epoch integers, `date`s.
* address: folded, street types abbreviated one way (`street` -> `st`); UK postcodes spaced as
  `SW1A 1AA`, other postcodes upper-case alphanumerics.

Which column of which source table holds which identifier is data: the source catalogue's
`identity:` of each table (`IdentityColumns`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from datetime import date, datetime, timedelta
from typing import Any

import phonenumbers

from rag_assets.catalogue import active_catalogue
from rag_assets.catalogue.model import IdentityColumns

# Phones are read in this region when neither the row nor the catalogue says otherwise.
DEFAULT_PHONE_REGION = "GB"

# Deterministic identifier kinds: equal normalised values link two records.
EMAIL = "email"
PHONE = "phone"
LOYALTY_NUMBER = "loyalty_number"
NATIONAL_ID = "national_id"
PASSPORT = "passport"


@dataclass(frozen=True)
class PersonIdentity:
    """The normalised identity evidence of one source record."""

    identifiers: frozenset[tuple[str, str]] = frozenset()  # (kind, normalised value)
    given_name: str | None = None
    surname: str | None = None
    date_of_birth: str | None = None
    address_line: str | None = None
    city: str | None = None
    postcode: str | None = None
    country: str | None = None

    def values_of(self, kind: str) -> list[str]:
        return sorted(value for k, value in self.identifiers if k == kind)


def extract_identity(
    system: str,
    table: str,
    row: Mapping[str, Any],
    default_region: str | None = None,
    columns: Mapping[tuple[str, str], IdentityColumns] | None = None,
) -> PersonIdentity:
    """Normalised identity of a row; an unmapped table yields an empty identity. The columns
    and the default phone region are the catalogue's unless given."""
    columns, default_region = identity_settings(columns, default_region)
    mapping = columns.get((system, table))
    if mapping is None:
        return PersonIdentity()
    country = normalize_country(row.get(mapping.country)) if mapping.country else None
    region = country or mapping.phone_region or default_region
    identifiers = set()
    kinds = (
        (EMAIL, mapping.email, normalize_email),
        (PHONE, mapping.phone, lambda raw: normalize_phone(raw, region)),
        (LOYALTY_NUMBER, mapping.loyalty_number, normalize_document_number),
        (NATIONAL_ID, mapping.national_id, normalize_document_number),
        (PASSPORT, mapping.passport, normalize_document_number),
    )
    for kind, column_names, normalize in kinds:
        for column in column_names:
            value = normalize(row.get(column))
            if value and len(value) <= MAX_IDENTIFIER_CHARS:
                identifiers.add((kind, value))
    given, surname = _names(mapping, row)
    address = " ".join(str(row.get(c) or "") for c in mapping.address_line).strip()
    return PersonIdentity(
        identifiers=frozenset(identifiers),
        given_name=given,
        surname=surname,
        date_of_birth=normalize_date_of_birth(_get(row, mapping.date_of_birth)),
        address_line=normalize_address_line(address),
        city=fold_name(_get(row, mapping.city)),
        postcode=normalize_postcode(_get(row, mapping.postcode), country),
        country=country,
    )


def identity_settings(
    columns: Mapping[tuple[str, str], IdentityColumns] | None, default_region: str | None
) -> tuple[Mapping[tuple[str, str], IdentityColumns], str]:
    """The given identity columns and default phone region, each defaulting to the catalogue's."""
    if columns is not None and default_region is not None:
        return columns, default_region
    catalogue = active_catalogue()
    return (catalogue.identity_columns if columns is None else columns,
            default_region or catalogue.default_phone_region)


def _get(row: Mapping[str, Any], column: str | None) -> Any:
    return row.get(column) if column else None


def _names(mapping: IdentityColumns, row: Mapping[str, Any]) -> tuple[str | None, str | None]:
    given = fold_name(_get(row, mapping.given_name))
    surname = fold_name(_get(row, mapping.surname))
    if given is None and surname is None and mapping.full_name:
        return split_full_name(row.get(mapping.full_name))
    return given, surname


# Longer values identify nobody (an e-mail address has at most 254 characters), and PostgreSQL
# could not index them (identifiers and blocking keys are looked up through a btree).
MAX_IDENTIFIER_CHARS = 256


# --- email, phone, document numbers --------------------------------------------------------

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalize_email(raw: Any) -> str | None:
    if not isinstance(raw, str):
        return None
    email = raw.strip()
    if email.lower().startswith("mailto:"):
        email = email[len("mailto:") :]
    email = email.strip().lower()
    return email if _EMAIL.match(email) else None


def normalize_phone(raw: Any, default_region: str = DEFAULT_PHONE_REGION) -> str | None:
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str) or not raw.strip():
        return None
    return _e164(raw.strip(), default_region)


@lru_cache(maxsize=1 << 16)
def _e164(text: str, default_region: str) -> str | None:
    """Memoised by value: phonenumbers parses in Python (~40 us a number), and the same numbers
    come back with every version of a record and every rebuild of its customer's profile."""
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_document_number(raw: Any) -> str | None:
    """Loyalty numbers, national ids, passports: upper-case letters and digits only."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str):
        return None
    value = re.sub(r"[^0-9A-Z]", "", fold_ascii(raw).upper())
    return value or None


# --- names ---------------------------------------------------------------------------------

# Letters that Unicode decomposition does not reduce to ASCII.
_SPECIAL_LETTERS = str.maketrans(
    {
        "ø": "o",
        "Ø": "O",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ł": "l",
        "Ł": "L",
        "đ": "d",
        "Đ": "D",
        "þ": "th",
        "Þ": "TH",
        "ð": "d",
        "ß": "ss",
        "ı": "i",
    }
)
_TITLES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "rev"})
_NICKNAMES = {
    "bill": "william",
    "will": "william",
    "billy": "william",
    "liz": "elizabeth",
    "beth": "elizabeth",
    "lizzie": "elizabeth",
    "bob": "robert",
    "rob": "robert",
    "bobby": "robert",
    "jim": "james",
    "jimmy": "james",
    "mike": "michael",
    "tom": "thomas",
    "tommy": "thomas",
    "kate": "katherine",
    "katie": "katherine",
    "cathy": "catherine",
    "dave": "david",
    "dan": "daniel",
    "danny": "daniel",
    "chris": "christopher",
    "alex": "alexander",
    "sam": "samuel",
    "ben": "benjamin",
    "joe": "joseph",
    "jon": "jonathan",
    "nick": "nicholas",
    "matt": "matthew",
    "andy": "andrew",
    "tony": "anthony",
    "steve": "stephen",
    "jen": "jennifer",
    "jenny": "jennifer",
    "sue": "susan",
    "peggy": "margaret",
    "meg": "margaret",
    "dick": "richard",
    "rick": "richard",
    "ted": "edward",
    "ed": "edward",
    "pat": "patricia",
}


def fold_ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_SPECIAL_LETTERS))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def fold_name(raw: Any) -> str | None:
    """`  O'Brien-Smith ` -> `obrien smith`; `Zoë` -> `zoe`. Titles are dropped."""
    if not isinstance(raw, str):
        return None
    return _fold_text(raw)


@lru_cache(maxsize=1 << 16)
def _fold_text(raw: str) -> str | None:
    """`fold_name` of a string, memoised by value (names and cities recur in every version)."""
    text = fold_ascii(raw).casefold()
    text = re.sub(r"['’`.]", "", text)
    text = re.sub(r"[^a-z0-9]+", " ", text)
    words = [w for w in text.split() if w not in _TITLES]
    return " ".join(words) or None


def split_full_name(raw: Any) -> tuple[str | None, str | None]:
    """`Sally Thomas` and `Thomas, Sally` -> ("sally", "thomas"); one word is a surname."""
    if not isinstance(raw, str):
        return None, None
    if "," in raw:
        surname_part, _, given_part = raw.partition(",")
        return _first_word(fold_name(given_part)), fold_name(surname_part)
    words = (fold_name(raw) or "").split()
    if not words:
        return None, None
    if len(words) == 1:
        return None, words[0]
    return words[0], words[-1]


def _first_word(name: str | None) -> str | None:
    return name.split()[0] if name else None


def canonical_given_name(name: str | None) -> str | None:
    """The formal form of a common English nickname (`bill` -> `william`), else the name."""
    if not name:
        return name
    return _NICKNAMES.get(name, name)


# --- dates ---------------------------------------------------------------------------------

_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}
_EPOCH = date(1970, 1, 1)


def normalize_date_of_birth(
    raw: Any, day_first: bool = True, today: date | None = None
) -> str | None:
    """ISO date, or None when the value is not a plausible birth date (1900 up to today)."""
    parsed = _parse_date(raw, day_first)
    if parsed is None:
        return None
    if not date(1900, 1, 1) <= parsed <= (today or date.today()):
        return None
    return parsed.isoformat()


def parse_date(raw: Any, day_first: bool = True) -> date | None:
    """A calendar date from the same inputs as `normalize_date_of_birth`, without plausibility."""
    return _parse_date(raw, day_first)


def _parse_date(raw: Any, day_first: bool) -> date | None:
    if isinstance(raw, datetime):
        return raw.date()
    if isinstance(raw, date):
        return raw
    if isinstance(raw, int) and not isinstance(raw, bool):
        if 19000101 <= raw <= 29991231:
            return _parse_date(str(raw), day_first)
        try:
            return _EPOCH + timedelta(days=raw)  # Debezium io.debezium.time.Date
        except OverflowError:  # days beyond the calendar: not a date
            return None
    if not isinstance(raw, str):
        return None
    text = raw.strip().lower()
    for parse in (_iso_date, _compact_date, _numeric_date, _named_month_date):
        try:
            value = parse(text, day_first)
        except ValueError:
            continue
        if value is not None:
            return value
    return None


def _iso_date(text: str, _: bool) -> date | None:
    match = re.match(r"^(\d{4})-(\d{1,2})-(\d{1,2})([t ].*)?$", text)
    return date(int(match[1]), int(match[2]), int(match[3])) if match else None


def _compact_date(text: str, _: bool) -> date | None:
    match = re.match(r"^(\d{4})(\d{2})(\d{2})$", text)
    return date(int(match[1]), int(match[2]), int(match[3])) if match else None


def _numeric_date(text: str, day_first: bool) -> date | None:
    match = re.match(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})$", text)
    if not match:
        return None
    first, second, year = int(match[1]), int(match[2]), int(match[3])
    day, month = (first, second) if day_first else (second, first)
    return date(year, month, day)


def _named_month_date(text: str, _: bool) -> date | None:
    words = re.findall(r"[a-z]+|\d+", text)
    month = next((_MONTHS[w[:3]] for w in words if w[:3] in _MONTHS and w.isalpha()), None)
    numbers = [int(w) for w in words if w.isdigit()]
    years = [n for n in numbers if n >= 1000]
    days = [n for n in numbers if n < 32]
    if month is None or len(years) != 1 or len(days) != 1:
        return None
    return date(years[0], month, days[0])


# --- addresses -----------------------------------------------------------------------------

# Street types and their one abbreviation (also read by the fine-tuning masker).
STREET_TYPES = {
    "street": "st",
    "str": "st",
    "road": "rd",
    "avenue": "ave",
    "av": "ave",
    "lane": "ln",
    "drive": "dr",
    "court": "ct",
    "crescent": "cres",
    "place": "pl",
    "terrace": "tce",
    "boulevard": "blvd",
    "square": "sq",
    "close": "cl",
    "gardens": "gdns",
    "highway": "hwy",
    "parade": "pde",
    "circuit": "cct",
    "grove": "gr",
    "way": "way",
    "apartment": "apt",
    "flat": "flat",
    "north": "n",
    "south": "s",
    "east": "e",
    "west": "w",
}
_COUNTRIES = {
    "uk": "GB",
    "united kingdom": "GB",
    "great britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "usa": "US",
    "united states": "US",
    "united states of america": "US",
    "ireland": "IE",
    "france": "FR",
    "germany": "DE",
    "spain": "ES",
    "italy": "IT",
    "australia": "AU",
    "canada": "CA",
    "netherlands": "NL",
}


def normalize_address_line(raw: Any) -> str | None:
    name = fold_name(raw) if isinstance(raw, str) else None
    if not name:
        return None
    return " ".join(STREET_TYPES.get(word, word) for word in name.split())


def normalize_country(raw: Any) -> str | None:
    """ISO 3166 alpha-2 code for a code or a common country name."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    text = raw.strip()
    if len(text) == 2 and text.isalpha():
        code = text.upper()
        return "GB" if code == "UK" else code
    return _COUNTRIES.get(fold_name(text) or "")


def normalize_postcode(raw: Any, country: str | None = None) -> str | None:
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str):
        return None
    compact = re.sub(r"[^0-9A-Z]", "", fold_ascii(raw).upper())
    if not compact:
        return None
    if (country in (None, "GB")) and re.match(r"^[A-Z]{1,2}\d[A-Z\d]?\d[A-Z]{2}$", compact):
        return f"{compact[:-3]} {compact[-3:]}"
    return compact
