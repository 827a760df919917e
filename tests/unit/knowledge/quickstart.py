"""Texts and published scores that the local MiniLM embedders are checked against."""

import numpy as np

REFERENCE_SENTENCES = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
]
# sentence-transformers' quickstart for all-MiniLM-L6-v2 (rounded to 4 places).
PUBLISHED = np.array([0.6660, 0.1046, 0.1411])
TEXTS = [
    "Short.",
    "A much longer sentence about checked baggage fees on long-haul flights to Asia.",
    "Each passenger may bring one cabin bag weighing up to 8 kg.",
    "Refunds are paid to the original card within seven days. " * 40,  # truncated at 256
]


def pairwise(vectors: np.ndarray) -> np.ndarray:
    """The three similarities of three vectors: (0, 1), (0, 2), (1, 2)."""
    sims = vectors @ vectors.T
    return np.array([sims[0, 1], sims[0, 2], sims[1, 2]])
