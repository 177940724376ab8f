"""A KCL 3 application's tables: local start-up in seconds, and a stopped worker's hand-back.

Local start-up: with an empty lease table the KCL scheduler waits a random 1 to 30 s before its first
shard sync (12 to 60 s to the first record); with leases already owned by the worker's fixed id it starts
processing in about 5 s. A worker restarted under a new id after a crash waits out the 120 s leader lock
in `<app>-CoordinatorState` unless that item is removed. Seeding and clearing are for local runs only.

Hand-back (`release_worker`, everywhere, after the worker's daemon has exited): KCL 3.1's graceful
shutdown checkpoints but leaves its leases owned in the table (the lease coordinator's stop forgets them
in memory only), its leader lock held and its worker metrics fresh, so another worker waits out the
failover time, the lock's lease and the metrics' expiry before reading on. A stopped worker gives all
three back, each write conditional on the item still naming this worker; checkpoints are not touched.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Released:
    """What a stopped worker gave back: lease keys, the leader lock, its worker metrics row."""

    leases: list[str] = field(default_factory=list)
    leader: bool = False
    metrics: bool = False


def release_leases(ddb: Any, application: str, owner: str) -> list[str]:
    """Leave every lease `owner` holds without an owner, as the KCL's own eviction does (leaseOwner and
    checkpointOwner removed, leaseCounter + 1), each only if `owner` still holds it: the leader then assigns
    it at once. Checkpoints stay. Only for a worker whose daemon has exited. Returns the lease keys freed."""
    freed: list[str] = []
    try:
        items = _scan(ddb, application)
    except ddb.exceptions.ResourceNotFoundException:
        return freed
    for item in items:
        if item.get("leaseOwner", {}).get("S") != owner:
            continue
        try:
            ddb.update_item(
                TableName=application,
                Key={"leaseKey": item["leaseKey"]},
                UpdateExpression="REMOVE leaseOwner, checkpointOwner ADD leaseCounter :one",
                ConditionExpression="leaseOwner = :owner",
                ExpressionAttributeValues={":owner": {"S": owner}, ":one": {"N": "1"}},
            )
            freed.append(item["leaseKey"]["S"])
        except ddb.exceptions.ConditionalCheckFailedException:
            pass  # another worker took it meanwhile
    return freed


def release_leader_lock(ddb: Any, application: str, owner: str) -> bool:
    """Delete the `Leader` item of `<application>-CoordinatorState` if `owner` holds it, so another worker
    becomes leader (and assigns the freed leases) now rather than after the lock's lease. True if deleted."""
    try:
        ddb.delete_item(
            TableName=f"{application}-CoordinatorState",
            Key={"key": {"S": "Leader"}},
            ConditionExpression="ownerName = :owner",
            ExpressionAttributeValues={":owner": {"S": owner}},
        )
    except (ddb.exceptions.ConditionalCheckFailedException, ddb.exceptions.ResourceNotFoundException):
        return False
    return True


def forget_worker_metrics(ddb: Any, application: str, owner: str) -> bool:
    """Delete `owner`'s row of `<application>-WorkerMetricStats`: without it the leader no longer counts the
    worker as active (it would for twice the reporting interval) and assigns it nothing. True if deleted."""
    try:
        ddb.delete_item(
            TableName=f"{application}-WorkerMetricStats",
            Key={"wid": {"S": owner}},
            ConditionExpression="attribute_exists(wid)",
        )
    except (ddb.exceptions.ConditionalCheckFailedException, ddb.exceptions.ResourceNotFoundException):
        return False
    return True


def release_worker(ddb: Any, application: str, owner: str) -> Released:
    """Everything a stopped worker holds in its application's tables, given back (see the module's text)."""
    return Released(
        leases=release_leases(ddb, application, owner),
        leader=release_leader_lock(ddb, application, owner),
        metrics=forget_worker_metrics(ddb, application, owner),
    )


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
