"""The pure erasure plan: which records, identifiers and references one request removes."""

import json

import pytest

from rag_assets.feedback.suppression import RefMatcher
from rag_assets.privacy.plan import hash_identifiers, plan_erasure, record_key_refs
from rag_assets.privacy.requests import InvalidErasureRequest, parse_erasure_event

ROWS = {
    "crm.customers:1": {"id": 1, "first_name": "Alice", "email": " Alice@Example.org",
                        "phone": "07700 900001", "country": "GB"},
    "loyalty.members:70001": {"member_number": "ly-70001", "email": "alice@example.org",
                              "phone": "+44 7700 900001", "full_name": "Alice Moreau"},
}
LOOKUPS = [("email", "alice@example.org"), ("phone", "+447700900001"),
           ("loyalty_number", "LY70001"), ("national_id", "QQ123456A"), ("block", "moreau|1985")]
PROFILE = {"emails": [{"value": "alice@example.org", "sources": []}],
           "phones": [{"value": "+447700900001", "sources": []}],
           "golden": {"loyalty": {"member_number": "LY-70001"}}}


def plan():
    return plan_erasure("alice@example.org", "cus_abc", ROWS.keys(), LOOKUPS, PROFILE, ROWS)


def test_plan_covers_every_reference_form_and_no_blocking_key():
    target = plan()
    assert target.record_keys == frozenset(ROWS)
    assert ("block", "moreau|1985") not in target.identifiers
    assert ("national_id", "QQ123456A") in target.identifiers
    for ref in ["cus_abc", "crm:1", "crm.customers:1", "loyalty:70001", "loyalty.members:70001",
                "alice@example.org", "Alice@Example.org", "+447700900001", "07700 900001",
                "LY70001", "ly-70001"]:
        assert ref in target.refs, ref
    # National ids are erased from the graph but never copied into the suppression list.
    assert "QQ123456A" not in target.refs


def test_matcher_recognises_spellings_of_an_erased_reference_only():
    matcher = RefMatcher.of_refs(plan().refs, key=b"k1")
    # The suppression list holds keyed hashes only: no reference, nor a spelling of one.
    assert not any(ref.lower() in digest for digest in matcher.digests for ref in plan().refs
                   if len(ref) > 3)
    for ref in ["ALICE@example.org ", "mailto:alice@example.org", "+44 (0)7700 900001",
                "0044 7700 900001", "LY 70001", "crm:1", "crm.customers:1", "cus_abc"]:
        assert matcher.matches(ref), ref
    for ref in [None, "", "bob@example.org", "crm:10", "+447700900002", "cus_other",
                "alice.example.org"]:
        assert not matcher.matches(ref), ref
    assert not RefMatcher([]) and not RefMatcher([]).matches("crm:1")
    # Under another key the same list matches no one: the key must not change.
    assert not RefMatcher(matcher.digests, key=b"another key").matches("crm:1")


def test_hashes_hold_no_raw_identifier_and_depend_on_the_key():
    target = plan()
    hashes = hash_identifiers(target, key=b"k1")
    text = json.dumps(hashes)
    assert "alice" not in text.lower() and "7700" not in text
    assert all(len(h) == 64 for h in hashes)
    assert hashes != hash_identifiers(target, key=b"k2")


def test_unknown_customer_erases_the_reference_itself():
    target = plan_erasure("  someone@example.org ", None, [], [], None, {})
    assert target.customer_id is None and not target.record_keys
    assert target.refs == frozenset({"someone@example.org"})


def test_record_key_refs():
    assert record_key_refs("crm.customers:7") == {"crm.customers:7", "crm:7"}
    assert record_key_refs("febrl.people:7") == {"febrl.people:7"}


def test_erasure_events_are_validated():
    ok = parse_erasure_event(json.dumps({"customer_ref": " a@b.co ", "request_id": "r1"}).encode(),
                             "fallback")
    assert (ok.customer_ref, ok.request_id) == ("a@b.co", "r1")
    assert parse_erasure_event(b'{"customer_ref": "crm:1"}', "p/0@5").request_id == "p/0@5"
    for bad in [None, b"", b"{", b"[]", b'{"customer_ref": ""}', b'{"customer_ref": 5}',
                b'{"customer_ref": "x", "request_id": true}', b'\xff\xfe',
                json.dumps({"customer_ref": "x", "request_id": "a\x00"}).encode()]:
        with pytest.raises(InvalidErasureRequest):
            parse_erasure_event(bad, "fallback")

