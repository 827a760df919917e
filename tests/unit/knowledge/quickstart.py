"""Texts of mixed lengths the local MiniLM embedders are compared on (padding, truncation)."""

TEXTS = [
    "Short.",
    "A much longer sentence about checked baggage fees on long-haul flights to Asia.",
    "Each passenger may bring one cabin bag weighing up to 8 kg.",
    "Refunds are paid to the original card within seven days. " * 40,  # truncated at 256
]
