"""Suites kept out of a plain pytest run (the reliability suite, the LocalStack suite): their tests run only
when asked for, by their marker (`-m NAME`) or by a path inside their folder on the command line (then only
the tests under that path: `pytest tests tests/on_localstack/test_localstack_smoke.py` adds the smoke alone)."""

from __future__ import annotations

from pathlib import Path

import pytest


def asked_for(config: pytest.Config, item: Path, folder: Path, marker: str) -> bool:
    """Whether `item` (a test file under `folder`) was asked for: by `marker` in `-m`, or by a path on the
    command line that is inside `folder` and holds `item`."""
    if marker in (config.option.markexpr or ""):
        return True
    for arg in config.args:
        path = Path(str(arg).split("::", 1)[0]).resolve()
        if (path == folder or folder in path.parents) and (path == item or path in item.parents):
            return True
    return False


def keep_apart(
    config: pytest.Config, items: list[pytest.Item], folder: Path, marker: str, *also: pytest.MarkDecorator
) -> None:
    """Mark the tests under `folder` with `marker` (and `also`), and deselect those not asked for."""
    mine = [item for item in items if folder in Path(str(item.path)).resolve().parents]
    for item in mine:
        item.add_marker(getattr(pytest.mark, marker))
        for mark in also:
            item.add_marker(mark)
    left_out = [item for item in mine if not asked_for(config, Path(str(item.path)).resolve(), folder, marker)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item not in left_out]
