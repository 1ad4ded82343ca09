"""Meta-shaped refusals, and the payload checks the sandbox makes before accepting a send."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse

from wacrm.whatsapp.sandbox.templates import SandboxTemplate, TemplateCatalog

MAX_TEXT = 4096
MAX_CAPTION = 1024
MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})
CAPTIONED = frozenset({"image", "video", "document"})
KNOWN_TYPES = MEDIA_TYPES | {"text", "template", "location", "contacts", "interactive", "reaction"}


class GraphError(Exception):
    """A refusal rendered exactly like the Graph API's ``{"error": {...}}``."""

    oauth_error = "invalid_request"

    def __init__(
        self,
        code: int,
        title: str,
        details: str | None = None,
        *,
        http_status: int = 400,
        subcode: int | None = None,
    ) -> None:
        super().__init__(f"(#{code}) {title}")
        self.code, self.title, self.details = code, title, details
        self.http_status, self.subcode = http_status, subcode

    @property
    def message(self) -> str:
        return f"(#{self.code}) {self.title}"

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message,
            "type": "OAuthException",
            "code": self.code,
        }
        if self.details is not None:
            error["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["fbtrace_id"] = secrets.token_urlsafe(18)
        return {"error": error}

    def response(self) -> JSONResponse:
        challenge = f'OAuth "Facebook Platform" "{self.oauth_error}" "{self.message}"'
        return JSONResponse(
            self.body(), status_code=self.http_status, headers={"WWW-Authenticate": challenge}
        )


class InvalidToken(GraphError):
    oauth_error = "invalid_token"

    def __init__(self) -> None:
        super().__init__(190, "Invalid OAuth access token", http_status=401)

    @property
    def message(self) -> str:
        return "Invalid OAuth access token - Cannot parse access token"


def _invalid(details: str) -> GraphError:
    return GraphError(100, "Invalid parameter", details)


@dataclass(frozen=True)
class Outbound:
    """An accepted send: who to, what kind, and the template when it is one."""

    to: str
    wa_id: str
    kind: str
    template: SandboxTemplate | None


def check_send(payload: Any, templates: TemplateCatalog) -> Outbound:
    """Refuse what Meta would refuse, with Meta's code; return the send's essentials."""
    if not isinstance(payload, dict):
        raise _invalid("The request body must be a JSON object.")
    if payload.get("messaging_product") != "whatsapp":
        raise _invalid("The parameter messaging_product is required and must be 'whatsapp'.")
    if payload.get("recipient_type", "individual") != "individual":
        raise _invalid("Param recipient_type must be 'individual'.")
    to = payload.get("to")
    if not isinstance(to, str) or not to:
        raise _invalid("The parameter to is required.")
    wa_id = to.removeprefix("+")
    if not (wa_id.isascii() and wa_id.isdigit() and 7 <= len(wa_id) <= 15):
        raise _invalid("Param to must be a phone number: digits with an optional leading +.")
    kind = payload.get("type", "text")
    if not isinstance(kind, str) or kind not in KNOWN_TYPES:
        raise GraphError(131051, "Unsupported message type", f"Message type {kind!r} is unknown.")
    body = payload.get(kind)
    if body is None:
        raise _invalid(f"The parameter {kind} is required.")
    _check_context(payload.get("context"))
    template = None
    if kind == "text":
        _check_text(body)
    elif kind in MEDIA_TYPES:
        _check_media(kind, body)
    elif kind == "template":
        template = _check_template(body, templates)
    elif kind == "location":
        _check_location(body)
    elif kind == "reaction":
        _check_reaction(body)
    elif not isinstance(body, dict | list):
        raise _invalid(f"Param {kind} must be an object.")
    return Outbound(to=to, wa_id=wa_id, kind=kind, template=template)


def _check_context(context: Any) -> None:
    if context is None:
        return
    message_id = context.get("message_id") if isinstance(context, dict) else None
    if not isinstance(message_id, str) or not message_id:
        raise _invalid("Param context['message_id'] is required.")


def _check_text(text: Any) -> None:
    if not isinstance(text, dict):
        raise _invalid("Param text must be an object.")
    body = text.get("body")
    if not isinstance(body, str) or not body:
        raise _invalid("The parameter text['body'] is required.")
    if len(body) > MAX_TEXT:
        raise _invalid(f"Param text['body'] must be at most {MAX_TEXT} characters long.")
    if not isinstance(text.get("preview_url", False), bool):
        raise _invalid("Param text['preview_url'] must be a boolean.")


def _check_media(kind: str, media: Any) -> None:
    if not isinstance(media, dict):
        raise _invalid(f"Param {kind} must be an object.")
    link, media_id = media.get("link"), media.get("id")
    if (link is None) == (media_id is None):
        raise _invalid(f"Param {kind} needs exactly one of 'link' or 'id'.")
    if link is not None:
        parts = urlsplit(link) if isinstance(link, str) else None
        if parts is None or parts.scheme not in {"http", "https"} or not parts.hostname:
            raise _invalid(f"Param {kind}['link'] must be an http(s) URL.")
    elif not isinstance(media_id, str) or not media_id.isdigit():
        raise _invalid(f"Param {kind}['id'] must be a media id.")
    caption = media.get("caption")
    if caption is not None:
        if kind not in CAPTIONED:
            raise _invalid(f"Param {kind}['caption'] is not allowed for {kind} messages.")
        if not isinstance(caption, str) or len(caption) > MAX_CAPTION:
            raise _invalid(f"Param {kind}['caption'] must be at most {MAX_CAPTION} characters.")
    if "filename" in media and (kind != "document" or not isinstance(media["filename"], str)):
        raise _invalid("Param filename is only allowed for document messages.")


def _check_template(template: Any, templates: TemplateCatalog) -> SandboxTemplate:
    if not isinstance(template, dict):
        raise _invalid("Param template must be an object.")
    name, language = template.get("name"), template.get("language")
    code = language.get("code") if isinstance(language, dict) else None
    if not isinstance(name, str) or not name:
        raise _invalid("The parameter template['name'] is required.")
    if not isinstance(code, str) or not code:
        raise _invalid("The parameter template['language']['code'] is required.")
    found = templates.find(name, code)
    if found is None:
        details = f"template name ({name}) does not exist in {code}"
        raise GraphError(132001, "Template name does not exist in the translation", details)
    given = _body_parameter_count(template.get("components", []))
    if given != found.body_parameters:
        raise GraphError(
            132000,
            "Number of parameters does not match the expected number of params",
            f"body: number of localizable_params ({given}) does not match the expected "
            f"number of params ({found.body_parameters})",
        )
    return found


def _body_parameter_count(components: Any) -> int:
    if not isinstance(components, list):
        raise _invalid("Param template['components'] must be a list.")
    count = 0
    for component in components:
        if not isinstance(component, dict) or not isinstance(component.get("type"), str):
            raise _invalid("Every template component needs a type.")
        parameters = component.get("parameters", [])
        if not isinstance(parameters, list):
            raise _invalid("Param template['components'][]['parameters'] must be a list.")
        for parameter in parameters:
            kind = parameter.get("type") if isinstance(parameter, dict) else None
            if not isinstance(kind, str):
                raise _invalid("Every template parameter needs a type.")
            if kind == "text" and not (
                isinstance(parameter.get("text"), str) and parameter["text"]
            ):
                raise _invalid("Parameter 'text' is mandatory for component parameter type 'text'")
        if component["type"].lower() == "body":
            count += len(parameters)
    return count


def _check_location(location: Any) -> None:
    if not isinstance(location, dict):
        raise _invalid("Param location must be an object.")
    for axis, bound in (("latitude", 90.0), ("longitude", 180.0)):
        try:
            value = float(location[axis])
        except (KeyError, TypeError, ValueError):
            raise _invalid(f"The parameter location['{axis}'] is required.") from None
        if not -bound <= value <= bound:
            raise _invalid(f"Param location['{axis}'] is out of range.")


def _check_reaction(reaction: Any) -> None:
    if not isinstance(reaction, dict) or not isinstance(reaction.get("message_id"), str):
        raise _invalid("The parameter reaction['message_id'] is required.")
    if not isinstance(reaction.get("emoji", ""), str):
        raise _invalid("Param reaction['emoji'] must be a string.")
