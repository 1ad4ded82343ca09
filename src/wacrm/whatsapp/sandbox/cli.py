"""``wacrm sandbox``: serve the simulator alone, or play a customer writing in."""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer

from wacrm.settings import get_settings

sandbox_app = typer.Typer(help="The WhatsApp Cloud API sandbox.", no_args_is_help=True)


@sandbox_app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8100,
) -> None:
    """Run the sandbox on its own, at /sandbox like the in-process one."""
    import uvicorn

    uvicorn.run(
        "wacrm.whatsapp.sandbox.app:create_standalone_app",
        factory=True,
        host=host,
        port=port,
        access_log=False,
        log_level="info",
    )


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _error_message(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        details = error.get("details") or []
        fields = "; ".join(f"{d.get('field')}: {d.get('message')}" for d in details)
        return f"{error.get('message')} {fields}".strip()
    return json.dumps(body)[:200]


@sandbox_app.command("inbound")
def inbound(
    phone_number_id: Annotated[str, typer.Option(help="The business number's phone_number_id")],
    from_: Annotated[str, typer.Option("--from", help="The customer, e.g. +14155550123")],
    text: Annotated[str, typer.Option(help="What the customer writes")],
    name: Annotated[str, typer.Option(help="The customer's WhatsApp profile name")] = (
        "Sandbox Customer"
    ),
    target: Annotated[
        str | None,
        typer.Option(
            help="Base URL of the server running the sandbox [default: WACRM_PUBLIC_BASE_URL, "
            "else http://127.0.0.1:8000]"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON")] = False,
) -> None:
    """Simulate a customer message: the sandbox posts Meta's signed webhook to wacrm."""
    settings = get_settings()
    url = f"{(target or settings.public_base_url).rstrip('/')}/sandbox/inbound"
    body = {"phone_number_id": phone_number_id, "from": from_, "text": text, "name": name}
    # The sandbox's token comes from this installation's secret key, like the server's.
    headers = {"Authorization": f"Bearer {settings.sandbox_access_token}"}
    try:
        response = httpx.post(url, json=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        raise _fail(
            f"cannot reach the sandbox at {url}: {str(exc) or type(exc).__name__}"
        ) from None
    if response.status_code == 404:
        raise _fail(f"no sandbox at {url} (is it enabled there?)")
    if not response.is_success:
        raise _fail(f"the sandbox answered {response.status_code}: {_error_message(response)}")
    try:
        answer = response.json()
        wamid = answer["wamid"]
    except (ValueError, KeyError, TypeError):
        raise _fail(f"unexpected answer from {url}: {response.text[:200]}") from None
    typer.echo(json.dumps(answer, indent=2) if as_json else wamid)
    status = answer.get("webhook_status")
    if not isinstance(status, int) or not 200 <= status < 300:
        reason = answer.get("webhook_error") or f"it answered {status}"
        raise _fail(f"the webhook receiver did not accept the message ({reason})")
