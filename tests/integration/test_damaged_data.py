"""A data directory with a damaged or hand-edited file stops `frontline serve` at once with one
sentence naming the file and what is wrong, before anything says ready."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.live_server import API_KEYS, ROOT, LiveServer, free_port


def serve(data_dir: Path, keys: bool = True) -> tuple[int, str]:
    env = {**os.environ}
    env.pop("FRONTLINE_API_KEYS", None)
    if keys:
        env["FRONTLINE_API_KEYS"] = API_KEYS
    command = ["serve", "--data-dir", str(data_dir), "--port", str(free_port())]
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", *command],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.returncode, (done.stdout + done.stderr).strip()


@pytest.fixture(scope="module")
def used(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory a server has run on (starter rulesets, a ledger), then stopped."""
    data = tmp_path_factory.mktemp("used")
    LiveServer(data).start().stop()
    return data


def damage(used: Path, tmp_path: Path, how: Callable[[Path], None]) -> Path:
    copy = tmp_path / "data"
    subprocess.run(["cp", "-a", str(used), str(copy)], check=True)
    (copy / "server.log").unlink(missing_ok=True)
    how(copy)
    return copy


CASES = {
    "a hand-edited revision": (
        lambda d: (d / "rulesets/retention-desk/1.txt").write_text(
            (d / "rulesets/retention-desk/1.txt")
            .read_text()
            .replace("Repeat contact from a high-tier customer", "Edited by hand")
        ),
        "revision 1 of ruleset 'retention-desk' no longer matches its digest",
    ),
    "a broken revision list": (
        lambda d: (d / "rulesets/billing-disputes/revisions.json").write_text("[{"),
        "rulesets/billing-disputes/revisions.json: not a revision list Frontline wrote",
    ),
    "broken routing": (
        lambda d: (d / "rulesets/service-outage/routing.json").write_text('{"live": 1}'),
        "rulesets/service-outage/routing.json: not routing Frontline wrote",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_damaged_file_stops_the_server_in_one_sentence(
    used: Path, tmp_path: Path, case: str
) -> None:
    how, says = CASES[case]
    code, output = serve(damage(used, tmp_path, how))
    assert code == 1, output
    assert len(output.splitlines()) == 1 and says in output, output
    assert "Traceback" not in output and "ready" not in output


def test_a_damaged_key_file_stops_the_server_in_one_sentence(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "keys.json").write_text("not json{")
    code, output = serve(data, keys=False)
    assert code == 1 and len(output.splitlines()) == 1, output
    assert f"{data / 'keys.json'}: not a key file Frontline wrote" in output
