"""Match rules: deterministic identifiers, fuzzy person evidence, blocking keys."""

from __future__ import annotations

import pytest

from rag_assets.customers.identifiers import PersonIdentity
from tests.unit.customers.conftest import random_people
from rag_assets.customers.matching import (
    FIELD_EVIDENCE,
    MatchRules,
    blocking_keys,
    can_fuzzy_link,
    deterministic_matches,
    fuzzy_match,
    match_evidence,
    match_probability,
    soundex,
)


def person(
    given="sally",
    surname="thomas",
    dob="1985-03-12",
    address="12 baker st",
    postcode="NW1 6XE",
    city="london",
    identifiers=(),
):
    return PersonIdentity(
        identifiers=frozenset(identifiers),
        given_name=given,
        surname=surname,
        date_of_birth=dob,
        address_line=address,
        city=city,
        postcode=postcode,
    )


@pytest.mark.parametrize(
    "word, code",
    [
        ("robert", "R163"),
        ("rupert", "R163"),
        ("ashcraft", "A261"),
        ("tymczak", "T522"),
        ("pfister", "P236"),
        ("lee", "L000"),
        ("", "0000"),
    ],
)
def test_soundex(word, code):
    assert soundex(word) == code


def test_shared_identifiers_give_one_rule_each():
    a = person(identifiers={("email", "s@x.com"), ("phone", "+442079460018")})
    b = person(
        identifiers={("email", "s@x.com"), ("phone", "+442079460018"), ("national_id", "X1")}
    )
    assert [(m.rule, m.score) for m in deterministic_matches(a, b)] == [
        ("same_email", 1.0),
        ("same_phone", 1.0),
    ]
    assert deterministic_matches(a, person()) == []


@pytest.mark.parametrize(
    "variant",
    [
        person(),
        person(given="sallly"),  # typo
        person(surname="tomas", postcode="NW1 6XF"),  # two typos
        person(given="thomas", surname="sally"),  # swapped names
        person(dob="1985-12-03"),  # day and month swapped
        person(address="12 bakerst", city=None),  # squashed street, no city
        person(given=None, address=None),  # missing fields
    ],
)
def test_same_person_with_typical_errors_matches(variant):
    match = fuzzy_match(person(), variant)
    assert match is not None and match.rule == "fuzzy_person" and 0.5 <= match.score <= 1.0


@pytest.mark.parametrize(
    "other",
    [
        person(given="james", dob="2012-07-01"),  # family member at the same address
        person(
            given="sally",
            surname="thomas",
            dob="1990-01-01",
            address="3 high st",
            postcode="LS1 1AA",
            city="leeds",
        ),  # namesake elsewhere
        person(given="sally", surname="thomas", dob=None, address=None, postcode=None, city=None),
        person(
            given="peter",
            surname="walker",
            dob="1985-03-12",
            address=None,
            postcode=None,
            city=None,
        ),
    ],
)
def test_different_people_do_not_match(other):
    assert fuzzy_match(person(), other) is None


def test_names_alone_cannot_reach_the_threshold():
    names_only = 2 * FIELD_EVIDENCE["surname"].agree_bits
    assert names_only < MatchRules().fuzzy_threshold_bits


def test_no_comparable_name_means_no_score():
    assert match_evidence(person(given=None, surname=None), person()) is None


def test_evidence_grows_with_agreement():
    full = match_evidence(person(), person())
    typo = match_evidence(person(), person(surname="thomsa"))
    different = match_evidence(person(), person(surname="walker"))
    assert full > typo > different


def test_threshold_is_configurable():
    pair = (person(), person(dob="1985-12-03", address=None, postcode=None, city=None))
    bits = match_evidence(*pair)
    assert fuzzy_match(*pair, MatchRules(fuzzy_threshold_bits=bits + 1)) is None
    assert fuzzy_match(*pair, MatchRules(fuzzy_threshold_bits=bits - 1)) is not None


@pytest.mark.parametrize(
    "variant",
    [
        person(given="sallly"),
        person(surname="tomas"),
        person(given="thomas", surname="sally"),
        person(dob="1985-03-13"),
        person(postcode="NW1 6XF", dob="1986-01-01"),
    ],
)
def test_records_with_one_error_still_share_a_blocking_key(variant):
    assert blocking_keys(person()) & blocking_keys(variant)


def test_unrelated_people_share_no_blocking_key():
    other = person(
        given="peter",
        surname="walker",
        dob="1970-01-01",
        address="1 high st",
        postcode="LS1 1AA",
        city="leeds",
    )
    assert not blocking_keys(person()) & blocking_keys(other)


@pytest.mark.parametrize("threshold", [4.0, 16.0, 30.0])
def test_fuzzy_match_stops_early_only_when_the_threshold_is_out_of_reach(threshold):
    """`fuzzy_match` skips the date and address comparisons when the names leave the threshold
    out of reach; its answer must equal the full evidence compared with the threshold."""
    rules = MatchRules(fuzzy_threshold_bits=threshold)
    people = random_people(seed=int(threshold), count=60)
    linked = 0
    for a in people:
        for b in people:
            bits = match_evidence(a, b, rules)
            expected = None if bits is None or bits < threshold else round(
                match_probability(bits, rules), 4)
            match = fuzzy_match(a, b, rules)
            assert (match and match.score) == expected
            linked += match is not None
    assert linked  # the sample does link some pairs


def test_memoised_fields_follow_the_value_not_the_object():
    a, b = person(), person()
    assert a is not b
    assert fuzzy_match(a, person(surname="walker")) == fuzzy_match(b, person(surname="walker"))
    assert match_evidence(a, person(dob="1990-01-01")) < match_evidence(a, person())


def test_a_record_with_names_only_cannot_fuzzy_link_and_has_no_blocking_key():
    names_only = person(dob=None, address=None, postcode=None, city=None)
    assert not can_fuzzy_link(names_only)
    assert blocking_keys(names_only) == frozenset()
    assert can_fuzzy_link(person(address=None, postcode=None, city=None))  # names + birth date
    assert can_fuzzy_link(person(dob=None))  # names + address


@pytest.mark.parametrize("threshold", [16.0, 24.0, 30.0])
def test_a_record_that_cannot_fuzzy_link_matches_no_one(threshold):
    """`can_fuzzy_link` is a bound, not a heuristic: no partner takes such a record to the
    threshold."""
    rules = MatchRules(fuzzy_threshold_bits=threshold)
    people = random_people(seed=int(threshold) + 1, count=80)
    unlinkable = [a for a in people if not can_fuzzy_link(a, rules)]
    assert unlinkable  # the sample has some
    for a in unlinkable:
        for b in people:
            assert fuzzy_match(a, b, rules) is None and fuzzy_match(b, a, rules) is None
