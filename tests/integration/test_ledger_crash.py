"""Kill -9 at random moments loses no acknowledged record, and the chain still verifies.

A child process appends from threads and asyncio tasks and prints each record id once its
append has returned. The test kills it with SIGKILL at a random moment, 20 times, each time
starting a new child on the same file (which continues the chain), and after every kill checks
that every printed id is stored and that ``verify`` passes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from audit.query import LedgerQuery, LedgerReader
from audit.sqlite import SqliteLedgerStore
from audit.verify import verify
from tests.support.live_server import ROOT

KILLS = 20


def stored_ids(path: Path) -> set[str]:
    reader = LedgerReader(path)
    try:
        return {r.id for r in reader.iterate(LedgerQuery(), page_size=1000)}
    finally:
        reader.close()


def test_kill_9_never_loses_an_acknowledged_record(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    rng = random.Random(20261123)
    acknowledged: set[str] = set()
    for round_ in range(KILLS):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.support.ledger_child", str(path), f"r{round_}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        lines: list[bytes] = []
        reader = threading.Thread(target=lines.extend, args=(child.stdout,))
        reader.start()
        # Wait until it has acknowledged something, then kill at a random moment after that.
        deadline = time.monotonic() + 30
        while not lines and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.01)
        assert lines, (child.stderr.read() if child.stderr else b"").decode()[-2000:]
        time.sleep(rng.uniform(0.0, 0.4))
        child.send_signal(signal.SIGKILL)
        child.wait()
        reader.join()
        assert child.returncode == -signal.SIGKILL
        # A line without its newline was cut by the kill: not acknowledged.
        this_round = {line.decode().strip() for line in lines if line.endswith(b"\n")}
        acknowledged |= this_round
        stored = stored_ids(path)
        missing = acknowledged - stored
        assert not missing, f"round {round_}: {len(missing)} acknowledged records lost"
        store = SqliteLedgerStore(path)
        try:
            report = verify(store)
        finally:
            store.close()
        assert report.ok, report
        assert report.records == len(stored)
        print(f"kill {round_ + 1}: {len(this_round)} acknowledged, {len(stored)} stored")
    assert len(acknowledged) > KILLS * 10
