"""Production-path benchmark: the embedded default against PostgreSQL + Redis (one web
process, then two with each room's clients split between them), 80 x 5 against the Node
reference server, and a join burst, each measured in one run so the ratios compare like with
like.

Run from the repository root: .venv/bin/python bench/production.py [--quick]
PostgreSQL and Redis are the local ones (BENCH_PG_URL, BENCH_REDIS_URL); each scenario gets a
fresh database and a Redis database of its own that is emptied first.
Raw results go to var/bench/production.json; a table with the targets is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis
from realtime import (
    CLIENTS,
    OURS_USERS,
    ROOT,
    Load,
    NodeServer,
    OursServer,
    Result,
    Server,
    ensure_clients,
    fanout,
    free_port,
    wait_listening,
)

RESULTS = ROOT / "var" / "bench" / "production.json"
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
JOIN_HOLD_S = 3.0


@dataclass(frozen=True)
class Plan:
    """What to run: the fan-out load, and the join burst's shape."""

    load: Load
    big_docs: int
    join_docs: int
    join_per_doc: int


FULL = Plan(
    load=Load(docs=(40,), clients=5, rate=5, duration=15, drain=5, trace_limit=None, window=0),
    big_docs=80,
    join_docs=200,
    join_per_doc=10,
)
QUICK = Plan(
    load=Load(docs=(5,), clients=3, rate=5, duration=3, drain=2, trace_limit=None, window=0),
    big_docs=8,
    join_docs=10,
    join_per_doc=4,
)


PROFILES = ROOT / "var" / "bench" / "profiles"


class Ours(OursServer):
    """Palimpsest as bench/realtime.py runs it; with --profile, py-spy samples each web
    process for the whole scenario (collapsed stacks under var/bench/profiles)."""

    profile = False

    def __init__(self, extra_env: dict[str, str]) -> None:
        super().__init__(extra_env)
        self.samplers: list[subprocess.Popen[bytes]] = []

    def sample(self, pid: int) -> None:
        """Start py-spy on one process, if profiling."""
        if not self.profile:
            return
        PROFILES.mkdir(parents=True, exist_ok=True)
        out = PROFILES / f"{self.name}-{self.scenario}-{pid}.txt"
        spy = Path(sys.executable).parent / "py-spy"
        self.samplers.append(
            subprocess.Popen(
                [str(spy), "record", "--pid", str(pid), "--format", "raw", "-o", str(out)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    def start(self) -> None:
        """Start, then sample."""
        super().start()
        assert self.process is not None
        self.sample(self.process.pid)

    def stop(self) -> None:
        """Stop sampling (py-spy writes its file on SIGINT), then the server."""
        for sampler in self.samplers:
            sampler.send_signal(signal.SIGINT)
        for sampler in self.samplers:
            try:
                sampler.wait(timeout=30)
            except subprocess.TimeoutExpired:
                sampler.kill()
        self.samplers = []
        super().stop()


class PostgresServer(Ours):
    """Palimpsest on a fresh PostgreSQL database and a flushed Redis database."""

    def __init__(self, processes: int = 1) -> None:
        """`processes` web processes share the database and Redis."""
        super().__init__({})
        self.processes = processes
        self.database = ""
        self.ports: list[int] = []
        self.extra: list[subprocess.Popen[bytes]] = []
        self._resetting = False

    @property
    def url(self) -> str:
        """Every process's document URL, comma-separated (fanout.mjs splits each room)."""
        ports = self.ports or [self.port]
        return ",".join(f"ws://127.0.0.1:{port}/ws/docs" for port in ports)

    def reset(self, scenario: str) -> None:
        """A new database, an empty Redis database, then migrations, users and the servers."""
        self._drop_database()
        self.database = f"palimpsest_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        redis.Redis.from_url(REDIS_URL).flushdb()
        base = PG_URL.rsplit("/", 1)[0]
        self.extra_env = {"DATABASE_URL": f"{base}/{self.database}", "REDIS_URL": REDIS_URL}
        self._resetting = True  # OursServer.reset cleans up first: not the new database
        try:
            super().reset(scenario)
        finally:
            self._resetting = False

    def start(self) -> None:
        """The first process as OursServer starts it, then the others on ports of their own."""
        super().start()
        self.ports = [self.port]
        first = self.port
        for _ in range(self.processes - 1):
            self.port = free_port()
            log = self.log_path().with_suffix(f".{self.port}.log")
            with log.open("ab") as out:
                process = subprocess.Popen(
                    self.command(), cwd=ROOT, env=self.env(), stdout=out, stderr=subprocess.STDOUT
                )
            self.extra.append(process)
            wait_listening(self.port, process, log)
            self.sample(process.pid)
            self.ports.append(self.port)
        self.port = first

    def stop(self) -> None:
        """Stop every process."""
        for process in self.extra:
            if process.poll() is None:
                process.terminate()
        for process in self.extra:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.extra = []
        super().stop()

    def cleanup(self) -> None:
        """Stop, and drop the database (unless it is the one being set up)."""
        super().cleanup()
        if not self._resetting:
            self._drop_database()

    def _drop_database(self) -> None:
        if not self.database:
            return
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        self.database = ""


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process, in MB, or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def join_burst(server: Server, plan: Plan) -> Result:
    """Open join_docs x join_per_doc clients at once; time until all are synced, and the
    server's RSS while they are connected."""
    server.reset("join")
    try:
        rooms = server.rooms(plan.join_docs, OURS_USERS)
        for room in rooms:
            tokens = room["tokens"]
            room["tokens"] = [tokens[i % len(tokens)] for i in range(plan.join_per_doc)]
        with tempfile.TemporaryDirectory() as tmp:
            rooms_file = Path(tmp) / "rooms.json"
            rooms_file.write_text(json.dumps(rooms))
            assert server.process is not None
            rss_before = rss_mb(server.process.pid)
            args = ["--url", server.url, "--rooms", str(rooms_file), "--hold", str(JOIN_HOLD_S)]
            child = subprocess.Popen(
                ["node", str(CLIENTS / "join.mjs"), *args],
                cwd=CLIENTS,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert child.stdout is not None
            line = child.stdout.readline()
            time.sleep(1.0)  # joined: let the server settle before its memory is read
            rss_joined = rss_mb(server.process.pid)
            _, err = child.communicate(timeout=120 + JOIN_HOLD_S)
        if not line:
            return {"error": f"join.mjs exited {child.returncode}: {err[-2000:]}"}
        result: Result = json.loads(line)
        return {**result, "rss_before_mb": rss_before, "rss_joined_mb": rss_joined}
    finally:
        server.stop()


def run(plan: Plan, only: str = "") -> dict[str, Result]:
    """Every scenario, interleaved so a drift of the machine hits each side alike."""
    load = plan.load
    docs = load.docs[0]
    big = Load(
        docs=(plan.big_docs,),
        clients=load.clients,
        rate=load.rate,
        duration=load.duration,
        drain=load.drain,
        trace_limit=None,
        window=0,
    )
    sqlite, pg, pg2, node = (
        Ours({}),
        PostgresServer(1),
        PostgresServer(2),
        NodeServer(),
    )
    out: dict[str, Result] = {}
    steps: list[tuple[str, Server, Any]] = [
        (f"sqlite {docs}x{load.clients}", sqlite, lambda s: fanout(s, load, docs)),
        (f"postgres {docs}x{load.clients}", pg, lambda s: fanout(s, load, docs)),
        (f"postgres 2 processes {docs}x{load.clients}", pg2, lambda s: fanout(s, load, docs)),
        (f"node {big.docs[0]}x{load.clients}", node, lambda s: fanout(s, big, big.docs[0])),
        (f"sqlite {big.docs[0]}x{load.clients}", sqlite, lambda s: fanout(s, big, big.docs[0])),
        ("node join", node, lambda s: join_burst(s, plan)),
        ("sqlite join", sqlite, lambda s: join_burst(s, plan)),
    ]
    try:
        for label, server, step in steps:
            if only not in label:
                continue
            print(f"[{label}]", flush=True)
            out[label] = step(server)
            print(f"  {json.dumps(out[label])}", flush=True)
    finally:
        for server in (sqlite, pg, pg2, node):
            server.cleanup()
    return out


def p99(result: Result | None) -> float | None:
    """A fan-out result's p99, if it has one."""
    value = None if result is None else result.get("p99_ms")
    return float(value) if isinstance(value, int | float) else None


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, when both are there."""
    return None if a is None or not b else a / b


def targets(out: dict[str, Result], plan: Plan) -> list[tuple[str, float | None, float]]:
    """(what, measured ratio, target) for each of the issue's targets."""
    docs, clients, big = plan.load.docs[0], plan.load.clients, plan.big_docs
    one = p99(out.get(f"postgres {docs}x{clients}"))
    joins = [out.get(f"{name} join", {}).get("seconds") for name in ("sqlite", "node")]
    return [
        (
            f"PostgreSQL p99 / SQLite p99 at {docs}x{clients}",
            ratio(one, p99(out.get(f"sqlite {docs}x{clients}"))),
            1.3,
        ),
        (
            f"two processes p99 / one process p99 at {docs}x{clients}",
            ratio(p99(out.get(f"postgres 2 processes {docs}x{clients}")), one),
            1.5,
        ),
        (
            f"SQLite p99 / Node p99 at {big}x{clients}",
            ratio(p99(out.get(f"sqlite {big}x{clients}")), p99(out.get(f"node {big}x{clients}"))),
            1.5,
        ),
        ("join burst seconds / Node's", ratio(*joins), 2.0),
    ]


def report(out: dict[str, Result], plan: Plan) -> str:
    """The figures per scenario and the targets, as text."""
    lines = []
    keys = ("p50_ms", "p99_ms", "lost", "converged", "every_edit_logged", "seconds", "synced")
    for label, result in out.items():
        shown = {k: result[k] for k in (*keys, "rss_joined_mb", "error") if k in result}
        lines.append(f"{label:34} {json.dumps(shown)}")
    lines.append("")
    for what, value, target in targets(out, plan):
        verdict = "-" if value is None else ("met" if value <= target else "MISSED")
        shown = "-" if value is None else f"{value:.2f}"
        lines.append(f"{what:58} {shown:>6}  target <= {target}  {verdict}")
    return "\n".join(lines)


def main() -> None:
    """Run the plan, print the report, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small, short smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write raw JSON")
    parser.add_argument(
        "--profile", action="store_true", help="sample our servers with py-spy (needs ptrace)"
    )
    parser.add_argument(
        "--only", default="", help="run only the scenarios whose label contains this text"
    )
    args = parser.parse_args()
    Ours.profile = args.profile
    plan = QUICK if args.quick else FULL
    ensure_clients()
    out = run(plan, args.only)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "plan": str(plan),
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                "results": out,
            },
            indent=2,
        )
        + "\n"
    )
    print(report(out, plan))
    print(f"raw results: {args.out}")


if __name__ == "__main__":
    main()
