"""Where findings go: SNS, Firehose, local files or streams, behind a dedupe table and a Publisher."""

from consumers.sinks.base import Sink
from consumers.sinks.dedupe import DedupeTable, MemoryDedupe
from consumers.sinks.firehose import FirehoseSink
from consumers.sinks.local import FileSink, StreamSink
from consumers.sinks.publisher import Publisher
from consumers.sinks.retry import RetryPolicy, SinkError, SinkUnavailable
from consumers.sinks.sns import SnsSink

__all__ = [
    "DedupeTable",
    "FileSink",
    "FirehoseSink",
    "MemoryDedupe",
    "Publisher",
    "RetryPolicy",
    "Sink",
    "SinkError",
    "SinkUnavailable",
    "SnsSink",
    "StreamSink",
]
