"""One reading of a customer reference (`lookup.reference_meanings`): the look-up and erasure
(`candidate_identifiers`) read a reference as the suppression list's hashes (`ref_keys`) do, and
an email reference is only an email — never also a loyalty number spelled by its letters."""

from hypothesis import given
from hypothesis import strategies as st

from rag_assets.customers.identifiers import EMAIL, LOYALTY_NUMBER
from rag_assets.customers.lookup import IDENTIFIER_KINDS, candidate_identifiers
from rag_assets.customers.reference_hashes import ref_keys

REFERENCE_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), min_size=1,
                         max_size=40).map(str.strip).filter(bool)


def test_an_email_reference_is_an_email_only():
    assert candidate_identifiers("alice.moreau@example.org") == [(EMAIL, "alice.moreau@example.org")]


def test_a_loyalty_number_is_still_read_as_one():
    assert (LOYALTY_NUMBER, "LY70001") in candidate_identifiers("LY-70001")


@given(REFERENCE_TEXT)
def test_the_look_up_and_the_suppression_hashes_read_a_reference_alike(text):
    assert set(candidate_identifiers(text)) == {
        pair for pair in ref_keys(text) if pair[0] in IDENTIFIER_KINDS}


@given(REFERENCE_TEXT, REFERENCE_TEXT)
def test_a_reference_with_an_at_sign_is_never_a_loyalty_number_or_phone(local, domain):
    kinds = {kind for kind, _ in candidate_identifiers(f"{local}@{domain}")}
    assert kinds <= {EMAIL}
