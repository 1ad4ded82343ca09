"""Soak: a bounded run of mixed traffic against a real ``wacrm serve`` + ``wacrm worker`` on
PostgreSQL with Redis, loopback only; reports what was lost, duplicated or answered 5xx, and
how each process's memory moved.

Traffic, from a few concurrent clients at a steady pace: API reads and writes with a key
(contacts, conversations, messages), customers writing in through the sandbox (signed
webhook posts), sends whose sandbox status callbacks come back (sent, delivered, read), and
every event fanned out to a loopback webhook receiver. After the run it waits (bounded) for
the queues to drain, then checks: every inbound wamid stored exactly once; every send has
one message row and ends ``read``; every event delivered to the receiver at least once.

    .venv/bin/python bench/soak.py                 # 5 minutes: scratch database, own Redis
    .venv/bin/python bench/soak.py --seconds 45 --json --database-url URL --redis-url URL
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _harness import WACRM, bench_env, free_port, progress, scratch_postgres, seed_settings
from sqlalchemy import func, select

from wacrm.accounts import service as accounts_service
from wacrm.api_keys import service as keys_service
from wacrm.api_keys.scopes import ALL_SCOPES
from wacrm.audit.service import CLI_ACTOR
from wacrm.channels.service import add_sandbox_channel
from wacrm.kit.db import Database
from wacrm.models import Message
from wacrm.models.webhooks import WebhookDelivery
from wacrm.webhooks import service as webhooks_service
from webhooks import Receiver

CUSTOMERS = 150
DRAIN_SECONDS = 180.0
WARM_UP_SECONDS = 15.0
EVENTS = ["message.received", "message.status_updated", "contact.created", "conversation.created"]
# Lines in a server's log that stand for an answer of 5xx nobody's client saw (the sandbox's
# status callbacks into /webhooks/whatsapp) or a bug.
SERVER_ERRORS = re.compile(r"unhandled error|Exception in ASGI application|answered 5\d\d")


@dataclass
class Seeded:
    account_id: uuid.UUID
    key: str
    phone_number_id: str
    sandbox_token: str  # a simulated customer writes in with the sandbox's token


@dataclass
class Traffic:
    """What the clients did and saw."""

    statuses: Counter[str] = field(default_factory=Counter)  # "GET /contacts 200"
    transport_errors: int = 0
    inbound_wamids: list[str] = field(default_factory=list)
    sent_message_ids: list[str] = field(default_factory=list)
    conversations: list[str] = field(default_factory=list)
    contacts: list[str] = field(default_factory=list)
    wrote_in: set[str] = field(default_factory=set)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@contextlib.contextmanager
def own_redis(directory: Path) -> Iterator[str]:
    """A private redis-server on a free loopback port, for runs not given a Redis URL."""
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(directory)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


async def seed(url: str, receiver_url: str, var_dir: Path) -> Seeded:
    settings = seed_settings(url, var_dir)
    database = Database(url)
    try:
        async with database.sessions() as session:
            created = await accounts_service.create_account(
                session, "Soak", f"soak-{uuid.uuid4().hex[:8]}@example.com"
            )
            account_id = created.account.id
            key = await keys_service.create_key(
                session, account_id=account_id, actor=CLI_ACTOR, name="soak", scopes=ALL_SCOPES
            )
            channel = await add_sandbox_channel(session, settings, account_id=account_id)
            await webhooks_service.create_endpoint(
                session,
                settings,
                account_id,
                url=receiver_url,
                events=EVENTS,
                description="soak receiver",
                is_active=True,
            )
            await session.commit()
            return Seeded(
                account_id, key.plaintext, channel.phone_number_id, settings.sandbox_access_token
            )
    finally:
        await database.dispose()


def next_request(seeded: Seeded, traffic: Traffic) -> tuple[str, str, dict[str, Any] | None]:
    """The method, path and JSON body of the next request of the mix."""
    roll = random.random()
    who = f"+1415555{random.randrange(CUSTOMERS):04d}"
    if roll < 0.25:  # a customer writes in: the sandbox posts a signed webhook to wacrm
        writes = {"phone_number_id": seeded.phone_number_id, "from": who, "text": "hello"}
        return "POST", "/sandbox/inbound", writes
    if roll < 0.45:  # a send; the sandbox calls back sent, delivered, read
        if who in traffic.wrote_in:
            return "POST", "/api/v1/messages", {"to": who, "type": "text", "text": "thanks!"}
        template = {"name": "hello_world", "language": "en_US"}
        return "POST", "/api/v1/messages", {"to": who, "type": "template", "template": template}
    if roll < 0.55:
        phone = f"+1415{random.randint(200, 999)}{random.randint(0, 9999):04d}"
        return "POST", "/api/v1/contacts", {"phone": phone, "name": "Soak Contact"}
    if roll < 0.62 and traffic.contacts:
        contact = random.choice(traffic.contacts)
        if random.random() < 0.5:
            return "PATCH", f"/api/v1/contacts/{contact}", {"company": "Soak Inc"}
        return "POST", f"/api/v1/contacts/{contact}/tags", {"add": ["soak"]}
    reads = ["/api/v1/me", "/api/v1/contacts?limit=20", "/api/v1/conversations?limit=20"]
    if traffic.sent_message_ids:
        reads.append(f"/api/v1/messages/{random.choice(traffic.sent_message_ids)}")
        reads.append(f"/api/v1/conversations/{random.choice(traffic.conversations)}/messages")
    return "GET", random.choice(reads), None


async def one_operation(http: httpx.AsyncClient, seeded: Seeded, traffic: Traffic) -> None:
    """One request of the mix; what it answered goes into ``traffic``."""
    method, path, body = next_request(seeded, traffic)
    token = seeded.sandbox_token if path.startswith("/sandbox/") else seeded.key
    auth = {"Authorization": f"Bearer {token}"}
    response = await http.request(method, path, json=body, headers=auth)
    label = f"{method} {re.sub(r'[0-9a-f-]{36}', '{id}', path.split('?')[0])}"
    traffic.statuses[f"{label} {response.status_code}"] += 1
    if not response.is_success or body is None:
        return
    if path == "/sandbox/inbound":
        answer = response.json()
        traffic.inbound_wamids.append(answer["wamid"])
        if answer["webhook_status"] == 200:
            traffic.wrote_in.add(body["from"])
        else:  # wacrm answered the sandbox's webhook post with an error
            traffic.statuses[f"POST /webhooks/whatsapp {answer['webhook_status']}"] += 1
    elif path == "/api/v1/messages":
        data = response.json()["data"]
        traffic.sent_message_ids.append(data["message_id"])
        traffic.conversations.append(data["conversation_id"])
    elif path == "/api/v1/contacts":
        traffic.contacts.append(response.json()["data"]["id"])


async def client_loop(
    base: str, seeded: Seeded, traffic: Traffic, stop_at: float, pace: float
) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        while time.monotonic() < stop_at:
            started = time.monotonic()
            try:
                await one_operation(http, seeded, traffic)
            except httpx.TransportError:
                traffic.transport_errors += 1
            await asyncio.sleep(max(0.0, pace - (time.monotonic() - started)))


@dataclass
class Outcome:
    inbound_lost: int
    inbound_duplicated: int
    sends_lost: int
    sends_duplicated: int
    sends_not_read: int
    events_recorded: int
    events_lost: int
    events_delivered_twice: int


async def check(url: str, seeded: Seeded, traffic: Traffic) -> Outcome:
    """Lost and duplicated messages and events, from the database and the receiver."""
    mine = Message.account_id == seeded.account_id
    outbound = (mine, Message.direction == "outbound")
    sent_ids = [uuid.UUID(m) for m in traffic.sent_message_ids]
    queries = {
        "per_wamid": select(Message.wamid, func.count())
        .where(mine, Message.wamid.in_(traffic.inbound_wamids))
        .group_by(Message.wamid),
        "sent": select(Message.id, Message.status).where(mine, Message.id.in_(sent_ids)),
        "outbound_per_wamid": select(Message.wamid, func.count())
        .where(*outbound, Message.wamid.is_not(None))
        .group_by(Message.wamid),
        "outbound_rows": select(Message.direction, func.count())
        .where(*outbound)
        .group_by(Message.direction),
        "events": select(WebhookDelivery.event_id, func.count())
        .where(WebhookDelivery.account_id == seeded.account_id)
        .group_by(WebhookDelivery.event_id),
    }
    database = Database(url)
    try:
        async with database.sessions() as session:
            found = {name: dict((await session.execute(q)).all()) for name, q in queries.items()}
    finally:
        await database.dispose()
    events = {str(event_id) for event_id in found["events"]}
    seen = {event_id.decode() for event_id in Receiver.seen}
    wamids = traffic.inbound_wamids
    return Outcome(
        inbound_lost=sum(1 for wamid in wamids if wamid not in found["per_wamid"]),
        inbound_duplicated=sum(n - 1 for n in found["per_wamid"].values())
        + len(wamids)
        - len(set(wamids)),
        sends_lost=len(sent_ids) - len(found["sent"]),
        sends_duplicated=sum(n - 1 for n in found["outbound_per_wamid"].values())
        + max(0, sum(found["outbound_rows"].values()) - len(sent_ids)),
        sends_not_read=sum(1 for status in found["sent"].values() if status != "read"),
        events_recorded=len(events),
        events_lost=len(events - seen),
        events_delivered_twice=Receiver.requests - len(Receiver.seen),
    )


async def drained(url: str, seeded: Seeded, traffic: Traffic) -> Outcome:
    """Wait (bounded) until nothing is in flight, then check."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while True:
        outcome = await check(url, seeded, traffic)
        settled = not (outcome.inbound_lost or outcome.sends_not_read or outcome.events_lost)
        if settled or time.monotonic() > deadline:
            return outcome
        await asyncio.sleep(1.0)


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(argv, env=env, stdout=output, stderr=subprocess.STDOUT)


async def wait_healthy(base: str, processes: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 120
    async with httpx.AsyncClient(timeout=2) as http:
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(f"{base}/readyz")).status_code == 200:
                    return
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                sys.exit("the server did not start (see its log)")
            await asyncio.sleep(0.2)


async def soak(args: argparse.Namespace, url: str, redis_url: str, home: Path) -> dict[str, Any]:
    receiver = await asyncio.get_running_loop().create_server(Receiver, "127.0.0.1", 0)
    receiver_url = f"http://127.0.0.1:{receiver.sockets[0].getsockname()[1]}/hook"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = bench_env(
        url,
        WACRM_VAR_DIR=str(home),
        WACRM_REDIS_URL=redis_url,
        WACRM_PUBLIC_BASE_URL=base,
        WACRM_WORKER_IN_PROCESS="false",
        WACRM_WEBHOOKS_ALLOW_PRIVATE_TARGETS="true",
        WACRM_DATABASE_POOL_SIZE="10",
    )
    subprocess.run([WACRM, "db", "upgrade"], env=env, check=True, capture_output=True)
    seeded = await seed(url, receiver_url, home)
    logs = {"serve": home / "serve.log", "worker": home / "worker.log"}
    processes = {
        "serve": start([WACRM, "serve", "--port", str(port)], env, logs["serve"]),
        "worker": start([WACRM, "worker", "--concurrency", "2"], env, logs["worker"]),
    }
    traffic = Traffic()
    try:
        await wait_healthy(base, list(processes.values()))
        progress(f"traffic for {args.seconds:.0f} s from {args.clients} clients at ~{args.rate}/s")
        stop_at = time.monotonic() + args.seconds
        pace = args.clients / args.rate
        loops = [client_loop(base, seeded, traffic, stop_at, pace) for _ in range(args.clients)]
        ticker = asyncio.create_task(report_progress(traffic, stop_at))
        # "Start" is after a warm-up: pools, caches and lazy imports fill up in the first
        # seconds of any run, and are not growth.
        await asyncio.sleep(min(WARM_UP_SECONDS, args.seconds / 4))
        rss_start = {name: rss_kib(p.pid) for name, p in processes.items()}
        await asyncio.gather(*loops)
        ticker.cancel()
        rss_end = {name: rss_kib(p.pid) for name, p in processes.items()}
        progress("waiting for the queues to drain")
        outcome = await drained(url, seeded, traffic)
        alive = {name: p.poll() is None for name, p in processes.items()}
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(30)
        receiver.close()
    log_errors = {name: len(SERVER_ERRORS.findall(log.read_text())) for name, log in logs.items()}
    requests = sum(traffic.statuses.values())
    return {
        "seconds": args.seconds,
        "requests": requests,
        "requests_per_second": round(requests / args.seconds, 1),
        "answers": dict(sorted(traffic.statuses.items())),
        "5xx": sum(n for line, n in traffic.statuses.items() if line.split()[-1].startswith("5")),
        "transport_errors": traffic.transport_errors,
        "server_log_errors": log_errors,
        "inbound_messages": len(traffic.inbound_wamids),
        "sends": len(traffic.sent_message_ids),
        **outcome.__dict__,
        "processes_alive_at_end": alive,
        "rss_kib_start": rss_start,
        "rss_kib_end": rss_end,
    }


async def report_progress(traffic: Traffic, stop_at: float) -> None:
    while True:
        await asyncio.sleep(15)
        left = max(0, stop_at - time.monotonic())
        progress(f"{sum(traffic.statuses.values())} requests so far, {left:.0f} s left")


def print_report(report: dict[str, Any]) -> None:
    print(
        f"soak: {report['seconds']:.0f} s, {report['requests']} requests "
        f"({report['requests_per_second']}/s), {report['inbound_messages']} inbound messages, "
        f"{report['sends']} sends, {report['events_recorded']} webhook events"
    )
    for line, count in report["answers"].items():
        print(f"  {count:6d}  {line}")
    rows = [
        ("5xx answers", report["5xx"], "0"),
        ("transport errors", report["transport_errors"], "0"),
        ("5xx/bugs in server logs", sum(report["server_log_errors"].values()), "0"),
        ("inbound wamids lost", report["inbound_lost"], "0"),
        ("inbound wamids duplicated", report["inbound_duplicated"], "0"),
        ("sends lost", report["sends_lost"], "0"),
        ("sends duplicated", report["sends_duplicated"], "0"),
        ("sends not ending read", report["sends_not_read"], "0"),
        ("events never delivered", report["events_lost"], "0"),
        ("events delivered twice", report["events_delivered_twice"], "0 (at least once)"),
    ]
    print(f"  {'check':<28} {'measured':>9}  target")
    for name, value, target in rows:
        print(f"  {name:<28} {value:>9}  {target}")
    for name, start in report["rss_kib_start"].items():
        end = report["rss_kib_end"][name]
        print(
            f"  RSS {name:<24} {start / 1024:6.1f} MiB -> {end / 1024:6.1f} MiB "
            f"({(end - start) / 1024:+.1f} MiB; target: flat)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="length of the traffic")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second, total")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--database-url", help="a migrated-or-empty PostgreSQL database to use")
    parser.add_argument("--redis-url", help="a Redis to use (default: a private redis-server)")
    parser.add_argument("--json", action="store_true", help="end with the report as JSON")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wacrm-soak-")))
        url = args.database_url or stack.enter_context(scratch_postgres())
        redis_url = args.redis_url or stack.enter_context(own_redis(home))
        report = asyncio.run(soak(args, url, redis_url, home))
    print_report(report)
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
