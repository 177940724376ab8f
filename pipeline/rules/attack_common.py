"""Shared parts of the attack-technique rules: who acted (a person, or AWS itself), accounts in ARNs and
IAM policies, source addresses.

Did a person or AWS itself act? Ask `by_aws_service(e)`, and nothing else: it is the one answer every
rule uses. Who acted is `userIdentity`. A call made in the console ("AWS Internal" as source address
and user agent, `sessionCredentialFromConsole`) is the person's; so is a call that CloudFormation,
Auto Scaling or any other service made to carry out what a person asked (a stack, a scaling group,
`invokedBy`): whoever created the stack or the group acted, and known automation is silenced by the
allowlist (by role ARN), never inside a rule.

Everything here reads attacker-controlled CloudTrail text and never raises.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

from pipeline.event import Event, items, mapping, text

OTHER_ACCOUNT = "444455556666"
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_INSTANCE_ID_RE = re.compile(r"^i-(?:[0-9a-fA-F]{8}|[0-9a-fA-F]{17})$")
_POLICY_LIMIT = 256 * 1024


def session_issuer(e: Event) -> dict[str, Any]:
    """The role (or user) behind a temporary session; empty for long-term credentials."""
    return mapping(mapping(e.identity.get("sessionContext")).get("sessionIssuer"))


def actor(e: Event) -> str:
    """Who acted, stable across sessions: the role behind an assumed-role session, else the principal."""
    return text(session_issuer(e).get("arn")) or e.principal or e.source_ip


# Services that act on their own, on a schedule or for their own upkeep, with a role given to them: a
# backup plan copying a snapshot, Data Lifecycle Manager, AWS Config recording resources. Their calls are
# not anyone's request of the moment. Every other service named in `invokedBy` acts for the caller.
SELF_ACTING_SERVICES = frozenset({"backup.amazonaws.com", "dlm.amazonaws.com", "config.amazonaws.com"})
# Services whose service-linked roles carry out what a person configured, one to one: a scaling group's
# launches, a stack set's deployments. Their calls are that person's, like CloudFormation's.
PERSON_DRIVEN_SERVICES = frozenset(
    {"autoscaling.amazonaws.com", "cloudformation.amazonaws.com", "stacksets.cloudformation.amazonaws.com"}
)
_SERVICE_ROLE_PATH = ":role/aws-service-role/"


def service_linked_role(e: Event) -> str:
    """The service whose service-linked role made the call (e.g. "autoscaling.amazonaws.com"), else ""."""
    arn = text(session_issuer(e).get("arn"))
    _, found, rest = arn.partition(_SERVICE_ROLE_PATH)
    return rest.partition("/")[0] if found else ""


def by_aws_service(e: Event) -> bool:
    """Did AWS itself act (True), rather than a person or a person's code (False)?

    AWS acts when the caller is an AWS service principal (`userIdentity.type` "AWSService"), a
    service-linked role (no person can assume one) of a service other than those in
    PERSON_DRIVEN_SERVICES, or a service of SELF_ACTING_SERVICES named in `invokedBy` (or as the source
    address). Everything else is a person: the console ("AWS Internal" is where the console's calls come
    from, not a service), root's console actions (`invokedBy` signin.amazonaws.com), and CloudFormation
    or Auto Scaling doing what the caller asked."""
    # Runs on most events (several rules ask): the record is read directly, with the accessors' type checks.
    ident = e.identity
    if ident.get("type") == "AWSService":
        return True
    context = ident.get("sessionContext")
    issuer = context.get("sessionIssuer") if type(context) is dict else None
    arn = issuer.get("arn") if type(issuer) is dict else None
    if type(arn) is str:
        _, found, rest = arn.partition(_SERVICE_ROLE_PATH)
        linked = rest.partition("/")[0] if found else ""
        if linked:
            return linked not in PERSON_DRIVEN_SERVICES
    via = ident.get("invokedBy")
    if type(via) is not str or not via:
        via = e.source_ip
    return via in SELF_ACTING_SERVICES


def from_console(e: Event) -> bool:
    """The call came from a console session (set by AWS, not by the client's user agent)."""
    value = e.raw.get("sessionCredentialFromConsole")
    return value is True or text(value).lower() == "true"


def long_term_key(e: Event) -> bool:
    """The caller used an IAM user's or the root user's long-term access key (AKIA...)."""
    return e.identity_type in ("IAMUser", "Root") and text(e.identity.get("accessKeyId")).startswith("AKIA")


def attempted(e: Event, include_failed: bool) -> bool:
    """Whether the call counts: it succeeded, or failures count for this rule."""
    return e.succeeded or include_failed


def outcome(e: Event) -> str:
    """ " (failed: Code)" for a failed call, else ""."""
    return f" (failed: {e.error_code})" if e.error_code else ""


def caller_user_name(e: Event) -> str:
    """The IAM user name of a long-term IAM user caller, else ""."""
    return text(e.identity.get("userName")) if e.identity_type == "IAMUser" else ""


def targets_other_user(e: Event) -> str:
    """The user a credential call names when it is not the calling IAM user itself, else ""."""
    target = e.text("requestParameters", "userName")
    if not target or target == caller_user_name(e):
        return ""
    return target


def strings(value: Any, limit: int = 1000) -> list[str]:
    """The strings of a JSON array (or a lone string), at most `limit` of them."""
    if type(value) is str:
        return [value]
    return [v for v in items(value)[:limit] if type(v) is str]


def is_account_id(value: str) -> bool:
    return bool(_ACCOUNT_RE.match(value))


def account_of(principal: str) -> str:
    """The account of a 12-digit id or an ARN (arn:aws:iam::123456789012:root), else ""."""
    if is_account_id(principal):
        return principal
    parts = principal.split(":")
    if len(parts) >= 6 and parts[0] == "arn" and is_account_id(parts[4]):
        return parts[4]
    return ""


def own_account(e: Event) -> str:
    return text(e.identity.get("accountId")) or e.account


def foreign(account: str, e: Event, allowed: Iterable[str]) -> bool:
    """An account that is neither the caller's nor the recipient's nor an allowed one."""
    return bool(account) and account not in (own_account(e), e.account) and account not in set(allowed)


def instance_session(e: Event) -> str:
    """The instance id when the caller uses an EC2 instance profile's credentials, else ""."""
    if e.identity_type != "AssumedRole":
        return ""
    session = text(e.identity.get("principalId")).rpartition(":")[2]
    delivered = text(mapping(e.identity.get("sessionContext")).get("ec2RoleDelivery"))
    if _INSTANCE_ID_RE.match(session):
        return session
    return session if delivered else ""


def public_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address when `value` is an IP address on the public internet (not private, shared or
    reserved), else None. A workload calls from the same few addresses all day, so recent answers are
    kept (bounded; longer texts are no address and are not kept)."""
    if not value or len(value) > 64:
        return None
    return _public(value)


@functools.lru_cache(maxsize=4096)
def _public(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    addr = _parse_ip(value)
    return addr if addr is not None and addr.is_global else None


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP address, tolerating zero-padded IPv4 octets; None for service names and junk."""
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        pass
    parts = value.split(".")
    if len(parts) == 4 and all(p.isdigit() and len(p) <= 3 for p in parts):
        try:
            return ipaddress.ip_address(".".join(str(int(p)) for p in parts))
        except ValueError:
            return None
    return None


@functools.lru_cache(maxsize=256)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    nets = []
    for cidr in cidrs:
        try:
            nets.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            continue
    return tuple(nets)


def in_networks(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, cidrs: Iterable[str]) -> bool:
    return any(addr in net for net in _networks(tuple(c for c in cidrs if type(c) is str)))


def load_policy(value: Any) -> dict[str, Any]:
    """An IAM policy document from a request field: an object, JSON text, or URL-encoded JSON text."""
    if type(value) is dict:
        return value
    raw = text(value)
    if not raw or len(raw) > _POLICY_LIMIT:
        return {}
    for candidate in (raw, unquote(raw)):
        try:
            doc = json.loads(candidate)
        except (ValueError, RecursionError):
            continue
        return mapping(doc)
    return {}


def statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The statements of a policy document (a lone statement object counts as a list of one)."""
    stmt = doc.get("Statement")
    if type(stmt) is dict:
        return [stmt]
    return [s for s in items(stmt) if type(s) is dict]


def allows(stmt: dict[str, Any]) -> bool:
    return text(stmt.get("Effect")).lower() == "allow"


def aws_principals(stmt: dict[str, Any]) -> list[str]:
    """The AWS principals a statement names ("*" for anyone)."""
    principal = stmt.get("Principal")
    if principal == "*":
        return ["*"]
    return strings(mapping(principal).get("AWS"))
