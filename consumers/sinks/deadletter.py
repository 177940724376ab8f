"""Dead letters (input that is not a usable CloudTrail event): kept with reason, origin and a sample.

On AWS and the emulator they go to S3, one JSON-lines object per batch under
`dead-letters/<application>/<shard>/<first sequence number>.jsonl` (the key is deterministic, so a
retried batch overwrites its own object rather than adding one). Locally they can go to a file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson

from consumers.sinks.retry import RetryPolicy, SinkUnavailable, call


class DeadLetterLike(Protocol):
    def to_dict(self) -> dict[str, str]: ...


class DeadLetterSink(Protocol):
    def deliver(self, letters: Sequence[DeadLetterLike], batch_id: str) -> None:
        """Store a batch's dead letters (`batch_id`: `<shard>/<first sequence number>`) until acknowledged."""
        ...


def lines(letters: Sequence[DeadLetterLike]) -> bytes:
    return b"".join(orjson.dumps(d.to_dict()) + b"\n" for d in letters)


class S3DeadLetters:
    name = "dead-letters"

    def __init__(self, client: Any, bucket: str, prefix: str, policy: RetryPolicy | None = None) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.policy = policy or RetryPolicy()

    def deliver(self, letters: Sequence[DeadLetterLike], batch_id: str) -> None:
        if not letters:
            return
        key = f"dead-letters/{self.prefix}/{batch_id}.jsonl"
        body = lines(letters)
        call(
            lambda: self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/x-ndjson"),
            self.policy,
            f"S3 PutObject s3://{self.bucket}/{key}",
        )


class FileDeadLetters:
    name = "dead-letters-file"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def deliver(self, letters: Sequence[DeadLetterLike], batch_id: str) -> None:
        if not letters:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as out:
                out.write(lines(letters))
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            raise SinkUnavailable(f"dead-letter file {self.path}: {exc}") from exc
