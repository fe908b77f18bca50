"""`make stack`: the docker-compose topology without Docker (web, worker, beat [, flower]).

Needs REDIS_URL and DATABASE_URL (PostgreSQL) pointing at running servers; reads them, HOST
and PORT through the project's settings. Each process is started as compose would start it; a
signal to this one stops them all (web processes first: they drain). A web process that exits
is started again, as an orchestrator would, unless it died within seconds of its start; any
other process that exits stops the stack.

With `--web N` (N > 1), N web processes listen on the ports after PORT and, when HAProxy is
installed, HAProxy listens on PORT in front of them: it checks `/healthz` every second (a
draining process answers 503) and retries a refused handshake on another process.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

# A web process that exits sooner than this after its start is not restarted (a crash loop).
_CRASH_LOOP_SECONDS = 5.0
# How long the stack waits for its processes to stop, beyond the web processes' drain bound.
_STOP_MARGIN_SECONDS = 10.0


@dataclass
class _Process:
    """One process of the stack and how to start it again."""

    name: str
    command: list[str]
    restart: bool = False
    popen: subprocess.Popen[bytes] | None = None
    started: float = field(default=0.0)

    def start(self) -> None:
        """Start (or start again)."""
        self.popen = subprocess.Popen(self.command)
        self.started = time.monotonic()


def _web(host: str, port: int) -> list[str]:
    """A web process, as compose and `make run` start it."""
    app = "collab.asgi:application"
    return [sys.executable, "-m", "collab.server", "-b", host, "-p", str(port), app]


def _commands(host: str, port: int, concurrency: int, flower: bool) -> dict[str, list[str]]:
    """The processes of the topology other than the web processes."""
    py = sys.executable
    commands = {
        "worker": [
            py, "-m", "celery", "-A", "collab", "worker", "--loglevel", "INFO",
            "--pool", "prefork", "--concurrency", str(concurrency),
            "--hostname", f"worker-{os.getpid()}@%h",
        ],
        "beat": [py, "-m", "celery", "-A", "collab", "beat", "--loglevel", "INFO"],
    }  # fmt: skip
    if flower:
        commands["flower"] = [py, "-m", "celery", "-A", "collab", "flower", "--port=5555"]
    return commands


def haproxy_config(host: str, port: int, web_ports: list[int]) -> str:
    """HAProxy in front of the web processes: health-checked, WebSocket-friendly, no stickiness
    (any process serves any document)."""
    servers = "\n".join(
        f"    server web{i} 127.0.0.1:{web_port} check" for i, web_port in enumerate(web_ports, 1)
    )
    return f"""global
    maxconn {_haproxy_maxconn()}

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # An open WebSocket: y-websocket clients ping every 30 s at most.
    timeout tunnel 1h
    # A handshake refused by a draining process (503) or a refused connection is tried again
    # on another process.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout 503

frontend palimpsest
    bind {host}:{port}
    default_backend web

backend web
    balance leastconn
    option httpchk GET /healthz
    http-check expect status 200
    default-server inter 1s fall 1 rise 2
{servers}
"""


def _haproxy_maxconn() -> int:
    """As many connections as this process's file limit lets HAProxy hold (two per
    connection), up to 20,000; HAProxy refuses to start if it cannot raise its limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 20_000
    return max(256, min(20_000, (soft - 100) // 2))


def main(argv: list[str]) -> int:
    """Prepare the database, start every process, stop them all together."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "collab.settings")
    parser = argparse.ArgumentParser(prog="python -m collab.stack")
    parser.add_argument("--host", default=settings.HOST)
    parser.add_argument("--port", type=int, default=settings.PORT)
    parser.add_argument("--web", type=int, default=1, help="web processes (more: behind HAProxy)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--flower", action="store_true", help="also run flower on :5555")
    args = parser.parse_args(argv)
    if not settings.REDIS_URL or settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        print("make stack needs REDIS_URL and DATABASE_URL (PostgreSQL)", file=sys.stderr)
        return 2
    if args.web < 1:
        parser.error("--web must be at least 1")
    # The processes read their settings from the environment, and the web process derives its
    # trusted origins from PORT: keep it the port clients use (HAProxy's, with several).
    os.environ["PORT"] = str(args.port)
    py = sys.executable
    for step in (
        ["migrate", "--noinput"],
        ["setup_periodic_tasks"],
        ["collectstatic", "--noinput", "-v", "0"],
    ):
        subprocess.run([py, "manage.py", *step], check=True)

    processes: list[_Process] = []
    workdir = tempfile.TemporaryDirectory(prefix="palimpsest-stack-")
    if args.web == 1:
        processes.append(_Process("web", _web(args.host, args.port), restart=True))
    else:
        web_ports = [args.port + i for i in range(1, args.web + 1)]
        for i, web_port in enumerate(web_ports, 1):
            processes.append(_Process(f"web{i}", _web("127.0.0.1", web_port), restart=True))
        haproxy = shutil.which("haproxy") or (
            "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
        )
        if haproxy is None:
            shown = ", ".join(f"127.0.0.1:{p}" for p in web_ports)
            print(f"haproxy is not installed: no load balancer; web processes on {shown}")
        else:
            config = Path(workdir.name) / "haproxy.cfg"
            config.write_text(haproxy_config(args.host, args.port, web_ports))
            processes.append(_Process("haproxy", [haproxy, "-W", "-db", "-f", str(config)]))
            print(f"haproxy on {args.host}:{args.port} in front of web ports {web_ports}")
    for name, command in _commands(args.host, args.port, args.concurrency, args.flower).items():
        processes.append(_Process(name, command))

    stopping = False

    def stop(signum: int = signal.SIGTERM, frame: object = None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for process in processes:
        process.start()
    code = _supervise(processes, lambda: stopping)
    _stop_all(processes)
    workdir.cleanup()
    return code


def _supervise(processes: list[_Process], stopping: Callable[[], bool]) -> int:
    """Watch the processes until asked to stop or one that is not restarted exits."""
    while not stopping():
        for process in processes:
            assert process.popen is not None
            if process.popen.poll() is None:
                continue
            returncode = process.popen.returncode
            quick = time.monotonic() - process.started < _CRASH_LOOP_SECONDS
            if process.restart and not quick:
                print(f"{process.name} exited with {returncode}; starting it again")
                process.start()
                continue
            print(f"{process.name} exited with {returncode}; stopping the stack", file=sys.stderr)
            return returncode or 1
        time.sleep(0.2)
    return 0


def _stop_all(processes: list[_Process]) -> None:
    """SIGTERM to the web processes first (they drain), then to the rest; kill stragglers."""
    webs = [p for p in processes if p.restart]
    others = [p for p in processes if not p.restart]
    deadline = time.monotonic() + settings.PALIMPSEST_DRAIN_SECONDS + _STOP_MARGIN_SECONDS
    for group in (webs, others):
        for process in group:
            if process.popen is not None and process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        for process in group:
            if process.popen is None:
                continue
            try:
                process.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
