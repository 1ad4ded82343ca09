"""Broadcast rate: a 10,000-recipient template broadcast drained to the sandbox by one and by
two ``wacrm worker`` processes on PostgreSQL; prints recipients/s.

One bench database, one account with a sandbox number and one server process (API + the
sandbox, no in-process worker). Each run starts its workers (with its throttle), lets them
settle, creates its broadcast through the API (its own numbers: every recipient is a new
contact, as in the first run) and stops the workers once it completed. The rate is the
broadcast's own clock: ``started_at`` (the first claim) to ``completed_at`` (the last
recipient settled), so start-up is not counted. The sandbox posts no status callbacks while
it runs: posting them is Meta's work, not ours, and cost the shared CPU as much as the
sends (ingesting them is bench/inbound.py's figure).

Runs with the default per-number throttle (80 messages/s: it should be the limit, one
worker or two), then with it raised to 1,000/s (Meta's most) to show what the pipeline
does when the throttle is not the limit.

    .venv/bin/python bench/broadcasts.py [--recipients 10000] [--raised 1000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import time
import urllib.request
from dataclasses import dataclass

from _harness import (
    WACRM,
    Figure,
    OkReceiver,
    bench_env,
    cli,
    free_port,
    progress,
    quick_flag,
    report,
    scratch_postgres,
    server,
    sql_value,
    wait_until_idle,
)

DEFAULT_THROTTLE = 80.0
SANDBOX_TOKEN = "bench-sandbox-token"
LATEST = "(SELECT id FROM broadcasts ORDER BY created_at DESC LIMIT 1)"
DURATION = (
    "SELECT extract(epoch FROM completed_at - started_at) FROM broadcasts "
    f"WHERE status = 'completed' AND id = {LATEST}"
)
SENT = (
    f"SELECT count(*) FROM broadcast_recipients WHERE status = 'sent' AND broadcast_id = {LATEST}"
)
ELAPSED = f"SELECT extract(epoch FROM now() - started_at) FROM broadcasts WHERE id = {LATEST}"
STALLED_AFTER = 90.0  # seconds without a recipient settled: the run is given up
COUNTS = (
    "SELECT string_agg(status || ' ' || n, ', ') FROM (SELECT status, count(*) AS n "
    f"FROM broadcast_recipients WHERE broadcast_id = {LATEST} GROUP BY 1) AS s"
)


@dataclass
class Drained:
    throttle: float
    workers: int
    recipients: int
    seconds: float
    sent: int
    complete: bool
    duplicates: int = 0  # sends the sandbox accepted beyond one per recipient

    @property
    def rate(self) -> float:
        """Recipients per second; of a run cut short, those sent so far."""
        return (self.recipients if self.complete else self.sent) / self.seconds


def sandbox_sends(port: int) -> dict[str, int]:
    """What the sandbox accepted, per recipient (Meta's wa_id): the ground truth of sends."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/sandbox/sends",
        headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return dict(json.load(response)["data"]["by_recipient"])


def create_broadcast(port: int, key: str, recipients: int, exchange: int) -> int:
    body = {
        "name": "bench",
        "template_name": "hello_world",
        "template_language": "en_US",
        "recipients": [{"to": f"+1415{exchange}{i:04d}"} for i in range(recipients)],
    }
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/broadcasts",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return int(json.load(response)["data"]["accepted"])


async def drain_all(
    runs: list[tuple[float, int]], recipients: int, max_seconds: float
) -> list[Drained]:
    sink = await asyncio.get_running_loop().create_server(OkReceiver, "127.0.0.1", 0)
    sink_port = sink.sockets[0].getsockname()[1]
    port = free_port()
    with scratch_postgres() as url:
        env = bench_env(
            url,
            WACRM_WORKER_IN_PROCESS="false",
            WACRM_WORKER_POLL_SECONDS="0.1",
            WACRM_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
            WACRM_SANDBOX_WEBHOOK_URL=f"http://127.0.0.1:{sink_port}/",
            WACRM_SANDBOX_MESSAGES_PER_SECOND="100000",
            WACRM_SANDBOX_ACCESS_TOKEN=SANDBOX_TOKEN,
            # As in production: two workers share one send rate per number through Redis.
            WACRM_REDIS_URL=os.environ.get("WACRM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
            WACRM_SANDBOX_STATUS_DELAY_SECONDS="3600",  # no callbacks during the run
        )
        progress("migrating the bench database")
        subprocess.run([WACRM, "db", "upgrade"], env=env, check=True, capture_output=True)
        account = cli(env, "accounts", "create", "Bench", "--owner-email", "b@example.com")
        account_id = str(account["account"]["id"])  # type: ignore[index]
        cli(env, "channels", "add-sandbox", "--account", account_id)
        key = cli(env, "keys", "create", "--account", account_id, "--name", "bench",
                  "--scope", "broadcasts:send")  # fmt: skip
        try:
            with server(env, port):
                secret = str(key["plaintext"])
                drained = [
                    await drain(url, port, secret, env, run, recipients, n, max_seconds)
                    for n, run in enumerate(runs)
                ]
                accepted = sandbox_sends(port)
                for n, run_drained in enumerate(drained):
                    prefix = f"1415{555 + n}"
                    run_drained.duplicates = sum(
                        count - 1 for wa_id, count in accepted.items() if wa_id.startswith(prefix)
                    )
                return drained
        finally:
            sink.close()


async def drain(
    url: str,
    port: int,
    key: str,
    env: dict[str, str],
    run: tuple[float, int],
    recipients: int,
    run_no: int,
    max_seconds: float,
) -> Drained:
    throttle, workers = run
    env = {**env, "WACRM_WHATSAPP_MESSAGES_PER_SECOND": str(throttle)}
    # As autovacuum would in production: the tables of the runs before are analyzed. This
    # machine kind's PostgreSQL runs with `autovacuum = off`, and without statistics the
    # planner looks a batch's 100 phones up by scanning all of the account's contacts
    # (5 ms at 30,000 contacts, 0.2 ms once analyzed): each run was slower than the one
    # before. Not before the first run: statistics of empty tables mislead it as badly.
    if run_no > 0:
        await asyncio.to_thread(sql_value, url, "VACUUM ANALYZE")
    processes = [
        subprocess.Popen(
            [WACRM, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(workers)
    ]
    try:
        await asyncio.to_thread(wait_until_idle, [p.pid for p in processes])
        progress(f"{recipients:,} recipients, {workers} worker(s), throttle {throttle:g}/s")
        accepted = await asyncio.to_thread(create_broadcast, port, key, recipients, 555 + run_no)
        seconds, complete = await finished(url, processes, max_seconds)
        sent = int(sql_value(url, SENT))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
    return Drained(throttle, workers, accepted, seconds, sent, complete)


async def finished(
    url: str, processes: list[subprocess.Popen[bytes]], max_seconds: float
) -> tuple[float, bool]:
    """Wait for the broadcast to complete: its duration by its own timestamps, and True.
    After ``max_seconds`` (a slow machine), the time it has run so far, and False. Gives
    up when a worker dies or nothing moves for ``STALLED_AFTER`` seconds."""
    last, moved_at = "", time.monotonic()
    deadline = time.monotonic() + max_seconds
    while not (seconds := await asyncio.to_thread(sql_value, url, DURATION)):
        counts = await asyncio.to_thread(sql_value, url, COUNTS)
        if counts != last:
            last, moved_at = counts, time.monotonic()
        if time.monotonic() - moved_at > STALLED_AFTER:
            raise SystemExit(f"the broadcast stalled: recipients {counts}")
        if any(p.poll() is not None for p in processes):
            raise SystemExit(f"a worker died: recipients {counts}")
        if time.monotonic() > deadline:
            progress(f"cut after {max_seconds:g} s: recipients {counts}")
            return float(await asyncio.to_thread(sql_value, url, ELAPSED)), False
        await asyncio.sleep(1)
    return float(seconds), True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--raised", type=float, default=1000.0, help="the raised throttle")
    parser.add_argument(
        "--max-seconds", type=float, default=300.0, help="a run is cut (and measured) after this"
    )
    quick_flag(parser)
    args = parser.parse_args()
    if args.quick:
        args.recipients, args.max_seconds = 500, 60.0
    plan = [(limit, workers) for limit in (DEFAULT_THROTTLE, args.raised) for workers in (1, 2)]
    runs = asyncio.run(drain_all(plan, args.recipients, args.max_seconds))
    figures = []
    for run in runs:
        print(
            f"throttle {run.throttle:>6g}/s, {run.workers} worker{'s' if run.workers > 1 else ' '}:"
            f" {run.recipients:,} recipients in {run.seconds:.2f} s = {run.rate:,.1f}/s"
            f" ({run.sent:,} sent{'' if run.complete else '; cut short'};"
            f" {run.duplicates} duplicate sends)"
        )
        name = f"broadcast: throttle {run.throttle:g}/s, {run.workers} worker(s)"
        if not run.complete:
            name += f" [cut at {args.max_seconds:g} s]"
        if run.throttle == DEFAULT_THROTTLE:
            # The throttle is per number: it is the limit, with any number of workers.
            ok = 0.9 * run.throttle <= run.rate <= 1.05 * run.throttle
            figures.append(Figure(name, run.rate, "recipients/s", "72-84 (the throttle)", ok))
        else:
            # The target: at a configured rate, at least 90 % of it.
            ok = run.rate >= 0.9 * run.throttle
            target = f">= {0.9 * run.throttle:g} (90 % of the throttle)"
            figures.append(Figure(name, run.rate, "recipients/s", target, ok))
        figures.append(
            Figure(f"{name}: duplicate sends", run.duplicates, "", "0", run.duplicates == 0)
        )
        if run.complete and run.sent != run.recipients:
            figures.append(Figure(f"{name}: not sent", run.recipients - run.sent, "", "0", False))
    print("target: the per-number throttle is the limit (80/s by default, one worker or two);")
    print("raised to 1,000/s, at least 90 % of it; never a recipient sent twice.")
    report("broadcasts", figures)


if __name__ == "__main__":
    main()
