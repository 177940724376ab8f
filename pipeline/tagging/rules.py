"""What the tag-compliance rules share: their parameters (set by [tags], see `schema`) and the built-in
resource table they watch."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from pipeline.tagging.table import ResourceType, load_table
from pipeline.tagging.watch import FIELDS, TagWatch

# The rules' parameters, set by the [tags] section (pipeline/defaults.toml shows these defaults there).
PARAMS = {"required": {"Owner": "", "CostCenter": "", "Environment": ""}, "grace": "15m", "types": {}}
PARAM_DOCS = {
    "required": 'Required tag keys, each with a regular expression its value must fully match ("" for any '
    "value); set for every tag rule by [tags], here for this rule alone.",
    "grace": "How long a new resource (or one that lost a required tag) may lack them before a finding.",
    "types": "Per resource type: its own `required` and/or `grace`, or `enabled = false` (see [tags]).",
}


@cache
def builtin_table() -> dict[str, ResourceType]:
    """The built-in resource table (pipeline/tagging/resources.toml), loaded and checked once."""
    return load_table()


def builtin_watch(rule_id: str, type_names: Iterable[str]) -> TagWatch:
    """A TagWatch over the named types of the built-in table."""
    table = builtin_table()
    return TagWatch(rule_id, {name: table[name] for name in type_names}, table)


def absence_options(watch: TagWatch) -> dict[str, Any]:
    """The `absence` declaration every tag rule shares (the rule adds its id, title, severity, finding, runbook
    and cases): watched events, [tags] parameters, the grace as window, the watch's fold and checks."""
    return {
        "events": watch.events(),
        "params": PARAMS,
        "param_docs": PARAM_DOCS,
        "shared": "tags",
        "window": "grace",
        "ttl": "30d",
        "dedup": 0,
        "fields": FIELDS,
        "fold": watch.fold,
        "satisfied": watch.satisfied,
        "window_of": watch.window,
        "dump_value": watch.dump,
        "load_value": watch.load,
        "track_before_start": False,
        "validate": watch.check,
        "resolved": "tags added",
        "ended": "resource deleted",
    }
