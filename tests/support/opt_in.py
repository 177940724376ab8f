"""Suites kept out of a plain pytest run (the reliability suite, the LocalStack suite): their tests run only
when asked for, by their marker (`-m NAME`) or by a path inside their folder on the command line."""

from __future__ import annotations

from pathlib import Path

import pytest


def asked_for(config: pytest.Config, folder: Path, marker: str) -> bool:
    if marker in (config.option.markexpr or ""):
        return True
    for arg in config.args:
        path = Path(str(arg).split("::", 1)[0]).resolve()
        if path == folder or folder in path.parents:
            return True
    return False


def keep_apart(
    config: pytest.Config, items: list[pytest.Item], folder: Path, marker: str, *also: pytest.MarkDecorator
) -> None:
    """Mark the tests under `folder` with `marker` (and `also`), and deselect them unless asked for."""
    mine = [item for item in items if folder in Path(str(item.path)).resolve().parents]
    for item in mine:
        item.add_marker(getattr(pytest.mark, marker))
        for mark in also:
            item.add_marker(mark)
    if mine and not asked_for(config, folder, marker):
        config.hook.pytest_deselected(items=mine)
        items[:] = [item for item in items if item not in mine]
