"""The masker's identifiers beyond e-mails, cards, phones and names: the ones a checksum, a format
rule or a keyword confirms (any customer), and the ones the product knows of the customer (in
every spelling)."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import iban

from rag_assets.customers.known_identifiers import KnownIdentifiers
from rag_assets.feedback.pii import PiiMasker, mask_pii

# (text, what must not survive, the token expected in its place)
VALIDATED = [
    ("IBAN GB82 WEST 1234 5698 7654 32 please", ["WEST", "5698"], "[IBAN]"),
    ("pay to gb82west12345698765432.", ["west1234"], "[IBAN]"),
    ("DE89 3704 0044 0532 0130 00", ["3704", "0130"], "[IBAN]"),
    ("FR14-2004-1010-0505-0001-3M02-606 is mine", ["2004", "3M02"], "[IBAN]"),
    ("my SSN 536-22-1234", ["536", "1234"], "[NATIONAL_ID]"),
    ("ssn is 536 22 1234", ["536", "1234"], "[NATIONAL_ID]"),
    ("my ssn is 536221234", ["536221234"], "[NATIONAL_ID]"),
    ("NI AB 12 34 56 C", ["AB 12", "56 C"], "[NATIONAL_ID]"),
    ("national insurance number ab123456c", ["ab123456c"], "[NATIONAL_ID]"),
    ("DNI 12345678Z", ["12345678"], "[NATIONAL_ID]"),
    ("NIE X-1234567-L", ["1234567"], "[NATIONAL_ID]"),
    ("PPS 1234567T", ["1234567T"], "[NATIONAL_ID]"),
    ("codice fiscale RSSMRA85T10A562S", ["RSSMRA"], "[NATIONAL_ID]"),
    ("My passport number is 123 456 789, thanks", ["123", "789"], "[PASSPORT]"),
    ("Passport No. 533401238 expires 2030-05-12", ["533401238"], "[PASSPORT]"),
    ("passport: c01x00t47", ["c01x00t47"], "[PASSPORT]"),
    ("mon passeport X 1234567", ["1234567"], "[PASSPORT]"),
    ("Reisepass-Nr. C01X00T47", ["C01X00T47"], "[PASSPORT]"),
    ("frequent flyer number BA 1234 5678", ["1234", "5678"], "[LOYALTY]"),
    ("my member no is ly-70001", ["70001"], "[LOYALTY]"),
    ("Executive Club 12345678", ["12345678"], "[LOYALTY]"),
    ("I was born on 3 March 1985", ["1985", "March"], "[DOB]"),
    ("DOB: 03/03/1985", ["1985"], "[DOB]"),
    ("date of birth 1985-03-03", ["1985"], "[DOB]"),
    ("my birthday is March 3rd, 1985", ["1985"], "[DOB]"),
    ("I live at 12 Baker Street, London", ["12 Baker", "Street"], "[ADDRESS]"),
    ("send it to 221B baker st.", ["baker"], "[ADDRESS]"),
    ("flat 3, 47 Old Mill Lane", ["Old Mill"], "[ADDRESS]"),
    ("postcode SW1A 1AA", ["SW1A"], "[ADDRESS]"),
    ("postcode sw1a 1aa", ["sw1a"], "[ADDRESS]"),
    ("my postcode is LS14AB", ["LS14AB"], "[ADDRESS]"),  # unspaced: confirmed by its keyword
    ("We moved to 12 Baker Street, Leeds LS14AB.", ["LS14AB"], "[ADDRESS]"),  # by the street
]

STAYS = [
    "IBAN GB82 WEST 1234 5698 7654 33 is wrong",  # checksum fails
    "SSN 000-12-3456 is not issued",
    "NI QQ 12 34 56 C",  # a prefix HMRC never issues
    "DNI 12345678A",  # wrong check letter
    "passport expires 2030-05-12",
    "my passport expires in 2 weeks, order 12345678",
    "Passport control, then booking ABC12345 at gate 12",
    "member for 2 years",
    "I have 2 bags on the road and 3 on the way",
    "Flight BA123 on 3 March 2025, arriving 14:30",
    "Order number 123456789 is on its way",
    "Booking reference ABC123, seat 14C",
    "booking C2Q2RB, gate B1 2nd floor",  # a postcode's shape without its space; an ordinal
    "My date of birth is [DOB] but the booking shows 2025-11-05",  # a token is no keyword
    "Terminal 5, gate B12, 23 kg",
]


@pytest.mark.parametrize(("text", "secrets", "token"), VALIDATED)
def test_validated_identifiers_do_not_survive(text, secrets, token):
    masked = mask_pii(text)

    for secret in secrets:
        assert secret not in masked, f"{secret!r} survived in {masked!r}"
    assert token in masked


@pytest.mark.parametrize("text", STAYS)
def test_what_no_check_confirms_stays(text):
    assert mask_pii(text) == text


def test_the_keyword_and_the_rest_of_the_sentence_stay():
    assert (mask_pii("My passport number is 123 456 789, my DOB 3 March 1985; PNR ABC123")
            == "My passport number is [PASSPORT], my DOB [DOB]; PNR ABC123")


ALICE = KnownIdentifiers(
    names=frozenset({"Alice", "Moreau"}), emails=frozenset({"alice.moreau@example.org"}),
    phones=frozenset({"+447700900101"}), loyalty_numbers=frozenset({"LY70001"}),
    national_ids=frozenset({"QQ123456A"}), passports=frozenset({"533401238"}),
    dates_of_birth=frozenset({"1985-02-11"}), address_lines=frozenset({"1 quay st"}),
    postcodes=frozenset({"LS1 4AB"}))

KNOWN = [
    ("the number on my document: 533-401-238", "the number on my document: [PASSPORT]"),
    ("533 401 238 / 533.401.238", "[PASSPORT] / [PASSPORT]"),
    ("form says qq 12 34 56 a", "form says [NATIONAL_ID]"),
    ("card ly 70001 and LY-70001", "card [LOYALTY] and [LOYALTY]"),
    ("11 February 1985, 11/02/1985, 1985-02-11, Feb 11th, 1985, 11.2.85",
     "[DOB], [DOB], [DOB], [DOB], [DOB]"),
    ("flying 12/02/1985 and 2025-02-11", "flying 12/02/1985 and 2025-02-11"),
    ("Alice.Moreau @ Example.org, alice dot moreau at example dot org", "[EMAIL], [EMAIL]"),
    ("07700 900101, +44 (0)7700 900 101, 0044-7700-900101", "[PHONE], [PHONE], [PHONE]"),
    ("1 Quay Street, 1, quay st. and ls14ab", "[ADDRESS], [ADDRESS] and [ADDRESS]"),
    ("ALICE MOREAU", "[NAME] [NAME]"),
]


@pytest.mark.parametrize(("text", "expected"), KNOWN)
def test_what_the_product_knows_is_masked_in_every_spelling(text, expected):
    assert PiiMasker().with_known(ALICE).mask(text) == expected


def test_known_identifiers_are_the_customers_own():
    bob = KnownIdentifiers(passports=frozenset({"999888777"}))
    text = "document 533-401-238"
    assert PiiMasker().with_known(bob).mask(text) == text
    assert PiiMasker().with_known(None).mask(text) == text


def test_the_base_names_stay_with_a_customer_masker():
    masker = PiiMasker(["Sally"]).with_known(ALICE)
    assert masker.mask("Sally and Alice") == "[NAME] and [NAME]"


SEPARATORS = st.sampled_from(["", "", "", " ", "-", ".", "/", "  "])


@given(st.text("0123456789ABCDEFGHJKLMNPRSTUVWXYZ", min_size=6, max_size=9),
       st.lists(SEPARATORS, min_size=9, max_size=9), st.booleans())
@settings(max_examples=300, deadline=None)
def test_a_known_document_number_is_masked_however_it_is_spaced(number, gaps, lower):
    typed = "".join(c + gap for c, gap in zip(number, gaps, strict=False)).strip(" -./")
    typed = typed.lower() if lower else typed
    masker = PiiMasker().with_known(KnownIdentifiers(passports=frozenset({number})))

    assert masker.mask(f"here: {typed} ok") == "here: [PASSPORT] ok"


DATE_FORMATS = ["{d} {B} {Y}", "{d:02d}/{m:02d}/{Y}", "{Y}-{m:02d}-{d:02d}", "{B} {d}, {Y}",
                "{d}.{m}.{y:02d}", "{d:02d}-{b}-{Y}", "{d}th of {B} {Y}", "{Y}{m:02d}{d:02d}"]


@given(st.dates(min_value=date(1920, 1, 1), max_value=date(2010, 12, 31)),
       st.sampled_from(DATE_FORMATS))
@settings(max_examples=300, deadline=None)
def test_a_known_date_of_birth_is_masked_in_common_spellings(born, form):
    typed = form.format(d=born.day, m=born.month, Y=born.year, y=born.year % 100,
                        B=born.strftime("%B"), b=born.strftime("%b"))
    masker = PiiMasker().with_known(KnownIdentifiers(dates_of_birth=frozenset({born.isoformat()})))

    assert masker.mask(f"it is {typed} on my form") == "it is [DOB] on my form"


# (countries whose bank codes stdnum does not check further: any digits make a valid IBAN)
@given(st.sampled_from(["GB", "DE", "FR", "NL", "IE"]), st.integers(0, 10**30),
       st.sampled_from([" ", "", "-"]))
@settings(max_examples=200, deadline=None)
def test_any_valid_iban_is_masked_grouped_or_not(country, seed, gap):
    bban = {"GB": f"NWBK{seed % 10**14:014d}", "DE": f"{seed % 10**18:018d}",
            "FR": f"{seed % 10**23:023d}", "NL": f"ABNA{seed % 10**10:010d}",
            "IE": f"AIBK{seed % 10**14:014d}"}[country]
    number = country + iban.calc_check_digits(f"{country}00{bban}") + bban
    typed = gap.join(number[i:i + 4] for i in range(0, len(number), 4))

    assert mask_pii(f"my IBAN {typed} thanks") == "my IBAN [IBAN] thanks"


@given(st.text(st.sampled_from("0123456789 -./abcXYZ@passport born member\n"), max_size=200))
@settings(max_examples=300, deadline=None)
def test_masking_with_known_identifiers_is_idempotent(text):
    masker = PiiMasker(["Alice"]).with_known(ALICE)
    once = masker.mask(text)
    assert masker.mask(once) == once


# Sizes at which a quadratic pattern would run for hours (pytest's timeout fails it); the
# outputs are checked, so the tests also say what such text becomes.
@pytest.mark.parametrize(("text", "expected"), [
    ("passport " * 20_000, "passport " * 20_000),
    ("born 3 March " * 20_000, "born 3 March " * 20_000),
    ("1 Baker " * 20_000, "1 Baker " * 20_000),
    ("GB82 " * 20_000, "GB82 " * 20_000),
    ("AB 12 " * 20_000, "AB 12 " * 20_000),
    ("member 1 " * 20_000, "member 1 " * 20_000),
    ("533 401 " * 20_000, "533 401 " * 20_000),
    ("07700 " * 20_000, "07700 " * 20_000),
    ("alice.moreau " * 20_000, "[NAME].[NAME] " * 20_000),
    ("1 quay " * 20_000, "1 quay " * 20_000),
    ("11 February " * 20_000, "11 February " * 20_000),
])
def test_long_hostile_input_is_masked_in_linear_time(text, expected):
    assert PiiMasker(["Alice"]).with_known(ALICE).mask(text) == expected


def test_an_unspaced_postcode_is_masked_only_in_its_context():
    masked = mask_pii("12 Baker Street is far; booking C2Q2RB, then Leeds LS14AB")

    assert masked == "[ADDRESS] is far; booking C2Q2RB, then Leeds LS14AB"
