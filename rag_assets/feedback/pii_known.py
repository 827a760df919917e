"""Masking the identifiers the product holds for one customer, in every spelling (pure).

`KnownMasker(known)` masks, in a customer's own turns, each value of their
`KnownIdentifiers` (normalised as the identity graph normalises it) however it is typed:

* document numbers — passports → `[PASSPORT]`, national ids → `[NATIONAL_ID]`, loyalty
  numbers → `[LOYALTY]` — case-insensitively, with up to three spaces, dots, slashes or dashes
  between any two characters: `123 456 789`, `123-456-789` and `123456789` are one passport.
  Values shorter than 5 characters are left to the patterns (they would mask unrelated text).
* dates of birth → `[DOB]`: any span `pii_dates.DATE_SPAN` reads as that date (`3 March 1985`,
  `03/03/1985`, `1985-03-03`, `March 3rd, 1985`, `3.3.85`, `19850303`, …).
* e-mails → `[EMAIL]`: any case, spaces around `@` and dots, `at`/`dot` spelled out.
* phones → `[PHONE]`: the national number with its country code (`+44`, `0044`), its trunk
  zero or neither, digits grouped by spaces, dots, dashes, slashes or parentheses.
* address lines → `[ADDRESS]`: the words in order, any case, street types written either way
  (`1 Quay St`, `1, quay street`); postcodes → `[ADDRESS]` with any spacing (`ls14ab`).

Every quantifier is bounded and every pattern starts with a literal of the value, so a search
stays linear in the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date

import phonenumbers

from rag_assets.customers.identifiers import STREET_TYPES
from rag_assets.customers.known_identifiers import KnownIdentifiers
from rag_assets.feedback.pii_dates import DATE_SPAN, readings
from rag_assets.feedback.pii_tokens import (
    ADDRESS_TOKEN,
    DOB_TOKEN,
    EMAIL_TOKEN,
    LOYALTY_TOKEN,
    NATIONAL_ID_TOKEN,
    PASSPORT_TOKEN,
    PHONE_TOKEN,
)

MIN_DOCUMENT_CHARS = 5
_SEP = r"(?:[^\S\n]|[./()\u2010-\u2015-]){0,3}"
_SPACE = r"[^\S\n]{0,2}"
_AT = rf"(?:{_SPACE}[@＠﹫]{_SPACE}|{_SPACE}[\[({{]?{_SPACE}at{_SPACE}[\])}}]?{_SPACE})"
_DOT = rf"(?:{_SPACE}\.{_SPACE}|{_SPACE}[\[({{]?{_SPACE}dot{_SPACE}[\])}}]?{_SPACE})"
_WORD_GAP = r"(?:[^\S\n]|[,.\-]){1,4}"
_LONG_FORMS: dict[str, set[str]] = {}
for _long, _short in STREET_TYPES.items():
    _LONG_FORMS.setdefault(_short, {_short}).add(_long)


class KnownMasker:
    """Masks one customer's known identifiers (see the module doc)."""

    def __init__(self, known: KnownIdentifiers) -> None:
        self._dates = {date.fromisoformat(value) for value in known.dates_of_birth}
        documents = [(known.passports, PASSPORT_TOKEN), (known.national_ids, NATIONAL_ID_TOKEN),
                     (known.loyalty_numbers, LOYALTY_TOKEN)]
        self._patterns = [
            (p, EMAIL_TOKEN) for p in [_alternation(_email(e) for e in known.emails)] if p
        ] + [
            (p, token) for values, token in documents
            if (p := _alternation(_document(v) for v in values if len(v) >= MIN_DOCUMENT_CHARS))
        ] + [
            (p, token) for p, token in (
                (_alternation(_phone(v) for v in known.phones), PHONE_TOKEN),
                (_alternation(_address_line(v) for v in known.address_lines), ADDRESS_TOKEN),
                (_alternation(_document(v) for v in known.postcodes
                              if len(v.replace(" ", "")) >= MIN_DOCUMENT_CHARS), ADDRESS_TOKEN),
            ) if p
        ]

    def mask(self, text: str) -> str:
        if self._dates:
            text = DATE_SPAN.sub(self._date_of_birth, text)
        for pattern, token in self._patterns:
            text = pattern.sub(token, text)
        return text

    def _date_of_birth(self, match: re.Match[str]) -> str:
        return DOB_TOKEN if readings(match) & self._dates else match.group()


def _alternation(parts: Iterable[str | None]) -> re.Pattern[str] | None:
    alternatives = sorted({p for p in parts if p}, key=lambda p: (-len(p), p))
    if not alternatives:
        return None
    return re.compile(rf"(?<!\w)(?:{'|'.join(alternatives)})(?!\w)", re.IGNORECASE)


def _spaced(characters: str) -> str:
    return _SEP.join(re.escape(c) for c in characters)


def _document(value: str) -> str:
    return _spaced(re.sub(r"[^0-9A-Za-z]", "", value))


def _email(value: str) -> str | None:
    local, at, domain = value.partition("@")
    if not (local and at and domain):
        return None
    return _AT.join(_DOT.join(re.escape(part) for part in side.split("."))
                    for side in (local, domain))


def _phone(value: str) -> str | None:
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return None
    national = phonenumbers.national_significant_number(number)
    if len(national) < MIN_DOCUMENT_CHARS + 1:
        return None
    prefix = (rf"(?:(?:\+|00){_SEP}{_spaced(str(number.country_code))}{_SEP}(?:\(0\){_SEP})?"
              rf"|\(?0{_SEP})?")
    return prefix + _spaced(national)


def _address_line(value: str) -> str | None:
    words = value.split()
    if len(words) < 2:
        return None
    return _WORD_GAP.join(_address_word(word) for word in words)


def _address_word(word: str) -> str:
    forms = sorted(_LONG_FORMS.get(word, {word}), key=lambda f: (-len(f), f))
    spelled = "|".join("['’]?".join(re.escape(c) for c in form) for form in forms)
    return rf"(?:{spelled})\.?"
