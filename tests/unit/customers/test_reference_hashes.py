"""A reference that is a phone number is read under the catalogue's phone region, as the
identity graph and the look-up read it: otherwise a feedback turn sent with a national number
of an erased person would not match the suppression list under any region but the default."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag_assets.catalogue.active import DEMO_CATALOGUE
from rag_assets.customers.identifiers import PHONE, normalize_phone
from rag_assets.customers.lookup import candidate_identifiers
from rag_assets.customers.reference_hashes import ref_keys
from tests.catalogues import use_catalogue

REGIONS = ["US", "DE", "FR", "AU", "JP", "BR", "IN", "GB"]


def catalogue_in_region(directory, region: str):
    text = DEMO_CATALOGUE.read_text(encoding="utf-8")
    assert "default_phone_region: GB" in text
    path = directory / f"catalogue-{region}.yaml"
    path.write_text(text.replace("default_phone_region: GB", f"default_phone_region: {region}"),
                    encoding="utf-8")
    return path


def national_number(region: str, digits: int) -> str:
    """A valid number of `region` in its national format, varied in its last digits."""
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    national = str(example.national_number)
    varied = national[:-3] + f"{digits % 1000:03d}"
    number = phonenumbers.parse(varied, region)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)


def test_a_us_number_is_read_as_the_graph_reads_it(tmp_path, monkeypatch):
    use_catalogue(monkeypatch, catalogue_in_region(tmp_path, "US"))
    assert (PHONE, "+14155552671") in ref_keys("(415) 555-2671")
    assert (PHONE, "+14155552671") in ref_keys("+1 415 555 2671")


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(REGIONS), st.integers(0, 999))
def test_a_national_number_keys_like_the_graph_and_the_look_up(tmp_path_factory, region, digits):
    # hypothesis and function-scoped monkeypatch do not mix: set and restore the variable here
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_catalogue(monkeypatch, catalogue_in_region(tmp_path_factory.mktemp(region), region))
        text = national_number(region, digits)
        graph_form = normalize_phone(text, region)
        assert graph_form is not None
        phones = {value for kind, value in ref_keys(text) if kind == PHONE}
        assert phones == {graph_form}
        assert (PHONE, graph_form) in candidate_identifiers(text)
