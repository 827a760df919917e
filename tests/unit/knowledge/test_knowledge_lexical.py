"""The lexical scorer: its analyser, term statistics counted with Arrow, and BM25."""

import math
from collections import Counter

import pytest

from rag_assets.knowledge.lexical import CorpusStatistics, analyse, bm25, corpus_statistics

TEXTS = [
    "Installing packages: pip installs a package from PyPI.",
    "Use pandas.read_csv to read a CSV file; read_csv returns a DataFrame.",
    "Café opening hours — the café opens at 8.",
    "",
    "The the THE and of",
    "Installed packages are listed by `pip list`.",
]


def test_the_analyser_splits_code_tokens_folds_accents_and_stems():
    assert analyse("pandas.read_csv") == ["panda", "read", "csv"]
    assert analyse("Café OPENING") == ["cafe", "open"]
    assert analyse("installing installed installs") == ["instal"] * 3
    assert analyse("the and of a") == []


def test_statistics_counted_with_arrow_equal_a_count_over_the_analysed_texts():
    statistics = corpus_statistics(TEXTS)
    analysed = [analyse(text) for text in TEXTS]
    expected = Counter(term for terms in analysed for term in set(terms))
    assert statistics.rows == len(TEXTS)
    assert dict(statistics.frequencies) == dict(expected)
    assert statistics.average_length == pytest.approx(
        sum(map(len, analysed)) / len(TEXTS))


def test_bm25_prefers_the_rarer_term_and_scores_zero_without_a_match():
    statistics = CorpusStatistics(rows=100, average_length=10.0,
                                  frequencies={"instal": 50, "csv": 2})
    scores = bm25("install csv", ["we install things here today", "a csv file here today",
                                  "nothing relevant at all"], statistics)
    assert scores[1] > scores[0] > 0 and scores[2] == 0
    assert statistics.idf("csv") == pytest.approx(math.log(1 + 98.5 / 2.5))
    assert statistics.idf("unseen") > statistics.idf("csv")
