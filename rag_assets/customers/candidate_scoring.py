"""Fuzzy evidence of one record against all its blocking candidates at once, column by column.

`matching.fuzzy_matches_by_key` is the reference: readable, one pair at a time in Python. The
graph scores a record against tens to hundreds of candidates, so here each field is compared
with every candidate in one rapidfuzz call (C++), and the evidence is summed with numpy. The
operations and their order are those of the reference, so the bits are the same doubles and the
decisions identical (a unit test compares the two on random pairs).

Every array has one element per candidate. A candidate without a field contributes nothing for
it (`present` masks), exactly as the reference skips the field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from rapidfuzz import fuzz, process
from rapidfuzz.distance import JaroWinkler, Levenshtein

from rag_assets.customers.identifiers import canonical_given_name
from rag_assets.customers.matching import (
    ADDRESS_FLOOR,
    COMPARED_FIELDS,
    DEFAULT_RULES,
    FUZZY_RULE,
    NAME_FLOOR,
    ONE_EDIT,
    SWAPPED_DATE,
    FieldWeight,
    MatchRules,
    RuleMatch,
    evidence_weights,
    fuzzy_matches_by_key,
    match_probability,
)

# Below this many candidates the per-call cost of the array calls outweighs the gain.
MIN_CANDIDATES = 8

SURNAME, GIVEN, DOB, NATIONAL_ID, ADDRESS, POSTCODE, CITY = range(len(COMPARED_FIELDS))


def score_candidates(
    key: tuple, other_keys: Sequence[tuple], rules: MatchRules = DEFAULT_RULES
) -> list[RuleMatch | None]:
    """`fuzzy_matches_by_key(key, other_keys, rules)`, computed column-wise."""
    if len(other_keys) < MIN_CANDIDATES:
        return fuzzy_matches_by_key(key, other_keys, rules)
    bits = evidence_bits(key, other_keys, evidence_weights(rules))
    threshold = rules.fuzzy_threshold_bits
    linked = ~np.isnan(bits) & (bits >= threshold)
    return [RuleMatch(FUZZY_RULE, round(match_probability(float(b), rules), 4)) if hit else None
            for b, hit in zip(bits.tolist(), linked.tolist())]


def evidence_bits(key: tuple, other_keys: Sequence[tuple], weights: dict[str, FieldWeight]) -> np.ndarray:
    """Evidence in bits of `key` against each of `other_keys`; NaN where no name is comparable."""
    columns = list(zip(*other_keys))
    total = _names_bits(key, columns, weights)
    for position in (DOB, NATIONAL_ID):  # each counts on its own, in the reference's order
        if key[position]:
            contribution, present = _field_bits(key, columns, position, weights)
            total = total + np.where(present, contribution, 0.0)
    location = [_field_bits(key, columns, p, weights) for p in (ADDRESS, POSTCODE, CITY) if key[p]]
    if location:
        # Address, postcode and city are not independent: only the strongest counts.
        strongest = np.maximum.reduce([np.where(present, c, -np.inf) for c, present in location])
        total = total + np.where(np.isfinite(strongest), strongest, 0.0)
    return total


def _names_bits(key: tuple, columns: list[tuple], weights: dict[str, FieldWeight]) -> np.ndarray:
    surnames, givens = columns[SURNAME], columns[GIVEN]
    aligned, aligned_ok = _aligned_names(key[SURNAME], key[GIVEN], surnames, givens, weights)
    swapped, swapped_ok = _aligned_names(key[SURNAME], key[GIVEN], givens, surnames, weights)
    best = np.where(aligned_ok & swapped_ok, np.maximum(aligned, swapped),
                    np.where(aligned_ok, aligned, swapped))
    return np.where(aligned_ok | swapped_ok, best, np.nan)


def _aligned_names(
    surname: str | None, given: str | None, their_surnames: tuple, their_givens: tuple,
    weights: dict[str, FieldWeight],
) -> tuple[np.ndarray, np.ndarray]:
    """Bits from the surname and the given name (0 + surname + given, as the reference adds
    them) and whether any name was comparable."""
    bits = np.zeros(len(their_surnames))
    compared = np.zeros(len(their_surnames), dtype=bool)
    if surname:
        present = _present(their_surnames)
        agreement = _ramp(_similarities(surname, their_surnames, JaroWinkler.normalized_similarity),
                          NAME_FLOOR)
        bits = bits + np.where(present, _weighted(weights["surname"], agreement), 0.0)
        compared |= present
    if given:
        present = _present(their_givens)
        bits = bits + np.where(present, _weighted(weights["given_name"],
                                                  _given_agreement(given, their_givens)), 0.0)
        compared |= present
    return bits, compared


def _given_agreement(given: str, theirs: tuple) -> np.ndarray:
    formal = canonical_given_name(given)
    same_formal = np.array([t is not None and canonical_given_name(t) == formal for t in theirs])
    similar = _ramp(_similarities(given, theirs, JaroWinkler.normalized_similarity), NAME_FLOOR)
    return np.where(same_formal, 1.0, similar)


def _field_bits(key: tuple, columns: list[tuple], position: int,
                weights: dict[str, FieldWeight]) -> tuple[np.ndarray, np.ndarray]:
    mine, theirs = key[position], columns[position]
    agreement = _AGREEMENT[position](mine, theirs)
    return _weighted(weights[COMPARED_FIELDS[position]], agreement), _present(theirs)


def _date_agreement(mine: str, theirs: tuple) -> np.ndarray:
    year, month, day = mine.split("-")
    swapped = f"{year}-{day}-{month}"
    equal = _equal(mine, theirs)
    return np.where(equal, 1.0, np.where(_equal(swapped, theirs), SWAPPED_DATE, _one_edit(mine, theirs)))


def _code_agreement(mine: str, theirs: tuple) -> np.ndarray:
    return np.where(_equal(mine, theirs), 1.0, _one_edit(mine, theirs))


def _address_agreement(mine: str, theirs: tuple) -> np.ndarray:
    squashed = _similarities(mine.replace(" ", ""), tuple(t and t.replace(" ", "") for t in theirs),
                             fuzz.ratio)
    token_sorted = _similarities(mine, theirs, fuzz.token_sort_ratio)
    return _ramp(np.maximum(token_sorted, squashed) / 100.0, ADDRESS_FLOOR)


def _city_agreement(mine: str, theirs: tuple) -> np.ndarray:
    return _ramp(_similarities(mine, theirs, JaroWinkler.normalized_similarity), NAME_FLOOR)


_AGREEMENT: dict[int, Callable[[str, tuple], np.ndarray]] = {
    DOB: _date_agreement,
    NATIONAL_ID: _code_agreement,
    ADDRESS: _address_agreement,
    POSTCODE: _code_agreement,
    CITY: _city_agreement,
}


def _similarities(mine: str, theirs: tuple, scorer) -> np.ndarray:
    """scorer(mine, t) for every t (a missing t scores against "" and is masked by the caller)."""
    return process.cdist([mine], [t or "" for t in theirs], scorer=scorer, dtype=np.float64,
                         workers=1)[0]


def _one_edit(mine: str, theirs: tuple) -> np.ndarray:
    distances = process.cdist([mine], [t or "" for t in theirs], scorer=Levenshtein.distance,
                              dtype=np.int32, workers=1)[0]
    return np.where(distances == 1, ONE_EDIT, 0.0)


def _equal(mine: str, theirs: tuple) -> np.ndarray:
    return np.array([t == mine for t in theirs], dtype=bool)


def _present(theirs: tuple) -> np.ndarray:
    return np.array([bool(t) for t in theirs], dtype=bool)


def _ramp(similarity: np.ndarray, floor: float) -> np.ndarray:
    return np.maximum(0.0, (similarity - floor) / (1.0 - floor))


def _weighted(weight: FieldWeight, agreement: np.ndarray) -> np.ndarray:
    return weight.disagree + weight.span * agreement
