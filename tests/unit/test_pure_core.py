"""The CRDT and protocol core imports no Django."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_sync_core_imports_no_django() -> None:
    modules = [p.stem for p in (ROOT / "collab" / "sync").glob("*.py") if p.stem != "__init__"]
    assert modules, "collab/sync has no modules"
    code = (
        "import sys\n"
        + "".join(f"import collab.sync.{m}\n" for m in modules)
        + "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        + "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", f"collab.sync imports Django: {out.stdout}"
