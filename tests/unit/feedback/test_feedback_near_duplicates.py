from __future__ import annotations

import random
import string
from itertools import combinations

import pytest

from rag_assets.feedback.near_duplicates import (
    NearDuplicateConfig,
    jaccard,
    near_duplicates,
    normalise,
    shingles,
)


def test_normalise_ignores_case_punctuation_spacing_and_width():
    assert (
        normalise("  Can I   bring a PET?! ")
        == normalise("can i bring a pet")
        == "can i bring a pet"
    )
    assert normalise("ＦＬＩＧＨＴ") == "flight"


def test_exact_and_cosmetic_repeats_are_duplicates_of_the_first():
    texts = [
        "Can I bring my dog on board?\nSmall pets travel in the cabin in an approved carrier.",
        "What is the baggage allowance?\nOne 23 kg bag in economy.",
        "can i bring my dog on board\nsmall pets travel in the cabin in an approved carrier",
        "Can I bring my dog on board?\nSmall pets travel in the cabin in an approved carrier.",
    ]
    assert near_duplicates(texts) == {2: 0, 3: 0}


def test_small_edits_are_near_duplicates_and_different_answers_are_not():
    base = (
        "How do I change my flight?\n"
        "Open Manage Booking, choose the flight, pick a new date and pay any fare difference."
    )
    edited = base.replace("pick a new date", "pick the new date")
    different = (
        "How do I change my flight?\n"
        "Call our contact centre; changes within 24 hours of departure are not possible online."
    )

    assert jaccard(shingles(base, 5), shingles(edited, 5)) >= 0.8
    assert near_duplicates([base, edited, different]) == {1: 0}


def test_threshold_is_respected_exactly():
    rng = random.Random(11)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 8))) for _ in range(60)]
    texts = []
    for _ in range(120):
        text = words[:]
        for _ in range(rng.randint(0, 25)):
            text[rng.randrange(len(text))] = rng.choice(words)
        texts.append(" ".join(text))
    config = NearDuplicateConfig(threshold=0.8)

    dropped = near_duplicates(texts, config)

    sets = [shingles(t, config.shingle_chars) for t in texts]
    for index, original in dropped.items():
        assert original < index and original not in dropped
        assert jaccard(sets[index], sets[original]) >= 0.8
    kept = [i for i in range(len(texts)) if i not in dropped]
    assert dropped, "the generated corpus should contain near duplicates"
    for left, right in combinations(kept, 2):
        assert jaccard(sets[left], sets[right]) < 0.8


def test_result_is_deterministic():
    texts = [f"question {i % 7}\nanswer number {i % 7} with some text" for i in range(40)]
    assert near_duplicates(texts) == near_duplicates(list(texts))


def test_short_texts_are_one_shingle():
    assert shingles("ok", 5) == shingles("OK!", 5)
    assert near_duplicates(["ok", "OK!", "no"]) == {1: 0}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 0.0},
        {"threshold": 1.5},
        {"shingle_chars": 0},
        {"permutations": 100, "bands": 32},
    ],
)
def test_invalid_configuration_is_refused(kwargs):
    with pytest.raises(ValueError):
        NearDuplicateConfig(**kwargs)
