"""The README's curl examples work when pasted: each block runs in bash against a server."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.support.live_server import KEYS, ROOT, LiveServer

EXAMPLE = re.compile(r"<!-- readme-example: (\w+) -->\n```sh\n(.*?)```", re.S)


def examples() -> dict[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return dict(EXAMPLE.findall(text))


def test_the_readme_examples_run_against_a_live_server(tmp_path: Path) -> None:
    found = examples()
    assert list(found) == ["decision", "deploy", "rollback", "audit"]
    with LiveServer(tmp_path / "data") as server:
        env = {
            "PATH": "/usr/bin:/bin",
            "AGENT_KEY": KEYS["agent"][1],
            "AUTHOR_KEY": KEYS["author"][1],
            "AUDITOR_KEY": KEYS["auditor"][1],
        }
        outputs = {}
        for name, body in found.items():
            # The README talks to the default port and to agent-1 (the generated agent key);
            # the test server has its own port and its agent is agent-7.
            script = body.replace("127.0.0.1:8000", f"127.0.0.1:{server.port}")
            script = script.replace('"agent-1"', f'"{KEYS["agent"][0]}"')
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script],
                capture_output=True,
                text=True,
                env=env,
                cwd=ROOT,
                timeout=60,
                check=False,
            )
            assert result.returncode == 0, (name, result.stderr)
            outputs[name] = result.stdout
    decision = json.loads(outputs["decision"])
    assert decision["customer_id"] == "c-42" and decision["eligible"]
    deployed = json.loads(outputs["deploy"])
    assert deployed["revision"] == 2 and deployed["activated"] is True
    rolled_back = json.loads(outputs["rollback"])
    assert rolled_back["active_revision"] == 1
    # Two JSON documents back to back (curl adds no newline).
    decoder = json.JSONDecoder()
    page, end = decoder.raw_decode(outputs["audit"])
    verified, _ = decoder.raw_decode(outputs["audit"][end:].lstrip())
    assert [r["id"] for r in page["records"]] == [decision["decision_id"]]
    assert verified["ok"] is True
