"""Near-duplicate detection over short texts: normalised character shingles, MinHash + LSH
to find candidates, exact Jaccard to decide.

* Normalisation: Unicode NFKC, case-folded, every run of non-word characters turned into one
  space, trimmed — so punctuation, case and spacing differences do not make texts distinct.
* Shingles: the set of overlapping character k-grams of the normalised text (k = 5 by
  default; a text shorter than k is one shingle), each hashed with CRC-32.
* Candidates: 128 MinHash values per text (hash functions (a·x + b) mod (2^61 − 1) whose
  a and b are derived from BLAKE2b of their index, so every machine computes the same
  signatures), cut into 32 bands of 4 rows; texts sharing a band are candidates. With these
  numbers a pair at Jaccard 0.8 becomes a candidate with probability > 0.999 999.
* Decision: the exact Jaccard similarity of the two shingle sets must reach the threshold, so
  MinHash only saves comparisons and never invents a duplicate.

Texts are taken in the given order; a text is dropped when it is a near duplicate of a text
already kept (not of one already dropped), so the first of a cluster survives and the result is
deterministic for a given order.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_MERSENNE_PRIME = np.uint64((1 << 61) - 1)
_NON_WORD = re.compile(r"[\W_]+")


@dataclass(frozen=True)
class NearDuplicateConfig:
    threshold: float = 0.8
    shingle_chars: int = 5
    permutations: int = 128
    bands: int = 32

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError("threshold must be within (0, 1]")
        if self.shingle_chars < 1:
            raise ValueError("shingle_chars must be positive")
        if self.permutations % self.bands:
            raise ValueError("permutations must be a multiple of bands")


def normalise(text: str) -> str:
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def shingles(text: str, size: int) -> frozenset[int]:
    normalised = normalise(text)
    grams = {normalised[i : i + size] for i in range(max(1, len(normalised) - size + 1))}
    return frozenset(zlib.crc32(gram.encode("utf-8")) for gram in grams)


def jaccard(left: frozenset[int], right: frozenset[int]) -> float:
    if not left and not right:
        return 1.0
    return len(left & right) / len(left | right)


def near_duplicates(
    texts: Sequence[str], config: NearDuplicateConfig = NearDuplicateConfig()
) -> dict[int, int]:
    """Map the index of each dropped text to the index of the kept text it nearly repeats."""
    coefficients = _hash_coefficients(config.permutations)
    rows = config.permutations // config.bands
    buckets: dict[tuple[int, bytes], list[int]] = defaultdict(list)
    kept_shingles: dict[int, frozenset[int]] = {}
    dropped: dict[int, int] = {}
    for index, text in enumerate(texts):
        shingle_set = shingles(text, config.shingle_chars)
        signature = _minhash(shingle_set, coefficients)
        band_keys = [
            (band, signature[band * rows : (band + 1) * rows].tobytes())
            for band in range(config.bands)
        ]
        original = _first_similar(band_keys, buckets, kept_shingles, shingle_set, config.threshold)
        if original is not None:
            dropped[index] = original
            continue
        kept_shingles[index] = shingle_set
        for key in band_keys:
            buckets[key].append(index)
    return dropped


def _first_similar(band_keys, buckets, kept_shingles, shingle_set, threshold) -> int | None:
    candidates = sorted({kept for key in band_keys for kept in buckets.get(key, ())})
    for candidate in candidates:
        if jaccard(shingle_set, kept_shingles[candidate]) >= threshold:
            return candidate
    return None


@functools.lru_cache(maxsize=4)
def _hash_coefficients(count: int) -> tuple[np.ndarray, np.ndarray]:
    def draw(label: str, index: int) -> int:
        digest = hashlib.blake2b(f"minhash-{label}-{index}".encode(), digest_size=4).digest()
        return int.from_bytes(digest, "big") | 1  # non-zero multiplier

    multipliers = np.array([draw("a", i) for i in range(count)], dtype=np.uint64)
    offsets = np.array([draw("b", i) for i in range(count)], dtype=np.uint64)
    return multipliers, offsets


def _minhash(
    shingle_set: frozenset[int], coefficients: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    multipliers, offsets = coefficients
    values = np.fromiter(shingle_set, dtype=np.uint64, count=len(shingle_set))
    # a, b and x are below 2^32, so a·x + b stays below 2^64: no uint64 wrap-around.
    hashed = (np.outer(values, multipliers) + offsets) % _MERSENNE_PRIME
    return hashed.min(axis=0)
