"""A clone stands on its own: nothing the project runs reads outside the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# `../shared` (or `ROOT.parent / "shared"`) is the steering folder beside a developer's checkout;
# a user's clone has none, so a reference to it is a test or benchmark that fails for them.
_OUTSIDE = re.compile(r"""\.\./shared|parent\s*/\s*["']shared["']""")


def _tracked_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return [ROOT / name for name in out.split("\0") if name]


def test_no_tracked_file_reads_the_sibling_shared_folder() -> None:
    checked = [
        p
        for p in _tracked_files()
        if (
            p.suffix in {".py", ".mjs", ".js", ".sh", ".toml", ".yml"}
            or p.name in {"Makefile", "run"}
        )
        and p != Path(__file__).resolve()  # this file names the pattern it looks for
    ]
    assert len(checked) > 50, "expected to scan the project's sources"
    offenders = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in checked
        if p.exists()
        for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
        if _OUTSIDE.search(line)
    ]
    assert offenders == [], f"reads outside the repository: {offenders}"


def test_the_traces_the_tests_use_ship_with_their_licence() -> None:
    traces = ROOT / "tests" / "data" / "traces"
    assert (traces / "seph-blog1.json.gz").stat().st_size > 100_000
    readme = (traces / "README.md").read_text()
    assert "CC BY 4.0" in readme and "Joseph Gentle" in readme
