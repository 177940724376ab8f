"""An IAM user created outside business hours (days, hours and time zone configurable)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.cases import call
from pipeline.config import Config, ConfigError
from pipeline.event import Event, mapping, text
from pipeline.rule import REGISTRY, Case, Hit, Params, match

RULE_ID = "iam-user-created-outside-business-hours"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class BusinessHours:
    zone: ZoneInfo
    days: frozenset[int]  # 0 = Monday, as datetime.weekday()
    start: int  # minutes after midnight, inclusive
    end: int  # minutes after midnight, exclusive
    text: str

    def local(self, epoch: float) -> datetime:
        return datetime.fromtimestamp(epoch, self.zone)

    def contains(self, epoch: float) -> bool:
        moment = self.local(epoch)
        minute = moment.hour * 60 + moment.minute
        return moment.weekday() in self.days and self.start <= minute < self.end


def _where(key: str) -> str:
    return f"rules.{RULE_ID}.{key}"


def _day(name: Any) -> int:
    key = name.strip().lower() if isinstance(name, str) else ""
    for names in (DAYS, FULL_DAYS):
        if key in names:
            return names.index(key)
    raise ConfigError(
        f"{_where('business_days')}: {name!r} is not a day; use Mon, Tue, Wed, Thu, Fri, Sat, Sun "
        f'(or full names), or a range like "Mon-Fri"'
    )


def _days(spec: Any) -> frozenset[int]:
    if not isinstance(spec, list | tuple) or not spec:
        raise ConfigError(
            f'{_where("business_days")} must be a non-empty list of days, e.g. ["Mon", "Tue"] or ["Mon-Fri"]'
        )
    days: set[int] = set()
    for entry in spec:
        if isinstance(entry, str) and "-" in entry:
            first, _, last = entry.partition("-")
            low, high = _day(first), _day(last)
            day = low
            days.add(day)
            while day != high:  # a range may wrap over the week's end: "Sun-Thu"
                day = (day + 1) % 7
                days.add(day)
        else:
            days.add(_day(entry))
    return frozenset(days)


def _clock(value: Any, key: str) -> int:
    parts = value.strip().split(":") if isinstance(value, str) else []
    if len(parts) == 2 and all(len(p) == 2 and p.isdigit() for p in parts):
        hours, minutes = int(parts[0]), int(parts[1])
        if (hours < 24 and minutes < 60) or (hours, minutes) == (24, 0):
            return hours * 60 + minutes
    raise ConfigError(
        f'{_where(key)}: {value!r} is not a time of day; use 24-hour "HH:MM" such as "08:00" ("24:00" ends at midnight)'
    )


def _day_text(days: frozenset[int]) -> str:
    """ "Mon-Fri", "Sun-Thu", "Mon, Wed, Fri": runs of three or more days as ranges, wrapping the week."""
    if len(days) == 7:
        return "every day"
    start = next(d for d in range(7) if d in days and (d - 1) % 7 not in days)
    runs: list[list[int]] = []
    for offset in range(7):
        day = (start + offset) % 7
        if day not in days:
            continue
        if runs and (runs[-1][-1] + 1) % 7 == day:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{DAY_NAMES[run[0]]}-{DAY_NAMES[run[-1]]}")
        else:
            parts.extend(DAY_NAMES[d] for d in run)
    return ", ".join(parts)


@lru_cache(maxsize=32)
def business_hours(time_zone: Any, days: tuple[Any, ...], start: Any, end: Any) -> BusinessHours:
    """Parse and check the rule's parameters; ConfigError says which one is wrong and how to write it."""
    if not isinstance(time_zone, str) or not time_zone.strip():
        raise ConfigError(f'{_where("time_zone")} must be an IANA time zone name such as "Europe/Paris"')
    try:
        zone = ZoneInfo(time_zone.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{_where('time_zone')}: unknown time zone {time_zone!r}; use an IANA name such as "
            f'"UTC", "Europe/Paris" or "America/New_York"'
        ) from None
    day_set = _days(list(days))
    low, high = _clock(start, "hours_start"), _clock(end, "hours_end")
    if low >= high:
        raise ConfigError(
            f"{_where('hours_end')} ({end}) must be later than {_where('hours_start')} ({start}); "
            f"business hours that span midnight are not supported"
        )
    names = _day_text(day_set)
    return BusinessHours(zone, day_set, low, high, f"{names} {start}-{end} {time_zone}")


def business_hours_of(config: Config) -> BusinessHours:
    """The business hours `config` sets for this rule (its defaults overlaid with [rules.<id>])."""
    return params_hours(config.params(REGISTRY[RULE_ID]))


def params_hours(p: Params) -> BusinessHours:
    days = p.business_days
    return business_hours(p.time_zone, tuple(days) if isinstance(days, list) else (days,), p.hours_start, p.hours_end)


def validate(params: Params) -> None:
    """Raise ConfigError if the business hours are not well formed."""
    params_hours(params)


def _create_user(when: str, name: str = "svc-reporting", **fields: Any) -> dict[str, Any]:
    arn = f"arn:aws:iam::111122223333:user/{name}"
    return call(
        "iam.amazonaws.com",
        "CreateUser",
        {"userName": name},
        {
            "user": {
                "path": "/",
                "userName": name,
                "userId": "AIDAEXAMPLENEWUSER12",
                "arn": arn,
                "createDate": "Jul 6, 2024, 11:14:02 PM",
            }
        },
        eventTime=when,
        **fields,
    )


PARAM_DOCS = {
    "time_zone": 'IANA time zone the hours are in (daylight saving time is followed), e.g. "Europe/Paris".',
    "business_days": 'Working days: names or ranges, e.g. ["Mon-Fri"], ["Sun-Thu"], ["Mon", "Wed"].',
    "hours_start": 'Start of the working day, "HH:MM" local time, inclusive.',
    "hours_end": 'End of the working day, "HH:MM" local time, exclusive ("24:00" is midnight).',
}


@match(
    id=RULE_ID,
    title="IAM user created outside business hours",
    severity="medium",
    attack="T1136.003",
    events={"iam.amazonaws.com": ["CreateUser"]},
    params={
        "time_zone": "UTC",
        "business_days": ["Mon", "Tue", "Wed", "Thu", "Fri"],
        "hours_start": "08:00",
        "hours_end": "18:00",
    },
    dedup="1h",
    runbook=(
        "Ask the creator (the finding's principal) why the user was made at this hour. An unexpected "
        "user is a classic persistence step: check for access keys, login profiles and policies "
        "attached to it (the events after this one), and delete it if nobody owns it."
    ),
    cases=[
        Case("saturday night", _create_user("2024-07-06T23:14:02Z"), expect=1),
        Case("weekday afternoon", _create_user("2024-07-03T14:00:00Z"), expect=0),
        Case("weekday before opening", _create_user("2024-07-03T07:59:59Z"), expect=1),
        Case("opening minute is inside", _create_user("2024-07-03T08:00:00Z"), expect=0),
        Case("closing minute is outside", _create_user("2024-07-03T18:00:00Z"), expect=1),
        Case(
            "failed creation",
            _create_user("2024-07-06T23:14:02Z", errorCode="EntityAlreadyExists", responseElements=None),
            expect=0,
        ),
        Case(
            "local time zone: 22:30 UTC is 08:30 in Sydney",
            _create_user("2024-07-02T22:30:00Z"),
            expect=0,
            params={"time_zone": "Australia/Sydney"},
        ),
        Case(
            "local time zone: 14:00 UTC is 00:00 in Sydney",
            _create_user("2024-07-03T14:00:00Z"),
            expect=1,
            params={"time_zone": "Australia/Sydney"},
        ),
        Case(
            "sunday-thursday week",
            _create_user("2024-07-07T10:00:00Z"),
            expect=0,
            params={"business_days": ["Sun-Thu"], "time_zone": "Asia/Riyadh"},
        ),
    ],
    validate=validate,
    param_docs=PARAM_DOCS,
)
def iam_user_created_outside_business_hours(e: Event, p: Params) -> Hit | None:
    """An IAM user was created (CreateUser succeeded) outside the configured business hours: on a day
    not in `business_days`, or before `hours_start` or from `hours_end` on, in local time of
    `time_zone` (an IANA name; daylight saving time is followed). Days are names or ranges such as
    "Mon-Fri" or "Sun-Thu"; times are "HH:MM". One finding per created user."""
    if e.error_code:
        return None
    hours = params_hours(p)
    if hours.contains(e.time):
        return None
    user = mapping(e.response.get("user"))
    name = text(user.get("userName")) or e.text("requestParameters", "userName") or "unknown user"
    arn = text(user.get("arn"))
    local = hours.local(e.time)
    return Hit(
        key=arn or f"{e.account}|{name}",
        resources=(arn,) if arn else (),
        summary=f"IAM user {name} created by {e.principal or 'unknown principal'} at "
        f"{local:%a %Y-%m-%d %H:%M} {hours.zone.key}, outside business hours ({hours.text})",
        context={"created_user": name, "local_time": local.isoformat(), "business_hours": hours.text},
    )
