"""The sandbox's approved message templates: a small list with body parameter counts.

Meta's own ``hello_world`` comes first; the others are fictional. A JSON file
(``WACRM_SANDBOX_TEMPLATES_FILE``) replaces the list and is re-read when it changes,
so templates can be edited without a restart.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SandboxTemplate:
    name: str
    language: str
    body_parameters: int
    category: str = "utility"
    body: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def as_meta_json(self, template_id: int) -> dict[str, Any]:
        """As Meta lists it under ``message_templates``; a body the file left out is made of
        its placeholders, so readers count the same parameters."""
        placeholders = " ".join(f"{{{{{n}}}}}" for n in range(1, self.body_parameters + 1))
        return {
            "name": self.name,
            "language": self.language,
            "status": "APPROVED",
            "category": self.category.upper(),
            "components": [{"type": "BODY", "text": self.body or placeholders}],
            "id": str(template_id),
        }


DEFAULT_TEMPLATES: tuple[SandboxTemplate, ...] = (
    SandboxTemplate("hello_world", "en_US", 0, "utility", "Hello World"),
    SandboxTemplate(
        "order_update", "en_US", 2, "utility", "Hi {{1}}, your order {{2}} is on its way."
    ),
    SandboxTemplate(
        "order_update", "es", 2, "utility", "Hola {{1}}, tu pedido {{2}} está en camino."
    ),
    SandboxTemplate(
        "appointment_reminder",
        "en_US",
        3,
        "utility",
        "Hi {{1}}, a reminder of your appointment on {{2}} at {{3}}.",
    ),
    SandboxTemplate(
        "spring_sale", "en_US", 1, "marketing", "{{1}}, our spring sale starts today: 20% off."
    ),
)


def parse_templates(raw: Any) -> tuple[SandboxTemplate, ...]:
    """Templates from a JSON list of ``{name, language, body_parameters[, category, body]}``."""
    if not isinstance(raw, list):
        raise ValueError("the templates file must hold a JSON list")
    found: list[SandboxTemplate] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ValueError(f"template #{index} is not an object")
        name, language = item.get("name"), item.get("language")
        count = item.get("body_parameters", 0)
        if not isinstance(name, str) or not name or not isinstance(language, str) or not language:
            raise ValueError(f"template #{index} needs a name and a language")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError(f"template #{index}: body_parameters must be a count")
        category, body = item.get("category", "utility"), item.get("body", "")
        if not isinstance(category, str) or not isinstance(body, str):
            raise ValueError(f"template #{index}: category and body must be strings")
        found.append(SandboxTemplate(name, language, count, category.lower(), body))
    return tuple(found)


class TemplateCatalog:
    """The approved list: the defaults, or the file's list (reloaded when its mtime changes)."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._mtime: float | None = None
        self._templates = DEFAULT_TEMPLATES
        if path is not None:
            self._reload()  # a broken file fails at startup, loudly

    def _reload(self) -> None:
        assert self._path is not None
        mtime = self._path.stat().st_mtime
        if mtime != self._mtime:
            self._templates = parse_templates(json.loads(self._path.read_text()))
            self._mtime = mtime

    def all(self) -> tuple[SandboxTemplate, ...]:
        if self._path is not None:
            try:
                self._reload()
            except (OSError, ValueError) as exc:
                # Mid-edit files are common; keep serving the last good list.
                logger.warning("sandbox templates file not reloaded: %s", exc)
        return self._templates

    def find(self, name: str, language: str) -> SandboxTemplate | None:
        for template in self.all():
            if template.name == name and template.language == language:
                return template
        return None

    def has_name(self, name: str) -> bool:
        return any(template.name == name for template in self.all())
