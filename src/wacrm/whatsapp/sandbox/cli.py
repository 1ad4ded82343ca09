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


TargetOption = Annotated[
    str | None,
    typer.Option(
        help="Base URL of the server running the sandbox [default: WACRM_PUBLIC_BASE_URL, "
        "else http://127.0.0.1:8000]"
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON")]


def _call_sandbox(method: str, target: str | None, path: str, **kwargs: Any) -> Any:
    """Call one of the sandbox's own endpoints; its answer's JSON, or a clean exit 1."""
    settings = get_settings()
    url = f"{(target or settings.public_base_url).rstrip('/')}/sandbox/{path}"
    # The sandbox's token comes from this installation's secret key, like the server's.
    headers = {"Authorization": f"Bearer {settings.sandbox_access_token}"}
    try:
        response = httpx.request(method, url, headers=headers, timeout=30, **kwargs)
    except httpx.InvalidURL as exc:  # not an HTTPError: it was a traceback
        raise _fail(f"{url} is not a valid URL: {exc}") from None
    except httpx.HTTPError as exc:
        raise _fail(
            f"cannot reach the sandbox at {url}: {str(exc) or type(exc).__name__}"
        ) from None
    if response.status_code == 404:
        raise _fail(f"no sandbox at {url} (is it enabled there?)")
    if not response.is_success:
        raise _fail(f"the sandbox answered {response.status_code}: {_error_message(response)}")
    try:
        return response.json()
    except ValueError:
        raise _fail(f"unexpected answer from {url}: {response.text[:200]}") from None


@sandbox_app.command("inbound")
def inbound(
    phone_number_id: Annotated[str, typer.Option(help="The business number's phone_number_id")],
    from_: Annotated[str, typer.Option("--from", help="The customer, e.g. +14155550123")],
    text: Annotated[str, typer.Option(help="What the customer writes")],
    name: Annotated[str, typer.Option(help="The customer's WhatsApp profile name")] = (
        "Sandbox Customer"
    ),
    target: TargetOption = None,
    as_json: JsonOption = False,
) -> None:
    """Simulate a customer message: the sandbox posts Meta's signed webhook to wacrm."""
    body = {"phone_number_id": phone_number_id, "from": from_, "text": text, "name": name}
    answer = _call_sandbox("POST", target, "inbound", json=body)
    wamid = answer.get("wamid") if isinstance(answer, dict) else None
    if not isinstance(wamid, str):
        raise _fail(f"unexpected answer from the sandbox: {json.dumps(answer)[:200]}")
    typer.echo(json.dumps(answer, indent=2) if as_json else wamid)
    status = answer.get("webhook_status")
    if not isinstance(status, int) or not 200 <= status < 300:
        reason = answer.get("webhook_error") or f"it answered {status}"
        raise _fail(f"the webhook receiver did not accept the message ({reason})")


@sandbox_app.command("sends")
def sends(target: TargetOption = None, as_json: JsonOption = False) -> None:
    """How many sends the sandbox accepted since it started, per customer number: how a test
    or a demo checks that nobody was sent a message twice."""
    answer = _call_sandbox("GET", target, "sends")
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("by_recipient"), dict):
        raise _fail(f"unexpected answer from the sandbox: {json.dumps(answer)[:200]}")
    counts = {"total": data.get("total"), "by_recipient": data["by_recipient"]}
    if as_json:
        typer.echo(json.dumps({"sends": counts}, indent=2))
        return
    typer.echo(f"{counts['total']} sends accepted, to {len(counts['by_recipient'])} numbers")
    for wa_id, count in sorted(counts["by_recipient"].items()):
        typer.echo(f"  +{wa_id}  {count}")
