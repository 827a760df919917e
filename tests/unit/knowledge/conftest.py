"""Shared fixtures for the knowledge-base tests: generated policy documents and a LanceDB dir."""

from __future__ import annotations

import random

import pytest

_SUBJECTS = [
    "Passengers",
    "Customers travelling with infants",
    "Loyalty members",
    "Our agents",
    "Travellers on award tickets",
    "Unaccompanied minors",
    "Groups of ten or more",
    "Crew",
]
_VERBS = [
    "may bring",
    "must present",
    "are entitled to",
    "can request",
    "should confirm",
    "will receive",
    "cannot transfer",
    "need to declare",
]
_OBJECTS = [
    "one cabin bag of up to 8 kg",
    "a refund to the original form of payment",
    "a meal voucher after a delay of three hours",
    "priority boarding at the gate",
    "a valid passport at check-in",
    "lounge access on long-haul flights",
    "a seat change free of charge",
    "compensation under EU regulation 261/2004",
]
_TAILS = [
    "unless the fare rules say otherwise",
    "within 24 hours of booking",
    "when the flight is operated by a partner airline",
    "at any airport we serve",
    "if the request is made online",
    "subject to availability",
]


def policy_sentence(rng: random.Random) -> str:
    return f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TAILS)} (rule {rng.randint(1, 9999)})."


def policy_paragraph(rng: random.Random, sentences: int = 4) -> str:
    return " ".join(policy_sentence(rng) for _ in range(sentences))


def policy_markdown(
    sections: int = 4, paragraphs_per_section: int = 8, seed: int = 7
) -> str:
    """A long Markdown policy document: `sections` h2 sections of several paragraphs each."""
    rng = random.Random(seed)
    parts = ["# Travel policy", ""]
    for number in range(1, sections + 1):
        parts += [f"## Section {number}", ""]
        for _ in range(paragraphs_per_section):
            parts += [policy_paragraph(rng, rng.randint(2, 6)), ""]
    return "\n".join(parts)


@pytest.fixture
def lance_dir(tmp_path):
    return str(tmp_path / "lancedb")


@pytest.fixture(scope="session")
def minilm():
    from rag_assets.knowledge.embedding import MiniLMEmbedder

    return MiniLMEmbedder()


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    """A model cache of the session's own: the ONNX graphs are built into it once."""
    return tmp_path_factory.mktemp("model-cache")
