"""Lexical relevance computed in Python, so a ranking never depends on the table's index state.

LanceDB's BM25 takes its statistics (row count, document frequencies, average length) from the
full-text index, which counts deleted rows until the table is compacted: the same question over
the same live rows scored differently before and after `optimize()`. Here the full-text index
only proposes candidates; their score is BM25 with `CorpusStatistics` counted over the live rows
themselves (one vectorised pass, cached per table version), which compaction cannot change.

The analyser follows the full-text index's (Unicode letters and digits, so `read_csv` and
`os.path` split into their words; lower case; accents folded; English stop words dropped;
Snowball stemming), and sees the heading path with the text, so headings are searchable.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import snowballstemmer

BM25_K1 = 1.2
BM25_B = 0.75

# The English stop words of LanceDB's (tantivy's) analyser.
STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with".split()
)
_WORD = re.compile(r"[^\W_]+")
_STEMMER = snowballstemmer.stemmer("english")


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if unicodedata.category(char) != "Mn")


@lru_cache(maxsize=262_144)
def stem(word: str) -> str:
    return _STEMMER.stemWord(word)


def analyse(text: str) -> list[str]:
    """Terms of a text: words folded and lower-cased, stop words dropped, stemmed."""
    return [stem(word) for word in _WORD.findall(_fold(text).lower())
            if word not in STOP_WORDS]


@dataclass(frozen=True)
class CorpusStatistics:
    rows: int
    average_length: float
    frequencies: Mapping[str, int]  # term → rows containing it

    def idf(self, term: str) -> float:
        frequency = self.frequencies.get(term, 0)
        return math.log(1 + (self.rows - frequency + 0.5) / (frequency + 0.5))


def corpus_statistics(texts: pa.Array | Sequence[str]) -> CorpusStatistics:
    """Row count, mean length and document frequency of every term, vectorised with Arrow
    (the same analysis as `analyse`)."""
    texts = pa.array(texts, pa.string()) if not isinstance(texts, pa.Array) else texts
    if len(texts) == 0:
        return CorpusStatistics(0, 1.0, {})
    folded = pc.replace_substring_regex(pc.utf8_normalize(texts, "NFKD"), r"\p{Mn}", "")
    words = pc.split_pattern_regex(pc.utf8_lower(folded), r"[^\p{L}\p{N}]+")
    flat = pc.list_flatten(words)
    parents = pc.list_parent_indices(words).to_numpy()
    vocabulary = pc.unique(flat).to_pylist()
    terms = ["" if not word or word in STOP_WORDS else stem(word) for word in vocabulary]
    term_names, term_ids = np.unique(np.asarray(terms, dtype=object), return_inverse=True)
    ids = term_ids[pc.index_in(flat, pa.array(vocabulary, pa.string())).to_numpy()]
    kept = term_names[ids] != ""
    ids, parents = ids[kept], parents[kept]
    lengths = np.bincount(parents, minlength=len(texts))
    # distinct (row, term) pairs by hashing: a sort of every word would cost ten times more
    pairs = pd.unique(parents.astype(np.int64) * len(term_names) + ids)
    frequency = np.bincount(pairs % len(term_names), minlength=len(term_names))
    return CorpusStatistics(
        rows=len(texts),
        average_length=float(lengths.mean()) or 1.0,
        frequencies={name: int(count) for name, count in zip(term_names, frequency)
                     if name and count},
    )


def bm25(query: str, documents: Sequence[str], statistics: CorpusStatistics) -> list[float]:
    """BM25 (k1 = 1.2, b = 0.75) of each document for the query under the corpus statistics."""
    query_terms = set(analyse(query))
    weights = {term: statistics.idf(term) for term in query_terms}
    scores = []
    for document in documents:
        counts = Counter(analyse(document))
        length = sum(counts.values())
        norm = BM25_K1 * (1 - BM25_B + BM25_B * length / statistics.average_length)
        scores.append(sum(weights[t] * counts[t] * (BM25_K1 + 1) / (counts[t] + norm)
                          for t in query_terms if t in counts))
    return scores
