from __future__ import annotations

import time

import pytest

from rag_assets.feedback.pii import PiiMasker, luhn_valid, mask_pii

NAMES = ["Sally", "Thomas", "O'Brien", "Zoë", "van der Berg", "Nguyen", "J"]

# (text, what must not survive, the token expected in its place)
MUST_NOT_SURVIVE = [
    (
        "Email me at john.smith@example.com please",
        ["john.smith@example.com"],
        "[EMAIL]",
    ),
    ("JOHN.SMITH@EXAMPLE.COM", ["JOHN.SMITH", "EXAMPLE.COM"], "[EMAIL]"),
    (
        "john.doe+travel@mail.example.co.uk.",
        ["john.doe", "example", ".co.uk"],
        "[EMAIL]",
    ),
    ("<maria_garcia-lopez@correo.es>", ["maria_garcia-lopez", "correo"], "[EMAIL]"),
    ("mailto:anna@example.org?subject=refund", ["anna@", "example.org"], "[EMAIL]"),
    ("write to josé.núñez@ejemplo.es", ["josé.núñez", "ejemplo"], "[EMAIL]"),
    ("o'connor@example.ie is my address", ["o'connor", "example.ie"], "[EMAIL]"),
    ("john [at] example [dot] com", ["john", "example"], "[EMAIL]"),
    ("john(at)example(dot)com", ["john", "example"], "[EMAIL]"),
    ("reach me: john at example dot com", ["john", "example"], "[EMAIL]"),
    (
        "john dot smith at example dot co dot uk",
        ["john", "smith", "example"],
        "[EMAIL]",
    ),
    ("john＠example.com", ["john", "example.com"], "[EMAIL]"),
    ("jo\u200bhn@exa\u200bmple.com", ["hn@", "mple.com"], "[EMAIL]"),
    ("call +44 20 7946 0958 today", ["7946", "0958"], "[PHONE]"),
    ("call +44 (0)20 7946 0958", ["7946", "0958"], "[PHONE]"),
    ("+44-20-7946-0958", ["7946", "0958"], "[PHONE]"),
    ("+442079460958", ["2079460958"], "[PHONE]"),
    ("0044 20 7946 0958", ["7946", "0958"], "[PHONE]"),
    ("my number is 020 7946 0958.", ["7946", "0958"], "[PHONE]"),
    ("(020) 7946 0958", ["7946", "0958"], "[PHONE]"),
    ("mobile 07700 900123", ["07700", "900123"], "[PHONE]"),
    ("US office +1 (415) 555-2671", ["415", "555", "2671"], "[PHONE]"),
    ("(415) 555-2671", ["415", "2671"], "[PHONE]"),
    ("415-555-2671", ["415", "2671"], "[PHONE]"),
    ("415.555.2671", ["415", "2671"], "[PHONE]"),
    ("Paris: +33 1 23 45 67 89", ["23 45 67 89"], "[PHONE]"),
    ("appelez le 01 23 45 67 89", ["23 45 67 89"], "[PHONE]"),
    ("Berlin +49 30 1234567", ["1234567"], "[PHONE]"),
    ("Berlin 030/1234567", ["1234567"], "[PHONE]"),
    ("Sydney tel:+61 2 9374 4000", ["9374", "4000"], "[PHONE]"),
    ("０２０ ７９４６ ０９５８", ["７９４６", "０９５８"], "[PHONE]"),
    ("call 0 2 0 7 9 4 6 0 9 5 8", ["7 9 4 6"], "[PHONE]"),
    ("020\u200b7946\u200b0958", ["7946", "0958"], "[PHONE]"),
    ("On 15/03/2024 call 020-7946-0958", ["7946", "0958"], "[PHONE]"),
    ("ph:020 7946 0958", ["7946", "0958"], "[PHONE]"),
    ("card 4111 1111 1111 1111", ["4111", "1111"], "[CARD]"),
    ("card 4111-1111-1111-1111", ["4111", "1111"], "[CARD]"),
    ("4111111111111111", ["4111111111111111"], "[CARD]"),
    ("mastercard 5500 0000 0000 0004", ["5500", "0004"], "[CARD]"),
    ("amex 3782 822463 10005", ["3782", "822463", "10005"], "[CARD]"),
    ("discover 6011-0009-9013-9424", ["6011", "9424"], "[CARD]"),
    ("visa 4012888888881881 exp 12/27", ["4012888888881881"], "[CARD]"),
    ("card 4111 1111 1111 1111 123", ["4111", "1111 1111"], "[CARD]"),
    ("paid with ４１１１ １１１１ １１１１ １１１１", ["４１１１"], "[CARD]"),
    ("on 2024-03-15 4111 1111 1111 1111", ["4111", "1111"], "[CARD]"),
    ("Hi, I'm Sally Thomas", ["Sally", "Thomas"], "[NAME]"),
    ("SALLY here", ["SALLY"], "[NAME]"),
    ("it is sally's booking", ["sally"], "[NAME]"),
    ("Mr O’Brien called", ["O’Brien"], "[NAME]"),
    ("ZOË wrote (Zoë)", ["ZOË", "Zoë"], "[NAME]"),
    ("Mrs Van  der Berg travels", ["Van  der Berg"], "[NAME]"),
    ("thanks, nguyen.", ["nguyen"], "[NAME]"),
]

MUST_STAY_AS_IS = [
    "Flight BA123 departs 14:30 from gate B12",
    "Flight BA 2490 on 2024-03-15",
    "Your flights LH400 and UA 901 are confirmed",
    "Departure 15/03/2024 at 10:45, arrival 16.03.2024 07:05",
    "On 15.03.2024 0930 local time",
    "The fare is £1,299.00 (€1.512,40) plus $45.50 in taxes",
    "Price: 1 299 EUR, or 0.99 per minute",
    "Order number 123456789 is on its way",
    "Order 4111111111111112 was refunded",
    "E-ticket 125-2345678901",
    "Booking reference ABC123, seat 14C",
    "Manage your booking at britishairways.com or at ba.com.",
    "Arrive at the airport 2 hours before; check in at terminal 5.",
    "Baggage allowance 23 kg, 2 x 32 kg in business",
    "Call us between 08:00 and 20:00 on 0800 numbers only",
    "Version 2.3.1 released 2024-01-05",
    "Room 1204, floor 12, +10 kg excess",
    "Meet me at noon. Thomasville is a town; Sallyanne is not on the list.",
    "The interest is 3.5% per year",
]


@pytest.mark.parametrize(("text", "secrets", "token"), MUST_NOT_SURVIVE)
def test_personal_data_does_not_survive(text, secrets, token):
    masked = mask_pii(text, NAMES)

    for secret in secrets:
        assert secret not in masked, f"{secret!r} survived in {masked!r}"
    assert token in masked


@pytest.mark.parametrize("text", MUST_STAY_AS_IS)
def test_ordinary_travel_text_is_not_mangled(text):
    assert mask_pii(text, NAMES) == text


def test_corpus_is_large_enough():
    assert len(MUST_NOT_SURVIVE) >= 30


def test_surrounding_text_is_kept():
    masked = mask_pii(
        "Sally (sally@example.com, +44 20 7946 0958) paid with 4111 1111 1111 1111 on 15/03/2024.",
        NAMES,
    )
    assert masked == "[NAME] ([EMAIL], [PHONE]) paid with [CARD] on 15/03/2024."


def test_card_followed_by_cvv_keeps_the_cvv_digits_only():
    assert mask_pii("card 4111 1111 1111 1111 123") == "card [CARD] 123"


def test_without_names_only_patterns_are_masked():
    assert PiiMasker().mask("Sally called 020 7946 0958") == "Sally called [PHONE]"


def test_single_letter_names_are_ignored():
    assert mask_pii("J is for jet", ["J"]) == "J is for jet"


def test_names_match_whole_words_only():
    masker = PiiMasker(["Ann"])
    assert (
        masker.mask("Ann planned an annual trip with ANN")
        == "[NAME] planned an annual trip with [NAME]"
    )


def test_names_with_regex_characters_are_literal():
    assert mask_pii("Mr A.B. Smith+ and ABxB", ["A.B.", "Smith+"]) == "Mr [NAME] [NAME] and ABxB"


def test_masking_is_idempotent():
    masker = PiiMasker(NAMES)
    for text, _, _ in MUST_NOT_SURVIVE:
        once = masker.mask(text)
        assert masker.mask(once) == once


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("4111111111111111", True),
        ("4111111111111112", False),
        ("378282246310005", True),
        ("79927398713", True),
    ],
)
def test_luhn(digits, valid):
    assert luhn_valid(digits) is valid


@pytest.mark.parametrize(
    "text",
    [
        "a." * 50_000,
        "1-" * 50_000,
        "1234 " * 20_000,
        "(1)" * 30_000,
        "a at b dot " * 10_000,
        "a@b." * 20_000,
    ],
)
def test_pathological_input_is_masked_in_linear_time(text):
    started = time.perf_counter()
    PiiMasker(NAMES).mask(text)
    assert time.perf_counter() - started < 10.0  # a backtracking blow-up takes minutes here
