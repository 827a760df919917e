"""Fuzzy evidence of many pairs of identities at once, column by column.

`matching.fuzzy_matches_by_key` is the reference: readable, one pair at a time in Python. The
graph scores each record against tens to hundreds of candidates, tens of thousands of pairs per
batch, so here each field of all pairs is compared in one rapidfuzz call (C++, element-wise) and
the evidence is summed with numpy, in the reference's order of operations.

The bits agree with the reference to ~1e-14, not always to the last bit: rapidfuzz's bulk
Jaro-Winkler (`process.cpdist`) differs from its scalar function in the last bit for about a
fifth of string pairs (rapidfuzz 3.14). A decision could differ only for evidence within ~1e-14
bits of the threshold; the graph therefore scores every pair here, never with the reference, so
one record's links do not depend on how many candidates it had. The unit tests compare the two
on random pairs.

Pairs are given as two equally long sequences of `comparison_key`s, and every array has one
element per pair. A field missing on either side contributes nothing (`both` masks), exactly as
the reference skips it.
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
    match_probability,
)

SURNAME, GIVEN, DOB, NATIONAL_ID, ADDRESS, POSTCODE, CITY = range(len(COMPARED_FIELDS))


def score_candidates(
    key: tuple, other_keys: Sequence[tuple], rules: MatchRules = DEFAULT_RULES
) -> list[RuleMatch | None]:
    """`fuzzy_matches_by_key(key, other_keys, rules)`, computed column-wise."""
    return score_pairs([key] * len(other_keys), other_keys, rules)


def score_pairs(
    keys: Sequence[tuple], other_keys: Sequence[tuple], rules: MatchRules = DEFAULT_RULES
) -> list[RuleMatch | None]:
    """The fuzzy match of each pair (keys[i], other_keys[i]), as `fuzzy_matches_by_key`."""
    bits = evidence_bits(keys, other_keys, evidence_weights(rules))
    threshold = rules.fuzzy_threshold_bits
    linked = ~np.isnan(bits) & (bits >= threshold)
    return [RuleMatch(FUZZY_RULE, round(match_probability(float(b), rules), 4)) if hit else None
            for b, hit in zip(bits.tolist(), linked.tolist())]


def evidence_bits(keys: Sequence[tuple], other_keys: Sequence[tuple],
                  weights: dict[str, FieldWeight]) -> np.ndarray:
    """Evidence in bits of each pair; NaN where no name is comparable."""
    mine, theirs = _pair_columns(keys, other_keys)
    total = _names_bits(mine, theirs, weights)
    for position in (DOB, NATIONAL_ID):  # each counts on its own, in the reference's order
        contribution, both = _field_bits(mine, theirs, position, weights)
        total = total + np.where(both, contribution, 0.0)
    # Address, postcode and city are not independent: only the strongest counts.
    location = [_field_bits(mine, theirs, p, weights) for p in (ADDRESS, POSTCODE, CITY)]
    strongest = np.maximum.reduce([np.where(both, c, -np.inf) for c, both in location])
    return total + np.where(np.isfinite(strongest), strongest, 0.0)


def _pair_columns(keys: Sequence[tuple], other_keys: Sequence[tuple]
                  ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per field, the values of the left and of the right side of every pair ("" when missing),
    followed by the derived columns (`DERIVED`). Built once per distinct key (a batch has far
    fewer keys than pairs), then spread over the pairs by array indexing."""
    index: dict[tuple, int] = {}
    left = np.fromiter((index.setdefault(k, len(index)) for k in keys), dtype=np.intp,
                       count=len(keys))
    right = np.fromiter((index.setdefault(k, len(index)) for k in other_keys), dtype=np.intp,
                        count=len(other_keys))
    fields = [[v or "" for v in column] for column in zip(*index)]
    derived = [[derive(v) if v else "" for v in fields[source]] for source, derive in DERIVED]
    columns = [np.array(values, dtype=object) for values in fields + derived]
    return [c[left] for c in columns], [c[right] for c in columns]


def _swap_day_and_month(date: str) -> str:
    parts = date.split("-")
    return f"{parts[0]}-{parts[2]}-{parts[1]}" if len(parts) == 3 else ""


# Columns computed from a field once per distinct value, after the compared fields.
DERIVED = ((SURNAME, canonical_given_name), (GIVEN, canonical_given_name),
           (DOB, _swap_day_and_month), (ADDRESS, lambda address: address.replace(" ", "")))
FORMAL_SURNAME, FORMAL_GIVEN, SWAPPED_DOB, SQUASHED_ADDRESS = range(
    len(COMPARED_FIELDS), len(COMPARED_FIELDS) + len(DERIVED))
# The formal form (`canonical_given_name`) of the name at a position.
FORMAL = {SURNAME: FORMAL_SURNAME, GIVEN: FORMAL_GIVEN}


def _names_bits(mine: list[np.ndarray], theirs: list[np.ndarray],
                weights: dict[str, FieldWeight]) -> np.ndarray:
    aligned, aligned_ok = _aligned_names(mine, theirs, SURNAME, GIVEN, weights)
    swapped, swapped_ok = _aligned_names(mine, theirs, GIVEN, SURNAME, weights)
    best = np.where(aligned_ok & swapped_ok, np.maximum(aligned, swapped),
                    np.where(aligned_ok, aligned, swapped))
    return np.where(aligned_ok | swapped_ok, best, np.nan)


def _aligned_names(mine: list[np.ndarray], theirs: list[np.ndarray], their_surname: int,
                   their_given: int, weights: dict[str, FieldWeight]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Bits from my surname and given name against their names at the given positions (0 +
    surname + given, as the reference adds them) and whether any name was comparable."""
    surname_ok = _both(mine[SURNAME], theirs[their_surname])
    given_ok = _both(mine[GIVEN], theirs[their_given])
    surname_agreement = _name_agreement(mine[SURNAME], theirs[their_surname])
    given_agreement = np.where(mine[FORMAL_GIVEN] == theirs[FORMAL[their_given]], 1.0,
                               _name_agreement(mine[GIVEN], theirs[their_given]))
    bits = np.zeros(len(surname_ok)) + np.where(
        surname_ok, _weighted(weights["surname"], surname_agreement), 0.0)
    bits = bits + np.where(given_ok, _weighted(weights["given_name"], given_agreement), 0.0)
    return bits, surname_ok | given_ok


def _name_agreement(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    return _ramp(_similarities(mine, theirs, JaroWinkler.normalized_similarity), NAME_FLOOR)


def _field_bits(mine: list[np.ndarray], theirs: list[np.ndarray], position: int,
                weights: dict[str, FieldWeight]) -> tuple[np.ndarray, np.ndarray]:
    both = _both(mine[position], theirs[position])
    agreement = _AGREEMENT[position](mine, theirs)
    return _weighted(weights[COMPARED_FIELDS[position]], agreement), both


def _date_agreement(mine: list[np.ndarray], theirs: list[np.ndarray]) -> np.ndarray:
    return np.where(mine[DOB] == theirs[DOB], 1.0,
                    np.where(mine[SWAPPED_DOB] == theirs[DOB], SWAPPED_DATE,
                             _one_edit(mine[DOB], theirs[DOB])))


def _code_agreement(position: int) -> Callable[[list[np.ndarray], list[np.ndarray]], np.ndarray]:
    def agreement(mine: list[np.ndarray], theirs: list[np.ndarray]) -> np.ndarray:
        return np.where(mine[position] == theirs[position], 1.0,
                        _one_edit(mine[position], theirs[position]))
    return agreement


def _address_agreement(mine: list[np.ndarray], theirs: list[np.ndarray]) -> np.ndarray:
    squashed = _similarities(mine[SQUASHED_ADDRESS], theirs[SQUASHED_ADDRESS], fuzz.ratio)
    token_sorted = _similarities(mine[ADDRESS], theirs[ADDRESS], fuzz.token_sort_ratio)
    return _ramp(np.maximum(token_sorted, squashed) / 100.0, ADDRESS_FLOOR)


def _city_agreement(mine: list[np.ndarray], theirs: list[np.ndarray]) -> np.ndarray:
    return _name_agreement(mine[CITY], theirs[CITY])


_AGREEMENT: dict[int, Callable[[list[np.ndarray], list[np.ndarray]], np.ndarray]] = {
    DOB: _date_agreement,
    NATIONAL_ID: _code_agreement(NATIONAL_ID),
    ADDRESS: _address_agreement,
    POSTCODE: _code_agreement(POSTCODE),
    CITY: _city_agreement,
}


def _similarities(mine: np.ndarray, theirs: np.ndarray, scorer) -> np.ndarray:
    """scorer(mine[i], theirs[i]) for every i (a missing value, "", is masked by the caller)."""
    return process.cpdist(mine, theirs, scorer=scorer, dtype=np.float64, workers=1)


def _one_edit(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    distances = process.cpdist(mine, theirs, scorer=Levenshtein.distance, dtype=np.int32,
                               workers=1)
    return np.where(distances == 1, ONE_EDIT, 0.0)


def _both(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """Both sides have the field (the reference tests each value's truth; missing is "")."""
    return mine.astype(bool) & theirs.astype(bool)


def _ramp(similarity: np.ndarray, floor: float) -> np.ndarray:
    return np.maximum(0.0, (similarity - floor) / (1.0 - floor))


def _weighted(weight: FieldWeight, agreement: np.ndarray) -> np.ndarray:
    return weight.disagree + weight.span * agreement
