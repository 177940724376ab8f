"""Finding output for people and pipes, and the end-of-scan summary.

`json`: one finding per line (`Finding.to_json`, the schema of docs/findings.md). `table`: aligned
columns for a terminal. CloudTrail text is attacker-controlled, so every table cell and summary line
goes through `safe()`: control characters and escape sequences are shown as \\xNN, never sent to the
terminal, and cells are cut to their column's width.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from typing import Any, BinaryIO, Protocol

from pipeline.finding import RESOLVED, Finding, iso_time

FORMATS = ("table", "json")
ELLIPSIS = "…"


def safe(value: Any, width: int | None = None) -> str:
    """`value` as one line of printable text: unprintable characters escaped, cut to `width`."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = str(value)
        except RecursionError:
            text = f"<{type(value).__name__} nested too deeply to show>"
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else _escape(ch) for ch in text)
    if width is not None and len(text) > width:
        text = text[: max(width - 1, 0)] + ELLIPSIS if width > 0 else ""
    return text


def time_text(epoch: Any) -> str:
    """`iso_time(epoch)`, or the number itself when it is no time a datetime can show (a forged eventTime
    such as 9999-12-31T23:59:59.9999999Z rounds past year 9999): output must never raise on it."""
    try:
        return iso_time(epoch)
    except (ValueError, OverflowError, OSError, TypeError):
        return safe(epoch)


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


class FindingWriter(Protocol):
    def write(self, finding: Finding) -> None: ...

    def close(self) -> None: ...


class JsonWriter:
    """One finding JSON per line."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def write(self, finding: Finding) -> None:
        self.stream.write(finding.to_json() + b"\n")

    def close(self) -> None:
        self.stream.flush()


# (header, width); the summary column takes what the terminal has left.
_COLUMNS = (("TIME", 20), ("SEVERITY", 8), ("STATUS", 8), ("RULE", 34), ("ACCOUNT", 12), ("PRINCIPAL", 36))
_MIN_SUMMARY = 30


class TableWriter:
    """Aligned, terminal-safe columns: time, severity, status, rule id, account, principal, summary. A
    resolution shows the time it resolved and, before its summary, why."""

    def __init__(self, stream: BinaryIO, width: int | None = None) -> None:
        self.stream = stream
        total = width if width is not None else shutil.get_terminal_size((160, 24)).columns
        used = sum(w for _, w in _COLUMNS) + 2 * len(_COLUMNS)
        self.summary_width = max(total - used, _MIN_SUMMARY)
        self._header = False

    def _row(self, cells: list[str]) -> None:
        widths = [w for _, w in _COLUMNS] + [self.summary_width]
        line = "  ".join(safe(c, w).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
        self.stream.write(line.encode("utf-8", "replace") + b"\n")

    def write(self, finding: Finding) -> None:
        if not self._header:
            self._row([h for h, _ in _COLUMNS] + ["SUMMARY"])
            self._header = True
        resolved = finding.status == RESOLVED
        when = finding.updated_at if resolved and finding.updated_at is not None else finding.event_time
        summary = f"[{finding.resolution}] {finding.summary}" if resolved else finding.summary
        self._row(
            [
                time_text(when),
                finding.severity,
                finding.status,
                finding.rule_id,
                finding.account,
                finding.principal,
                summary,
            ]
        )

    def close(self) -> None:
        self.stream.flush()


def make_writer(fmt: str, stream: BinaryIO, width: int | None = None) -> FindingWriter:
    if fmt == "json":
        return JsonWriter(stream)
    if fmt == "table":
        return TableWriter(stream, width)
    raise ValueError(f"unknown format {fmt!r}; use one of {FORMATS}")


def format_summary(summary: Mapping[str, Any]) -> str:
    """Lines of the end-of-scan summary, for any statistics a component adds (keys show `_` as spaces):
    a number prints as `name: n` (a float named `*_time` as a time); a mapping of counts prints its
    total, then one indented line per non-zero key, largest first; any other mapping prints as an indented
    section; a list prints one indented line per item; None, empty strings and empty lists are left out."""
    lines: list[str] = []
    for key, value in summary.items():
        _render(lines, str(key), value, "")
    return "\n".join(lines)


def _render(lines: list[str], key: str, value: Any, indent: str) -> None:
    label = indent + safe(key.replace("_", " "))
    if value is None or value == "" or (isinstance(value, list | tuple) and not value):
        return
    if isinstance(value, Mapping):
        if all(_is_number(v) for v in value.values()):
            lines.append(f"{label}: {_num(sum(value.values()))}")
            for name, count in sorted(value.items(), key=lambda kv: (-kv[1], str(kv[0]))):
                if count:
                    lines.append(f"{indent}  {_num(count):>10}  {safe(name, 160)}")
        else:
            lines.append(f"{label}:")
            for name, child in value.items():
                _render(lines, str(name), child, indent + "  ")
    elif isinstance(value, list | tuple):
        lines.append(f"{label}:")
        lines.extend(f"{indent}  {safe(item, 300)}" for item in value)
    elif isinstance(value, bool):
        lines.append(f"{label}: {'yes' if value else 'no'}")
    elif isinstance(value, float) and key.endswith("_time"):
        lines.append(f"{label}: {time_text(value)}")
    else:
        lines.append(f"{label}: {_num(value) if _is_number(value) else safe(value, 300)}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _num(value: Any) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"
