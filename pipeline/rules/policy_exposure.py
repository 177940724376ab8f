"""Who a resource policy lets in: anyone (a "*" principal no condition pins down) or AWS accounts other
than the caller's. Shared by the rules on resource policies (S3, ECR, KMS, SNS, SQS, Secrets Manager,
Glacier, EFS, OpenSearch, API Gateway).

A condition pins a "*" principal when it ties the caller to concrete values: its account
(aws:PrincipalAccount, aws:SourceAccount, aws:SourceOwner, kms:CallerAccount), an ARN with a concrete
account (aws:PrincipalArn, aws:SourceArn), an organization (aws:PrincipalOrgID, aws:PrincipalOrgPaths,
aws:SourceOrgID), a network (aws:SourceVpc, aws:SourceVpce, aws:SourceIp other than /0) or a user id.
Negated operators, `...IfExists`, `Null` and `ForAllValues:` do not pin (they hold when the key is
absent), nor do wildcard values. A pinned account or ARN account outside the caller's is itself a
recipient. Everything here reads attacker-controlled text and never raises.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipeline.event import Event, mapping, text
from pipeline.rules.attack_common import (
    account_of,
    allows,
    foreign,
    is_account_id,
    load_policy,
    statements,
    strings,
)

ANYONE = "*"
_ACCOUNT_KEYS = {"aws:principalaccount", "aws:sourceaccount", "aws:sourceowner", "kms:calleraccount"}
_ARN_KEYS = {"aws:principalarn", "aws:sourcearn"}
_ORG_KEYS = {"aws:principalorgid", "aws:principalorgpaths", "aws:sourceorgid", "aws:sourceorgpaths"}
_NETWORK_KEYS = {"aws:sourcevpc", "aws:sourcevpce", "aws:sourceip", "aws:vpcsourceip", "aws:userid"}
_MAX_NODES = 500


def policy_documents(value: Any) -> list[dict[str, Any]]:
    """Every policy document (an object with a Statement, or JSON text of one) inside a request, however
    the service nests it (SQS `attributes.Policy`, Glacier `policy.policy`, API Gateway patch values)."""
    found: list[dict[str, Any]] = []
    stack = [(value, 0)]
    nodes = 0
    while stack and nodes < _MAX_NODES:
        node, depth = stack.pop()
        nodes += 1
        if type(node) is dict:
            if "Statement" in node:
                found.append(node)
            elif depth < 6:
                stack.extend((v, depth + 1) for v in node.values())
        elif type(node) is list and depth < 6:
            stack.extend((v, depth + 1) for v in node[:50])
        elif type(node) is str and "Statement" in node:
            doc = load_policy(node)
            if "Statement" in doc:
                found.append(doc)
    return found


def _pins(
    operator: str,
    key: str,
    values: list[str],
    e: Event,
    allowed: Iterable[str],
    allowed_orgs: list[str],
    outsiders: list[str],
) -> bool:
    """Whether one condition pins the caller; foreign accounts it names are added to `outsiders`."""
    op = operator.lower()
    base = op.rpartition(":")[2]
    if not values or op.startswith("forallvalues:") or base.endswith("ifexists") or base == "null" or "not" in base:
        return False
    if key in _ACCOUNT_KEYS:
        if not all(is_account_id(v) for v in values):
            return False
        outsiders.extend(v for v in values if foreign(v, e, allowed))
        return True
    if key in _ARN_KEYS:
        accounts = [account_of(v) for v in values]
        if not all(accounts):
            return False
        outsiders.extend(a for a in accounts if foreign(a, e, allowed))
        return True
    if key in _ORG_KEYS:
        orgs = [v.split("/")[0] for v in values]
        if any(not o or "*" in o or "?" in o for o in orgs):
            return False
        if allowed_orgs:
            outsiders.extend(o for o in orgs if o not in allowed_orgs)
        return True
    if key in _NETWORK_KEYS:
        return all(v and v != "*" and not v.endswith("/0") and not v.startswith("*") for v in values)
    return False


def _unpinned(
    stmt: dict[str, Any], e: Event, allowed: Iterable[str], allowed_orgs: list[str], outsiders: list[str]
) -> bool:
    """True when no condition of a "*" statement pins the caller."""
    pinned = False
    for operator, block in mapping(stmt.get("Condition")).items():
        for key, values in mapping(block).items():
            if type(key) is str and _pins(
                text(operator), key.lower(), strings(values, 50), e, allowed, allowed_orgs, outsiders
            ):
                pinned = True
    return not pinned


def _principals(stmt: dict[str, Any]) -> list[str]:
    """The AWS principals a statement names; "*" for anyone (also Allow with NotPrincipal)."""
    if "NotPrincipal" in stmt:
        return [ANYONE]
    principal = stmt.get("Principal")
    if principal == ANYONE:
        return [ANYONE]
    return strings(mapping(principal).get("AWS"), 50)


def recipients(
    e: Event,
    documents: Iterable[dict[str, Any]],
    allowed_accounts: Iterable[str],
    allowed_organizations: Iterable[str] = (),
) -> list[str]:
    """Who the documents newly let in: "*" for anyone, else the foreign accounts, ARNs or organizations."""
    allowed = [a for a in allowed_accounts if type(a) is str]
    orgs = [o for o in allowed_organizations if type(o) is str]
    found: list[str] = []
    for doc in documents:
        for stmt in statements(doc):
            if not allows(stmt):
                continue
            for principal in _principals(stmt):
                outsiders: list[str] = []
                if principal == ANYONE:
                    if _unpinned(stmt, e, allowed, orgs, outsiders):
                        found.append(ANYONE)
                elif foreign(account_of(principal), e, allowed):
                    found.append(principal)
                found.extend(outsiders)
    return list(dict.fromkeys(found))[:20]


def described(found: list[str]) -> str:
    return "everyone (public)" if ANYONE in found else ", ".join(found)


def policy_recipients(
    e: Event, allowed_accounts: Iterable[str], allowed_organizations: Iterable[str] = ()
) -> list[str]:
    """`recipients` of every policy document in the request."""
    return recipients(e, policy_documents(e.raw.get("requestParameters")), allowed_accounts, allowed_organizations)
