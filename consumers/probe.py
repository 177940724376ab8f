"""A trivial record processor for launcher tests: appends each record's data, one line per record, to
`probe.out` in its working directory (the daemon's directory), then checkpoints. Logs go to stderr
(stdout is the KCL's)."""

from __future__ import annotations

import logging
import sys

from amazon_kclpy import kcl
from amazon_kclpy.v3 import processor

log = logging.getLogger("consumers.probe")
OUT = "probe.out"


class ProbeProcessor(processor.RecordProcessorBase):
    def __init__(self) -> None:
        self.shard_id = ""
        self.out = OUT

    def initialize(self, initialize_input) -> None:
        self.shard_id = initialize_input.shard_id
        log.warning("probe initialized on %s", self.shard_id)

    def process_records(self, process_records_input) -> None:
        records = process_records_input.records
        if not records:
            return
        with open(self.out, "ab") as out:
            for r in records:
                out.write(self.shard_id.encode() + b" " + r.sequence_number.encode() + b" " + r.binary_data + b"\n")
        process_records_input.checkpointer.checkpoint(records[-1].sequence_number, records[-1].sub_sequence_number)

    def lease_lost(self, lease_lost_input) -> None:
        pass

    def shard_ended(self, shard_ended_input) -> None:
        shard_ended_input.checkpointer.checkpoint()

    def shutdown_requested(self, shutdown_requested_input) -> None:
        shutdown_requested_input.checkpointer.checkpoint()


def main() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    kcl.KCLProcess(ProbeProcessor()).run()


if __name__ == "__main__":
    main()
