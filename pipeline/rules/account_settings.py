"""Account settings: did someone enable a new region, or change the account's contacts (where AWS sends
security, billing and abuse notices)?"""

from __future__ import annotations

from pipeline.cases import call
from pipeline.event import Event
from pipeline.rule import ANY, Case, Hit, Params, match
from pipeline.rules.change_common import by_person, change_hit
from pipeline.rules.forms import with_denied

ACCOUNT_API = "account.amazonaws.com"


@match(
    id="account-region-enabled",
    title="Opt-in region enabled for the account",
    severity="medium",
    attack="T1535",
    events={ANY: ["EnableRegion"]},
    params={"include_failed": False},
    dedup="1h",
    runbook=(
        "A newly enabled region is a place the team does not watch. Ask the principal's owner why; if unplanned, "
        "disable the region again, check that the trail covers it, and look for resources created there."
    ),
    cases=[
        *with_denied(
            "region enabled",
            call(ACCOUNT_API, "EnableRegion", {"RegionName": "me-central-1"}),
            failed_expect=0,
            failed_why="the region stays off",
        ),
        Case(
            "region opt status read", call(ACCOUNT_API, "GetRegionOptStatus", {"RegionName": "me-central-1"}), expect=0
        ),
    ],
)
def account_region_enabled(e: Event, p: Params) -> Hit | None:
    """EnableRegion: an opt-in region switched on, often to run resources (miners, relays) where no one
    looks. Only successful calls count by default; calls AWS makes itself are not findings."""
    if not by_person(e, p.include_failed):
        return None
    return change_hit(e, "Region enabled:", e.text("requestParameters", "RegionName"))


@match(
    id="account-contact-changed",
    title="Account contact information or alternate contact changed",
    severity="medium",
    attack=("T1098", "T1562"),
    events={ANY: ["PutAlternateContact", "DeleteAlternateContact", "PutContactInformation"]},
    params={"include_failed": False},
    dedup="1h",
    runbook=(
        "AWS sends security and abuse notices to these contacts; an attacker redirects or deletes them to stay "
        "unnoticed. Check the new contact with the account owner and restore it if it is not theirs."
    ),
    cases=[
        *with_denied(
            "security contact replaced",
            call(
                ACCOUNT_API,
                "PutAlternateContact",
                {
                    "alternateContactType": "SECURITY",
                    "emailAddress": "ops@example.net",
                    "name": "Ops",
                    "phoneNumber": "+1-555-0100",
                    "title": "Ops",
                },
            ),
            failed_expect=0,
            failed_why="the contact stays",
        ),
        Case(
            "security contact deleted",
            call(ACCOUNT_API, "DeleteAlternateContact", {"alternateContactType": "SECURITY"}),
            expect=1,
        ),
        Case("contact read", call(ACCOUNT_API, "GetAlternateContact", {"alternateContactType": "SECURITY"}), expect=0),
    ],
)
def account_contact_changed(e: Event, p: Params) -> Hit | None:
    """PutAlternateContact, DeleteAlternateContact or PutContactInformation: the people AWS tells about
    security findings, abuse reports and billing change. Reading them is counted by discovery-burst. Only
    successful calls count by default; calls AWS makes itself are not findings."""
    if not by_person(e, p.include_failed):
        return None
    kind = e.text("requestParameters", "alternateContactType") or "primary"
    return change_hit(e, f"{kind.capitalize()} contact changed ({e.name}) for account", e.account)
