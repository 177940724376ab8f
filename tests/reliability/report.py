"""Print the reliability table from the results file: `python -m tests.reliability.report [results.jsonl]`."""

from __future__ import annotations

import sys
from pathlib import Path

from .results import load, results_path, table


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else results_path()
    rows = load(path)
    if not rows:
        print(f"no reliability results in {path} (run `make reliability`)", file=sys.stderr)
        return 1
    print(table(rows))
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
