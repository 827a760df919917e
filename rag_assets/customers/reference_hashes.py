"""Keyed hashes of what a customer reference stands for (pure but for the catalogue it reads).

A `customer_ref` (the form the assistant app sends with a feedback turn, or the value a dead
letter holds) stands for one or more (kind, normalised value) pairs (`ref_keys`): an `@` makes
it an email; `cus_…` a customer id; `system[.table]:pk` a source record (`lookup`'s rules);
anything else a loyalty number or a phone (read under the catalogue's phone region). The exact string is always a key of its own, so
`" Alice@Example.org"` and `alice@example.org` share the key of the email they spell.

Those pairs are kept only as keyed hashes (HMAC-SHA256 under `RAG_ERASURE_HASH_KEY`,
`hash_identifier`): the feedback suppression list (`feedback/suppression.py`), the ties of a
dead letter (`dead_letter_ties.py`) and an erasure request (`privacy`) hold these, never a
reference. The key must stay the same for the life of the deployment: under another key, the
hashes stored before no longer match anyone.

Home: the Customer 360, because which values identify a person (and how they are normalised)
is its knowledge; feedback, the dead-letter ties and the privacy package read it from here.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from rag_assets.customers.lookup import reference_meanings

HASH_KEY_ENV = "RAG_ERASURE_HASH_KEY"


def ref_keys(ref: str | None) -> set[tuple[str, str]]:
    """What a `customer_ref` stands for (`lookup.reference_meanings`), as (kind, normalised
    value) pairs, and the exact string as a key of its own."""
    if ref is None or not isinstance(ref, str):
        return set()
    text = ref.strip()
    if not text:
        return set()
    return {("ref", text)} | reference_meanings(text)


def ref_digests(ref: str | None, key: bytes | None = None) -> set[str]:
    """Keyed hashes (`hash_identifier`) of what a `customer_ref` stands for (`ref_keys`): the
    suppression list holds these, never a reference."""
    return {hash_identifier(kind, value, key) for kind, value in ref_keys(ref)}


def hash_key() -> bytes:
    """The deployment's key (`RAG_ERASURE_HASH_KEY`); unset is an error, never a default."""
    key = os.environ.get(HASH_KEY_ENV)
    if not key:
        raise RuntimeError(f"set {HASH_KEY_ENV}: the secret key under which erasure requests "
                           "keep hashes of the identifiers they erased")
    return key.encode()


def hash_identifier(kind: str, value: str, key: bytes | None = None) -> str:
    """Keyed SHA-256 of one identifier: lets an auditor check "was X erased?" given X and the
    key, without the request holding X itself."""
    digest = hmac.new(key or hash_key(), f"{kind}:{value}".encode(), hashlib.sha256)
    return digest.hexdigest()
