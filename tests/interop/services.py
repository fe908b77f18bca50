"""Private Redis and PostgreSQL servers for drills that stop, restart or pause them: each on
a free port and in a temporary folder of its own, so the machine's servers are not disturbed."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.interop.live import free_port


def _wait_port(port: int, within: float, what: str) -> None:
    """Wait until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + within
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not listen on {port} in {within} s") from None
            time.sleep(0.05)


class PrivateRedis:
    """A redis-server that keeps nothing on disk: a restart comes back empty."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = folder / f"redis-{self.port}.log"

    @property
    def url(self) -> str:
        """Its address for REDIS_URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        """Start it and wait until it listens."""
        command = [
            shutil.which("redis-server") or "redis-server",
            "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.folder),
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        _wait_port(self.port, 10, "redis-server")
        return self

    def stop(self) -> None:
        """Stop it (its data goes with it)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused server cannot stop
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart_empty(self) -> None:
        """Stop it and start it again on the same port, empty."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: it keeps its connections but answers nothing."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


def _pg_bin(name: str) -> str:
    """A PostgreSQL server program (Debian keeps them out of PATH)."""
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None
    )
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed")
    return found


class PrivatePostgres:
    """A PostgreSQL cluster made with initdb in a temporary folder (as the postgres user when
    run as root, which PostgreSQL refuses to run as; so the folder is one of its own, not
    under pytest's, which only root may enter)."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="palimpsest-pg-"))
        self.data = self.folder / "pgdata"
        self.port = free_port()
        self.log = self.folder / f"postgres-{self.port}.log"

    @property
    def url(self) -> str:
        """Its address for DATABASE_URL."""
        return f"postgres://postgres@127.0.0.1:{self.port}/palimpsest"

    def _run(self, *command: str) -> None:
        """Run a server program as the owner of the cluster."""
        if os.geteuid() == 0:
            command = ("runuser", "-u", "postgres", "--", *command)
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> PrivatePostgres:
        """initdb on first use, then start it and wait until it listens."""
        if not self.data.exists():
            if os.geteuid() == 0:
                shutil.chown(self.folder, "postgres", "postgres")
            self._run(
                _pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                "--no-sync", "-E", "UTF8",
            )  # fmt: skip
            created = True
        else:
            created = False
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            _pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
            "-w", "start",
        )  # fmt: skip
        _wait_port(self.port, 30, "postgres")
        if created:
            self._run(
                _pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                "palimpsest",
            )  # fmt: skip
        return self

    def stop(self) -> None:
        """Stop it (fast: open sessions are cut, as in a crash or a failover)."""
        if self.data.exists():
            with contextlib.suppress(subprocess.CalledProcessError):  # not running
                self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        """Stop it and start it again on the same port and data."""
        self.stop()
        self.start()

    def remove(self) -> None:
        """Stop it and delete its folder."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
