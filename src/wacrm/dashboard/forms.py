"""Reading HTML form posts strictly, and carrying their errors back into the page.

The dashboard parses ``application/x-www-form-urlencoded`` itself instead of letting a
lenient parser turn bad bytes into U+FFFD: a field that is not UTF-8 text, or is huge,
is reported against that field and never reaches a service.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

from pydantic import BaseModel, ValidationError

from wacrm.kit.errors import AppError, BadRequest

FORM_TYPE = "application/x-www-form-urlencoded"
CSRF_FIELD = "csrf_token"
MAX_FIELDS = 200
MAX_FIELD_CHARS = 20_000
Schema = TypeVar("Schema", bound=BaseModel)


@dataclass
class PostedForm:
    """The fields of one form post; ``problems`` names fields that were not acceptable text."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    def value(self, name: str) -> str:
        """The first value of ``name``, or "" (a missing field reads as empty)."""
        return self.fields.get(name, [""])[0]

    def values(self, name: str) -> list[str]:
        return self.fields.get(name, [])


def parse_form(body: bytes, content_type: str) -> PostedForm:
    if content_type.split(";", 1)[0].strip().lower() != FORM_TYPE:
        raise BadRequest(f"This form must be sent as {FORM_TYPE}.")
    pairs = [pair for pair in body.split(b"&") if pair]
    if len(pairs) > MAX_FIELDS:
        raise BadRequest(f"A form may carry at most {MAX_FIELDS} fields.")
    form = PostedForm()
    for pair in pairs:
        raw_name, _, raw_value = pair.partition(b"=")
        try:
            name = _decode(raw_name)
        except UnicodeDecodeError:
            continue  # no field of ours has such a name
        try:
            value = _decode(raw_value)
        except UnicodeDecodeError:
            form.problems[name] = "is not valid text (UTF-8)"
            value = ""
        if len(value) > MAX_FIELD_CHARS:
            form.problems[name] = f"is far too long ({len(value)} characters)"
            value = ""
        form.fields.setdefault(name, []).append(value)
    return form


def refuse_problems(form: PostedForm) -> None:
    """A field that was not acceptable text refuses the form: a 400 naming each such field."""
    if form.problems:
        details = [{"field": name, "message": text} for name, text in form.problems.items()]
        raise BadRequest("The form was not valid.", details=details)


def validated(schema: type[Schema], data: dict[str, Any]) -> Schema:
    """Form values through the API's own request schema: the same rules, and its refusals
    as a 400 naming each field."""
    try:
        return schema.model_validate(data)
    except ValidationError as error:
        details = [
            {
                "field": str(problem["loc"][0]) if problem["loc"] else "",
                "message": str(problem["msg"]).removeprefix("Value error, "),
            }
            for problem in error.errors()
        ]
        raise BadRequest("The form was not valid.", details=details) from None


def _decode(raw: bytes) -> str:
    return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")


@dataclass(frozen=True)
class FormErrors:
    """What to show on a form that was refused: one message per field, "" for the whole form.

    Templates render the summary at the top (each entry links to its field) and each
    message beside its control, with ``aria-invalid`` and ``aria-describedby``.
    """

    fields: dict[str, str]

    @classmethod
    def of(cls, error: AppError, rename: Mapping[str, str] | None = None) -> FormErrors:
        """From a service's error; ``rename`` maps its field names to the form's."""
        rename = rename or {}
        fields: dict[str, str] = {}
        for detail in error.details or []:
            name = str(detail.get("field") or "")
            name = rename.get(name, name)
            message = str(detail.get("message", ""))
            fields[name] = f"{fields[name]}; {message}" if name in fields else message
        return cls(fields or {"": error.message})

    @classmethod
    def on(cls, name: str, message: str) -> FormErrors:
        return cls({name: message})

    def get(self, name: str) -> str:
        return self.fields.get(name, "")
