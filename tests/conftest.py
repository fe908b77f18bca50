"""Shared fixtures: services the tests need must be there in CI, never silently skipped."""

from __future__ import annotations

import os
import shutil
import socket

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def _port_open(host: str, port: int) -> bool:
    """Whether something listens on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require(what: str, available: bool) -> None:
    """Skip when a service is missing on a developer machine; fail in CI."""
    if available:
        return
    message = f"{what} is not available"
    if IN_CI:
        pytest.fail(f"{message}, and CI must run this test")
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_available() -> None:
    """Redis on its standard port."""
    require("Redis on 127.0.0.1:6379", _port_open("127.0.0.1", 6379))


@pytest.fixture(scope="session")
def postgres_available() -> None:
    """PostgreSQL on its standard port."""
    require("PostgreSQL on 127.0.0.1:5432", _port_open("127.0.0.1", 5432))


@pytest.fixture(scope="session")
def node_available() -> None:
    """Node.js and the locked npm clients."""
    here = os.path.dirname(__file__)
    installed = os.path.isdir(os.path.join(here, "interop", "clients", "node_modules", "yjs"))
    require(
        "Node.js with tests/interop/clients installed", bool(shutil.which("node")) and installed
    )


@pytest.fixture(scope="session")
def wide_fonts_available() -> None:
    """Fonts for scripts DejaVu lacks (Debian's fonts-noto-cjk and fonts-noto-core)."""
    import subprocess

    try:
        found = subprocess.run(
            ["fc-list", ":lang=zh"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        found = ""
    require("CJK fonts (apt-get install fonts-noto-cjk fonts-noto-core)", bool(found))
