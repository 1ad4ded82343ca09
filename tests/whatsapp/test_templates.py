"""A number's approved templates: read from Meta's ``message_templates`` list, which the
sandbox serves in the same shape (over real loopback HTTP, through the real client)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tests.whatsapp import running
from wacrm.whatsapp.client import MetaError
from wacrm.whatsapp.templates import approved_templates, body_parameter_count


async def test_the_client_lists_the_sandboxs_templates_like_metas(tmp_path: Path) -> None:
    async with running(tmp_path) as world:
        creds = dataclasses.replace(world.creds(), waba_id="sandbox")
        templates = await world.client.approved_templates(creds)
    by_choice = {t.choice: t for t in templates}
    hello = by_choice["hello_world:en_US"]
    assert (hello.body, hello.body_parameters, hello.category) == ("Hello World", 0, "utility")
    assert by_choice["order_update:es"].body_parameters == 2
    assert by_choice["appointment_reminder:en_US"].body_parameters == 3
    assert templates == sorted(templates, key=lambda t: (t.name, t.language))


async def test_a_file_template_without_a_body_keeps_its_parameter_count(tmp_path: Path) -> None:
    path = tmp_path / "templates.json"
    path.write_text(json.dumps([{"name": "bare", "language": "en", "body_parameters": 2}]))
    async with running(tmp_path, sandbox_templates_file=path) as world:
        creds = dataclasses.replace(world.creds(), waba_id="sandbox")
        [bare] = await world.client.approved_templates(creds)
    assert (bare.choice, bare.body_parameters) == ("bare:en", 2)


async def test_a_wrong_token_or_no_business_account_is_a_meta_error(tmp_path: Path) -> None:
    async with running(tmp_path) as world:
        wrong = dataclasses.replace(world.creds(token="not-the-token"), waba_id="sandbox")
        with pytest.raises(MetaError) as refused:
            await world.client.approved_templates(wrong)
        assert (refused.value.code, refused.value.http_status) == (190, 401)
        with pytest.raises(MetaError, match="No WhatsApp Business Account id"):
            await world.client.approved_templates(world.creds())


def test_only_approved_well_formed_entries_are_kept() -> None:
    listing = {
        "data": [
            {
                "name": "ok",
                "language": "en",
                "status": "APPROVED",
                "category": "MARKETING",
                "components": [
                    {"type": "HEADER", "text": "{{9}}"},
                    {"type": "BODY", "text": "Hi {{1}}, {{ 2 }} and {{1}} again"},
                ],
            },
            {"name": "waiting", "language": "en", "status": "PENDING", "components": []},
            {"name": "", "language": "en", "status": "APPROVED"},
            {"name": "no_language", "status": "APPROVED"},
            "not an object",
            {"name": "no_body", "language": "de", "status": "APPROVED", "components": None},
        ]
    }
    found = approved_templates(listing)
    assert [(t.choice, t.body_parameters, t.category) for t in found] == [
        ("no_body:de", 0, ""),
        ("ok:en", 2, "marketing"),
    ]
    for broken in (None, [], {"data": "x"}, {"data": None}, "text"):
        assert approved_templates(broken) == []
    assert body_parameter_count("{{1}} {{12}} {{x}} {{}}") == 12
