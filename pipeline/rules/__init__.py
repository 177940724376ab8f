"""The built-in rule pack: every module in this package declares rules with the decorators of
`pipeline.rule`; importing the package's modules registers them."""

from __future__ import annotations

import importlib
import pkgutil

from pipeline.rule import REGISTRY, Rule


def builtin_rules() -> list[Rule]:
    """Every built-in rule, sorted by id."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    return sorted(REGISTRY.values(), key=lambda r: r.id)
