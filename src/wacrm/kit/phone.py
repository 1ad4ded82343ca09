"""Phone numbers on the wire are E.164. Input is normalised with ``phonenumbers``; the
country is never guessed: a number must carry its country code (``+`` or Meta's bare digits).
"""

from __future__ import annotations

import phonenumbers

from wacrm.kit.errors import field_error

MAX_INPUT = 40


class InvalidPhone(ValueError):
    pass


def normalise_phone(raw: str) -> str:
    """``+1 (415) 555-0123`` → ``+14155550123``; raises InvalidPhone."""
    if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_INPUT:
        raise InvalidPhone("must be a phone number in international format, e.g. +14155550123")
    text = raw.strip()
    if not text.startswith("+"):
        raise InvalidPhone("must start with + and the country code, e.g. +14155550123")
    if not all(ch.isascii() for ch in text):
        # phonenumbers folds other scripts' digits; we refuse them rather than guess.
        raise InvalidPhone("must use ASCII digits")
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        raise InvalidPhone("is not a valid international phone number") from None
    if number.extension:
        raise InvalidPhone("must not carry an extension")
    if not phonenumbers.is_possible_number(number) or not phonenumbers.is_valid_number(number):
        raise InvalidPhone("is not a valid phone number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def from_wa_id(wa_id: str) -> str:
    """Meta's ``wa_id`` is the E.164 number without its ``+``."""
    digits = wa_id.strip()
    if not digits.isascii() or not digits.isdigit():
        raise InvalidPhone("wa_id must be digits")
    return normalise_phone("+" + digits)


def phone_or_400(raw: str, field: str = "phone") -> str:
    try:
        return normalise_phone(raw)
    except InvalidPhone as exc:
        raise field_error(field, str(exc)) from None
