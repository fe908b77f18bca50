"""`make stack`: the docker-compose topology without Docker (web, worker, beat [, flower]).

Needs REDIS_URL and DATABASE_URL (PostgreSQL) pointing at running servers; reads them, HOST
and PORT through the project's settings. Each process
is started as compose would start it; a signal to this one stops them all, and if one of
them dies the rest are stopped too.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from django.conf import settings


def _commands(host: str, port: int, concurrency: int, flower: bool) -> dict[str, list[str]]:
    """The processes of the topology."""
    py = sys.executable
    commands = {
        "web": [py, "-m", "collab.server", "-b", host, "-p", str(port), "collab.asgi:application"],
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


def main(argv: list[str]) -> int:
    """Prepare the database, start every process, stop them all together."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "collab.settings")
    parser = argparse.ArgumentParser(prog="python -m collab.stack")
    parser.add_argument("--host", default=settings.HOST)
    parser.add_argument("--port", type=int, default=settings.PORT)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--flower", action="store_true", help="also run flower on :5555")
    args = parser.parse_args(argv)
    if not settings.REDIS_URL or settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        print("make stack needs REDIS_URL and DATABASE_URL (PostgreSQL)", file=sys.stderr)
        return 2
    # The processes read their settings from the environment, and the web process derives its
    # trusted origins from PORT: keep it the port it serves on.
    os.environ["PORT"] = str(args.port)
    py = sys.executable
    for step in (
        ["migrate", "--noinput"],
        ["setup_periodic_tasks"],
        ["collectstatic", "--noinput", "-v", "0"],
    ):
        subprocess.run([py, "manage.py", *step], check=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(signum: int = signal.SIGTERM, frame: object = None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for name, command in _commands(args.host, args.port, args.concurrency, args.flower).items():
        procs[name] = subprocess.Popen(command)
    code = 0
    while not stopping:
        for name, proc in procs.items():
            if proc.poll() is not None:
                print(f"{name} exited with {proc.returncode}; stopping the stack", file=sys.stderr)
                code = proc.returncode or 1
                stopping = True
        time.sleep(0.2)
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for proc in procs.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
