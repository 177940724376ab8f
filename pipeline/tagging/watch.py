"""`TagWatch`: the stage-1 and stage-2 halves of a tag-compliance rule over some resource types of the
table, for the absence kind: an event to the steps it plays for each resource it names (stage 1), and
a resource's TagSet after each fact, whether it is compliant, how it is saved (stage 2).

Stage 1 reads the ids and tags the table says; only the tags of the type's schema travel. A resource
is keyed by "account:region:id" when the rule watches one type (the EC2 instance rule, whose keys
predate the table) and "account:region:type:id" otherwise; a type with one namespace for all regions
(S3) keys with an empty region. Failed calls change nothing; a creation made by an AWS service
principal itself starts no watch (what AWS creates for itself is not the organisation's to tag).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from pipeline.event import Event, mapping, text
from pipeline.rule import Params
from pipeline.stateful.facts import Fact, Step
from pipeline.stateful.steps import END, START
from pipeline.tagging.schema import Schema, check, schemas
from pipeline.tagging.table import CREATE, DELETE, TAG, UNTAG, Operation, ResourceType, read_removed, read_tags, targets
from pipeline.tagging.tagset import TagSet, aligned, tag_set

TAGS_STEP = "tags"  # a change to the tags: fields set, replace, del or all
FIELDS = ("tags", "set", "replace", "del", "all")


class TagWatch:
    """The tag-compliance behaviour over `types` (the table's entries a rule watches)."""

    def __init__(self, rule_id: str, types: Mapping[str, ResourceType], known: Mapping[str, ResourceType]) -> None:
        self.rule_id = rule_id
        self.types = dict(types)
        self.known = tuple(known)  # every type of the table: what the configuration may name
        self.single = next(iter(self.types.values())) if len(self.types) == 1 else None
        self.index: dict[tuple[str, str], list[tuple[ResourceType, Operation]]] = {}
        for rtype in self.types.values():
            for op in rtype.operations:
                for name in op.events:
                    self.index.setdefault((op.source, name), []).append((rtype, op))

    def events(self) -> dict[str, list[str]]:
        """{eventSource: event names}: what stage 1 indexes the rule by."""
        out: dict[str, list[str]] = {}
        for source, name in self.index:
            out.setdefault(source, []).append(name)
        return out

    # --- keys -----------------------------------------------------------------------------------

    def key(self, rtype: ResourceType, resource_id: str, account: str, region: str) -> str:
        region = "" if rtype.global_ else region
        if self.single is not None:
            return f"{account}:{region}:{resource_id}"
        return f"{account}:{region}:{rtype.name}:{resource_id}"

    def parts(self, key: str) -> tuple[ResourceType | None, str, str, str]:
        """(type, account, region, id) of a key."""
        if self.single is not None:
            account, region, rid = [*key.split(":", 2), "", ""][:3]
            return self.single, account, region, rid
        account, region, type_name, rid = [*key.split(":", 3), "", "", ""][:4]
        return self.types.get(type_name), account, region, rid

    def schema(self, key: str, p: Params) -> Schema | None:
        """The schema of the resource `key` names (None: its type is not watched)."""
        if self.single is not None:
            return schemas(p, self.known).get(self.single.name)
        type_name = key.split(":", 3)[2] if key.count(":") >= 3 else ""
        return schemas(p, self.known).get(type_name) if type_name in self.types else None

    # --- stage 1 --------------------------------------------------------------------------------

    def steps(self, e: Event, p: Params) -> list[Step] | None:
        """The steps `e` plays for each watched resource it names."""
        if e.error_code:
            return None
        ops = self.index.get((e.source, e.name))
        if not ops:
            return None
        by_type = schemas(p, self.known)
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for rtype, op in ops:
            schema = by_type.get(rtype.name)
            if schema is None or (op.kind == CREATE and e.identity_type == "AWSService"):
                continue
            for (rid, account, region), item in targets(op, rtype, e.raw):
                key = self.key(rtype, rid, account or e.account, region or e.region)
                self._read(op, e.raw, item, schema, key, out)
        steps = [
            Step(key, step, fields=fields or None) for (key, step), fields in out.items() if step != TAGS_STEP or fields
        ]
        return steps or None

    @staticmethod
    def _read(
        op: Operation,
        record: dict[str, Any],
        item: Any,
        schema: Schema,
        key: str,
        out: dict[tuple[str, str], dict[str, Any]],
    ) -> None:
        """Add what `op` does to resource `key` into `out` ((key, step) -> fields)."""
        if op.kind == DELETE:
            out[(key, END)] = {}
        elif op.kind == CREATE:
            fields = out.setdefault((key, START), {})
            tags = read_tags(op, record, item, schema.index)
            if tags:
                fields.setdefault("tags", {}).update(tags)
        elif op.kind == TAG:
            tags = read_tags(op, record, item, schema.index)
            fields = out.setdefault((key, TAGS_STEP), {})
            if op.replace:
                fields.setdefault("replace", {}).update(tags or {})
            elif tags:
                fields.setdefault("set", {}).update(tags)
        elif op.kind == UNTAG:
            removed, every = read_removed(op, record, item, schema.index)
            fields = out.setdefault((key, TAGS_STEP), {})
            if every:
                fields["all"] = True
            elif removed:
                fields.setdefault("del", {}).update(removed)

    # --- stage 2 --------------------------------------------------------------------------------

    def fold(self, value: TagSet | None, fact: Fact, p: Params) -> TagSet | None:
        """The resource's TagSet after `fact`."""
        if type(value) is TagSet:
            schema, values, creator = value.schema, value.tag_values, value.creator
        else:
            found = self.schema(fact.key, p)
            if found is None:
                return value
            schema, values, creator = found, (None,) * len(found.keys), ""
        if fact.step == START and not creator:
            creator = fact.principal
        fields = fact.fields
        if fields:
            new = list(values)
            index = schema.index
            changes: list[tuple[str, Any]] = []
            if fact.step == START:
                changes.extend(mapping(fields.get("tags")).items())
            if "replace" in fields or fields.get("all") is True:
                new = [None] * len(new)
            changes.extend(mapping(fields.get("replace")).items())
            changes.extend(mapping(fields.get("set")).items())
            for key, v in changes:
                i = index.get(key)
                if i is not None:
                    new[i] = text(v)
            for key, v in mapping(fields.get("del")).items():
                i = index.get(key)
                if i is not None and new[i] is not None and (v is None or new[i] == v):
                    new[i] = None
            values = tuple(new)
        return tag_set(schema, values, creator)

    def satisfied(self, value: TagSet | None, p: Params) -> bool:
        """Every required tag present with a matching value."""
        if type(value) is TagSet:
            return value.schema.accepts(value.tag_values)
        if self.single is None:
            return True  # no TagSet: a type no longer watched
        schema = schemas(p, self.known).get(self.single.name)
        return schema is None or not schema.keys

    def window(self, value: TagSet | None, p: Params) -> float | None:
        """The resource's grace period: its type's (a key restored without a TagSet has the rule's
        type's, when the rule watches one type)."""
        if type(value) is TagSet:
            return value.schema.grace
        schema = schemas(p, self.known).get(self.single.name) if self.single is not None else None
        return schema.grace if schema is not None else None

    def dump(self, value: TagSet | None) -> Any:
        """A TagSet as a snapshot holds it: the tags present (the EC2 instance rule, as before the
        table), or {"type", "by", "tags"}."""
        if type(value) is not TagSet:
            return value
        if self.single is not None:
            return dict(value)
        return {"type": value.schema.type, "by": value.creator, "tags": dict(value)}

    def load(self, raw: Any, p: Params) -> TagSet | None:
        """A TagSet read back from a snapshot, aligned with today's schema of its type."""
        if raw is None:
            return None
        if self.single is not None:
            type_name, creator, tags = self.single.name, "", mapping(raw)
        else:
            raw = mapping(raw)
            type_name, creator, tags = text(raw.get("type")), sys.intern(text(raw.get("by"))), mapping(raw.get("tags"))
        schema = schemas(p, self.known).get(type_name)
        return None if schema is None else tag_set(schema, aligned(schema, tags), creator)

    def check(self, p: Params) -> None:
        """Raise ConfigError if the rule's schemas are not usable (see `schema.check`)."""
        check(p, self.rule_id, self.known)
