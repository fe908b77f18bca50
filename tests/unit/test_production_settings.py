"""`manage.py check --deploy` passes under the production environment the README documents,
and fails without it (so the check can fail)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

# The README's "Production settings" example, with a throwaway key and host.
PRODUCTION = {
    "DEBUG": "0",
    "ALLOWED_HOSTS": "docs.example.org",
    "CSRF_TRUSTED_ORIGINS": "https://docs.example.org",
    "SESSION_COOKIE_SECURE": "1",
    "CSRF_COOKIE_SECURE": "1",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SECURE_HSTS_PRELOAD": "1",
    "SECURE_SSL_REDIRECT": "1",
    "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO=https",
}


def _check_deploy(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in PRODUCTION and k != "SECRET_KEY"}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**clean, "PALIMPSEST_VAR_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_passes_with_the_documented_production_environment(tmp_path: Path) -> None:
    done = _check_deploy(tmp_path, {**PRODUCTION, "SECRET_KEY": secrets.token_urlsafe(50)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_check_deploy_fails_on_the_defaults(tmp_path: Path) -> None:
    done = _check_deploy(tmp_path, {})
    assert done.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W009", "security.W012"):
        assert warning in done.stdout + done.stderr, warning


def test_compose_keeps_secrets_out_of_the_file_and_flower_private() -> None:
    compose_text = (ROOT / "docker-compose.yml").read_text()
    compose = yaml.safe_load(compose_text)
    services = compose["services"]
    flower = services["flower"]
    assert flower["ports"] == ["127.0.0.1:5555:5555"]
    assert "--basic-auth" in flower["command"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert flower["environment"]["REDIS_URL"], "flower keeps the app's environment"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith(
        "${POSTGRES_PASSWORD:?"
    )
    web_env = services["web"]["environment"]
    assert web_env["SECRET_KEY"].startswith("${SECRET_KEY:?")
    assert "${POSTGRES_PASSWORD:?" in web_env["DATABASE_URL"]
    assert "palimpsest:palimpsest@" not in compose_text


_LOG_A_CLOSE = """
import logging, uuid
import django
django.setup()
from collab.realtime.rooms import log_ids
doc = uuid.UUID("12345678-1234-5678-1234-567812345678")
logging.getLogger("collab.realtime.consumer").info(
    "closing %s: %s (%s)", "c1", "too big", 4413, extra={**log_ids(doc, "c1"), "close_code": 4413}
)
"""


def test_json_logs_carry_document_and_connection_ids(tmp_path: Path) -> None:
    def run(log_format: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", _LOG_A_CLOSE],
            cwd=ROOT,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "collab.settings",
                "PALIMPSEST_VAR_DIR": str(tmp_path),
                "PALIMPSEST_LOG_FORMAT": log_format,
            },
            capture_output=True,
            text=True,
            timeout=120,
        )

    done = run("json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stderr.strip().splitlines()[-1])
    assert record["message"] == "closing c1: too big (4413)"
    assert record["level"] == "INFO" and record["logger"] == "collab.realtime.consumer"
    assert record["document_id"] == "12345678-1234-5678-1234-567812345678"
    assert record["connection_id"] == "c1" and record["close_code"] == 4413
    assert "time" in record
    text = run("text")
    assert text.stderr.strip().splitlines()[-1] == "closing c1: too big (4413)"
    wrong = run("xml")
    assert wrong.returncode != 0 and "PALIMPSEST_LOG_FORMAT must be text or json" in wrong.stderr
