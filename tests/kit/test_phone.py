"""Phone numbers (cases 11 and 12): E.164 out, whatever the spelling in; a country is never
guessed; Meta's ``wa_id`` (no ``+``) lands on the same number.
"""

from __future__ import annotations

import pytest

from wacrm.kit.errors import BadRequest
from wacrm.kit.phone import InvalidPhone, from_wa_id, normalise_phone, phone_or_400


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+1 (415) 555-0123", "+14155550123"),
        ("+14155550123", "+14155550123"),
        ("+1-415-555-0123", "+14155550123"),
        ("  +1 415 555 0123  ", "+14155550123"),
        ("+44 (0)20 7946 0958", "+442079460958"),  # the trunk (0) is dropped
        ("+39 06 1234 5678", "+390612345678"),  # Italy keeps its leading 0
        ("+1 201 555 0100", "+12015550100"),
    ],
)
def test_spellings_of_one_number_normalise_to_e164(raw, expected):
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "3105550100",  # no country code: never guessed
        "0612345678",
        "14155550123",  # bare digits are a wa_id, not API input
        "",
        "   ",
        "+",
        "+1",
        "+1 415 555 0123 ext. 12",
        "+14155550123x12",
        "+1 415 555 01234567890",
        "+999 1234 5678",  # no such country
        "+1 (415) 555-01\x0023",
        "+\uff11\uff14\uff11\uff15\uff15\uff15\uff15\uff10\uff11\uff12\uff13",  # fullwidth digits
        "+\u0661\u0664\u0661\u0665\u0665\u0665\u0665\u0660\u0661\u0662\u0663",  # Arabic-Indic
        "+" + "1" * 60,
        "tel:+14155550123",
    ],
)
def test_numbers_without_a_country_or_with_junk_are_refused(raw):
    with pytest.raises(InvalidPhone):
        normalise_phone(raw)


def test_a_refused_number_is_a_400_naming_the_field():
    with pytest.raises(BadRequest) as raised:
        phone_or_400("3105550100", "to")
    assert raised.value.status == 400
    assert raised.value.details[0]["field"] == "to"


def test_metas_wa_id_is_the_same_number_as_its_e164_spelling():
    assert from_wa_id("14155550123") == normalise_phone("+1 (415) 555-0123")
    assert from_wa_id(" 442079460958 ") == "+442079460958"


@pytest.mark.parametrize(
    "wa_id",
    ["", "+14155550123", "1415555012a", "1 415 555 0123", "\u0661\u0664\u0661\u0665", "12"],
)
def test_a_wa_id_must_be_plain_ascii_digits(wa_id):
    with pytest.raises(InvalidPhone):
        from_wa_id(wa_id)
