"""Masking personal data in free text.

`PiiMasker(names).mask(text)` masks what anyone's text may hold (zero-width characters and soft
hyphens removed first); `masker.with_known(known)`
is the masker for one customer's turns, which also masks every identifier the product holds
for that customer (`KnownIdentifiers`: identity graph and profile). In this order:

* the customer's known identifiers, in any spelling (`pii_known.py`): passports →
  `[PASSPORT]`, national ids → `[NATIONAL_ID]`, loyalty numbers → `[LOYALTY]` with any
  spacing, case or separators; dates of birth → `[DOB]` in common spellings (`3 March 1985`,
  `03/03/1985`, `1985-03-03`, …); e-mails, phones, address lines and postcodes.
* e-mail addresses → `[EMAIL]`: `local@domain.tld` (Unicode letters allowed, full-width `＠`),
  the bracketed obfuscations `john [at] example [dot] com` / `(at)` / `{at}`, and the spoken
  form `john at example dot com` — the spoken form needs a spelled-out final "dot", so ordinary
  prose such as "manage your booking at ba.com" is left alone.
* IBANs → `[IBAN]`, national ids → `[NATIONAL_ID]` (SSN, Spanish DNI/NIE, Irish PPS, Italian
  codice fiscale, UK national insurance numbers), passports, loyalty numbers and dates of birth
  after a keyword, street addresses and UK postcodes → `[ADDRESS]`: each confirmed by a
  checksum (python-stdnum), a format rule or the words before it (`pii_validated.py`), applied
  before cards and phones so an IBAN's digits are never read as either.
* card numbers → `[CARD]`: 13–19 digits, optionally in groups separated by a space or dash,
  that pass the Luhn check. Long digit runs that fail Luhn (order, ticket and booking numbers)
  are kept: masking them would destroy what support conversations are about. A mistyped card
  number therefore survives; a valid one cannot hide behind extra groups around it (the check
  runs on every run of consecutive groups, e.g. a card followed by its CVV).
* phone numbers → `[PHONE]`: digits in groups separated by a space, dot, dash or slash, with
  optional parentheses, that are either international (leading `+` or `00`, 8–15 digits after
  it), national with a trunk zero (leading `0`, 9–12 digits), or North-American shaped
  (`(415) 555-2671`, `415.555.2671`, optionally `+1`). A bare run of digits without a leading
  `0`/`+` is not treated as a phone: that is what order numbers look like.
* names → `[NAME]`: each given name or surname in the provided list (customer profile names,
  and with `with_known` the customer's own),
  case-insensitive, on word boundaries, straight or curly apostrophes alike. Names shorter than
  two characters are ignored (initials would mask every lone letter). Common words that are also
  names ("May", "Will") are masked too: leaking a name costs more than over-masking a word.

Numeric dates (`2024-03-15`, `15/03/2024`, `15.03.2024`) are never read as card or phone digits,
so "15.03.2024 0930" stays a date and a time; a date is masked only as a date of birth (the
customer's, or after `born`/`DOB`/`date of birth`). Times, prices, order numbers, booking
references and flight numbers (`BA123`) match no pattern. Zero-width characters and soft hyphens are removed first so they
cannot split a value to slip it past the patterns.
"""

from __future__ import annotations

from copy import copy as shallow_copy
import re
import unicodedata
from collections.abc import Callable, Iterable

from rag_assets.customers.known_identifiers import KnownIdentifiers
from rag_assets.feedback.pii_known import KnownMasker
from rag_assets.feedback.pii_tokens import (  # noqa: F401  (the tokens are part of this API)
    ADDRESS_TOKEN,
    CARD_TOKEN,
    DOB_TOKEN,
    EMAIL_TOKEN,
    IBAN_TOKEN,
    LOYALTY_TOKEN,
    NAME_TOKEN,
    NATIONAL_ID_TOKEN,
    PASSPORT_TOKEN,
    PHONE_TOKEN,
)
from rag_assets.feedback.pii_validated import (
    mask_addresses,
    mask_by_context,
    mask_ibans,
    mask_national_ids,
    mask_valid_runs,
)


_INVISIBLE = re.compile("[\u00ad\u200b\u200c\u200d\u2060\ufeff]")

_LOCAL_PART = r"[\w.!#$%&'*+/=?^`{|}~-]+"
_LABEL = r"[\w-]+"
_TLD = r"[^\W\d_]{2,63}(?![\w-])"


def _bracketed(word: str) -> str:
    return r"\s*[\[({]\s*(?i:" + word + r")\s*[\])}]\s*"


_AT = rf"(?:\s*[@＠﹫]\s*|{_bracketed('at')})"
_SPELLED_DOT = rf"(?:{_bracketed('dot')}|\s+(?i:dot)\s+)"
_ANY_DOT = rf"(?:\.|{_SPELLED_DOT})"
# Starting only where a local part can start keeps a failed match linear, not quadratic.
_EMAIL = re.compile(
    rf"(?<![\w.!#$%&'*+/=?^`{{|}}~-])"
    rf"(?:{_LOCAL_PART}{_AT}{_LABEL}(?:{_ANY_DOT}{_LABEL})*{_ANY_DOT}{_TLD}"
    rf"|[\w.+-]+(?:{_SPELLED_DOT}[\w+-]+)*\s+(?i:at)\s+{_LABEL}(?:{_ANY_DOT}{_LABEL})*{_SPELLED_DOT}{_TLD})"
)

_DATE = re.compile(
    r"(?<!\d)(?:(?P<y1>\d{4})[-/.](?P<m1>\d{1,2})[-/.](?P<d1>\d{1,2})"
    r"|(?P<a2>\d{1,2})[-/.](?P<b2>\d{1,2})[-/.](?P<y2>\d{4}|\d{2}))(?!\d)"
)

_SPACE = r"[^\S\r\n]"
_DASH = r"[-\u2010\u2011\u2012\u2013]"
_DIGIT_GROUPS = re.compile(rf"(?<![\w+])\d+(?:(?:{_SPACE}|{_DASH})\d+)*(?!\w)")
_PHONE_SEPARATOR = rf"(?:{_SPACE}{{1,3}}|{_SPACE}?[./]{_SPACE}?|{_SPACE}?{_DASH}{_SPACE}?)"
_PAREN_GROUP = r"\(\s*\+?\d{1,5}\s*\)"
_PHONE = re.compile(
    rf"(?<![\w+])(?<!\d[./-])(?:\+{_SPACE}?)?(?:{_PAREN_GROUP}|\d+)"
    rf"(?:{_PHONE_SEPARATOR}?{_PAREN_GROUP}|{_PHONE_SEPARATOR}\d+|(?<=\))\d+)*(?![\w])"
)
_NORTH_AMERICAN = re.compile(
    rf"(?:\+?1{_PHONE_SEPARATOR})?(?:\(\d{{3}}\){_SPACE}?|\d{{3}}{_PHONE_SEPARATOR})\d{{3}}{_PHONE_SEPARATOR}\d{{4}}"
)


class PiiMasker:
    """Masks personal data in free text; `with_known` adds what the product holds for one
    customer (see the module doc)."""

    def __init__(self, names: Iterable[str] = (), known: KnownIdentifiers | None = None) -> None:
        self._name_set = frozenset(names)
        self._names = _name_patterns(self._name_set)
        self._known: KnownMasker | None = None
        self._own_names: list[re.Pattern[str]] = []
        if known:
            self._add_known(known)

    def with_known(self, known: KnownIdentifiers | None) -> PiiMasker:
        """This masker for the turns of one customer: their known identifiers and names too.
        The customer's names that this masker lacks get a pattern of their own: compiling
        tens of thousands of names takes seconds, and an export asks for a masker per customer
        (it passes every customer's names to its base masker, so that none is lacking)."""
        if not known:
            return self
        masker = shallow_copy(self)
        masker._add_known(known)
        return masker

    def _add_known(self, known: KnownIdentifiers) -> None:
        self._known = KnownMasker(known)
        self._own_names = _name_patterns(known.names - self._name_set)

    def mask(self, text: str) -> str:
        text = _INVISIBLE.sub("", text)
        if self._known is not None:
            text = self._known.mask(text)
        text = _EMAIL.sub(EMAIL_TOKEN, text)
        text = mask_ibans(text)
        text = mask_national_ids(text)
        text = mask_by_context(text)
        text = mask_addresses(text)
        text = _outside_dates(text, _mask_cards)
        text = _outside_dates(text, _mask_phones)
        return _mask_names([*self._names, *self._own_names], text)


def mask_pii(text: str, names: Iterable[str] = ()) -> str:
    """One-off masking; build a `PiiMasker` once to mask many texts with the same names."""
    return PiiMasker(names).mask(text)


def luhn_valid(digits: str) -> bool:
    return _luhn_valid_ascii(_ascii_digits(digits))


def _luhn_valid_ascii(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


# Longer names (no person's, but a source may hold anything) are one flat alternation: each
# character of a name is a level of the trie's pattern, and the regular-expression compiler
# recurses per level.
MAX_TRIE_ATOMS = 64


def _name_patterns(names: Iterable[str]) -> list[re.Pattern[str]]:
    """Every name, on word boundaries, the longest first where several start at one place
    (`_mask_names` merges the patterns' matches). The names are merged into a trie before they
    become a pattern: an alternation of tens of thousands of names is tried one by one at every
    position of a text (an export of 11,663 turns took five minutes); the trie's branches fail
    on their first character."""
    trie: dict = {}
    long_names: list[list[str]] = []
    for name in {name.strip() for name in names}:
        if len(name) < 2:
            continue
        atoms = _name_atoms(name)
        if len(atoms) > MAX_TRIE_ATOMS:
            long_names.append(atoms)
            continue
        node = trie
        for atom in atoms:
            node = node.setdefault(atom, {})
        node[_END] = {}
    bodies = [_trie_pattern(trie)] if trie else []
    if long_names:
        bodies.append("|".join("".join(atoms) for atoms in sorted(long_names, key=len, reverse=True)))
    return [re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.IGNORECASE) for body in bodies]


def _mask_names(patterns: list[re.Pattern[str]], text: str) -> str:
    """Replace what the name patterns match as one alternation of all their names would: at the
    leftmost place any matches, the longest match there."""
    if len(patterns) <= 1:
        return patterns[0].sub(NAME_TOKEN, text) if patterns else text
    pieces, position = [], 0
    found = [pattern.search(text) for pattern in patterns]
    while any(found):
        start = min(match.start() for match in found if match)
        end = max(match.end() for match in found if match and match.start() == start)
        pieces += [text[position:start], NAME_TOKEN]
        position = end
        found = [match if match is None or match.start() >= end else pattern.search(text, end)
                 for pattern, match in zip(patterns, found)]
    pieces.append(text[position:])
    return "".join(pieces)


_END = ""  # the trie key of "a name ends here"; no atom is empty
_SPACE_ATOM = r"\s+"
_APOSTROPHE_ATOM = "['’]"


def _name_atoms(name: str) -> list[str]:
    """The regular expression of each step of a name: a character (case-folded where that keeps
    one character, so that "Anna" and "ANNA" share a branch), a run of white space, or either
    apostrophe."""
    atoms: list[str] = []
    for number, part in enumerate(name.split()):
        if number:
            atoms.append(_SPACE_ATOM)
        for char in part:
            lower = char.lower()
            atoms.append(_APOSTROPHE_ATOM if char in "'’"
                         else re.escape(lower if len(lower) == 1 else char))
    return atoms


def _trie_pattern(node: dict) -> str:
    branches = [atom + _trie_pattern(child) for atom, child in sorted(node.items()) if atom]
    if not branches:
        return ""
    optional = _END in node  # a name ends here and others go on: going on is tried first
    if len(branches) == 1 and not optional:
        return branches[0]
    return "(?:" + "|".join(branches) + (")?" if optional else ")")


def _outside_dates(text: str, mask: Callable[[str], str]) -> str:
    """Apply `mask` to the text between numeric dates, leaving the dates untouched."""
    pieces, position = [], 0
    for date in _DATE.finditer(text):
        if _plausible_date(date):
            pieces += [mask(text[position : date.start()]), date.group()]
            position = date.end()
    pieces.append(mask(text[position:]))
    return "".join(pieces)


def _plausible_date(match: re.Match[str]) -> bool:
    if match.group("y1"):
        return 1 <= int(match.group("m1")) <= 12 and 1 <= int(match.group("d1")) <= 31
    first, second = int(match.group("a2")), int(match.group("b2"))
    return 1 <= first <= 31 and 1 <= second <= 31 and min(first, second) <= 12


def _mask_cards(text: str) -> str:
    return _DIGIT_GROUPS.sub(lambda match: _mask_card_groups(match.group()), text)


def _mask_card_groups(candidate: str) -> str:
    return mask_valid_runs(candidate, list(re.finditer(r"\d+", candidate)), _ascii_digits,
                           _card_valid, 19, CARD_TOKEN)


def _card_valid(digits: str) -> bool:
    return len(digits) >= 13 and _luhn_valid_ascii(digits)


def _ascii_digits(text: str) -> str:
    """The decimal digits of `text` as ASCII, so full-width digits count like any others."""
    return "".join(str(unicodedata.decimal(char)) for char in text if char.isdecimal())


def _mask_phones(text: str) -> str:
    return _PHONE.sub(
        lambda match: PHONE_TOKEN if _is_phone(match.group()) else match.group(), text
    )


def _is_phone(candidate: str) -> bool:
    digits = _ascii_digits(candidate)
    opening = candidate.lstrip("( ")
    if opening.startswith("+"):
        return 8 <= len(digits) <= 15
    if digits.startswith("00"):
        return 8 <= len(digits) - 2 <= 15
    if digits.startswith("0"):
        return 9 <= len(digits) <= 12
    return _NORTH_AMERICAN.fullmatch(candidate) is not None
