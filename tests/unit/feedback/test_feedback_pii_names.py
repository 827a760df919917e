"""Names are masked as one alternation of every name would mask them, longest first (the spec),
although the pattern is built as a trie so that tens of thousands of names stay fast."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from rag_assets.customers.known_identifiers import KnownIdentifiers
from rag_assets.feedback.pii import NAME_TOKEN, PiiMasker

# Letters that fold case simply, spaces, both apostrophes, and characters a pattern must escape.
PART = st.text(alphabet="abAéÉ'’-.+", min_size=1, max_size=4)
NAME = st.lists(PART, min_size=1, max_size=3).map(" ".join)
TEXT = st.text(alphabet="abAéÉ'’-.+ \n,x", max_size=40)


def masked_by_one_alternation(names: list[str], text: str) -> str:
    """The specification: every name (white space runs alike, either apostrophe) on word
    boundaries, case-insensitive, the longest name tried first."""
    cleaned = sorted({" ".join(n.split()) for n in names if len(n.strip()) >= 2},
                     key=lambda n: (-len(n), n))
    if not cleaned:
        return text
    alternatives = "|".join(
        re.sub("['’]", "['’]", r"\s+".join(re.escape(p) for p in name.split())) for name in cleaned)
    return re.sub(rf"(?<!\w)(?:{alternatives})(?!\w)", NAME_TOKEN, text, flags=re.IGNORECASE)


@settings(max_examples=400, deadline=None)
@given(st.lists(NAME, max_size=8), TEXT)
def test_names_are_masked_as_by_one_alternation_of_all_names(names, text):
    assert PiiMasker(names).mask(text) == masked_by_one_alternation(names, text)


@settings(max_examples=200, deadline=None)
@given(st.lists(NAME, min_size=1, max_size=6), TEXT)
def test_a_text_made_of_the_names_is_masked_as_the_specification_says(names, between):
    text = between.join(names)
    assert PiiMasker(names).mask(text) == masked_by_one_alternation(names, text)


def test_the_longest_name_wins_where_several_start():
    masker = PiiMasker(["Mary", "Mary Ann", "Mary Anne-Lou"])
    assert masker.mask("mary  ann and MARY ANNE-LOU and Mary Annette") == (
        f"{NAME_TOKEN} and {NAME_TOKEN} and {NAME_TOKEN} Annette")


def test_fifty_thousand_names_are_one_pattern_that_masks_each_of_them():
    names = [f"Name{number:05d}x" for number in range(50_000)]
    masker = PiiMasker(names)
    assert masker.mask("name49999X met NAME00000x, not Name00000xy") == (
        f"{NAME_TOKEN} met {NAME_TOKEN}, not Name00000xy")


@settings(max_examples=400, deadline=None)
@given(st.lists(NAME, max_size=6), st.lists(NAME, min_size=1, max_size=4), TEXT)
def test_a_customers_own_names_are_masked_as_if_in_the_same_alternation(names, own, text):
    """`with_known` keeps the names it lacks in a pattern of their own; together the two must
    mask what one alternation of all the names masks."""
    masker = PiiMasker(names).with_known(KnownIdentifiers(names=frozenset(own)))
    assert masker.mask(text) == masked_by_one_alternation([*names, *own], text)


def test_names_of_any_length_are_masked_as_the_specification_says():
    """A source may hold a "name" of thousands of characters, or names nested in each other
    far deeper than any person's: the masker must still build and mask as specified."""
    nested = ["b" * k for k in range(2, 1500)]
    long_name = "Anna" + "x" * 5000
    masker = PiiMasker([*nested, long_name, "Anna"])
    text = f"hi {long_name} and {'b' * 700}, {'b' * 70} or {'B' * 1600} Anna"
    expected = masked_by_one_alternation([*nested, long_name, "Anna"], text)
    assert masker.mask(text) == expected
    assert expected == f"hi {NAME_TOKEN} and {NAME_TOKEN}, {NAME_TOKEN} or {'B' * 1600} {NAME_TOKEN}"
