"""Helpers for the tests that need real processes: `srfer serve` on a free port, and a throwaway
PostgreSQL cluster. Both need programs a clean machine lacks until `.ci/run` installs them
(Debian's postgresql, chromium, chromium-driver); without them these tests skip, except under
SRFER_REQUIRE_SERVICES=1 (what CI sets), where a missing program fails them."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def require(what: str, found: bool) -> None:
    """Skip when `what` is missing, or fail where the machine must have it (CI)."""
    if found:
        return
    if os.environ.get("SRFER_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{what} is not installed, and SRFER_REQUIRE_SERVICES=1 says it must be")
    pytest.skip(f"{what} is not installed (.ci/run installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`srfer serve …` in its own process, on 127.0.0.1 and a free port."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, log: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "srfer", "serve", "--port", str(self.port), *args]
        self.log = open(log or os.devnull, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=self.log,
                                        stderr=subprocess.STDOUT, cwd=ROOT)  # fmt: skip

    def wait(self, timeout: float = 120.0) -> Server:
        """Until /health answers (it does once the models are loaded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"srfer serve exited with {self.process.returncode}")
            try:
                httpx.get(f"{self.url}/health", timeout=2)
                return self
            except httpx.TransportError:
                time.sleep(0.3)
        raise AssertionError("srfer serve did not come up")

    def kill(self) -> None:
        """kill -9: no goodbye."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class Postgres:
    """A throwaway PostgreSQL cluster in a temporary folder, listening on a unix socket only."""

    def __init__(self) -> None:
        bin_dir = postgres_bin()
        require("PostgreSQL (Debian's postgresql package)", bin_dir is not None)
        assert bin_dir is not None
        # a folder of its own under /tmp: pytest's are closed to other users, and as root the
        # cluster runs as the postgres user
        self.folder = Path(tempfile.mkdtemp(prefix="srfer-pg-"))
        self.folder.chmod(0o755)
        self.bin, self.data, self.sockets, self.port = (
            bin_dir,
            self.folder / "data",
            self.folder / "s",
            free_port(),
        )
        self.sockets.mkdir()
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        self.url = f"postgresql://postgres@/postgres?host={self.sockets}&port={self.port}"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: as the postgres user
            shutil.chown(self.folder, "postgres")
            shutil.chown(self.sockets, "postgres")
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True)

    def start(self) -> None:
        options = f"-k {self.sockets} -p {self.port} -c listen_addresses='' -c fsync=off"
        log = str(self.folder / "pg.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-w", "-l", log, "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        subprocess.run([str(self.bin / "pg_ctl"), "-D", str(self.data), "status"], capture_output=True)
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
