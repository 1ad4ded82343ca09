"""Schemathesis against the served OpenAPI document: no 5xx, and every answer is one the
document declares (status code, content type, body schema).

A real server on a loopback port (its sandbox calling back into it) over the test
database, an account with one of everything, and a key with every scope. Each operation
gets positive cases, whose path ids are that account's real rows and whose phone numbers,
URLs and template names are often realistic (so handlers get past the first check to the
real work), and negative cases (malformed ids, bodies and queries). Hypothesis is
derandomized and the example counts are bounded: a run is the same every time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.support import B_PHONE, populated_account
from tests.broadcasts.support import serving
from wacrm.events.service import EventType
from wacrm.settings import Settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = {GenerationMode.POSITIVE: 15, GenerationMode.NEGATIVE: 6}
PHONES = [B_PHONE, "+1 (415) 555-0123", "+44 (0)20 7946 0958", "4155550123", "+1415", "+٤١٥"]
# Realistic values replace generated ones most of the time, not always.
MOSTLY = st.sampled_from([True, True, True, False])
URLS = [
    "http://127.0.0.1:9/h",
    "https://[::1]/h",
    "https://example.com/hooks/wacrm",
    "HTTPS://Example.com/h",
    "http://127.0.0.1:9/h",
    "https://127.0.0.1:8443\\@example.com/h",
    "https://user:pw@example.com/h",
    "ftp://example.com/h",
]


def realistic(ids: dict[str, str]) -> dict[str, st.SearchStrategy[Any]]:
    """Values for body fields that random strings almost never get right."""
    events = [e.value for e in EventType if e is not EventType.WEBHOOK_TEST]
    values_of_name = st.sampled_from(["hello_world", "order_update"])
    words = st.lists(st.sampled_from(["vip", "Café", "cafe", "lead", "x" * 64]), max_size=3)
    return {
        "to": st.sampled_from(PHONES),
        "phone": st.sampled_from(PHONES),
        "url": st.sampled_from(URLS),
        "media_url": st.sampled_from(URLS),
        "template_name": values_of_name,
        "name": st.sampled_from(["hello_world", "order_update", "Ana"]),
        "template_language": st.sampled_from(["en_US", "es"]),
        "language": st.sampled_from(["en_US", "es"]),
        "params": st.lists(st.sampled_from(["Ana", "A-1"]), max_size=3),
        "text": st.sampled_from(["hi", "héllo 👋"]),
        "type": st.sampled_from(["text", "template", "image"]),
        "description": st.sampled_from(["orders", None]),
        "email": st.sampled_from(["ana@example.com", "ana@", None]),
        "company": st.sampled_from(["Acme", None]),
        "tags": words,
        "add": words,
        "remove": words,
        "events": st.lists(st.sampled_from(events), min_size=1, max_size=3),
        "channel_id": st.sampled_from([ids["channel_id"], None]),
        "reply_to_message_id": st.sampled_from([ids["message_id"], None]),
        "contact_id": st.just(ids["contact_id"]),
        "template": st.fixed_dictionaries(
            {"name": values_of_name, "language": st.just("en_US")},
            optional={"params": st.lists(st.sampled_from(["Ana", "A-1"]), max_size=2)},
        ),
    }


def make_realistic(
    value: Any, data: st.DataObject, values: dict[str, Any], fields: Iterable[str] = ()
) -> Any:
    """``value`` with some of its known fields (at any depth) replaced by realistic values,
    and some of the optional ``fields`` it lacks added."""
    if isinstance(value, list):
        return [make_realistic(item, data, values) for item in value]
    if not isinstance(value, dict):
        return value
    changed = {}
    for key, item in value.items():
        if key in values and data.draw(MOSTLY):
            changed[key] = data.draw(values[key])
        else:
            changed[key] = make_realistic(item, data, values)
    for key in fields:
        if key not in changed and key in values and data.draw(st.booleans()):
            changed[key] = data.draw(values[key])
    return changed


def body_fields(document: dict[str, Any]) -> dict[tuple[str, str], list[str]]:
    """The top-level JSON body fields of each operation, by (METHOD, path)."""
    schemas = document["components"]["schemas"]
    found = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema", {})
            if "$ref" in schema:
                schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
            found[(method.upper(), path)] = sorted(schema.get("properties", {}))
    return found


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhooks_allow_private_targets": True})


@dataclass(frozen=True)
class Finding:
    operation: str
    request: str
    sent: str
    status: int
    problem: str
    body: str

    def __str__(self) -> str:
        return (
            f"{self.operation}: {self.request} {self.sent[:300]}\n"
            f"    -> {self.status} {self.problem}: {self.body[:300]}"
        )


def fuzz(base_url: str, auth: dict[str, str], ids: dict[str, str]) -> tuple[list[Finding], int]:
    """Every operation of the served document; the distinct problems found, and the calls."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    findings: dict[tuple[str, str], Finding] = {}
    http = requests.Session()
    values = realistic(ids)
    optional = body_fields(schema.raw_schema)
    calls = 0

    def call(case: Any, mode: GenerationMode, data: st.DataObject) -> None:
        nonlocal calls
        if mode is GenerationMode.POSITIVE and isinstance(case.body, dict | list):
            fields = optional[(case.method.upper(), case.operation.path)]
            case.body = make_realistic(case.body, data, values, fields)
        calls += 1
        response = case.call(base_url=base_url, session=http, headers=dict(auth))
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            for failure in group.exceptions:
                label = case.operation.label
                findings.setdefault(
                    (label, failure.title),
                    Finding(
                        operation=label,
                        request=f"{case.method} {response.request.url}",
                        sent=repr(response.request.body),
                        status=response.status_code,
                        problem=failure.title,
                        body=response.text,
                    ),
                )

    operations = [result.ok() for result in schema.get_all_operations()]
    # Deleting the account's webhook would turn the other webhook operations into 404s.
    operations.sort(key=lambda operation: operation.method.upper() == "DELETE")
    for operation in operations:
        known = {p.name: ids[p.name] for p in operation.path_parameters if p.name in ids}
        for mode, examples in EXAMPLES.items():
            fixed = known if mode is GenerationMode.POSITIVE else None
            test = hypothesis.settings(
                max_examples=examples,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )(
                hypothesis.given(
                    case=operation.as_strategy(mode, path_parameters=fixed),
                    mode=st.just(mode),
                    data=st.data(),
                )(call)
            )
            try:
                test()
            except Unsatisfiable:  # an operation without input has nothing to make invalid
                assert mode is GenerationMode.NEGATIVE, operation.label
    return list(findings.values()), calls


async def test_the_api_answers_only_what_its_openapi_document_declares(db, settings):
    async with serving(settings, status_delay=0) as (base_url, _app):
        async with httpx.AsyncClient(base_url=base_url) as client:
            ids, key = await populated_account(client, db, settings)
        findings, calls = await asyncio.to_thread(fuzz, base_url, key.headers, ids)
    assert calls >= 500, "the fuzz hardly reached the API"
    assert not findings, "\n".join(str(f) for f in findings)
