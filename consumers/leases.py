"""Local start-up in seconds: pre-seed a KCL 3 lease table, and clear a dead worker's leader lock.

With an empty lease table the KCL scheduler waits a random 1 to 30 s before its first shard sync
(12 to 60 s to the first record); with leases already owned by the worker's fixed id it starts
processing in about 5 s. A worker restarted under a new id after a crash waits out the 120 s
leader lock in `<app>-CoordinatorState` unless that item is removed. Both are for local runs:
on AWS the KCL manages its tables alone.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from consumers.shards import is_open, shards

log = logging.getLogger(__name__)

LEASE_OWNER_INDEX = "LeaseOwnerToLeaseKeyIndex"


def lease_table_definition(table: str) -> dict[str, Any]:
    """The lease table exactly as KCL 3.1 creates it (so the KCL accepts a table we made first)."""
    return {
        "TableName": table,
        "KeySchema": [{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        "AttributeDefinitions": [
            {"AttributeName": "leaseKey", "AttributeType": "S"},
            {"AttributeName": "leaseOwner", "AttributeType": "S"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
        "GlobalSecondaryIndexes": [
            {
                "IndexName": LEASE_OWNER_INDEX,
                "KeySchema": [
                    {"AttributeName": "leaseOwner", "KeyType": "HASH"},
                    {"AttributeName": "leaseKey", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    }


def ensure_lease_table(ddb: Any, table: str, timeout: float = 30.0) -> bool:
    """Create the lease table if missing; True if it was created. Waits until it is ACTIVE."""
    created = False
    try:
        ddb.create_table(**lease_table_definition(table))
        created = True
    except ddb.exceptions.ResourceInUseException:
        pass
    deadline = time.monotonic() + timeout
    while ddb.describe_table(TableName=table)["Table"].get("TableStatus") != "ACTIVE":
        if time.monotonic() > deadline:
            raise RuntimeError(f"lease table {table} not ACTIVE after {timeout}s")
        time.sleep(0.1)
    return created


def lease_item(shard: dict[str, Any], owner: str, checkpoint: str) -> dict[str, Any]:
    hashes = shard.get("HashKeyRange", {})
    item: dict[str, Any] = {
        "leaseKey": {"S": shard["ShardId"]},
        "leaseOwner": {"S": owner},
        "leaseCounter": {"N": "1"},
        "checkpoint": {"S": checkpoint},
        "checkpointSubSequenceNumber": {"N": "0"},
        "ownerSwitchesSinceCheckpoint": {"N": "0"},
        "startingHashKey": {"S": str(hashes.get("StartingHashKey", "0"))},
        "endingHashKey": {"S": str(hashes.get("EndingHashKey", "0"))},
    }
    parents = [p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p]
    if parents:
        item["parentShardId"] = {"SS": parents}
    return item


def seed_leases(
    ddb: Any, kinesis: Any, application: str, stream: str, owner: str, initial_position: str = "TRIM_HORIZON"
) -> int:
    """Create the lease table and the leases a new application starts from, owned by `owner`; existing leases
    (with their checkpoints) are kept. Returns how many leases were written.

    A new application (no lease yet) that starts in the past (TRIM_HORIZON, AT_TIMESTAMP) gets a lease for
    every shard, closed parents included: the KCL reads a child only once its parents' leases say SHARD_END, and
    it never makes a lease for the parent of a shard that has one, so a child seeded alone would start from the
    position while its parents' records (those of the range before the reshard) stayed unread. A closed parent
    whose records all precede the position ends at its first read. An application that has leases gets only
    the open shards that lack one (a parent's lease the KCL deleted after its children started stays deleted)."""
    ensure_lease_table(ddb, application)
    every = shards(kinesis, stream)
    fresh = initial_position != "LATEST" and not _scan(ddb, application, limit=1)
    written = 0
    for shard in every if fresh else [s for s in every if is_open(s)]:
        try:
            ddb.put_item(
                TableName=application,
                Item=lease_item(shard, owner, initial_position),
                ConditionExpression="attribute_not_exists(leaseKey)",
            )
            written += 1
        except ddb.exceptions.ConditionalCheckFailedException:
            pass
    log.info("lease table %s: %d leases seeded for %s", application, written, owner)
    return written


def take_over_leases(ddb: Any, application: str, owner: str) -> int:
    """Give every lease of `application` to `owner` (a local restart under a new worker id)."""
    moved = 0
    for item in _scan(ddb, application):
        if item.get("leaseOwner", {}).get("S") == owner:
            continue
        counter = int(item.get("leaseCounter", {}).get("N", "0")) + 1
        ddb.update_item(
            TableName=application,
            Key={"leaseKey": item["leaseKey"]},
            UpdateExpression="SET leaseOwner = :o, leaseCounter = :c",
            ExpressionAttributeValues={":o": {"S": owner}, ":c": {"N": str(counter)}},
        )
        moved += 1
    return moved


def clear_leader_lock(ddb: Any, application: str, owner: str | None = None) -> bool:
    """Delete the `Leader` item of `<application>-CoordinatorState` unless `owner` already holds it.
    Only for a single local worker: the previous holder must be dead. True if an item was removed."""
    table = f"{application}-CoordinatorState"
    try:
        item = ddb.get_item(TableName=table, Key={"key": {"S": "Leader"}}, ConsistentRead=True).get("Item")
    except ddb.exceptions.ResourceNotFoundException:
        return False
    if not item or (owner is not None and item.get("ownerName", {}).get("S") == owner):
        return False
    ddb.delete_item(TableName=table, Key={"key": {"S": "Leader"}})
    log.info("removed the leader lock of %s held by %s", application, item.get("ownerName", {}).get("S"))
    return True


def _scan(ddb: Any, table: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The table's items (at most about `limit` of them, if given)."""
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    if limit:
        kwargs["Limit"] = limit
    while True:
        response = ddb.scan(**kwargs)
        items += response.get("Items", [])
        if not response.get("LastEvaluatedKey") or (limit and len(items) >= limit):
            return items
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
