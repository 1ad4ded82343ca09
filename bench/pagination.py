"""Pagination depth: GET /api/v1/contacts, the first page against the page that starts
10,000 and 100,000 rows deep (keyset cursors), on one server process over PostgreSQL.

The account gets 100,050 contacts (inserted by SQL, one millisecond apart, plus another
account's rows between them); the cursors are made with the app's own encoder for the
row just above each depth, exactly as a client walking the pages would have received
them. Each depth is loaded one request at a time, in alternating rounds, so machine
noise hits all alike; the figure is each deep page's median latency over the first
page's (target: at most 1.5, i.e. depth costs nothing).

    .venv/bin/python bench/pagination.py [--seconds 3] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import uuid
from datetime import datetime
from types import SimpleNamespace

from _harness import (
    SECRET_KEY,
    WACRM,
    Figure,
    LoadResult,
    bench_env,
    cli,
    free_port,
    load,
    progress,
    quick_flag,
    report,
    scratch_postgres,
    server,
    sql_value,
)

from wacrm.kit.pagination import Page, Paginator

PAGE = 50


def seed_contacts(url: str, account_id: str, other_id: str, rows: int) -> None:
    """``rows`` contacts for the account, newest first one millisecond apart, and a tenth as
    many for another account in between (the index holds both)."""
    insert = """
        INSERT INTO contacts (id, account_id, phone, name, created_at, updated_at)
        SELECT gen_random_uuid(), '{account}', '+1{prefix}' || lpad(i::text, 7, '0'),
               'Contact ' || i, now() - i * interval '{step}', now()
        FROM generate_series(1, {rows}) AS i
    """
    sql_value(url, insert.format(account=account_id, prefix="415", step="1 ms", rows=rows))
    others = rows // 10
    sql_value(url, insert.format(account=other_id, prefix="212", step="10 ms", rows=others))
    sql_value(url, "ANALYZE contacts")


def cursor_at(url: str, account_id: str, depth: int) -> str:
    """The ``next_cursor`` a client gets after reading ``depth`` rows."""
    row = sql_value(
        url,
        f"SELECT created_at, id FROM contacts WHERE account_id = '{account_id}' "
        f"ORDER BY created_at DESC, id DESC OFFSET {depth - 1} LIMIT 1",
    )
    moment, row_id = row.split("|")
    last = SimpleNamespace(created_at=datetime.fromisoformat(moment), id=uuid.UUID(row_id))
    paginator = Paginator(
        SECRET_KEY, uuid.UUID(account_id), "contacts", {"search": None, "tag": None}
    )
    _, cursor = paginator.split([last, last], Page(limit=1, after=None))
    assert cursor is not None
    return cursor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    quick_flag(parser)
    args = parser.parse_args()
    depths = [10_000, 100_000]
    if args.quick:
        args.seconds, args.rounds, depths = 1.0, 1, [1_000, 10_000]
    rows = depths[-1] + PAGE

    with scratch_postgres() as url:
        env = bench_env(url, WACRM_WORKER_IN_PROCESS="false", WACRM_SANDBOX_ENABLED="false")
        progress("migrating the bench database")
        subprocess.run([WACRM, "db", "upgrade"], env=env, check=True, capture_output=True)
        account = cli(env, "accounts", "create", "Bench", "--owner-email", "b@example.com")
        account_id = str(account["account"]["id"])  # type: ignore[index]
        other = cli(env, "accounts", "create", "Other", "--owner-email", "o@example.com")
        other_id = str(other["account"]["id"])  # type: ignore[index]
        key = cli(env, "keys", "create", "--account", account_id, "--name", "bench",
                  "--scope", "contacts:read")  # fmt: skip
        auth = {"Authorization": f"Bearer {key['plaintext']}"}
        progress(f"inserting {rows:,} contacts")
        seed_contacts(url, account_id, other_id, rows)
        paths = {0: f"/api/v1/contacts?limit={PAGE}"}
        for depth in depths:
            paths[depth] = f"{paths[0]}&cursor={cursor_at(url, account_id, depth)}"
        port = free_port()
        results: dict[int, list[LoadResult]] = {depth: [] for depth in paths}
        with server(env, port):
            progress("warming up")
            for path in paths.values():
                asyncio.run(load(port, path, 0.5, 1, auth))
            for round_no in range(1, args.rounds + 1):
                for depth, path in paths.items():
                    progress(f"round {round_no}/{args.rounds}: the page at depth {depth:,}")
                    results[depth].append(asyncio.run(load(port, path, args.seconds, 1, auth)))

    p50 = {depth: merged_p50(found) for depth, found in results.items()}
    assert all(r.non_2xx == 0 for found in results.values() for r in found), "non-2xx answers"
    print(f"{'page':<22}{'p50 ms':>10}{'vs first':>10}")
    figures = [Figure(f"pagination: first page of {PAGE}", p50[0], "ms", "", None)]
    for depth, latency in p50.items():
        ratio = latency / p50[0]
        print(f"{'at depth ' + format(depth, ','):<22}{latency:>10.2f}{ratio:>10.2f}")
        if depth:
            name = f"pagination: depth {depth:,} / first page"
            figures.append(Figure(name, ratio, "ratio", "<= 1.5", ratio <= 1.5))
    print(f"target: a deep page costs about what the first does (ratio <= 1.5); {rows:,} rows")
    report("pagination", figures)


def merged_p50(results: list[LoadResult]) -> float:
    merged = LoadResult(0, 0.0, [], 0)
    for result in results:
        merged.latencies_ms += result.latencies_ms
    return merged.p50


if __name__ == "__main__":
    main()
