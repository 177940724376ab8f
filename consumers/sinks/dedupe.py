"""The dedupe table: which finding deliveries were already made, and how often each finding recurred.

Consulted before publishing (`seen`, a consistent BatchGetItem) and marked only after every sink
acknowledged (`mark`, a conditional PutItem on the key with a TTL attribute). So no alert is lost;
a second alert needs a crash between the acknowledgement and the mark. A key is a finding's
`delivery_key`: its id for the first alert, `<id>:resolved` for its resolution.

`count(id, n)` adds `n` repeats to the finding's item (`occurrences`, an atomic update shared by every
shard and process) and returns the total, which a digest carries.
"""

from __future__ import annotations

import functools
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from consumers.sinks.retry import RetryPolicy, SinkUnavailable, call, error_code

MAX_GET_KEYS = 100
DEFAULT_TTL = 7 * 24 * 3600


class DedupeTable:
    """Finding ids in DynamoDB: partition key `key` (String), TTL attribute `ttl_attribute` (epoch seconds)."""

    def __init__(
        self,
        client: Any,
        table: str,
        key: str = "finding_id",
        ttl_attribute: str = "expires_at",
        ttl_seconds: float = DEFAULT_TTL,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.table = table
        self.key = key
        self.ttl_attribute = ttl_attribute
        self.ttl_seconds = ttl_seconds
        self.policy = policy or RetryPolicy()
        self.clock = clock

    def seen(self, ids: Iterable[str]) -> set[str]:
        """The ids among `ids` already marked (consistent read)."""
        wanted = list(dict.fromkeys(ids))
        found: set[str] = set()
        for start in range(0, len(wanted), MAX_GET_KEYS):
            keys = [{self.key: {"S": i}} for i in wanted[start : start + MAX_GET_KEYS]]
            found |= self._get(keys)
        return found

    def _get(self, keys: list[dict[str, Any]]) -> set[str]:
        found: set[str] = set()
        delays = self.policy.delays()
        while keys:
            request = {
                self.table: {
                    "Keys": keys,
                    "ConsistentRead": True,
                    "ProjectionExpression": "#k",
                    "ExpressionAttributeNames": {"#k": self.key},
                }
            }
            response = call(
                functools.partial(self._batch_get, request), self.policy, f"DynamoDB BatchGetItem on {self.table}"
            )
            for item in (response.get("Responses") or {}).get(self.table, []):
                value = item.get(self.key, {}).get("S")
                if isinstance(value, str):
                    found.add(value)
            keys = ((response.get("UnprocessedKeys") or {}).get(self.table) or {}).get("Keys") or []
            if keys:
                delay = next(delays, None)
                if delay is None:
                    raise SinkUnavailable(f"DynamoDB BatchGetItem on {self.table}: keys left unprocessed")
                self.policy.sleep(delay)
        return found

    def mark(self, finding_ids: Iterable[str]) -> int:
        """Record each id (if not already there); returns how many were new."""
        new = 0
        expires = int(self.clock() + self.ttl_seconds)
        for finding_id in dict.fromkeys(finding_ids):
            item = {
                self.key: {"S": finding_id},
                self.ttl_attribute: {"N": str(expires)},
                "marked_at": {"N": str(int(self.clock()))},
                "occurrences": {"N": "1"},
            }
            if call(functools.partial(self._put, item), self.policy, f"DynamoDB PutItem on {self.table}"):
                new += 1
        return new

    def _batch_get(self, request: dict[str, Any]) -> dict[str, Any]:
        return self.client.batch_get_item(RequestItems=request)

    def count(self, finding_id: str, repeats: int) -> int | None:
        """Add `repeats` to the finding's occurrences (1 when first marked); returns the new total."""
        expires = int(self.clock() + self.ttl_seconds)
        response = call(
            lambda: self.client.update_item(
                TableName=self.table,
                Key={self.key: {"S": finding_id}},
                UpdateExpression="SET #o = if_not_exists(#o, :one) + :n, #t = if_not_exists(#t, :exp)",
                ExpressionAttributeNames={"#o": "occurrences", "#t": self.ttl_attribute},
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":n": {"N": str(int(repeats))},
                    ":exp": {"N": str(expires)},
                },
                ReturnValues="UPDATED_NEW",
            ),
            self.policy,
            f"DynamoDB UpdateItem on {self.table}",
        )
        value = ((response or {}).get("Attributes") or {}).get("occurrences", {}).get("N")
        return int(value) if isinstance(value, str) and value.isdigit() else None

    def _put(self, item: dict[str, Any]) -> bool:
        try:
            self.client.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(#k)",
                ExpressionAttributeNames={"#k": self.key},
            )
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True


class MemoryDedupe:
    """The same contract in memory (bounded, oldest forgotten first), for local runs without a table."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, int] = OrderedDict()  # key -> occurrences

    def seen(self, ids: Iterable[str]) -> set[str]:
        return {i for i in ids if i in self._ids}

    def mark(self, finding_ids: Iterable[str]) -> int:
        new = 0
        for i in finding_ids:
            if i not in self._ids:
                new += 1
            self._ids[i] = self._ids.get(i, 1)
            self._ids.move_to_end(i)
        self._bound()
        return new

    def count(self, finding_id: str, repeats: int) -> int | None:
        total = self._ids[finding_id] = self._ids.get(finding_id, 1) + repeats
        self._ids.move_to_end(finding_id)
        self._bound()
        return total

    def _bound(self) -> None:
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)


class ReadOnlyDedupe:
    """A dedupe table consulted, never marked: a replay or backfill that does not alert must not record
    anything as alerted."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def seen(self, ids: Iterable[str]) -> set[str]:
        return self.table.seen(ids)

    def mark(self, finding_ids: Iterable[str]) -> int:
        return 0

    def count(self, finding_id: str, repeats: int) -> int | None:
        return None  # nothing is recorded: no digests
