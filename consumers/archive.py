"""The CloudTrail S3 archive as a backfill `Store` (`pipeline.backfill`): delimited listings and GetObject."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class S3Store:
    """A bucket through a boto3 S3 client (delimited ListObjectsV2, GetObject)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket
        self.list_calls = 0

    def _list(self, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            self.list_calls += 1
            yield page

    def dirs(self, prefix: str) -> list[str]:
        return [p["Prefix"] for page in self._list(prefix) for p in page.get("CommonPrefixes", [])]

    def files(self, prefix: str) -> list[tuple[str, int]]:
        return [
            (o["Key"], int(o.get("Size", 0)))
            for page in self._list(prefix)
            for o in page.get("Contents", [])
            if not o["Key"].endswith("/")
        ]

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def origin(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"
