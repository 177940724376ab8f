"""The resource table: for each taggable resource type, the calls that create it, tag it, untag it and
delete it, and where in each call's CloudTrail record its id and tags are (`resources.toml`).

An entry is data, checked when it is loaded: a bad path, an unknown key or an ARN template without
`{id}` is a TableError naming the file, the entry and the key. See `resources.toml` for the format.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any

from pipeline.config import ConfigError
from pipeline.event import text
from pipeline.tagging.paths import Path, PathError, parse

BUILTIN = FilePath(__file__).with_name("resources.toml")
CREATE, TAG, UNTAG, DELETE = "create", "tag", "untag", "delete"
KINDS = (CREATE, TAG, UNTAG, DELETE)
# The names tag objects give their key and value, in the casings the services write.
KEY_NAMES = ("key", "Key", "tagKey", "TagKey")
VALUE_NAMES = ("value", "Value", "tagValue", "TagValue")
_TYPE_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
_ENTRY_KEYS = {"title", "source", "arn", "prefix", "lowercase", "global", "unconfirmed", *KINDS}
_COMMON_OP_KEYS = {"events", "source", "each", "ids", "id_form", "unless"}
_OP_KEYS = _COMMON_OP_KEYS | {"tags", "tag_maps", "keys", "replace", "all", "all_when_empty", "match_value"}
_OP_ALLOWED = {
    CREATE: {"tags", "tag_maps"},
    TAG: {"tags", "tag_maps", "replace"},
    UNTAG: {"keys", "tags", "all", "all_when_empty", "match_value"},
    DELETE: set(),
}
_PLACEHOLDERS = {
    "partition": r"aws(?:-[a-z]+)*",
    "region": r"[a-z0-9-]*",
    "account": r"\d{12}|",
    "id": r"[^:]+",
    "suffix": r"[A-Za-z0-9]{6}",
    "*": r"[^:/]+",
}


class TableError(ConfigError):
    """A resource table entry that cannot be used (the message names the file, the entry and the key)."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One kind of call on a resource type: where its record holds the resource ids and the tags."""

    kind: str
    source: str
    events: tuple[str, ...]
    ids: tuple[Path, ...]
    each: Path | None = None
    id_form: str = "id"  # "id": an id or an ARN; "url": a URL ending in the id (SQS)
    unless: tuple[Path, ...] = ()  # the call is not this operation when one of these paths reads a value
    tags: tuple[Path, ...] = ()  # tag objects: {key, value} in any of the services' casings
    tag_maps: tuple[Path, ...] = ()  # {tag key: tag value} objects
    keys: tuple[Path, ...] = ()  # untag: tag keys as strings
    replace: bool = False  # tag: the tags given replace all of the resource's tags
    all: bool = False  # untag: removes every tag
    all_when_empty: bool = False  # untag: naming no tag removes every tag
    match_value: bool = False  # untag: a tag named with a value is removed only if it has that value


@dataclass(frozen=True, slots=True)
class ResourceType:
    """A taggable resource type; `arn` is the template of its ARNs ({partition}, {region}, {account},
    {id}, and {suffix} or {*} for parts that are not the id)."""

    name: str
    title: str
    source: str
    arn: str
    operations: tuple[Operation, ...]
    prefix: str = ""  # ids of this type start with it (EC2 CreateTags names resources of every type)
    lowercase: bool = False  # ids are case-insensitive and AWS keeps them in lower case (RDS)
    global_: bool = False  # one namespace for all regions (S3 buckets): keys and ARNs carry no region
    unconfirmed: str = ""  # shapes not confirmed against a real record (shown in the docs)
    arn_pattern: re.Pattern[str] | None = None

    def resource_id(self, value: Any, form: str) -> tuple[str, str, str] | None:
        """(id, account, region) from a value an id path read: account and region are "" unless an
        ARN or URL gives them. None when the value is not an id of this type."""
        value = text(value)
        account = region = ""
        if form == "url":
            parts = value.rstrip("/").split("/")
            value = parts[-1] if "://" in value else ""
            if len(parts) >= 2 and parts[-2].isdigit():
                account = parts[-2]
        elif value.startswith("arn:"):
            found = self.arn_pattern.fullmatch(value) if self.arn_pattern is not None else None
            if found is None:
                return None
            value = found["id"]
            groups = found.groupdict()
            account, region = groups.get("account") or "", groups.get("region") or ""
        if self.lowercase:
            value = value.lower()
        if not value or not value.startswith(self.prefix):
            return None
        return value, account, region

    def arn_of(self, resource_id: str, account: str, region: str) -> str:
        """The ARN of a resource of this type (a part that is not known reads "*")."""
        partition = "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
        return (
            self.arn.replace("-{suffix}", "")
            .replace("{*}", "*")
            .replace("{partition}", partition)
            .replace("{region}", "" if self.global_ else region)
            .replace("{account}", account)
            .replace("{id}", resource_id)
        )


def targets(op: Operation, rtype: ResourceType, record: dict[str, Any]) -> Iterator[tuple[tuple[str, str, str], Any]]:
    """((id, account, region), item) for every resource of `rtype` the call names (item: the element of
    `each` it was read from, else None); nothing when an `unless` path reads a value."""
    if any(path.read(record) for path in op.unless):
        return
    for item in op.each.read(record) if op.each is not None else (None,):
        for path in op.ids:
            for value in path.read(record, item):
                found = rtype.resource_id(value, op.id_form)
                if found is not None:
                    yield found, item


def read_tags(op: Operation, record: dict[str, Any], item: Any, wanted: Mapping[str, Any]) -> dict[str, str] | None:
    """The tags the call sets whose key is in `wanted`; None if it names no tag at all."""
    out: dict[str, str] = {}
    named = False
    for path in op.tags:
        for tag in path.read(record, item):
            key, value = _pair(tag)
            if key is not None:
                named = True
                if key in wanted:
                    out[key] = text(value)
    for path in op.tag_maps:
        for tags in path.read(record, item):
            if type(tags) is dict:
                named = named or bool(tags)
                out.update((k, text(v)) for k, v in tags.items() if k in wanted)
    return out if named else None


def read_removed(
    op: Operation, record: dict[str, Any], item: Any, wanted: Mapping[str, Any]
) -> tuple[dict[str, str | None], bool]:
    """(the tags in `wanted` the call removes, key -> the value it must have or None; whether it removes
    every tag)."""
    if op.all:
        return {}, True
    out: dict[str, str | None] = {}
    named = False
    for path in op.keys:
        for key in path.read(record, item):
            if type(key) is str:
                named = True
                if key in wanted:
                    out[key] = None
    for path in op.tags:
        for tag in path.read(record, item):
            key, value = _pair(tag)
            if key is not None:
                named = True
                if key in wanted:
                    out[key] = value if op.match_value and type(value) is str else None
    return out, op.all_when_empty and not named


def _pair(tag: Any) -> tuple[str | None, Any]:
    if type(tag) is not dict:
        return None, None
    for name in KEY_NAMES:
        key = tag.get(name)
        if type(key) is str:
            return key, next((tag[v] for v in VALUE_NAMES if v in tag), None)
    return None, None


# --- loading ----------------------------------------------------------------------------------------


def load_table(path: str | FilePath = BUILTIN) -> dict[str, ResourceType]:
    """The resource types of a table file, checked (TableError names the file, the entry and the key)."""
    path = FilePath(path)
    where = _display(path)
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise TableError(f"{where}: the resource table cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TableError(f"{where}: the resource table is not valid TOML: {exc}") from None
    types = doc.get("types")
    unknown = set(doc) - {"types"}
    if unknown or not isinstance(types, dict) or not types:
        raise TableError(
            f"{where}: a resource table holds [types.<name>] entries only"
            + (f"; unknown: {sorted(unknown)}" if unknown else "")
        )
    return {name: _entry(where, name, entry) for name, entry in types.items()}


def _display(path: FilePath) -> str:
    """The table's file as its errors name it: relative to the package for the built-in table."""
    try:
        return str(path.resolve().relative_to(BUILTIN.resolve().parents[2]))
    except ValueError:
        return str(path)


def _entry(where: str, name: str, entry: Any) -> ResourceType:
    at = f"{where}: [types.{name}]"
    if not _TYPE_NAME.fullmatch(name):
        raise TableError(f'{at}: a type name is lower-case letters, digits and dashes, e.g. "s3-bucket"')
    if not isinstance(entry, dict):
        raise TableError(f"{at} must be a table")
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise TableError(f"{at}: unknown key(s) {sorted(unknown)}; an entry takes {sorted(_ENTRY_KEYS)}")
    title, source, arn = (_text(at, entry, key) for key in ("title", "source", "arn"))
    if "{id}" not in arn or not arn.startswith("arn:"):
        raise TableError(f'{at}.arn: {arn!r} is not an ARN template with {{id}}, e.g. "arn:{{partition}}:s3:::{{id}}"')
    pattern = _arn_pattern(at, arn)
    ops: list[Operation] = []
    for kind in KINDS:
        listed = entry.get(kind, [])
        if not isinstance(listed, list) or not all(isinstance(op, dict) for op in listed):
            raise TableError(f"{at}.{kind} must be a list of tables ([[types.{name}.{kind}]])")
        ops.extend(_operation(f"{at}.{kind}[{i}]", kind, source, op) for i, op in enumerate(listed))
    if not any(op.kind == CREATE for op in ops):
        raise TableError(f"{at}: no [[types.{name}.create]] operation: nothing would start the watch")
    flags = {key: entry.get(key, False) for key in ("lowercase", "global")}
    for key, value in flags.items():
        if not isinstance(value, bool):
            raise TableError(f"{at}.{key} must be true or false")
    prefix = entry.get("prefix", "")
    unconfirmed = entry.get("unconfirmed", "")
    if not isinstance(prefix, str) or not isinstance(unconfirmed, str):
        raise TableError(f"{at}: prefix and unconfirmed are strings")
    return ResourceType(
        name, title, source, arn, tuple(ops), prefix, flags["lowercase"], flags["global"], unconfirmed, pattern
    )


def _text(at: str, entry: dict[str, Any], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise TableError(f"{at}.{key} is missing or not a string")
    return value


def _arn_pattern(at: str, template: str) -> re.Pattern[str]:
    out, rest = [], template
    while rest:
        start = rest.find("{")
        if start < 0:
            out.append(re.escape(rest))
            break
        end = rest.find("}", start)
        name = rest[start + 1 : end] if end > start else ""
        if name not in _PLACEHOLDERS:
            raise TableError(
                f"{at}.arn: {template!r} has an unknown placeholder {rest[start : end + 1]!r}; "
                f"use {', '.join('{' + p + '}' for p in _PLACEHOLDERS)}"
            )
        out.append(re.escape(rest[:start]))
        group = name if name in ("partition", "region", "account", "id") else ""
        out.append(f"(?P<{group}>{_PLACEHOLDERS[name]})" if group else f"(?:{_PLACEHOLDERS[name]})")
        rest = rest[end + 1 :]
    return re.compile("".join(out))


def _operation(at: str, kind: str, source: str, op: dict[str, Any]) -> Operation:
    unknown = set(op) - _OP_KEYS
    misplaced = (set(op) & (_OP_KEYS - _COMMON_OP_KEYS)) - _OP_ALLOWED[kind]
    if unknown or misplaced:
        raise TableError(
            f"{at}: {'unknown' if unknown else 'not for a ' + kind + ' operation:'} key(s) "
            f"{sorted(unknown or misplaced)}; a {kind} operation takes "
            f"{sorted(_COMMON_OP_KEYS | _OP_ALLOWED[kind])}"
        )
    events = op.get("events")
    if not isinstance(events, list) or not events or not all(isinstance(e, str) and e for e in events):
        raise TableError(f'{at}.events must be a non-empty list of event names, e.g. ["CreateBucket"]')
    source = op.get("source", source)
    if not isinstance(source, str) or not source.endswith(".amazonaws.com"):
        raise TableError(f'{at}.source: {source!r} is not an eventSource such as "s3.amazonaws.com"')
    each = _path(f"{at}.each", op["each"], False) if "each" in op else None
    paths = {
        key: _paths(at, key, op.get(key, []), each is not None) for key in ("ids", "tags", "tag_maps", "keys", "unless")
    }
    if not paths["ids"]:
        raise TableError(f"{at}.ids: no path to the resource id")
    if kind == TAG and not (paths["tags"] or paths["tag_maps"]):
        raise TableError(f"{at}: a tag operation needs `tags` or `tag_maps`")
    if kind == UNTAG and not (paths["keys"] or paths["tags"] or op.get("all")):
        raise TableError(f"{at}: an untag operation needs `keys`, `tags` or `all = true`")
    form = op.get("id_form", "id")
    if form not in ("id", "url"):
        raise TableError(f'{at}.id_form: {form!r} is "id" (an id or an ARN) or "url"')
    flags = {}
    for key in ("replace", "all", "all_when_empty", "match_value"):
        flags[key] = op.get(key, False)
        if not isinstance(flags[key], bool):
            raise TableError(f"{at}.{key} must be true or false")
    return Operation(
        kind,
        source,
        tuple(events),
        paths["ids"],
        each,
        form,
        paths["unless"],
        paths["tags"],
        paths["tag_maps"],
        paths["keys"],
        **flags,
    )


def _paths(at: str, key: str, value: Any, items: bool) -> tuple[Path, ...]:
    if not isinstance(value, list):
        raise TableError(f"{at}.{key} must be a list of paths")
    return tuple(_path(f"{at}.{key}[{i}]", text_, items) for i, text_ in enumerate(value))


def _path(at: str, value: Any, items: bool) -> Path:
    try:
        return parse(value, items)
    except PathError as exc:
        raise TableError(f"{at}: {exc}") from None
