"""A first run as the README tells it: `frontline serve` with nothing configured prints the keys
once with a line to paste into a shell, the pages, and how to make a key when those are lost;
`frontline keys create` makes one that the running server accepts without a restart."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.live_server import ROOT, LiveServer

# The generated keys, not the fixed ones the other tests use.
NO_KEYS = {"FRONTLINE_API_KEYS": ""}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FRONTLINE_API_KEYS"}
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )


def exported(line: str) -> dict[str, str]:
    """The variables of an ``export A=x B=y`` line, as bash would set them."""
    done = subprocess.run(
        ["bash", "-c", f"{line.strip()}\nenv -0"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        check=True,
    )
    pairs = (item.split("=", 1) for item in done.stdout.split("\0") if "=" in item)
    return {name: value for name, value in pairs if name.endswith(("_KEY", "_URL"))}


def decide(server: LiveServer, key: str, agent: str) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/decisions",
        json={"ruleset": "retention-desk", "customer_id": "c-1", "agent_id": agent},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_the_first_start_prints_an_export_line_the_pages_and_the_command_for_a_new_key(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    with LiveServer(data, env=NO_KEYS) as server:
        printed = server.output()
        lines = printed.splitlines()
        (export,) = [x for x in lines if x.strip().startswith("export ")]
        keys = exported(export)
        assert sorted(keys) == [
            "ADMIN_KEY",
            "AGENT_KEY",
            "AUDITOR_KEY",
            "AUTHOR_KEY",
            "FRONTLINE_KEY",
            "FRONTLINE_URL",
            "INTEGRATION_KEY",
            "SUPERVISOR_KEY",
        ]
        # frontline deploy and retire find the server and an author's key in these.
        assert keys["FRONTLINE_URL"] == server.url
        assert keys["FRONTLINE_KEY"] == keys["AUTHOR_KEY"]
        # The line works as pasted: the README's examples read these variables.
        assert decide(server, keys["AGENT_KEY"], "agent-1").status_code == 200
        for path in ("/", "/desktop", "/rulesets", "/audit", "/docs", "/metrics"):
            assert f"  {server.url}{path} " in printed, path
        (hint,) = [x for x in lines if x.startswith("Lost a key?")]
        command = re.search(r"`frontline (keys create [^`]*)`", hint)
        assert command is not None and f"--data-dir {data}" in command.group(1)
        # Nothing the server logs comes before what it prints for people.
        assert lines[0].startswith("Frontline created the key that signs")

        made = cli(*command.group(1).split())
        assert made.returncode == 0, made.stderr
        new_key = made.stdout.strip()
        assert new_key.startswith("fl_agent_") and new_key not in printed
        assert f"export AGENT_KEY={new_key}" in made.stderr
        deadline = time.monotonic() + 5
        while (answer := decide(server, new_key, "agent-2")).status_code == 401:
            assert time.monotonic() < deadline, "the server never accepted the new key"
            time.sleep(0.2)
        assert answer.status_code == 200, answer.text
        assert answer.json()["agent_id"] == "agent-2"
        # The keys printed first still work.
        assert decide(server, keys["AGENT_KEY"], "agent-1").status_code == 200

    listed = cli("keys", "list", "--data-dir", str(data))
    assert listed.returncode == 0
    assert "agent        agent-2" in listed.stdout.splitlines()
    assert "fl_" not in listed.stdout and "sha256" not in listed.stdout

    again = LiveServer(data, env=NO_KEYS, log=tmp_path / "second.log")
    with again:
        second = again.output()
    assert "export " not in second and "fl_" not in second
    assert "API keys: those printed on the first start" in second
    assert "Lost a key? `frontline keys create" in second


def test_keys_create_refuses_in_one_sentence(tmp_path: Path) -> None:
    for args, message in (
        (("--role", "boss", "--name", "x"), "frontline: unknown role 'boss'; expected one of"),
        (("--role", "agent", "--name", "a b"), "frontline: 'a b' cannot name a principal"),
    ):
        done = cli("keys", "create", "--data-dir", str(tmp_path), *args)
        assert done.returncode == 1
        assert done.stderr.startswith(message) and len(done.stderr.splitlines()) == 1
        assert done.stdout == ""
    assert not (tmp_path / "keys.json").exists()
    missing = cli("keys", "list", "--data-dir", str(tmp_path))
    assert missing.returncode == 1
    assert missing.stderr == (
        f"frontline: there is no key file at {tmp_path / 'keys.json'}; start the server "
        "once, or pass --data-dir\n"
    )
