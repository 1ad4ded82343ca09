"""Outbound webhook deliveries on PostgreSQL: 10,000 events, delivered by one and then two
``wacrm worker`` processes to a loopback receiver; prints deliveries/s.

Each run gets a scratch database with one account, one endpoint (the receiver, subscribed to
``message.received``) and the events, recorded as the app records them (deliveries in the
same transaction). The clock runs from the first request the receiver gets (not counting the
workers' start-up) to the moment it has seen every event once.

    .venv/bin/python bench/webhooks.py [--events 10000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import (
    WACRM,
    Figure,
    OkReceiver,
    bench_env,
    cpu_seconds,
    progress,
    quick_flag,
    report,
    scratch_postgres,
    seed_settings,
)

from wacrm.accounts import service as accounts_service
from wacrm.events.service import EventType, record_events
from wacrm.kit.db import Database
from wacrm.webhooks import service as webhooks_service


class Receiver(OkReceiver):
    """Notes each event id, and when the first and the last request came."""

    seen: set[bytes] = set()
    requests = 0
    first_at = 0.0
    last_at = 0.0

    def received(self, head: bytes) -> None:
        event_id = head.split(b"webhook-id:")[1].split(b"\r\n")[0].strip()
        cls = type(self)
        cls.requests += 1
        cls.seen.add(event_id)
        cls.last_at = time.perf_counter()
        cls.first_at = cls.first_at or cls.last_at


async def seed(url: str, receiver_url: str, events: int, var_dir: Path) -> None:
    settings = seed_settings(url, var_dir)
    database = Database(url)
    async with database.sessions() as session:
        created = await accounts_service.create_account(session, "Bench", "b@example.com")
        account_id = created.account.id
        await webhooks_service.create_endpoint(
            session,
            settings,
            account_id,
            url=receiver_url,
            events=["message.received"],
            description="bench receiver",
            is_active=True,
        )
        await session.commit()
        for start in range(0, events, 500):
            batch = [
                (EventType.MESSAGE_RECEIVED, {"message_id": f"m{n}", "content": {"body": "hi"}})
                for n in range(start, min(events, start + 500))
            ]
            await record_events(session, account_id, batch)
            await session.commit()
    await database.dispose()


async def run(workers: int, events: int) -> tuple[float, int, float]:
    """Deliver ``events`` with ``workers`` processes; (seconds, requests received, worker CPU s)."""
    Receiver.seen, Receiver.requests, Receiver.first_at = set(), 0, 0.0
    server = await asyncio.get_running_loop().create_server(Receiver, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with scratch_postgres() as url, tempfile.TemporaryDirectory() as var_dir:
        env = bench_env(
            url,
            WACRM_VAR_DIR=var_dir,
            WACRM_SANDBOX_ENABLED="false",
            WACRM_WORKER_POLL_SECONDS="0.1",
            WACRM_WEBHOOKS_ALLOW_PRIVATE_TARGETS="true",
            WACRM_WEBHOOKS_RETRY_SCHEDULE_SECONDS="[0, 1, 1, 1]",
        )
        subprocess.run([WACRM, "db", "upgrade"], env=env, check=True, capture_output=True)
        progress(f"recording {events:,} events for one loopback endpoint")
        await seed(url, f"http://127.0.0.1:{port}/hook", events, Path(var_dir))
        progress(f"delivering with {workers} worker process(es)")
        processes = [
            subprocess.Popen(
                [WACRM, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            for _ in range(workers)
        ]
        try:
            deadline = time.monotonic() + 600
            while not Receiver.first_at:  # start-up: imports, connecting
                await asyncio.sleep(0.001)
            idle_cpu = sum(cpu_seconds(p.pid) for p in processes)
            while len(Receiver.seen) < events:
                if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                    sys.exit(f"stopped at {len(Receiver.seen)} of {events} deliveries")
                await asyncio.sleep(0.01)
            cpu = sum(cpu_seconds(p.pid) for p in processes) - idle_cpu
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(15)
            server.close()
    return Receiver.last_at - Receiver.first_at, Receiver.requests, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000)
    quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        args.events = 1_000
    lines, rates = [], []
    for workers in (1, 2):
        seconds, requests, cpu = asyncio.run(run(workers, args.events))
        rate = args.events / seconds
        rates.append(rate)
        lines.append(
            f"{workers} worker{'s' if workers > 1 else ' '}: {args.events:,} deliveries in "
            f"{seconds:.2f} s = {rate:,.0f} deliveries/s ({rate / workers:,.0f}/s per worker; "
            f"{requests - args.events} sent twice; worker CPU {1000 * cpu / args.events:.2f} ms "
            "per delivery)"
        )
    for line in lines:
        print(line)
    print(f"target: >= 500 deliveries/s per worker, near-linear with two ({os.cpu_count()} CPUs)")
    one, two = rates
    scaling = two / one
    report(
        "webhooks",
        [
            Figure("webhooks: 1 worker", one, "deliveries/s", ">= 500", one >= 500),
            Figure("webhooks: 2 workers, each", two / 2, "deliveries/s", ">= 500", two >= 1000),
            Figure("webhooks: 2 workers / 1 worker", scaling, "ratio", ">= 1.6", scaling >= 1.6),
        ],
    )


if __name__ == "__main__":
    main()
