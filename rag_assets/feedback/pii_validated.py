"""Identifier patterns that a checksum, a format rule or the words around them confirm (pure).

Any customer's turns, whether or not the product knows them (`pii.py` applies these after the
customer's own known identifiers):

* IBAN → `[IBAN]`: two letters, two digits and 11–30 letters or digits, grouped or not, whose
  country length and ISO 7064 mod-97 check pass (`stdnum.iban`).
* national ids → `[NATIONAL_ID]`, each by its own check: US SSN written `123-45-6789` or
  `123 45 6789` (`stdnum.us.ssn`: no 000/666/9xx area, 00 group or 0000 serial); Spanish DNI
  and NIE (`stdnum.es.dni`, `stdnum.es.nie`: check letter); Irish PPS (`stdnum.ie.pps`: check
  letter); Italian codice fiscale (`stdnum.it.codicefiscale`: check letter); UK national
  insurance numbers `AB 12 34 56 C` by HMRC's format rules (prefix letters never issued —
  D, F, I, Q, U, V, O second, BG, GB, KN, NK, NT, TN, ZZ — and a suffix A–D; python-stdnum 2.2
  has no module for them). Upper-case only: in lower case these shapes are ordinary words.
* by context — a keyword (not a mask token such as `[DOB]`), then up to 40 characters without a digit, a sentence break or a word
  naming something else (booking, order, ticket, flight, reference, seat, gate), then the value:
  passports (`passport`, `passeport`, `pasaporte`, `Reisepass`, …) → `[PASSPORT]`, 6–9
  letters and digits with at least 5 digits, grouped or not, after an optional letter prefix
  (`X 1234567`); loyalty numbers
  (`loyalty`, `member(ship)`, `frequent flyer`, `executive club`, …) → `[LOYALTY]`, 6–12
  characters with at least 4 digits (`BA 1234 5678`, `ly-70001`; a short word before the
  number such as `is` or `no` is not a prefix); an SSN or a national insurance number in any case after `SSN`, `social
  security`, `national insurance`, `NI number` → `[NATIONAL_ID]` (a value that starts with a
  date is none of these); a date after `born`,
  `birthday`, `date of birth`, `DOB` → `[DOB]` (the keyword stays).
* addresses → `[ADDRESS]`: a house number, one to four words and a street type (`12 Baker
  Street`, `221B baker st`; the types that are also common words — Way, Close, Court, Drive,
  Place, Grove, Row, Hill, Walk — only capitalised), and UK postcodes written with their space
  (`SW1A 1AA`, `sw1a 1aa`; `B1 2nd` is an ordinal); unspaced, the shape is a booking
  reference's, so only right after a masked street address (and a town) or after "postcode".

Order numbers, booking references, flight numbers, prices and travel dates match none of them.
Every quantifier is bounded, so a search stays linear in the text.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from stdnum import iban
from stdnum.es import dni, nie
from stdnum.ie import pps
from stdnum.it import codicefiscale
from stdnum.us import ssn

from rag_assets.feedback.pii_dates import DATE_SPAN, readings
from rag_assets.feedback.pii_tokens import (
    ADDRESS_TOKEN,
    DOB_TOKEN,
    IBAN_TOKEN,
    LOYALTY_TOKEN,
    NATIONAL_ID_TOKEN,
    PASSPORT_TOKEN,
)

# --- runs of groups that a check confirms -------------------------------------------------


def mask_valid_runs(candidate: str, groups: list[re.Match[str]], compact: Callable[[str], str],
                    is_valid: Callable[[str], bool], max_chars: int, token: str,
                    most: int | None = None) -> str:
    """`candidate` with every longest run of consecutive `groups` whose joined compact form
    `is_valid` replaced by `token` (runs longer than `max_chars` compact characters are not
    tried), scanning from the first group on; at most `most` runs when given."""
    parts = [compact(group.group()) for group in groups]
    pieces, position, first, found = [], 0, 0, 0
    while first < len(groups) and (most is None or found < most):
        last = _valid_run_end(parts, first, is_valid, max_chars)
        if last is None:
            first += 1
            continue
        pieces += [candidate[position : groups[first].start()], token]
        position, first, found = groups[last].end(), last + 1, found + 1
    pieces.append(candidate[position:])
    return "".join(pieces)


def _valid_run_end(parts: list[str], first: int, is_valid: Callable[[str], bool],
                   max_chars: int) -> int | None:
    joined, best = "", None
    for last in range(first, len(parts)):
        joined += parts[last]
        if len(joined) > max_chars:
            break
        if is_valid(joined):
            best = last
    return best


# --- IBAN ------------------------------------------------------------------------------------

_IBAN = re.compile(r"(?<![\w-])[A-Za-z]{2}\d{2}[A-Za-z0-9]*(?:[^\S\n]?-?[^\S\n]?[A-Za-z0-9]+){0,10}")
_ALNUM_GROUP = re.compile(r"[A-Za-z0-9]+")


def _iban_valid(compact: str) -> bool:
    return len(compact) >= 15 and compact[:2].isalpha() and iban.is_valid(compact)


def mask_ibans(text: str) -> str:
    return _IBAN.sub(lambda m: mask_valid_runs(
        m.group(), list(_ALNUM_GROUP.finditer(m.group())), str.upper, _iban_valid, 34,
        IBAN_TOKEN), text)


# --- national ids ------------------------------------------------------------------------------

_NINO_FIRST, _NINO_SECOND = "ABCEGHJKLMNOPRSTWXYZ", "ABCEGHJKLMNPRSTWXYZ"
_NINO_NEVER_ISSUED = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def nino_valid(compact: str) -> bool:
    """A UK national insurance number by HMRC's format rules (`AB123456C`, upper case)."""
    return (len(compact) == 9 and compact[0] in _NINO_FIRST and compact[1] in _NINO_SECOND
            and compact[:2] not in _NINO_NEVER_ISSUED and compact[2:8].isdigit()
            and compact[8] in "ABCD")


def _compact(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", text).upper()


_NATIONAL_IDS: tuple[tuple[re.Pattern[str], Callable[[str], bool]], ...] = (
    (re.compile(r"(?<![\w-])\d{3}([^\S\n]|-)\d{2}\1\d{4}(?![\w-])"), ssn.is_valid),
    (re.compile(r"(?<!\w)[A-Z]{2}(?:[^\S\n]?\d{2}){3}[^\S\n]?[A-D](?!\w)"), nino_valid),
    (re.compile(r"(?<![\w-])\d{8}[^\S\n]?-?[A-Z](?!\w)"), dni.is_valid),
    (re.compile(r"(?<![\w-])[XYZ][^\S\n]?-?\d{7}[^\S\n]?-?[A-Z](?!\w)"), nie.is_valid),
    (re.compile(r"(?<![\w-])\d{7}[A-W][ABWHTX]?(?!\w)"), pps.is_valid),
    (re.compile(r"(?<!\w)[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z](?!\w)"), codicefiscale.is_valid),
)


def mask_national_ids(text: str) -> str:
    for pattern, is_valid in _NATIONAL_IDS:
        text = pattern.sub(lambda m, ok=is_valid: NATIONAL_ID_TOKEN if ok(_compact(m.group()))
                           else m.group(), text)
    return text


# --- by context ---------------------------------------------------------------------------------

_OTHER_THINGS = re.compile(
    r"\b(?:booking|order|ticket|flight|reference|ref|seat|gate|confirmation|pnr)\b"
    r"|[.!?;]\s+[A-Z]", re.IGNORECASE)
_VALUE = (r"(?<![A-Za-z0-9])(?P<value>(?:(?!(?:is|no|nr|num|at|on|to|in|of|my|be|it|as|an?|and|the|was|for)\b)"
          r"[A-Za-z]{1,4}(?:[^\S\n]|-))?[A-Za-z]{0,4}\d[A-Za-z0-9]*"
          r"(?:(?:[^\S\n]|-)[A-Za-z0-9]+){0,3})")


class ContextualPattern:
    """A value confirmed by a keyword before it (see the module doc)."""

    def __init__(self, keywords: str, accept: Callable[[str], bool], min_chars: int,
                 max_chars: int, token: str) -> None:
        self._pattern = re.compile(
            rf"(?<![\w\[])(?:{keywords})(?!\w)(?P<gap>[^\d\n]{{0,40}}?){_VALUE}", re.IGNORECASE)
        self._accept, self._min, self._max, self._token = accept, min_chars, max_chars, token

    def mask(self, text: str) -> str:
        return self._pattern.sub(self._replace, text)

    def _replace(self, match: re.Match[str]) -> str:
        if _OTHER_THINGS.search(match.group("gap")):
            return match.group()
        value = match.group("value")
        date = next((d for d in DATE_SPAN.finditer(value) if readings(d)), None)
        usable = value[: date.start()] if date else value
        masked = mask_valid_runs(usable, list(_ALNUM_GROUP.finditer(usable)), str.upper,
                                 self._valid, self._max, self._token, most=1)
        head = match.group()[: match.start("value") - match.start()]
        return head + masked + value[len(usable):]

    def _valid(self, compact: str) -> bool:
        return (self._min <= len(compact) <= self._max and any(c.isdigit() for c in compact)
                and self._accept(compact))


def _digits_at_least(count: int) -> Callable[[str], bool]:
    return lambda compact: sum(c.isdigit() for c in compact) >= count


_CONTEXTUAL = (
    ContextualPattern(r"passports?|passeport|pasaporte|passaporto|paspoort|reisepass"
                      r"|travel\s+document", _digits_at_least(5), 6, 9,
                      PASSPORT_TOKEN),
    ContextualPattern(r"loyalty|member(?:ship)?|frequent[\s-]?fl[yi]er|executive\s+club"
                      r"|rewards?|avios|miles\s+account|ff", _digits_at_least(4), 6, 12,
                      LOYALTY_TOKEN),
    ContextualPattern(r"ssn|social\s+security", ssn.is_valid, 9, 9,
                      NATIONAL_ID_TOKEN),
    ContextualPattern(r"national\s+insurance|ni\s+(?:number|no)|nino",
                      nino_valid, 9, 9, NATIONAL_ID_TOKEN),
)

_DOB_CONTEXT = re.compile(
    r"(?<![\w\[])(?:born|birth(?:day|date)?|d\.?o\.?b)(?:\.|(?!\w))(?P<gap>[^\d\n]{0,30}?)"
    rf"(?P<date>{DATE_SPAN.pattern})", re.IGNORECASE)


def mask_by_context(text: str) -> str:
    text = _DOB_CONTEXT.sub(lambda m: m.group()[: m.start("date") - m.start()] + DOB_TOKEN, text)
    for pattern in _CONTEXTUAL:
        text = pattern.mask(text)
    return text


# --- addresses -------------------------------------------------------------------------------------

_STREET_WORD = (r"(?!(?i:the|an?|on|in|to|my|of|for|and|at|by|with|from|your|our|this|that)\b)"
                r"[A-Za-z][a-z'’-]+")
_STREET = re.compile(
    rf"(?<![\w.,])\d{{1,5}}[A-Za-z]?,?[^\S\n]{{1,3}}(?:{_STREET_WORD}[^\S\n]{{1,3}}){{1,4}}"
    r"(?:(?i:street|st|road|rd|avenue|ave|lane|ln|crescent|cres|terrace|tce|boulevard|blvd|square|sq"
    r"|gardens|gdns|mews|parade)|Way|Close|Court|Ct|Drive|Dr|Place|Pl|Grove|Row|Hill|Walk)"
    r"\.?(?!\w)")
# The space is required on its own: unspaced, the shape is a booking reference's (`C2Q2RB`).
_UK_POSTCODE = re.compile(
    r"(?<![\w-])[a-z]{1,2}\d[a-z\d]?[^\S\n]\d(?!(?:st|nd|rd|th)\b)[a-z]{2}(?![\w-])",
    re.IGNORECASE)
# Unspaced, a postcode is confirmed by its context: right after a masked street address (a town
# of up to three capitalised words between), or after the word "postcode".
_POSTCODE_CONTEXT = (
    rf"(?:{re.escape(ADDRESS_TOKEN)},?(?:[^\S\n]{{1,3}}[A-Z][a-z]+){{0,3}},?"
    r"|(?i:post[^\S\n]?code|postal[^\S\n]code)(?:[^\S\n]{1,3}(?i:is|:))?)[^\S\n]{1,3}")
_UNSPACED_POSTCODE = re.compile(
    rf"({_POSTCODE_CONTEXT})(?i:[a-z]{{1,2}}\d[a-z\d]?\d[a-z]{{2}})(?![\w-])")


def mask_addresses(text: str) -> str:
    text = _UK_POSTCODE.sub(ADDRESS_TOKEN, _STREET.sub(ADDRESS_TOKEN, text))
    return _UNSPACED_POSTCODE.sub(lambda m: m[1] + ADDRESS_TOKEN, text)
