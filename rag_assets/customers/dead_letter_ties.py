"""What ties a dead letter to a person, as keyed hashes (pure, no I/O).

A dead letter keeps the raw input the pipeline could not use, which may hold a customer's
personal data. When it is stored, `letter_ties` records what it can be tied to as keyed hashes
under the suppression list's HMAC and normalisation (`reference_hashes.hash_identifier`,
`reference_hashes.ref_keys`, `RAG_ERASURE_HASH_KEY`) — never the identifiers themselves:

* the record of a CDC event, when the parser got as far as its table and key
  (`record`, `system.table:pk`);
* the customer reference of a feedback turn, in every form it stands for
  (`reference_hashes.ref_digests`, the suppression list's own digests);
* the values found in the payload, valid JSON or not (string literals and bare tokens): a value
  holding a digit or an `@` is read as a reference is (email lower-cased, phone in E.164, any
  loyalty number, national id or passport as upper-case letters and digits), and every word of
  a short value is folded like a name (`identifiers.fold_name`) and kept on its own.

Every domain that stores dead letters passes `ties_of` to the platform's `store_dead_letters`,
which requires a ties function (the platform knows no person, so it cannot tie one). An erasure
(`privacy/dead_letter_erasure.py`) deletes every letter sharing a hash with the person's record
keys, references and identifiers, or holding every word of one of their names — whatever
spelling, casing or spacing the payload used. Erring towards erasure: a letter naming someone
else with the same name goes too.

Bounds: only the first `MAX_SCANNED_BYTES` of a payload and its first `MAX_VALUES` values are
read; what lies beyond is left to the byte-match fallback and the payload retention
(`dead_letters.expire_payloads`).
"""

from __future__ import annotations

import json
import re

from rag_assets.customers.identifiers import (
    LOYALTY_NUMBER,
    MAX_IDENTIFIER_CHARS,
    NATIONAL_ID,
    PASSPORT,
    fold_name,
)
from rag_assets.customers.lookup import RECORD
from rag_assets.customers.reference_hashes import hash_identifier, ref_digests, ref_keys
from rag_assets.platform.dead_letters import DeadLetter

NAME_WORD = "name_word"
MAX_SCANNED_BYTES = 128 * 1024
MAX_VALUES = 2_000
# Shorter values tie no one: a loyalty number "12" would tie unrelated letters.
MIN_REFERENCE_CHARS = 6
MAX_NAME_WORDS = 4  # longer text is read word by word (its tokens), not as one name
# `ref_keys` reads a value without an `@` as a document number under this kind; national ids
# and passports share the loyalty number's normalisation, so they are hashed under it too.
DOCUMENT_KINDS = frozenset({LOYALTY_NUMBER, NATIONAL_ID, PASSPORT})

# Bounded, so a payload of unbalanced quotes costs linear time.
_STRING_LITERAL = re.compile(r'"((?:[^"\\]|\\.){0,256})"')
_TOKEN_SEPARATORS = re.compile(r'[\s"{}\[\],;<>()=]+')


def payload_values(payload: bytes | None) -> list[str]:
    """The values a payload holds, in order of appearance, each once: its JSON string literals
    (unescaped) and its tokens between whitespace and JSON/CSV punctuation."""
    if not payload:
        return []
    text = bytes(payload[:MAX_SCANNED_BYTES]).decode("utf-8", "replace")
    literals = (_unescape(body) for body in _STRING_LITERAL.findall(text))
    tokens = (token.strip(":.'") for token in _TOKEN_SEPARATORS.split(text))
    values = (value.strip() for value in (*literals, *tokens))
    found = dict.fromkeys(v for v in values if v and len(v) <= MAX_IDENTIFIER_CHARS)
    return list(found)[:MAX_VALUES]


def _unescape(body: str) -> str:
    try:
        return json.loads(f'"{body}"')
    except ValueError:
        return body


def value_keys(value: str) -> set[tuple[str, str]]:
    """The (kind, normalised value) pairs one payload value can tie a letter to."""
    keys = set()
    if len(value) >= MIN_REFERENCE_CHARS and any(c.isdigit() or c == "@" for c in value):
        keys |= ref_keys(value)
    words = (fold_name(value) or "").split()
    if len(words) <= MAX_NAME_WORDS:
        keys |= {(NAME_WORD, word) for word in words if word.isalpha()}
    return keys


def letter_ties(payload: bytes | None, record_key: str | None = None,
                customer_ref: str | None = None, key: bytes | None = None) -> list[str]:
    """The keyed hashes a dead letter is stored with (see the module doc)."""
    pairs = {(RECORD, record_key)} if record_key else set()
    for value in payload_values(payload):
        pairs |= value_keys(value)
    digests = {hash_identifier(kind, value, key) for kind, value in pairs}
    return sorted(digests | ref_digests(customer_ref, key))


def ties_of(letter: DeadLetter) -> list[str]:
    """A letter's ties (`letter_ties`): what every domain passes to `store_dead_letters`."""
    return letter_ties(letter.payload and bytes(letter.payload), letter.record_key,
                       letter.customer_ref)
