"""Relevance metrics and the extraction of labelled questions from FAQ sources."""

import math

import pytest

from rag_assets.retrieval.demo_questions import demo_corpus
from rag_assets.retrieval.evaluation import (
    answer_rank,
    debian_faq_entries,
    evaluate,
    faq_entries,
    merged_corpus,
    score_ranks,
)

RST = """\
===============
Programming FAQ
===============

.. contents::

General Questions
=================

Is there a debugger?
--------------------

Yes. The :mod:`pdb` module is documented in the `Library Reference <https://x.org>`_
and ``breakpoint()`` drops into it::

   import pdb

Performance
===========

My program is too slow. How do I speed it up?
---------------------------------------------

Profile it first with :func:`cProfile.run`; then optimise the hot spots.

Short?
------

No.
"""

DEBIAN = (
    "Chapter 1. Definitions and overview\n\n"
    "1.1. What is this FAQ?\n\n"
    "    This document gives frequently asked questions (with their\n"
    "    answers!) about Debian.\n\n"
    "1.2. What is Debian\u00a0GNU/Linux and\n"
    "why would I use it?\n\n"
    "    Debian is a free operating system built by volunteers.\n\n"
    "Chapter 2. Getting Debian\n\n"
    "2.1. Download sites\n\n"
    "    Not a question, so not an entry of the labelled set.\n"
)


def test_rank_counts_each_document_once_at_its_best_chunk():
    assert answer_rank(["a", "a", "b", "c"], "b") == 2
    assert answer_rank(["a", "b"], "z") is None


def test_metrics_follow_their_definitions():
    scores = score_ranks([1, 2, None, 11])
    assert scores.questions == 4
    assert scores.hit_at_1 == 0.25 and scores.hit_at_5 == 0.5
    assert scores.mrr == pytest.approx((1 + 1 / 2 + 1 / 11) / 4)
    assert scores.ndcg_at_10 == pytest.approx((1 + 1 / math.log2(3)) / 4)
    with pytest.raises(ValueError, match="no questions"):
        score_ranks([])


def test_rst_faq_entries_keep_the_category_and_drop_the_question_and_markup():
    title, entries = faq_entries(RST)
    assert title == "Programming FAQ"
    assert [(path, question) for path, question, _ in entries] == [
        (("General Questions",), "Is there a debugger?"),
        (("Performance",), "My program is too slow. How do I speed it up?"),
    ]  # "Short?" has a one-word answer: not a usable passage
    answer = entries[0][2]
    assert "pdb module is documented in the Library Reference" in answer
    assert "breakpoint() drops into it:" in answer and "import pdb" in answer
    assert ":mod:" not in answer and "https://x.org" not in answer and "?" not in answer


def test_debian_faq_entries_join_wrapped_questions_and_skip_non_questions():
    entries = debian_faq_entries(DEBIAN)
    assert [(chapter, question) for chapter, question, _ in entries] == [
        ("Definitions and overview", "What is this FAQ?"),
        ("Definitions and overview", "What is Debian GNU/Linux and why would I use it?"),
    ]
    assert entries[1][2] == "Debian is a free operating system built by volunteers."


def test_evaluate_scores_a_search_function():
    corpus = demo_corpus()
    perfect, ranks = evaluate(lambda q: ["other.md", next(
        item.doc_key for item in corpus.questions if item.question == q)], corpus.questions)
    assert set(ranks) == {2} and perfect.hit_at_1 == 0 and perfect.hit_at_5 == 1


def test_merged_corpora_refuse_clashing_keys():
    corpus = demo_corpus()
    with pytest.raises(ValueError, match="document keys in two corpora"):
        merged_corpus("twice", [corpus, corpus])
