"""Where findings go: SNS, Firehose, local files or streams, behind a dedupe table and a Publisher."""

from pipeline.sinks.base import Sink
from pipeline.sinks.dedupe import DedupeTable, MemoryDedupe
from pipeline.sinks.firehose import FirehoseSink
from pipeline.sinks.local import FileSink, StreamSink
from pipeline.sinks.publisher import Publisher
from pipeline.sinks.retry import RetryPolicy, SinkError, SinkUnavailable
from pipeline.sinks.sns import SnsSink

__all__ = [
    "DedupeTable", "FileSink", "FirehoseSink", "MemoryDedupe", "Publisher", "RetryPolicy", "Sink", "SinkError",
    "SinkUnavailable", "SnsSink", "StreamSink",
]
