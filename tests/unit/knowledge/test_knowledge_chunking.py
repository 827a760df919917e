import random
from itertools import pairwise

import pytest
from conftest import policy_markdown, policy_paragraph

from rag_assets.knowledge import chunking
from rag_assets.knowledge.chunking import (
    CHUNKER_VERSION,
    ChunkingConfig,
    approximate_token_count,
    chunk_document,
    content_hash,
    split_sentences,
)
from rag_assets.knowledge.parsing import ParsedDocument, Section, parse_document


def _chunks(markdown: str, **kwargs):
    return chunk_document(parse_document("kb/policy.md", markdown.encode()), **kwargs)


def test_chunks_respect_the_token_budget_and_never_cross_headings(minilm):
    config = ChunkingConfig()
    chunks = _chunks(policy_markdown(), config=config, count_tokens=minilm.count_tokens)
    assert len(chunks) > 10
    assert [chunk.chunk_no for chunk in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert minilm.count_tokens(chunk.text) <= config.max_tokens
        assert chunk.heading_path[0] == "Travel policy"
        assert chunk.heading_path[1].startswith("Section ")
        assert chunk.text.rstrip().endswith(
            ")."
        )  # every chunk ends on a sentence boundary
    sizes = [minilm.count_tokens(chunk.text) for chunk in chunks]
    assert sum(sizes) / len(sizes) > 120  # not needlessly small


def test_chunking_is_deterministic():
    markdown = policy_markdown()
    first = _chunks(markdown)
    assert first == _chunks(markdown)


def test_consecutive_chunks_overlap():
    chunks = _chunks(policy_markdown(sections=1, paragraphs_per_section=12))
    assert len(chunks) >= 3
    for previous, current in pairwise(chunks):
        last_sentence = split_sentences(previous.text.split("\n\n")[-1])[-1]
        assert current.text.startswith(last_sentence)


def test_editing_one_paragraph_changes_only_nearby_chunks():
    markdown = policy_markdown(sections=4, paragraphs_per_section=10)
    paragraphs = markdown.split("\n\n")
    before = _chunks(markdown)
    before_hashes = {chunk.content_hash for chunk in before}
    target = next(
        i
        for i in range(len(paragraphs) // 2, len(paragraphs))
        if not paragraphs[i].startswith("#")
    )
    paragraphs[target] = (
        paragraphs[target].replace("(rule", "(amended rule", 1)
        + " This sentence is new."
    )
    after = _chunks("\n\n".join(paragraphs))

    changed = [chunk for chunk in after if chunk.content_hash not in before_hashes]
    assert 1 <= len(changed) <= 4, f"{len(changed)} of {len(after)} chunks changed"
    assert any("This sentence is new." in chunk.text for chunk in changed)
    unchanged_share = 1 - len(changed) / len(after)
    assert unchanged_share >= 0.85


def test_inserting_a_paragraph_keeps_later_chunk_hashes_even_though_numbers_shift():
    markdown = policy_markdown(sections=1, paragraphs_per_section=16)
    paragraphs = markdown.split("\n\n")
    before = _chunks(markdown)
    paragraphs.insert(3, policy_paragraph(random.Random(99), 5))
    after = _chunks("\n\n".join(paragraphs))
    before_hashes = [chunk.content_hash for chunk in before]
    tail = after[-5:]
    assert all(chunk.content_hash in before_hashes for chunk in tail)
    assert [before_hashes.index(chunk.content_hash) for chunk in tail] != [
        chunk.chunk_no for chunk in tail
    ]


def test_content_hash_covers_text_heading_and_chunker_version(monkeypatch):
    base = content_hash(("Baggage",), "One bag of 8 kg.")
    assert base == content_hash(
        ("Baggage",), "One  bag of\n8 kg."
    )  # whitespace is normalised
    assert base != content_hash(("Baggage",), "One bag of 10 kg.")
    assert base != content_hash(("Refunds",), "One bag of 8 kg.")
    monkeypatch.setattr(chunking, "CHUNKER_VERSION", CHUNKER_VERSION + "-next")
    assert base != content_hash(("Baggage",), "One bag of 8 kg.")


def test_an_over_long_sentence_is_split_to_fit():
    long_sentence = " ".join(["word"] * 1000) + "."
    document = ParsedDocument("kb/x.txt", "x", [Section(("H",), long_sentence)])
    config = ChunkingConfig(
        max_tokens=100, overlap_tokens=10, boundary_window_tokens=40
    )
    chunks = chunk_document(document, config)
    assert len(chunks) >= 10
    assert all(approximate_token_count(chunk.text) <= 100 for chunk in chunks)


def test_sentence_splitting_keeps_abbreviations_and_decimals_together():
    assert split_sentences(
        "Bags weigh 3.5 kg max. Fees apply, e.g. for skis. Ask us!"
    ) == [
        "Bags weigh 3.5 kg max.",
        "Fees apply, e.g. for skis.",
        "Ask us!",
    ]


def test_heading_is_part_of_the_embedded_text():
    chunk = _chunks("# Refunds\n\n## Cards\n\nMoney returns in 7 days.")[0]
    assert chunk.heading == "Refunds > Cards"
    assert chunk.embedding_text == "Refunds > Cards\nMoney returns in 7 days."


def test_invalid_config_is_refused():
    with pytest.raises(ValueError):
        ChunkingConfig(max_tokens=100, boundary_window_tokens=100)
    with pytest.raises(ValueError):
        ChunkingConfig(max_tokens=100, overlap_tokens=50)
