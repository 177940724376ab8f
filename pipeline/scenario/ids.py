"""Deterministic identifiers and times in the exact formats AWS writes them."""

from __future__ import annotations

import random
import time

_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def iso(t: float) -> str:
    """CloudTrail's eventTime: "2024-08-06T04:31:07Z"."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def java_date(t: float) -> str:
    """The "Aug 6, 2024, 4:31:07 AM" dates IAM and STS responses carry."""
    g = time.gmtime(t)
    hour = g.tm_hour % 12 or 12
    return (
        f"{_MONTHS[g.tm_mon - 1]} {g.tm_mday}, {g.tm_year}, {hour}:{g.tm_min:02d}:{g.tm_sec:02d} "
        f"{'AM' if g.tm_hour < 12 else 'PM'}"
    )


class Ids:
    """Identifiers drawn from one seeded generator, so a seed always yields the same scenario."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._bits = rng.getrandbits

    def uuid(self) -> str:
        h = f"{self._bits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def hex(self, n: int) -> str:
        return f"{self._bits(4 * n):0{n}x}"

    def resource(self, prefix: str, n: int = 17) -> str:
        """ "i-0a1b2c...", "sg-...", "snap-..." ids."""
        return f"{prefix}-{self.hex(n)}"

    def key_id(self, prefix: str) -> str:
        """An access key id ("AKIA..." long-term, "ASIA..." session) or a principal id ("AIDA...", "AROA...")."""
        choice = self.rng.choice
        return prefix + "".join(choice(_B32) for _ in range(16))

    def alnum(self, n: int) -> str:
        choice = self.rng.choice
        return "".join(choice(_ALNUM) for _ in range(n))

    def account(self) -> str:
        return f"{self.rng.randrange(10**11, 10**12):012d}"

    def digits(self, n: int) -> str:
        return f"{self.rng.randrange(10 ** (n - 1), 10**n)}"
