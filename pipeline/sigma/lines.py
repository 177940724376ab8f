"""Where things are in a Sigma file: the 1-based line of a key, so a load error can point at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import yaml

# libyaml's parser when PyYAML was built with it: the same documents, a tenth of the time (every process
# that loads the bundled rules parses them, backfill's worker processes too).
SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def documents(text: str) -> list[yaml.Node | None]:
    """The YAML node tree of each document (raises yaml.YAMLError like `yaml.safe_load_all`)."""
    return list(yaml.compose_all(text, Loader=SAFE_LOADER))


def start(node: yaml.Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 1


def _pairs(node: yaml.Node | None) -> Iterator[tuple[yaml.Node, yaml.Node]]:
    if isinstance(node, yaml.MappingNode):
        yield from node.value


def child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    """The value node of `key` in a mapping node."""
    for k, v in _pairs(node):
        if getattr(k, "value", None) == key:
            return v
    return None


def key_line(node: yaml.Node | None, *path: str) -> int | None:
    """The line of the last key of `path` (keys of nested mappings), or None."""
    for i, key in enumerate(path):
        for k, v in _pairs(node):
            if getattr(k, "value", None) == key:
                if i == len(path) - 1:
                    return start(k)
                node = v
                break
        else:
            return None
    return None


def find_key(node: yaml.Node | None, wanted: Callable[[str], bool]) -> int | None:
    """The line of the first key anywhere below `node` for which `wanted(key)` holds."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k.value, str) and wanted(k.value):
                return start(k)
            found = find_key(v, wanted)
            if found is not None:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found = find_key(item, wanted)
            if found is not None:
                return found
    return None
