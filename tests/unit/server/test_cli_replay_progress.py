"""``frontline replay`` shows its progress on stderr: a bar with the decisions replayed of how
many, redrawn in place on a terminal, a line now and then otherwise; the report stays alone on
stdout."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from audit.index import reindex
from audit.recording import decision_record
from audit.segments import SegmentLog
from audit.writer import LedgerWriter
from engine import compile_ruleset

from .test_cli import ROOT, run

RULESET = ROOT / "rulesets" / "retention-desk.yaml"
COUNT = 40


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose ledger holds 40 retention-desk decisions of the last hour, the
    first 25 of them indexed and the rest only in the log."""
    directory = tmp_path_factory.mktemp("data")
    ledger_dir = directory / "ledger"
    compiled = compile_ruleset(RULESET.read_text(encoding="utf-8"))
    log = SegmentLog(ledger_dir, "local", durable=False)
    writer = LedgerWriter(log)
    now = datetime.now(UTC)
    for k in range(COUNT):
        context: dict[str, Any] = {
            "customer": {"tier": ["bronze", "gold"][k % 2], "tenure_months": k * 3},
            "interaction": {"channel": "voice", "intent": "cancel"},
            "history": {"contacts_7d": k % 5},
        }
        decision = compiled.evaluate(context, now=now - timedelta(minutes=40 - k))
        writer.append_blocking(decision_record(decision, record_id=f"d-{k}", context=context))
        if k + 1 == 25:
            reindex(ledger_dir)
    writer.close()
    log.close()
    return directory


@pytest.fixture
def candidate(tmp_path: Path) -> Path:
    """Retention-desk with the fee waived from the second contact: 4 decisions change."""
    text = RULESET.read_text(encoding="utf-8")
    old = 'customer.tier in ["gold", "platinum"] and history.contacts_7d >= 2'
    assert old in text
    path = tmp_path / "candidate.yaml"
    path.write_text(text.replace(old, old.replace(">= 2", ">= 1")), encoding="utf-8")
    return path


def test_replay_shows_a_progress_bar_on_stderr_and_the_report_on_stdout(
    data_dir: Path, candidate: Path
) -> None:
    result = run("replay", str(candidate), "--data-dir", str(data_dir), "--since", "2h")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["replayed"], report["changed"]) == (COUNT, 4)
    lines = result.stderr.splitlines()
    assert lines[0].startswith("replaying ░") and lines[0].endswith(f"0%  0 of {COUNT} decisions")
    assert lines[-2].startswith("replaying █") and lines[-2].endswith(
        f"100%  {COUNT} of {COUNT} decisions"
    )
    assert lines[-1] == f"frontline: 4 of {COUNT} decisions would change"
    assert all(line.startswith("replaying ") for line in lines[:-1])


def test_on_a_terminal_the_bar_is_redrawn_in_place(data_dir: Path, candidate: Path) -> None:
    terminal, stderr = pty.openpty()
    command = ["replay", str(candidate), "--data-dir", str(data_dir), "--since", "2h"]
    try:
        result = subprocess.run(
            [sys.executable, "-m", "server.cli", *command],
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
    finally:
        os.close(stderr)
    shown = b""
    while True:
        try:
            chunk = os.read(terminal, 65536)
        except OSError:  # the other end is closed and everything has been read
            break
        if not chunk:
            break
        shown += chunk
    os.close(terminal)
    assert result.returncode == 0
    assert json.loads(result.stdout)["replayed"] == COUNT
    text = shown.decode("utf-8").replace("\r\n", "\n")  # the terminal's line endings
    # Each drawing returns to the line's start and clears what is left of the previous one;
    # only the last one ends its line.
    drawings = text.split("\r")[1:]
    assert drawings[0] == f"replaying {'░' * 30}   0%  0 of {COUNT} decisions\x1b[K"
    assert all(d.startswith("replaying ") and d.endswith("\x1b[K") for d in drawings[:-1])
    assert drawings[-1] == (
        f"replaying {'█' * 30} 100%  {COUNT} of {COUNT} decisions\x1b[K\n"
        f"frontline: 4 of {COUNT} decisions would change\n"
    )
