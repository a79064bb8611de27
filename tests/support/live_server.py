"""A real ``frontline serve`` process on a free port, for tests that talk HTTP to it.

    with LiveServer(tmp_path) as server:
        httpx.post(server.url + "/v1/decisions", headers=server.auth("agent"), json=...)

The server runs with fixed keys (``KEYS``: one per role, plus a second agent), its own data
directory, and the starter rulesets; ``start`` returns once ``/readyz`` answers 200.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

ROOT = Path(__file__).resolve().parents[2]

# role → (principal, secret)
KEYS = {
    "agent": ("agent-7", "test-agent-key-000001"),
    "agent2": ("agent-8", "test-agent-key-000002"),
    "supervisor": ("team-lead", "test-supervisor-key-01"),
    "author": ("ann", "test-author-key-00001"),
    "author2": ("bob", "test-author-key-00002"),  # a second pair of eyes
    "auditor": ("aud", "test-auditor-key-0001"),
    "integration": ("crm", "test-integration-key-1"),
    "admin": ("root", "test-admin-key-000001"),
}
API_KEYS = ",".join(
    f"{role.rstrip('2')}:{principal}:{secret}" for role, (principal, secret) in KEYS.items()
)


def serve_once(data_dir: Path, env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    """Run ``frontline serve`` on ``data_dir`` with exactly ``env``, expecting it to stop by
    itself (a server that cannot start): its exit code and everything it printed."""
    command = ["serve", "--data-dir", str(data_dir), "--port", str(free_port())]
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", *command],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.returncode, (done.stdout + done.stderr).strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LiveServer:
    def __init__(
        self,
        data_dir: Path,
        *,
        workers: int = 1,
        env: dict[str, str] | None = None,
        port: int | None = None,
        log: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.workers = workers
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "FRONTLINE_API_KEYS": API_KEYS,
            "FRONTLINE_MASKING_KEY": "test-masking-key-0123456789",
            "FRONTLINE_LOG_LEVEL": "info",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log = log or data_dir / "server.log"  # elsewhere when the data's disk is full

    @property
    def ledger_dir(self) -> Path:
        """Every instance's segments and the query index, under the data directory."""
        return self.data_dir / "ledger"

    def indexer_pids(self) -> list[int]:
        """The ledger indexer processes the server started (its children)."""
        assert self.process is not None
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:  # it exited meanwhile
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == self.process.pid and b"audit.indexer" in command:
                found.append(int(entry.name))
        return found

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {KEYS[role][1]}"}

    def start(self, timeout: float = 60.0) -> LiveServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "server.cli",
                    "serve",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                    "--workers",
                    str(self.workers),
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"frontline serve exited with {self.process.returncode}:\n"
                    + self.output()[-5000:]
                )
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"frontline serve was not ready in {timeout} s:\n" + self.output()[-5000:]
        )

    def output(self) -> str:
        """Everything the server printed and logged so far (an access line per request)."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait: a clean shutdown drains the ledger."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no chance to drain."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
