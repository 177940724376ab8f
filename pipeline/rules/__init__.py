"""The rule pack: the built-in rules (every module in this package declares rules with the decorators
of `pipeline.rule`; importing the package's modules registers them), SigmaHQ's AWS CloudTrail rules
bundled in `sigma/`, and the user's own Sigma folders (`[sigma]` in the configuration, `--sigma`)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from pathlib import Path

from pipeline.config import Config, ConfigError
from pipeline.rule import REGISTRY, Rule


def builtin_rules() -> list[Rule]:
    """Every built-in (Python) rule, sorted by id."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    return sorted(REGISTRY.values(), key=lambda r: r.id)


def sigma_folders(config: Config, extra: Iterable[str] = ()) -> list[Path]:
    """The user's Sigma folders: `[sigma] folders` (relative to the configuration file's folder), then `extra`."""
    section = config.section("sigma")
    unknown = set(section) - {"bundled", "folders"}
    if unknown:
        raise ConfigError(f"{config.where()}: [sigma] has unknown key(s) {sorted(unknown)}; use bundled, folders")
    folders = section.get("folders", [])
    if not isinstance(folders, list) or not all(isinstance(f, str) and f for f in folders):
        raise ConfigError(f'{config.where()}: [sigma] folders must be a list of paths, e.g. ["sigma-rules"]')
    base = config.path.parent if config.path is not None else Path.cwd()
    return [base / f for f in folders] + [Path(e) for e in extra]


def rule_pack(config: Config, sigma: Iterable[str] = ()) -> list[Rule]:
    """Every rule a process runs, sorted by id: the built-in rules, the bundled Sigma rules (unless
    `[sigma] bundled = false`) and the Sigma rules of the user's folders (`[sigma] folders` and `sigma`).
    Raises ConfigError (SigmaLoadError listing every problem) if a Sigma file cannot be loaded."""
    from pipeline import sigma as sigma_rules  # pySigma is imported only when a pack is built

    bundled = config.section("sigma").get("bundled", True)
    if not isinstance(bundled, bool):
        raise ConfigError(f"{config.where()}: [sigma] bundled must be true or false")
    rules = builtin_rules()
    shipped = sigma_rules.bundled()
    if bundled:
        rules += shipped.rules
    folders = sigma_folders(config, sigma)
    if folders:
        own = sigma_rules.load(folders, "Sigma rules of " + ", ".join(str(f) for f in folders), shipped.detections)
        taken = {r.id for r in rules}
        clash = sorted(r.id for r in own.rules if r.id in taken)
        if clash:
            raise ConfigError(
                f"Sigma rules of {', '.join(map(str, folders))}: id(s) {clash} are already rules of "
                "the pack; give those rules another `name`"
            )
        rules += own.rules
    return sorted(rules, key=lambda r: r.id)
