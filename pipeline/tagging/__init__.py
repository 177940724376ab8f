"""Tag compliance for every taggable resource: the pieces the two tag rules
(ec2-instance-missing-required-tags, resource-missing-required-tags) are made of.

- `resources.toml` and `table`: the declarative resource table (per type, the calls that create, tag,
  untag and delete it and where their records hold ids and tags), checked when loaded; `paths`, its
  field paths.
- `schema`: the [tags] schema (required keys, value patterns, grace; per type), checked at load.
- `tagset`: `TagSet`, the small shared value stage 2 keeps per resource.
- `watch`: `TagWatch`, a rule's two halves over some types (events to steps; fold, compliance, snapshot).
- `rules`: what the rules share (parameters, the built-in table); `samples` and `cases`: realistic
  calls per type and the cases built from them; `docs`: the table as docs/rules.md shows it.
"""
