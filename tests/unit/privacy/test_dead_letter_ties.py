"""What ties a dead letter to a person: the keyed hashes stored with it and those an erasure
looks for, without a database."""

import json

import pytest

from rag_assets.customers.cdc_events import CdcParserConfig, parse_cdc_record
from rag_assets.customers.dead_letter_ties import letter_ties, payload_values, ties_of
from rag_assets.platform.dead_letters import DeadLetter
from rag_assets.privacy.dead_letter_erasure import erasure_ties, name_ties
from rag_assets.privacy.plan import ErasureTarget, plan_erasure

KEY = b"test key"
ALICE = ErasureTarget(
    reference="crm:1", customer_id="cus_alice",
    record_keys=frozenset({"crm.customers:1", "loyalty.members:70001"}),
    identifiers=frozenset({("email", "alice.moreau@example.org"), ("phone", "+447700900101"),
                           ("loyalty_number", "LY70001"), ("national_id", "QQ123456A")}),
    refs=frozenset({"crm:1", "cus_alice", "Alice.Moreau@Example.org", "LY-70001"}),
    names=frozenset({"alice moreau"}))


def tied_to_alice(payload: bytes | None, record_key=None, customer_ref=None) -> bool:
    ties = set(letter_ties(payload, record_key, customer_ref, KEY))
    by_name = any(set(words) <= ties for words in name_ties(ALICE.names, KEY))
    return by_name or not ties.isdisjoint(erasure_ties(ALICE, KEY))


def cdc(after: dict) -> bytes:
    return json.dumps({"op": "x", "after": after}).encode()


@pytest.mark.parametrize("payload", [
    cdc({"id": 77, "email": "  ALICE.MOREAU@EXAMPLE.ORG "}),
    b'{"op": "c", "after": {"id": 77, "email": "Alice.Moreau@example.ORG", "first_na',  # cut
    b"id;email\n77;mailto:ALICE.moreau@example.org\n",  # not JSON at all
    cdc({"national_id": "qq 12 34 56 a"}),
    cdc({"passport_or_id": "QQ-123-456-A"}),
    cdc({"phone": "+44 (0)7700 900 101"}),
    cdc({"mobile": 447700900101}),
    cdc({"first_name": "ALICE", "last_name": "Moréau"}),
    cdc({"name": "MOREAU, Alice"}),
    json.dumps({"comment": "please call alice moreau back"}).encode(),
    cdc({"ref": "loyalty:70001"}),
])
def test_a_payload_is_tied_to_alice_whatever_spelling_it_uses(payload):
    assert tied_to_alice(payload)


@pytest.mark.parametrize("payload", [
    cdc({"id": 78, "email": "BOB.STONE@EXAMPLE.ORG", "national_id": "QQ654321B"}),
    cdc({"first_name": "Alice", "last_name": "Stone"}),  # one word of her name is not her
    cdc({"first_name": "Bob", "last_name": "Moreau"}),
    cdc({"member": "12"}),
    b"\xff\xfe\x00 binary junk",
    b"",
    None,
])
def test_another_persons_or_nobodys_payload_is_not_tied_to_alice(payload):
    assert not tied_to_alice(payload)


def test_a_short_value_ties_no_one_even_when_it_is_someones_loyalty_number():
    short = ErasureTarget("x", None, frozenset(), frozenset({("loyalty_number", "12")}),
                          frozenset())
    assert set(letter_ties(cdc({"points": 12, "tier": "12"}), key=KEY)).isdisjoint(
        erasure_ties(short, KEY))


def test_record_key_and_feedback_reference_tie_a_letter_without_any_payload():
    assert tied_to_alice(None, record_key="crm.customers:1")
    assert tied_to_alice(None, customer_ref=" alice.moreau@EXAMPLE.org")
    assert tied_to_alice(None, customer_ref="crm:1")  # a short reference of her record
    assert tied_to_alice(None, customer_ref="cus_alice")
    assert not tied_to_alice(None, record_key="crm.customers:2", customer_ref="crm:2")


def test_ties_are_keyed_hashes_without_the_identifiers():
    payload = cdc({"email": "Alice.Moreau@Example.org", "national_id": "QQ123456A",
                   "first_name": "Alice"})
    ties = letter_ties(payload, "crm.customers:1", "LY-70001", KEY)
    assert ties and all(len(t) == 64 and int(t, 16) >= 0 for t in ties)
    text = json.dumps(ties).lower()
    assert not any(v in text for v in ("alice", "moreau", "qq123456a", "ly70001", "customers"))
    assert set(ties).isdisjoint(letter_ties(payload, "crm.customers:1", "LY-70001", b"other"))


def test_ties_of_a_letter_are_its_payloads_record_keys_and_references(monkeypatch):
    monkeypatch.setenv("RAG_ERASURE_HASH_KEY", KEY.decode())
    letter = DeadLetter("cdc", "bad", b'{"email": "alice.moreau@example.org"}',
                        record_key="crm.customers:1", customer_ref="LY-70001")
    assert ties_of(letter) == letter_ties(letter.payload, "crm.customers:1", "LY-70001", KEY)
    assert ties_of(DeadLetter("cdc", "bad")) == []


def test_payload_values_reads_literals_and_bare_tokens_of_valid_and_broken_input():
    values = payload_values(b'{"phone": 447700900101, "name": "Al\\u00efce M", "em')
    assert {"447700900101", "Alïce M", "phone", "name"} <= set(values)


def test_plan_erasure_names_the_full_name_of_every_record():
    rows = {"crm.customers:1": {"id": 1, "first_name": "Alice", "last_name": "Moreau"},
            "loyalty.members:70001": {"member_number": "LY-70001", "full_name": "Moreau, Alicia"},
            "crm.customers:3": {"id": 3, "last_name": "Moreau"}}  # no given name: no full name
    target = plan_erasure("crm:1", "cus_a", rows, [], None, rows)
    assert target.names == {"alice moreau", "alicia moreau"}


def test_a_rejected_cdc_record_names_its_record_when_topic_and_key_say_which():
    config = CdcParserConfig()
    keyed = parse_cdc_record("cdc.crm.customers", 0, 5, b'{"id": 1}', b'{"op": "x"}', config)
    unkeyed = parse_cdc_record("cdc.crm.customers", 0, 6, None, b'{"op": "x"}', config)
    bad_key = parse_cdc_record("cdc.crm.customers", 0, 7, b"not json", b"{}", config)
    assert isinstance(keyed, DeadLetter) and keyed.record_key == "crm.customers:1"
    assert unkeyed.record_key is None and bad_key.record_key is None
    assert "crm.customers:1" not in repr(keyed)  # not in a log line that prints the letter
