"""The CloudTrail test data vendored in `tests/fixtures/` (licences and origin in its README and NOTICE)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
STRATUS = FIXTURES / "stratus-red-team" / "detonation-logs"  # only the technique files (licence one up)


def stratus_files() -> list[Path]:
    """The 35 technique files of the Stratus Red Team corpus, sorted by name."""
    files = sorted(STRATUS.glob("*.json"))
    if not files:
        raise FileNotFoundError(
            f"no Stratus Red Team corpus in {STRATUS}: it is part of the repository; "
            "restore it with `git checkout -- tests/fixtures`"
        )
    return files


def stratus_records() -> list[dict[str, Any]]:
    """Every record of the corpus, file by file in name order."""
    return [r for path in stratus_files() for r in json.loads(path.read_text())]
