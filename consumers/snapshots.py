"""Where stage 2 keeps each shard's state snapshot: S3 (the template's StateBucket), key `<app>/<shard>`.

A child shard's hand-off from a parent is kept beside it, `<app>/<child>.from/<parent>`; a child
starting without a snapshot of its own merges the hand-offs of its parents (two after a merge).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol

from consumers.sinks.retry import RetryPolicy, call, error_code
from pipeline.stateful import snapshot

log = logging.getLogger(__name__)


class SnapshotStore(Protocol):
    def load(self, shard: str) -> bytes | None: ...

    def save(self, shard: str, data: bytes) -> None: ...

    def save_handoff(self, child: str, parent: str, data: bytes) -> None: ...

    def handoffs(self, child: str) -> list[bytes]: ...


class S3SnapshotStore:
    def __init__(self, client: Any, bucket: str, application: str, policy: RetryPolicy | None = None) -> None:
        self.client = client
        self.bucket = bucket
        self.application = application
        self.policy = policy or RetryPolicy()

    def _key(self, shard: str) -> str:
        return f"{self.application}/{shard}"

    def _get(self, key: str) -> bytes | None:
        def get() -> bytes | None:
            try:
                return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except Exception as exc:
                if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
                    return None
                raise

        return call(get, self.policy, f"S3 GetObject s3://{self.bucket}/{key}")

    def _put(self, key: str, data: bytes) -> None:
        call(
            lambda: self.client.put_object(Bucket=self.bucket, Key=key, Body=data),
            self.policy,
            f"S3 PutObject s3://{self.bucket}/{key}",
        )

    def load(self, shard: str) -> bytes | None:
        return self._get(self._key(shard))

    def save(self, shard: str, data: bytes) -> None:
        self._put(self._key(shard), data)

    def save_handoff(self, child: str, parent: str, data: bytes) -> None:
        self._put(f"{self._key(child)}.from/{parent}", data)

    def handoffs(self, child: str) -> list[bytes]:
        prefix = f"{self._key(child)}.from/"
        listed = call(
            lambda: self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix),
            self.policy,
            f"S3 ListObjectsV2 s3://{self.bucket}/{prefix}",
        )
        out = []
        for obj in listed.get("Contents", []):
            data = self._get(obj["Key"])
            if data is not None:
                out.append(data)
        return out


class MemorySnapshotStore:
    """The same contract in a dict (tests)."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.saves = 0

    def load(self, shard: str) -> bytes | None:
        return self.objects.get(shard)

    def save(self, shard: str, data: bytes) -> None:
        self.saves += 1
        self.objects[shard] = data

    def save_handoff(self, child: str, parent: str, data: bytes) -> None:
        self.objects[f"{child}.from/{parent}"] = data

    def handoffs(self, child: str) -> list[bytes]:
        return [v for k, v in sorted(self.objects.items()) if k.startswith(f"{child}.from/")]


def merge(snapshots: Iterable[bytes]) -> dict[str, Any] | None:
    """One snapshot dict from the hand-offs of a child's parents (None if it has none): see
    `snapshot.merge_for_child`."""
    docs = [snapshot.decode(s) for s in snapshots]
    if not docs:
        return None
    return docs[0] if len(docs) == 1 else snapshot.merge_docs(docs)
