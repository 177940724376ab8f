"""An absence key keeps the event id that opened its lapse packed, and gives back exactly the id it was given."""

from __future__ import annotations

import pytest

from pipeline.stateful.absence import compact_id, full_id

UUID_ID = "d4294c61-add5-40ef-9d11-0d090e374fa2"


@pytest.mark.parametrize(
    "event_id",
    [
        "",
        "launch",
        UUID_ID,
        UUID_ID.upper(),  # not the canonical form: kept as text, so it comes back in upper case
        "0123456789abcdef",  # 16 ASCII characters: not mistaken for a packed UUID
        "é-évènement",
        "x" * 36,
        "12345678-1234-1234-1234-1234567890ab",
    ],
)
def test_a_packed_event_id_comes_back_unchanged(event_id: str) -> None:
    assert full_id(compact_id(event_id)) == event_id


def test_a_cloudtrail_event_id_is_held_in_its_16_bytes() -> None:
    assert compact_id(UUID_ID) == bytes.fromhex(UUID_ID.replace("-", ""))
