"""Erasing a person's dead letters: the ties an erasure looks for, and the deletion.

Every dead letter is stored with the keyed hashes of what ties it to a person
(`customers/dead_letter_ties.py`, passed by each domain to the platform's store). An erasure
deletes every letter sharing a hash with the person's records, customer id, references and
identifiers (`erasure_ties`), or holding every word of one of their names (`name_ties`). The
hashes are kept (`remember_erased_ties`), so a letter of theirs stored later is stored without
its payload (names are not: a later letter naming a namesake keeps its payload). Letters stored
before letters kept their ties are found by the exact bytes of an identifier (`payload_needles`).
"""

from __future__ import annotations

from collections.abc import Iterable

from rag_assets.customers.dead_letter_ties import DOCUMENT_KINDS, NAME_WORD
from rag_assets.customers.identifiers import EMAIL, LOYALTY_NUMBER, PHONE
from rag_assets.customers.lookup import CUSTOMER_ID, RECORD
from rag_assets.customers.reference_hashes import hash_identifier, ref_keys
from rag_assets.platform.dead_letters import delete_holding, delete_tied, remember_erased_ties
from rag_assets.privacy.plan import ErasureTarget

# Dead letters are searched for identifier values at least this long (a short value such as a
# loyalty number "12" would match unrelated payloads).
MIN_PAYLOAD_NEEDLE = 6


def erasure_ties(target: ErasureTarget, key: bytes | None = None) -> list[str]:
    """The hashes of everything that ties a letter to the erased person: their records,
    customer id, references (every form) and identifiers."""
    pairs = {(RECORD, record) for record in target.record_keys}
    if target.customer_id:
        pairs.add((CUSTOMER_ID, target.customer_id))
    for ref in target.refs:
        pairs |= ref_keys(ref)
    for kind, value in target.identifiers:
        pairs.add((LOYALTY_NUMBER if kind in DOCUMENT_KINDS else kind, value))
    return sorted(hash_identifier(kind, value, key) for kind, value in pairs)


def name_ties(names: Iterable[str], key: bytes | None = None) -> list[list[str]]:
    """Per full name of the person (`given surname`, folded), the hashes of its words: a letter
    holding all of one name's words is theirs."""
    return [sorted({hash_identifier(NAME_WORD, word, key) for word in name.split()})
            for name in sorted(set(names)) if len(name.split()) >= 2]


def payload_needles(target: ErasureTarget) -> list[bytes]:
    """The fallback for letters stored before dead letters kept their ties (`ties` NULL), and
    for values past the part of a payload that was read for ties: the bytes of an email, phone
    or loyalty number (as stored or as the source system spelled it)."""
    needles = {value for kind, value in target.identifiers if kind in (EMAIL, PHONE, LOYALTY_NUMBER)}
    needles |= {r for r in target.refs if not r.startswith("cus_") and ":" not in r}
    return sorted(n.encode() for n in needles if len(n) >= MIN_PAYLOAD_NEEDLE)


def delete_dead_letters(cur, target: ErasureTarget, request_id: str) -> int:
    """Delete every dead letter tied to the person (see the module doc); how many went."""
    ties = erasure_ties(target)
    remember_erased_ties(cur, ties, request_id)
    return (delete_tied(cur, ties, name_ties(target.names))
            + delete_holding(cur, payload_needles(target)))
