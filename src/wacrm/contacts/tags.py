"""Tag names: how they are cleaned, and the folding that makes ``Café``, ``cafe`` and ``CAFE``
one tag. The folded form is stored in ``Tag.name_key`` under a unique constraint.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from wacrm.kit.errors import field_error
from wacrm.kit.text import clean_name

MAX_TAG_LENGTH = 64  # both the name and its folded key (Tag.name / Tag.name_key)
MAX_TAGS_PER_REQUEST = 100

# Letters with a stroke or ligatures carry no combining mark, so NFKD alone keeps them
# apart from their plain forms; users expect "Søren" to find "soren" all the same.
_BASE_LETTERS = str.maketrans(
    {
        "ø": "o",
        "đ": "d",
        "ð": "d",
        "ł": "l",
        "ħ": "h",
        "ŧ": "t",
        "\u0131": "i",
        "æ": "ae",
        "œ": "oe",
    }
)


@dataclass(frozen=True)
class TagName:
    """A cleaned tag name as typed (the display name if it creates the tag) and its key."""

    name: str
    key: str


def fold(name: str) -> str:
    """The case- and accent-insensitive key of a name; runs of spaces count as one."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", name).casefold())
    text = "".join(char for char in text if not unicodedata.combining(char))
    text = unicodedata.normalize("NFC", text.translate(_BASE_LETTERS))
    return " ".join(text.split())


def clean_tag_name(raw: str) -> TagName:
    """Trimmed, 1-64 characters, no control characters; raises ValueError."""
    name = unicodedata.normalize("NFC", clean_name(raw, max_length=MAX_TAG_LENGTH))
    key = fold(name)
    if not key:
        raise ValueError("must contain a letter, digit or symbol")
    if len(key) > MAX_TAG_LENGTH:  # "ß" folds to "ss": a full-length name can outgrow 64
        raise ValueError(f"must be at most {MAX_TAG_LENGTH} characters once case-folded")
    return TagName(name=name, key=key)


def tag_names_or_400(raws: Iterable[str], field: str = "tags") -> list[TagName]:
    """Cleaned names, one per key (the first spelling wins), in the order given."""
    names: dict[str, TagName] = {}
    for index, raw in enumerate(raws):
        try:
            tag = clean_tag_name(raw)
        except ValueError as exc:
            raise field_error(f"{field}.{index}", str(exc)) from None
        names.setdefault(tag.key, tag)
    return list(names.values())


def tag_key_or_400(raw: str, field: str = "tag") -> str:
    try:
        return clean_tag_name(raw).key
    except ValueError as exc:
        raise field_error(field, str(exc)) from None
