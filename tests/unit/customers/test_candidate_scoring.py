"""Column-wise candidate scoring gives what the pair-at-a-time reference gives: the same
decisions and scores, and the evidence to within float rounding (rapidfuzz's bulk Jaro-Winkler
may differ from the scalar one in the last bit)."""

from __future__ import annotations

import random

import pytest

from rag_assets.customers.candidate_scoring import (
    evidence_bits,
    score_candidates,
    score_pairs,
)
from rag_assets.customers.identifiers import PersonIdentity
from rag_assets.customers.matching import (
    MatchRules,
    comparison_key,
    evidence_weights,
    fuzzy_matches_by_key,
    match_evidence,
)
from tests.unit.customers.conftest import random_people


def _people(seed: int, count: int) -> list[PersonIdentity]:
    # An empty name counts as missing, as in the reference.
    return random_people(seed, count, national_ids=True) + [
        PersonIdentity(identifiers=frozenset(), given_name="", surname="thomas",
                       date_of_birth="1985-03-12")]


@pytest.mark.parametrize("seed", range(4))
def test_evidence_bits_are_the_reference_doubles(seed):
    people = _people(seed, 80)
    keys = [comparison_key(p) for p in people]
    weights = evidence_weights(MatchRules())
    for a, key in zip(people, keys):
        expected = [match_evidence(a, b) for b in people]
        got = evidence_bits([key] * len(keys), keys, weights).tolist()
        assert [g != g for g in got] == [e is None for e in expected]  # NaN: no comparable name
        assert [g for g in got if g == g] == pytest.approx([e for e in expected if e is not None],
                                                           rel=0, abs=1e-12)


@pytest.mark.parametrize("threshold", [4.0, 16.0, 30.0])
def test_matches_and_scores_equal_the_reference(threshold):
    rules = MatchRules(fuzzy_threshold_bits=threshold)
    keys = [comparison_key(p) for p in _people(int(threshold), 80)]
    linked = 0
    for key in keys:
        expected = fuzzy_matches_by_key(key, keys, rules)
        assert score_candidates(key, keys, rules) == expected
        linked += sum(m is not None for m in expected)
    assert linked  # the sample does link some pairs


def test_pairs_of_different_records_score_as_each_alone():
    keys = [comparison_key(p) for p in _people(5, 60)]
    mine, theirs = keys[:30], keys[30:60]
    assert score_pairs(mine, theirs) == [fuzzy_matches_by_key(a, [b])[0]
                                         for a, b in zip(mine, theirs)]


def test_bulk_jaro_winkler_differs_only_in_the_last_bits():
    """Why the evidence is compared with a tolerance: documents the rapidfuzz behaviour."""
    from rapidfuzz import process
    from rapidfuzz.distance import JaroWinkler

    rng = random.Random(1)
    words = ["".join(rng.choice("abcdeilmnorst") for _ in range(rng.randint(1, 20)))
             for _ in range(4000)]
    left, right = words[:2000], words[2000:]
    bulk = process.cpdist(left, right, scorer=JaroWinkler.normalized_similarity, dtype="float64")
    scalar = [JaroWinkler.normalized_similarity(a, b) for a, b in zip(left, right)]
    assert bulk.tolist() == pytest.approx(scalar, rel=0, abs=1e-15)
