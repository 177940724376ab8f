"""The shards of a Kinesis stream (ListShards, every page)."""

from __future__ import annotations

from typing import Any


def shards(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    """Every shard of `stream`, open and closed."""
    found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"StreamName": stream}
    while True:
        response = kinesis.list_shards(**kwargs)
        found += response.get("Shards", [])
        token = response.get("NextToken")
        if not token:
            return found
        kwargs = {"NextToken": token}


def is_open(shard: dict[str, Any]) -> bool:
    return not shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")


def open_shards(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    return [s for s in shards(kinesis, stream) if is_open(s)]


def children(kinesis: Any, stream: str, parent: str) -> list[dict[str, Any]]:
    """The shards whose parent (or adjacent parent, after a merge) is `parent`."""
    return [s for s in shards(kinesis, stream) if parent in (s.get("ParentShardId"), s.get("AdjacentParentShardId"))]
