"""Match rules between two person identities: deterministic identifiers and fuzzy evidence.

Deterministic rules: two records that share a normalised email, E.164 phone, loyalty number,
national id or passport are linked with score 1.0 (one edge per rule). An identifier value shared
by more than `max_identifier_group` records (a shared family inbox, a placeholder such as
`noreply@...`) stops being identifying and links nothing.

Fuzzy rule (`fuzzy_person`), Fellegi-Sunter style: each field both records have adds evidence
in bits, log2(m/u) when it agrees and log2((1-m)/(1-u)) when it does not, interpolated by the
field's agreement level in [0, 1]; a missing field adds nothing. m and u (`FIELD_EVIDENCE`) are
generic priors for person data, not fitted to a data set:

| field | m | u | agreement level |
|---|---|---|---|
| surname | 0.9 | 1/100 | Jaro-Winkler, ramped from 0.75 (below: 0) to 1 |
| given name | 0.9 | 1/100 | as surname; 1 when both are the same formal name (bill = william) |
| date of birth | 0.9 | 1/20,000 | 1 equal; 0.7 day and month swapped; 0.6 one character off |
| national id | 0.9 | 1/1,000,000 | 1 equal; 0.6 one edit apart |
| address line | 0.85 | 1/2,000 | best of token-sort and space-free ratio, ramped from 0.7 |
| postcode | 0.9 | 1/200 | 1 equal; 0.6 one edit apart |
| city | 0.85 | 1/100 | Jaro-Winkler, ramped from 0.75 |

Names are compared as written and with given name and surname swapped (the better counts), and
at least one name must be comparable. Address, postcode and city are not independent, so only the
strongest of the three counts. A pair links when the evidence reaches `fuzzy_threshold_bits`
(16 bits by default: two agreeing names give 13 bits, so names alone never link, while names plus
an agreeing birth date or address do). The edge score is the match probability
1 / (1 + 2^(threshold - bits)), 0.5 at the threshold.

Blocking keeps this fast: a record is compared only with records sharing one of its blocking
keys (see `blocking_keys`: Soundex of either name with the birth date, both names' Soundex
codes, postcode or house number + street Soundex with a name initial, postcode or street or city
with the birth date). Several keys per record tolerate errors in one or two fields. A block of
more than `max_block_size` records is too unspecific to help and is ignored. (One name's Soundex
with the birth *year* was a key too. Such blocks grow with the population, like every key on a
single name, and they made 71 % of the compared pairs at 1M CDC events. On the four FEBRL data
sets they found no match that the other keys missed, so the key was dropped.)

A record that cannot reach the threshold with anyone, even agreeing fully on every field it has
(`can_fuzzy_link`: a booking or a support ticket carries names and contact details only, and
names alone give 13 bits), is filed under no blocking key: it links by identifiers only, and
blocks hold only records that can link. This changes no pair's outcome; it only spares the
comparisons that cannot succeed (and can keep a block under `max_block_size`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Callable, NamedTuple

from rapidfuzz import fuzz
from rapidfuzz.distance import JaroWinkler, Levenshtein

from rag_assets.customers.identifiers import (
    EMAIL,
    LOYALTY_NUMBER,
    MAX_IDENTIFIER_CHARS,
    NATIONAL_ID,
    PASSPORT,
    PHONE,
    PersonIdentity,
    canonical_given_name,
)

DETERMINISTIC_RULES = {
    EMAIL: "same_email",
    PHONE: "same_phone",
    LOYALTY_NUMBER: "same_loyalty_number",
    NATIONAL_ID: "same_national_id",
    PASSPORT: "same_passport",
}
FUZZY_RULE = "fuzzy_person"


@dataclass(frozen=True)
class FieldEvidence:
    """Fellegi-Sunter m and u probabilities of one field (agreement among matches/non-matches)."""

    m: float
    u: float

    # Computed once per instance (frozen, no __slots__: the cache lives in the instance dict).
    @cached_property
    def agree_bits(self) -> float:
        return math.log2(self.m / self.u)

    @cached_property
    def disagree_bits(self) -> float:
        return math.log2((1 - self.m) / (1 - self.u))

    @cached_property
    def max_bits(self) -> float:
        """The most evidence the field can give (at full agreement when m > u)."""
        return max(self.agree_bits, self.disagree_bits)


# Generic priors for person data, not fitted to any data set: m says how often a field agrees
# for the same person (typos, moves), u how often it agrees by chance for two different people.
FIELD_EVIDENCE: dict[str, FieldEvidence] = {
    "surname": FieldEvidence(m=0.9, u=0.01),
    "given_name": FieldEvidence(m=0.9, u=0.01),
    "date_of_birth": FieldEvidence(m=0.9, u=1 / 20_000),
    "national_id": FieldEvidence(m=0.9, u=1e-6),
    "address_line": FieldEvidence(m=0.85, u=1 / 2_000),
    "postcode": FieldEvidence(m=0.9, u=1 / 200),
    "city": FieldEvidence(m=0.85, u=1 / 100),
}


@dataclass(frozen=True)
class MatchRules:
    # Evidence (bits) at which the match probability reaches 0.5; also the link threshold.
    fuzzy_threshold_bits: float = 16.0
    max_block_size: int = 500
    max_identifier_group: int = 50
    evidence: dict[str, FieldEvidence] = field(default_factory=lambda: dict(FIELD_EVIDENCE))


DEFAULT_RULES = MatchRules()


@dataclass(frozen=True)
class RuleMatch:
    rule: str
    score: float


def deterministic_matches(a: PersonIdentity, b: PersonIdentity) -> list[RuleMatch]:
    shared_kinds = {kind for kind, value in a.identifiers & b.identifiers}
    return [
        RuleMatch(DETERMINISTIC_RULES[k], 1.0)
        for k in sorted(shared_kinds)
        if k in DETERMINISTIC_RULES
    ]


def fuzzy_match(
    a: PersonIdentity, b: PersonIdentity, rules: MatchRules = DEFAULT_RULES
) -> RuleMatch | None:
    return fuzzy_matches(a, [b], rules)[0]


def fuzzy_matches(
    a: PersonIdentity, others: Iterable[PersonIdentity], rules: MatchRules = DEFAULT_RULES
) -> list[RuleMatch | None]:
    """`fuzzy_match(a, b, rules)` for every b of `others`, in order. What depends only on `a` and
    the rules (field weights, which fields `a` has, the early-exit bound) is prepared once: the
    graph scores a record against every candidate of its blocks at once."""
    return fuzzy_matches_by_key(comparison_key(a), [comparison_key(b) for b in others], rules)


def fuzzy_matches_by_key(
    key: tuple, other_keys: Iterable[tuple], rules: MatchRules = DEFAULT_RULES
) -> list[RuleMatch | None]:
    """`fuzzy_matches` of identities given by their `comparison_key`s."""
    threshold = rules.fuzzy_threshold_bits
    evidence = _Evidence(key, evidence_weights(rules), floor=threshold)
    matches: list[RuleMatch | None] = []
    for other in other_keys:
        bits = evidence.against(other)
        if bits is None or bits < threshold:
            matches.append(None)
        else:
            matches.append(RuleMatch(FUZZY_RULE, round(match_probability(bits, rules), 4)))
    return matches


def match_probability(bits: float, rules: MatchRules = DEFAULT_RULES) -> float:
    return 1.0 / (1.0 + 2.0 ** (rules.fuzzy_threshold_bits - bits))


def match_evidence(
    a: PersonIdentity, b: PersonIdentity, rules: MatchRules = DEFAULT_RULES
) -> float | None:
    """Total evidence in bits that a and b are one person; None when no name can be compared."""
    return _Evidence(comparison_key(a), evidence_weights(rules)).against(comparison_key(b))


# Rounding slack of the bound below (bits): far more than float error, far less than any
# meaningful difference in evidence.
_BOUND_MARGIN = 1e-6


class FieldWeight(NamedTuple):
    """A field's `FieldEvidence` ready for scoring: the evidence for an agreement level in
    [0, 1] is disagree + span * agreement (partial agreement interpolates)."""

    disagree: float
    span: float  # agree_bits - disagree_bits
    most: float  # max_bits


def evidence_weights(rules: MatchRules) -> dict[str, FieldWeight]:
    return {name: FieldWeight(e.disagree_bits, e.agree_bits - e.disagree_bits, e.max_bits)
            for name, e in rules.evidence.items()}


# The fields of a `comparison_key`, in order: the names first, then those each counting alone
# and the location fields (of which only the strongest counts), with their positions.
COMPARED_FIELDS = ("surname", "given_name", "date_of_birth", "national_id", "address_line", "postcode",
             "city")
_INDEPENDENT = tuple((name, COMPARED_FIELDS.index(name)) for name in ("date_of_birth", "national_id"))
_LOCATION = tuple((name, COMPARED_FIELDS.index(name)) for name in ("address_line", "postcode", "city"))


class _Evidence:
    """Evidence of one identity (its `comparison_key`) against others. With a `floor`, None as
    soon as the names show the total cannot reach it (the other fields together can add at most
    their full-agreement evidence), which spares the date and address comparisons of pairs
    whose names disagree."""

    def __init__(self, key: tuple, weights: dict[str, FieldWeight], floor: float | None = None):
        self.surname, self.given = key[0], key[1]
        self.surname_weight, self.given_weight = weights["surname"], weights["given_name"]
        # The fields this identity has: (weight, agreement, value, position in the other key).
        self.independent = [(weights[n], _AGREEMENT[n], key[i], i) for n, i in _INDEPENDENT if key[i]]
        self.location = [(weights[n], _AGREEMENT[n], key[i], i) for n, i in _LOCATION if key[i]]
        self.reach = None if floor is None else floor - _BOUND_MARGIN

    def against(self, other: tuple) -> float | None:
        names = self._names_bits(other[0], other[1])
        if names is None:
            return None
        independent = [(w, agree, v, other[i]) for w, agree, v, i in self.independent if other[i]]
        location = [(w, agree, v, other[i]) for w, agree, v, i in self.location if other[i]]
        if self.reach is not None:
            ceiling = names
            for weight, *_ in independent:
                ceiling += weight.most
            if location:
                ceiling += max(weight.most for weight, *_ in location)
            if ceiling < self.reach:
                return None
        total = names
        for weight, agreement, mine, theirs in independent:
            total += weight.disagree + weight.span * agreement(mine, theirs)
        # Address, postcode and city are not independent (one follows from another): count the
        # strongest of them once.
        if location:
            total += max(w.disagree + w.span * agreement(mine, theirs)
                         for w, agreement, mine, theirs in location)
        return total

    def _names_bits(self, other_surname: str | None, other_given: str | None) -> float | None:
        """Evidence from the names, as written or with given name and surname swapped."""
        aligned = self._aligned_names_bits(other_surname, other_given)
        swapped = self._aligned_names_bits(other_given, other_surname)
        if aligned is None:
            return swapped
        return aligned if swapped is None else max(aligned, swapped)

    def _aligned_names_bits(self, other_surname: str | None, other_given: str | None) -> float | None:
        bits, compared = 0.0, False
        if self.surname and other_surname:
            w = self.surname_weight
            bits += w.disagree + w.span * _jaro_winkler_agreement(self.surname, other_surname)
            compared = True
        if self.given and other_given:
            w = self.given_weight
            bits += w.disagree + w.span * _given_name_agreement(self.given, other_given)
            compared = True
        return bits if compared else None


@lru_cache(maxsize=1 << 16)
def comparison_key(identity: PersonIdentity) -> tuple[str | None, ...]:
    """Everything `fuzzy_match` and `match_evidence` read of an identity, as a hashable value:
    two identities with equal keys score the same against anyone (identifiers such as e-mail
    take no part in fuzzy evidence)."""
    fields = _fields(identity)
    return tuple(fields[name] for name in COMPARED_FIELDS)


@lru_cache(maxsize=1 << 16)
def _fields(identity: PersonIdentity) -> dict[str, str | None]:
    """The compared fields of an identity. Memoised by value (identities are immutable): a record
    is compared with every candidate of its blocks. Callers must not mutate the result."""
    national_ids = identity.values_of(NATIONAL_ID)
    return {
        "surname": identity.surname,
        "given_name": identity.given_name,
        "date_of_birth": identity.date_of_birth,
        "address_line": identity.address_line,
        "postcode": identity.postcode,
        "city": identity.city,
        "national_id": national_ids[0] if national_ids else None,
    }


# Agreement levels (see the module table): similarity floors of the ramps, and the partial
# agreement of a swapped day and month or of a one-character edit.
NAME_FLOOR = 0.75
ADDRESS_FLOOR = 0.7
SWAPPED_DATE = 0.7
ONE_EDIT = 0.6


def _ramp(similarity: float, floor: float) -> float:
    """Similarity below `floor` is no agreement; from there it rises linearly to 1."""
    return max(0.0, (similarity - floor) / (1.0 - floor))


def _jaro_winkler_agreement(a: str, b: str) -> float:
    return _ramp(JaroWinkler.normalized_similarity(a, b), NAME_FLOOR)


def _given_name_agreement(a: str, b: str) -> float:
    if canonical_given_name(a) == canonical_given_name(b):
        return 1.0
    return _jaro_winkler_agreement(a, b)


def _date_agreement(a: str, b: str) -> float:
    if a == b:
        return 1.0
    ya, ma, da = a.split("-")
    yb, mb, db = b.split("-")
    if ya == yb and ma == db and da == mb:
        return SWAPPED_DATE
    # One character off (a substitution) is Levenshtein distance 1 too: one C call covers both.
    if Levenshtein.distance(a, b) == 1:
        return ONE_EDIT
    return 0.0


def _address_agreement(a: str, b: str) -> float:
    squashed = fuzz.ratio(a.replace(" ", ""), b.replace(" ", ""))
    return _ramp(max(fuzz.token_sort_ratio(a, b), squashed) / 100.0, ADDRESS_FLOOR)


def _code_agreement(a: str, b: str) -> float:
    if a == b:
        return 1.0
    return ONE_EDIT if Levenshtein.distance(a, b) == 1 else 0.0


_AGREEMENT: dict[str, Callable[[str, str], float]] = {
    "date_of_birth": _date_agreement,
    "national_id": _code_agreement,
    "address_line": _address_agreement,
    "postcode": _code_agreement,
    "city": _jaro_winkler_agreement,
}


def fuzzy_reach(key: tuple, rules: MatchRules = DEFAULT_RULES) -> float | None:
    """The most evidence (bits) an identity, given by its `comparison_key`, can reach against
    anyone: full agreement on every field it has (each name counts with its own weight whether
    compared as written or swapped). None without a name, which nothing can be compared on."""
    weights = evidence_weights(rules)
    surname, given = key[0], key[1]
    if not (surname or given):
        return None
    reach = (weights["surname"].most if surname else 0.0) + (weights["given_name"].most if given else 0.0)
    reach += sum(weights[name].most for name, i in _INDEPENDENT if key[i])
    return reach + max((weights[name].most for name, i in _LOCATION if key[i]), default=0.0)


def can_fuzzy_link(identity: PersonIdentity, rules: MatchRules = DEFAULT_RULES) -> bool:
    """Whether some partner could take the identity to the fuzzy threshold."""
    reach = fuzzy_reach(comparison_key(identity), rules)
    return reach is not None and reach >= rules.fuzzy_threshold_bits - _BOUND_MARGIN


# --- blocking ------------------------------------------------------------------------------


def blocking_keys(identity: PersonIdentity) -> frozenset[str]:
    """Keys under which a record is filed; fuzzy candidates share at least one of them.

    Name keys are built for given name and surname alike, so swapped names still meet. A record
    that cannot fuzzy-link under the default rules (`can_fuzzy_link`) gets none.
    """
    if not can_fuzzy_link(identity):
        return frozenset()
    names = [n for n in (_squashed(identity.given_name), _squashed(identity.surname)) if n]
    dob = identity.date_of_birth
    postcode = identity.postcode
    street = _street_key(identity.address_line)
    keys = set()
    if len(names) == 2:
        keys.add("nn:" + ":".join(sorted(soundex(n) for n in names)))
    for name in names:
        initial = name[0]
        for code in {soundex(name), soundex(canonical_given_name(name) or name)}:
            if dob:
                keys.add(f"nd:{code}:{dob}")
        if postcode:
            keys.add(f"pn:{postcode}:{initial}")
        if street:
            keys.add(f"sn:{street}:{initial}")
    if dob and postcode:
        keys.add(f"pd:{postcode}:{dob}")
    if dob and street:
        keys.add(f"sy:{street}:{dob[:4]}")
    if dob and identity.city:
        keys.add(f"cd:{soundex(identity.city)}:{dob}")
    return frozenset(key for key in keys if len(key) <= MAX_IDENTIFIER_CHARS)


def _squashed(name: str | None) -> str | None:
    return name.replace(" ", "") if name else None


def _street_key(address: str | None) -> str | None:
    """House number and Soundex of the first street word: `12 baker st` -> `12:B260`."""
    if not address:
        return None
    words = address.split()
    number = next((w for w in words if w.isdigit()), None)
    word = next((w for w in words if w.isalpha() and len(w) > 2), None)
    return f"{number}:{soundex(word)}" if number and word else None


_SOUNDEX_CODES = {
    c: d
    for d, letters in {
        "1": "bfpv",
        "2": "cgjkqsxz",
        "3": "dt",
        "4": "l",
        "5": "mn",
        "6": "r",
    }.items()
    for c in letters
}


@lru_cache(maxsize=1 << 16)
def soundex(word: str) -> str:
    """American Soundex: `robert` and `rupert` -> `R163`. Memoised: a pure function of a word,
    called for every name, street and city of every record."""
    letters = [c for c in word.lower() if c.isalpha()]
    if not letters:
        return "0000"
    code, previous = letters[0].upper(), _SOUNDEX_CODES.get(letters[0], "")
    for c in letters[1:]:
        digit = _SOUNDEX_CODES.get(c, "")
        if digit and digit != previous:
            code += digit
        if c not in "hw":  # h and w do not separate equal codes
            previous = digit
    return (code + "000")[:4]
