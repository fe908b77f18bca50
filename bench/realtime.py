"""Realtime benchmark: one load, one server at a time, against the Node reference server
(y-websocket 1.5.4), pycrdt-websocket and Palimpsest under daphne.

Run from the repository root: .venv/bin/python bench/realtime.py [--quick]
Raw results go to var/bench/realtime.json; a table with ratios is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = ROOT / "tests" / "interop" / "clients"
TRACE = ROOT / "tests" / "data" / "traces" / "seph-blog1.json.gz"
RESULTS = ROOT / "var" / "bench" / "realtime.json"
LOGS = ROOT / "var" / "bench" / "logs"
PYTHON = sys.executable
SERVER_NAMES = ("node", "pycrdt", "ours")
LABELS = {"node": "Node y-websocket", "pycrdt": "pycrdt-websocket", "ours": "Palimpsest"}
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
OURS_USERS = 5
BENCH_CONNECTIONS_PER_USER = 1000

Result = dict[str, Any]


@dataclass(frozen=True)
class Load:
    """The benchmark's load: fan-out shape, typing rate and trace length."""

    docs: tuple[int, ...]
    clients: int
    rate: float
    duration: float
    drain: float
    trace_limit: int | None
    window: int


FULL = Load(
    docs=(20, 40, 80), clients=5, rate=5, duration=15, drain=5, trace_limit=None, window=1000
)
QUICK = Load(docs=(5,), clients=3, rate=5, duration=3, drain=2, trace_limit=5000, window=1000)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Block until something accepts TCP connections on `port`, or fail if `process` exits."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"server exited at start; see {log}") from None
            time.sleep(0.1)
    raise RuntimeError(f"server did not listen on {port} within {START_TIMEOUT_S} s")


class Server:
    """A server under test, run as one child process on a free port."""

    name = ""
    persistent = False  # whether documents survive a restart

    def __init__(self) -> None:
        """Prepare an unstarted server."""
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.scenario = "start"

    @property
    def url(self) -> str:
        """The serverUrl a stock WebsocketProvider takes."""
        return f"ws://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """The command line that serves on `self.port`."""
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        """The server process's environment."""
        return dict(os.environ)

    def reset(self, scenario: str) -> None:
        """Start afresh for a scenario: no state from earlier runs."""
        self.scenario = scenario
        self.port = free_port()
        self.log_path().unlink(missing_ok=True)
        self.start()

    def log_path(self) -> Path:
        """This scenario's server log, under var/bench/logs."""
        return LOGS / f"{self.name}-{self.scenario}.log"

    def start(self) -> None:
        """Start the process and wait until it listens."""
        LOGS.mkdir(parents=True, exist_ok=True)
        log = self.log_path()
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command(), cwd=ROOT, env=self.env(), stdout=out, stderr=subprocess.STDOUT
            )
        wait_listening(self.port, self.process, log)

    def stop(self) -> None:
        """Stop the process with SIGTERM (SIGKILL if it lingers)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def rooms(self, docs: int, clients: int) -> list[Result]:
        """`docs` fresh rooms, each with `clients` tokens allowed to edit it."""
        run = uuid.uuid4().hex[:8]
        return [{"room": f"bench-{run}-{i}", "tokens": ["-"] * clients} for i in range(docs)]

    def audit(self, expected_events: int) -> Result:
        """Server-side checks after a scenario (none for the reference servers)."""
        return {}

    def cleanup(self) -> None:
        """Stop and remove anything left behind."""
        self.stop()


class NodeServer(Server):
    """The Node reference server: y-websocket 1.5.4 bin/server.js, nothing persisted."""

    name = "node"

    def command(self) -> list[str]:
        """node bin/server.js, listening on HOST/PORT from the environment."""
        return ["node", str(CLIENTS / "node_modules" / "y-websocket-ref" / "bin" / "server.js")]

    def env(self) -> dict[str, str]:
        """HOST and PORT for the reference server; no YPERSISTENCE."""
        env = {k: v for k, v in os.environ.items() if k != "YPERSISTENCE"}
        return {**env, "HOST": "127.0.0.1", "PORT": str(self.port)}


class PycrdtServer(Server):
    """pycrdt-websocket behind the `websockets` library, nothing persisted."""

    name = "pycrdt"

    def command(self) -> list[str]:
        """The peer server script in bench/peers."""
        script = ROOT / "bench" / "peers" / "pycrdt_ws_server.py"
        return [PYTHON, str(script), "--host", "127.0.0.1", "--port", str(self.port)]


class OursServer(Server):
    """Palimpsest under daphne, on a fresh SQLite database (or DATABASE_URL) per scenario."""

    name = "ours"
    persistent = True

    def __init__(self, extra_env: dict[str, str]) -> None:
        """Prepare an unstarted server with extra environment (e.g. REDIS_URL)."""
        super().__init__()
        self.extra_env = extra_env
        self.var_dir: Path | None = None
        self.users: list[str] = []
        self.tokens: list[str] = []
        self.events_before = 0

    @property
    def url(self) -> str:
        """Documents are served under /ws/docs/{id}."""
        return f"ws://127.0.0.1:{self.port}/ws/docs"

    def command(self) -> list[str]:
        """daphne on uvloop serving collab.asgi, as `make run` starts it."""
        address = ["-b", "127.0.0.1", "-p", str(self.port)]
        return [PYTHON, "-m", "collab.server", *address, "collab.asgi:application"]

    def env(self) -> dict[str, str]:
        """Settings module and data directory; SQLite unless --ours-env says otherwise."""
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        assert self.var_dir is not None
        env.update(
            PALIMPSEST_VAR_DIR=str(self.var_dir),
            DJANGO_SETTINGS_MODULE="collab.settings",
            # Each of the OURS_USERS users has a socket in every document (80 at most): over
            # the per-user cap meant for hostile clients (32), which would refuse most of them.
            PALIMPSEST_CONNECTIONS_PER_USER=str(BENCH_CONNECTIONS_PER_USER),
        )
        return {**env, **self.extra_env}

    def manage(self, *args: str) -> str:
        """Run a management command against this server's database; its stdout."""
        out = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    def reset(self, scenario: str) -> None:
        """New data directory, migrations and users, then start daphne."""
        self.cleanup()
        self.var_dir = Path(tempfile.mkdtemp(prefix="palimpsest-bench-"))
        self.manage("migrate", "--noinput")
        self.events_before = self.event_count()
        run = uuid.uuid4().hex[:6]
        self.users = [f"bench-{run}-{i}" for i in range(OURS_USERS)]
        self.tokens = [self.manage("issue_token", user, "--create") for user in self.users]
        super().reset(scenario)

    def api(self, path: str, body: Result) -> Result:
        """POST JSON to the API as the first (owner) user."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api{path}",
            method="POST",
            data=json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {self.tokens[0]}",
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            result: Result = json.loads(response.read() or b"{}")
            return result

    def rooms(self, docs: int, clients: int) -> list[Result]:
        """Documents owned by user 0 and shared with the next users as editors."""
        rooms = []
        for i in range(docs):
            doc_id = str(self.api("/docs", {"title": f"bench {self.scenario} {i}"})["id"])
            for username in self.users[1:clients]:
                self.api(f"/docs/{doc_id}/members", {"username": username, "role": "editor"})
            rooms.append({"room": doc_id, "tokens": self.tokens[:clients]})
        return rooms

    def event_count(self) -> int:
        """Rows in the event log."""
        return int(self.manage("shell", "-c", _EVENT_COUNT).splitlines()[-1])

    def audit(self, expected_events: int) -> Result:
        """Count the event log's new rows: every edit must be there."""
        logged = self.event_count() - self.events_before
        return {
            "events_logged": logged,
            "events_expected": expected_events,
            "every_edit_logged": logged >= expected_events,
        }

    def cleanup(self) -> None:
        """Stop daphne and remove the data directory."""
        super().cleanup()
        if self.var_dir is not None:
            shutil.rmtree(self.var_dir, ignore_errors=True)
            self.var_dir = None


_EVENT_COUNT = "from events.log import events_logged; print(events_logged())"


def run_node(script: str, args: list[str], timeout: float) -> Result:
    """Run one of the Node client scripts and parse the JSON line it prints last."""
    completed = subprocess.run(
        ["node", str(CLIENTS / script), *args],
        cwd=CLIENTS,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = completed.stdout.strip().splitlines()
    if not lines:
        tail = completed.stderr.strip()[-2000:]
        return {"error": f"{script} exited {completed.returncode}: {tail}"}
    result: Result = json.loads(lines[-1])
    return result


def fanout(server: Server, load: Load, docs: int) -> Result:
    """Fan-out scenario: `docs` rooms x `load.clients` typists, on a fresh server."""
    server.reset(f"fanout-{docs}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rooms_file = Path(tmp) / "rooms.json"
            rooms_file.write_text(json.dumps(server.rooms(docs, load.clients)))
            args = ["--url", server.url, "--rooms", str(rooms_file), "--rate", str(load.rate)]
            args += ["--duration", str(load.duration), "--drain", str(load.drain)]
            result = run_node("fanout.mjs", args, timeout=load.duration + load.drain + 300)
    finally:
        server.stop()
    return {**result, **server.audit(int(result.get("sent", 0)))}


def replay_args(server: Server, load: Load, room: Result) -> list[str]:
    """replay.mjs arguments: writer and reader on one room, the trace, its limit."""
    writer, reader = room["tokens"][0], room["tokens"][-1]
    args = ["--url", server.url, "--room", room["room"], f"--token={writer}"]
    # "=" form: a token may start with "-", which a separate argument would not survive.
    args += [f"--reader-token={reader}", "--trace", str(TRACE)]
    return args + (["--limit", str(load.trace_limit)] if load.trace_limit else [])


def fresh_sync(server: Server, room: Result, expect_len: int) -> Result:
    """Time a new client's initial sync of the finished document."""
    args = ["--url", server.url, "--room", room["room"], f"--token={room['tokens'][0]}"]
    return run_node("fresh_sync.mjs", [*args, "--expect-len", str(expect_len)], timeout=300)


def ingest(server: Server, load: Load) -> Result:
    """Ingest scenario: replay the trace unthrottled, then time a fresh sync (warm, and for a
    persistent server also after a restart, when the document comes back from storage)."""
    server.reset("ingest")
    try:
        room = server.rooms(1, 2)[0]
        result = run_node("replay.mjs", replay_args(server, load, room), timeout=1800)
        expect_len = int(result.get("expected_len", 0))
        result["fresh_sync"] = fresh_sync(server, room, expect_len)
        if server.persistent:
            server.stop()
            server.start()
            result["fresh_sync_cold"] = fresh_sync(server, room, expect_len)
    finally:
        server.stop()
    return {**result, **server.audit(int(result.get("txns", 0)))}


def ingest_paced(server: Server, load: Load) -> Result:
    """Ingest scenario with the writer at most `load.window` transactions ahead of the reader."""
    server.reset("ingest-paced")
    try:
        room = server.rooms(1, 2)[0]
        args = [*replay_args(server, load, room), "--window", str(load.window)]
        result = run_node("replay.mjs", args, timeout=1800)
    finally:
        server.stop()
    return {**result, **server.audit(int(result.get("txns", 0)))}


Scenario = tuple[str, tuple[str, ...], Callable[[Server], Result]]
# What a server under test may fail with; it is then recorded, not fatal to the others.
_FAILURES = (OSError, KeyError, RuntimeError, ValueError, subprocess.SubprocessError)


def scenarios(load: Load) -> list[Scenario]:
    """Every scenario: a label, where its result goes, and how to run it on one server."""

    def fanout_of(docs: int) -> Callable[[Server], Result]:
        return lambda server: fanout(server, load, docs)

    runs: list[Scenario] = [
        (f"fan-out {docs} docs x {load.clients} clients", ("fanout", str(docs)), fanout_of(docs))
        for docs in load.docs
    ]
    runs.append(("ingest", ("ingest",), lambda server: ingest(server, load)))
    runs.append(
        (
            f"ingest, paced (window {load.window})",
            ("ingest_paced",),
            lambda server: ingest_paced(server, load),
        )
    )
    return runs


def bench_servers(servers: list[Server], load: Load) -> dict[str, Result]:
    """Each scenario on every server in turn, so a drift in the machine hits them alike.

    A server that fails is recorded with its error and left out of the later scenarios.
    """
    results: dict[str, Result] = {server.name: {"fanout": {}} for server in servers}
    try:
        for label, path, run in scenarios(load):
            for server in servers:
                if "error" in results[server.name]:
                    continue
                print(f"[{server.name}] {label}", flush=True)
                try:
                    value = run(server)
                except _FAILURES as error:
                    print(f"[{server.name}] failed: {error!r}", file=sys.stderr, flush=True)
                    results[server.name] = {"error": repr(error)}
                    continue
                target = results[server.name]
                for key in path[:-1]:
                    target = target[key]
                target[path[-1]] = value
    finally:
        for server in servers:
            server.cleanup()
    return results


def figures(results: Result, load: Load) -> list[tuple[str, str]]:
    """The table's rows: (label, path into a server's results)."""
    rows = []
    for docs in load.docs:
        shape = f"fan-out {docs}x{load.clients}"
        for key in ("p50_ms", "p95_ms", "p99_ms", "lost", "converged", "disconnects"):
            rows.append((f"{shape} {key}", f"fanout.{docs}.{key}"))
    rows += [
        ("ingest edits/s", "ingest.edits_per_s"),
        ("ingest reader matches", "ingest.reader_matches"),
        (f"ingest paced (window {load.window}) edits/s", "ingest_paced.edits_per_s"),
        ("fresh sync s", "ingest.fresh_sync.seconds"),
    ]
    if "ours" in results:
        rows += [
            ("ours: fresh sync after restart s", "ingest.fresh_sync_cold.seconds"),
            ("ours: every edit logged (ingest)", "ingest.every_edit_logged"),
        ]
        rows += [
            (f"ours: every edit logged (fan-out {d})", f"fanout.{d}.every_edit_logged")
            for d in load.docs
        ]
    return rows


def lookup(result: Result | None, path: str) -> Any:
    """The value at a dotted `path` in nested dicts, or None."""
    value: Any = result
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def ratio(ours: Any, other: Any) -> str:
    """ours/other as text, when both are numbers and other is non-zero."""
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (ours, other))
    return f"{ours / other:.2f}" if numbers and other else ""


def cell(value: Any) -> str:
    """A table cell for one figure."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(results: Result, load: Load) -> str:
    """The results as a text table, with ours/Node and ours/pycrdt-websocket ratios."""
    names = [name for name in SERVER_NAMES if name in results]
    header = ["figure", *(LABELS[n] for n in names)]
    if "ours" in results:
        header += [f"ours/{LABELS[n]}" for n in names if n != "ours"]
    rows = [header]
    for label, path in figures(results, load):
        values = [lookup(results[n], path) for n in names]
        row = [label, *(cell(v) for v in values)]
        if "ours" in results:
            ours = lookup(results["ours"], path)
            row += [ratio(ours, lookup(results[n], path)) for n in names if n != "ours"]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def ensure_clients() -> None:
    """Install the Node clients from the lock file when they are missing."""
    if not (CLIENTS / "node_modules" / "y-websocket-ref").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=CLIENTS, check=True)


def make_server(name: str, ours_env: dict[str, str]) -> Server:
    """A server under test by name."""
    if name == "node":
        return NodeServer()
    if name == "pycrdt":
        return PycrdtServer()
    return OursServer(ours_env)


def parse_env(pairs: list[str]) -> dict[str, str]:
    """KEY=VALUE pairs as a dict."""
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--ours-env wants KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small, short smoke run")
    parser.add_argument(
        "--servers",
        default=",".join(SERVER_NAMES),
        help="comma-separated subset of node,pycrdt,ours",
    )
    parser.add_argument(
        "--ours-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for Palimpsest, e.g. REDIS_URL=redis://127.0.0.1:6379/0",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write raw JSON")
    return parser.parse_args()


def main() -> None:
    """Run every selected server through the load, print the table, write the JSON."""
    args = parse_args()
    load = QUICK if args.quick else FULL
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    unknown = set(names) - set(SERVER_NAMES)
    if unknown:
        raise SystemExit(f"unknown server(s): {', '.join(sorted(unknown))}")
    ours_env = parse_env(args.ours_env)
    ensure_clients()
    results = bench_servers([make_server(name, ours_env) for name in names], load)
    report = {
        "load": asdict(load),
        "quick": args.quick,
        "ours_env": ours_env,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(results, load))
    print(f"raw results: {args.out}")
    if any("error" in result for result in results.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
