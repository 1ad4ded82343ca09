"""A number's approved message templates, read from Meta's ``message_templates`` list.

The sandbox answers the same request in the same shape, so one reader serves both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_PARAMETER = re.compile(r"\{\{\s*(\d{1,3})\s*\}\}")


@dataclass(frozen=True)
class ApprovedTemplate:
    name: str
    language: str
    category: str
    body: str
    body_parameters: int

    @property
    def choice(self) -> str:
        """How a form names it: name and language together (one name has many languages)."""
        return f"{self.name}:{self.language}"


def body_parameter_count(body: str) -> int:
    """``{{1}}``…``{{n}}`` in a body: n, the number of values a send must give."""
    return max((int(number) for number in _PARAMETER.findall(body)), default=0)


def approved_templates(listing: Any) -> list[ApprovedTemplate]:
    """The APPROVED templates of a ``message_templates`` answer; malformed entries skipped."""
    entries = listing.get("data") if isinstance(listing, dict) else None
    found: list[ApprovedTemplate] = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("status", "APPROVED") != "APPROVED":
            continue
        name, language = entry.get("name"), entry.get("language")
        if not isinstance(name, str) or not name or not isinstance(language, str) or not language:
            continue
        body = next(
            (
                component.get("text")
                for component in entry.get("components") or []
                if isinstance(component, dict) and component.get("type") == "BODY"
            ),
            "",
        )
        body = body if isinstance(body, str) else ""
        category = entry.get("category")
        found.append(
            ApprovedTemplate(
                name=name[:512],
                language=language[:16],
                category=category.lower() if isinstance(category, str) else "",
                body=body,
                body_parameters=body_parameter_count(body),
            )
        )
    return sorted(found, key=lambda t: (t.name, t.language))
