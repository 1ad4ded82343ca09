"""The soak in its short mode (``bench/soak.py --seconds 45``): mixed traffic against a real
``wacrm serve`` and ``wacrm worker`` on PostgreSQL with Redis loses nothing, duplicates
nothing and answers no 5xx. Memory and throughput are printed, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_REDIS_URL
from tests.faults.support import POSTGRES_AND_REDIS_ONLY

pytestmark = [pytest.mark.slow, POSTGRES_AND_REDIS_ONLY]

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def test_a_short_soak_loses_nothing_duplicates_nothing_and_answers_no_5xx(app, database_url):
    # ``app``: the test database starts empty, so the soak's worker has only its own work.
    command = [sys.executable, str(SOAK), "--seconds", "45", "--json"]
    command += ["--database-url", database_url, "--redis-url", str(TEST_REDIS_URL)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)
    print(finished.stdout, finished.stderr[-3000:])
    assert finished.returncode == 0, finished.stderr[-3000:]
    report = json.loads(finished.stdout.strip().splitlines()[-1])

    assert report["requests"] > 0 and report["inbound_messages"] > 0 and report["sends"] > 0
    assert report["5xx"] == 0, report["answers"]
    assert report["transport_errors"] == 0
    assert report["server_log_errors"] == {"serve": 0, "worker": 0}
    for check in ("inbound_lost", "sends_lost", "sends_not_read", "events_lost"):
        assert report[check] == 0, (check, report)
    for check in ("inbound_duplicated", "sends_duplicated"):
        assert report[check] == 0, (check, report)
    assert report["events_recorded"] > 0
    assert report["processes_alive_at_end"] == {"serve": True, "worker": True}
    unexpected = {
        line: n for line, n in report["answers"].items() if not line.endswith(("200", "201"))
    }
    assert not unexpected, unexpected
