"""A security group rule opened to the whole internet (0.0.0.0/0 or ::/0)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pipeline.cases import call
from pipeline.config import ConfigError
from pipeline.event import Event, mapping, text
from pipeline.rule import Case, Hit, Params, match

EC2 = "ec2.amazonaws.com"
PROTOCOLS = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6", "-1": "all", "all": "all"}
PORTED = ("tcp", "udp")


@dataclass(frozen=True)
class Exposure:
    """One permission of the rule: protocol, port range, and the CIDR it allows."""

    protocol: str
    from_port: int | None
    to_port: int | None
    cidr: str

    @property
    def ports(self) -> str:
        """ "tcp/22", "tcp/8000-8100", "all traffic", "icmp", "proto 47"."""
        if self.protocol == "all":
            return "all traffic"
        if self.protocol not in PORTED:
            name = self.protocol if self.protocol in PROTOCOLS.values() else f"proto {self.protocol}"
            return name if self.from_port in (None, -1) else f"{name} type {self.from_port}"
        low, high = self.port_range
        if low == 0 and high == 65535:
            return f"{self.protocol}/all ports"
        return f"{self.protocol}/{low}" if low == high else f"{self.protocol}/{low}-{high}"

    @property
    def port_range(self) -> tuple[int, int]:
        low = self.from_port if self.from_port is not None and self.from_port >= 0 else 0
        high = self.to_port if self.to_port is not None and self.to_port >= 0 else 65535
        return (low, high) if low <= high else (high, low)


def _port(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _protocol(value: Any) -> str:
    name = str(value).strip().lower() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    return PROTOCOLS.get(name, name) or "all"


def _list(value: Any) -> list[Any]:
    """EC2's `{"items": [...]}` wrappers, a bare list, or a single object standing for a list of one."""
    if type(value) is dict and "items" in value:
        value = value["items"]
    if type(value) is list:
        return value
    if type(value) is dict and value:
        return [value]
    return []


def _get(obj: dict[str, Any], *names: str) -> Any:
    for name in names:
        if name in obj:
            return obj[name]
    return None


def _world(cidr: str) -> str:
    """ "0.0.0.0/0" or "::/0" for a /0 block of either family, else "" (CloudTrail keeps the block as
    typed, and "1.2.3.4/0" is the whole internet too)."""
    if "/" not in cidr:
        return ""
    try:
        network = ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        return ""
    return str(network) if network.prefixlen == 0 else ""


def _from_permission(perm: dict[str, Any]) -> Iterator[Exposure]:
    """Authorize* request shape: ipRanges / ipv6Ranges items of one ipPermissions item."""
    proto = _protocol(_get(perm, "ipProtocol", "IpProtocol"))
    low, high = _port(_get(perm, "fromPort", "FromPort")), _port(_get(perm, "toPort", "ToPort"))
    for entry in _list(_get(perm, "ipRanges", "IpRanges")):
        yield Exposure(proto, low, high, text(_get(mapping(entry), "cidrIp", "CidrIp")))
    for entry in _list(_get(perm, "ipv6Ranges", "Ipv6Ranges")):
        yield Exposure(proto, low, high, text(_get(mapping(entry), "cidrIpv6", "CidrIpv6")))


def _from_rule(rule: dict[str, Any]) -> Iterator[Exposure]:
    """ModifySecurityGroupRules' SecurityGroupRule and the responses' securityGroupRuleSet items."""
    proto = _protocol(_get(rule, "IpProtocol", "ipProtocol"))
    low, high = _port(_get(rule, "FromPort", "fromPort")), _port(_get(rule, "ToPort", "toPort"))
    for key in ("CidrIpv4", "cidrIpv4", "CidrIpv6", "cidrIpv6"):
        cidr = text(rule.get(key))
        if cidr:
            yield Exposure(proto, low, high, cidr)


def exposures(e: Event) -> list[Exposure]:
    """Every (protocol, ports, CIDR) the call allows, from every shape CloudTrail records, deduplicated."""
    req = e.request
    found: list[Exposure] = []
    if e.name == "AuthorizeSecurityGroupIngress":
        for perm in _list(req.get("ipPermissions")):
            found.extend(_from_permission(mapping(perm)))
        legacy = text(req.get("cidrIp"))
        if legacy:  # the older form: one CIDR and one port range at the top level
            found.append(
                Exposure(_protocol(req.get("ipProtocol")), _port(req.get("fromPort")), _port(req.get("toPort")), legacy)
            )
        for item in _list(mapping(e.response.get("securityGroupRuleSet"))):
            item = mapping(item)
            if item.get("isEgress") is not True:
                found.extend(_from_rule(item))
    else:  # ModifySecurityGroupRules
        wrapped = mapping(req.get("ModifySecurityGroupRulesRequest")) or req
        for update in _list(_get(wrapped, "SecurityGroupRule", "SecurityGroupRules")):
            update = mapping(update)
            found.extend(_from_rule(mapping(_get(update, "SecurityGroupRule")) or update))
    unique: dict[tuple[str, str], Exposure] = {}
    for exp in found:
        world = _world(exp.cidr)
        if world:
            unique.setdefault((exp.ports, world), Exposure(exp.protocol, exp.from_port, exp.to_port, world))
    return list(unique.values())


def group_id(e: Event) -> str:
    req = e.request
    wrapped = mapping(req.get("ModifySecurityGroupRulesRequest"))
    gid = text(req.get("groupId")) or text(_get(wrapped, "GroupId", "groupId")) or text(req.get("groupName"))
    if not gid:
        for item in _list(mapping(e.response.get("securityGroupRuleSet"))):
            gid = text(mapping(item).get("groupId"))
            if gid:
                break
    return gid


_PORT_HELP = 'use a number (443), a range ("8000-8100"), optionally with a protocol ("tcp/443", "udp/53")'


def ignored_ranges(value: Any) -> tuple[tuple[str, int, int], ...]:
    """Parse `ignore_ports`: 443, "443", "8000-8100", "tcp/443", "udp/53" -> (protocol or "", low, high)."""
    where = "rules.ec2-security-group-open-to-internet.ignore_ports"
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{where} must be a list of ports; {_PORT_HELP}")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise ConfigError(f"{where}: {item!r} is not a port; {_PORT_HELP}")
    return _parse_ranges(tuple(value))


@lru_cache(maxsize=64)
def _parse_ranges(spec: tuple[int | str, ...]) -> tuple[tuple[str, int, int], ...]:
    ranges = []
    for item in spec:
        proto, _, ports = str(item).strip().lower().rpartition("/") if isinstance(item, str) else ("", "", item)
        try:
            if isinstance(ports, bool) or proto not in ("", "tcp", "udp"):
                raise ValueError
            if isinstance(ports, int):
                low = high = ports
            else:
                first, _, last = ports.partition("-")
                low, high = int(first), int(last or first)
            if not 0 <= low <= high <= 65535:
                raise ValueError
        except (ValueError, AttributeError):
            raise ConfigError(
                f"rules.ec2-security-group-open-to-internet.ignore_ports: {item!r} is not a port; {_PORT_HELP}"
            ) from None
        ranges.append((proto, low, high))
    return tuple(ranges)


def validate(params: Params) -> None:
    """Raise ConfigError for ignore_ports entries that are not ports."""
    ignored_ranges(params.get("ignore_ports"))


def _ignored(exp: Exposure, ranges: tuple[tuple[str, int, int], ...]) -> bool:
    if exp.protocol not in PORTED:
        return False
    low, high = exp.port_range
    return any(proto in ("", exp.protocol) and lo <= low and high <= hi for proto, lo, hi in ranges)


def _ingress(
    group: str, *perms: dict[str, Any], response: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    return call(
        EC2,
        "AuthorizeSecurityGroupIngress",
        {"groupId": group, "ipPermissions": {"items": list(perms)}},
        response if response is not None else {"requestId": "5e9f3c1a-1d2b-4c3d-8e9f-0a1b2c3d4e5f", "_return": True},
        **fields,
    )


def _perm(
    proto: str, low: int | None, high: int | None, v4: tuple[str, ...] = (), v6: tuple[str, ...] = (), **extra: Any
) -> dict[str, Any]:
    perm: dict[str, Any] = {"ipProtocol": proto, "groups": {}, "prefixListIds": {}, **extra}
    if low is not None:
        perm["fromPort"], perm["toPort"] = low, high
    perm["ipRanges"] = {"items": [{"cidrIp": c} for c in v4]} if v4 else {}
    perm["ipv6Ranges"] = {"items": [{"cidrIpv6": c} for c in v6]} if v6 else {}
    return perm


def _modify(group: str, *rules: dict[str, Any]) -> dict[str, Any]:
    updates = [
        {"SecurityGroupRuleId": f"sgr-0{i}a1b2c3d4e5f6a7b8", "tag": i + 1, "SecurityGroupRule": r}
        for i, r in enumerate(rules)
    ]
    return call(
        EC2,
        "ModifySecurityGroupRules",
        {
            "ModifySecurityGroupRulesRequest": {
                "GroupId": group,
                "SecurityGroupRule": updates[0] if len(updates) == 1 else updates,
            }
        },
        {"ModifySecurityGroupRulesResponse": {"_return": True}},
    )


SG = "sg-0123456789abcdef0"


PARAM_DOCS = {
    "ignore_ports": 'Ports public by design, never reported: 443, "8000-8100", "tcp/443", "udp/53" '
    "(a permission is ignored only if its whole range is listed; all traffic never is).",
}


@match(
    id="ec2-security-group-open-to-internet",
    title="Security group opened to the internet",
    severity="medium",
    attack="T1562.007",
    events={EC2: ["AuthorizeSecurityGroupIngress", "ModifySecurityGroupRules"]},
    params={"ignore_ports": []},
    dedup="1h",
    runbook=(
        "Find what the group is attached to (aws ec2 describe-network-interfaces --filters "
        "Name=group-id,Values=<group>). Unless the service is meant to be public, revoke the rule "
        "(aws ec2 revoke-security-group-ingress) and replace it with the addresses that need access. "
        "Ports that are public by design (a web front end on 80/443) go in ignore_ports."
    ),
    cases=[
        Case("ssh from anywhere", _ingress(SG, _perm("tcp", 22, 22, ("0.0.0.0/0",))), expect=1),
        Case("ipv6 world", _ingress(SG, _perm("tcp", 3389, 3389, v6=("::/0",))), expect=1),
        Case("all traffic", _ingress(SG, _perm("-1", None, None, ("0.0.0.0/0",))), expect=1),
        Case(
            "legacy top-level form with anonymized address",
            call(
                EC2,
                "AuthorizeSecurityGroupIngress",
                {
                    "groupId": SG,
                    "ipPermissions": {},
                    "cidrIp": "208.236.235.254/0",
                    "ipProtocol": "tcp",
                    "fromPort": 22,
                    "toPort": 22,
                },
                {
                    "_return": True,
                    "securityGroupRuleSet": {
                        "items": [
                            {
                                "groupId": SG,
                                "isEgress": False,
                                "ipProtocol": "tcp",
                                "fromPort": 22,
                                "toPort": 22,
                                "cidrIpv4": "208.236.235.254/0",
                                "securityGroupRuleId": "sgr-09b3e3d2ca1edf2a2",
                            }
                        ]
                    },
                },
            ),
            expect=1,
        ),
        Case(
            "single item as an object",
            call(
                EC2,
                "AuthorizeSecurityGroupIngress",
                {
                    "groupId": SG,
                    "ipPermissions": {
                        "items": {
                            "ipProtocol": "tcp",
                            "fromPort": 8000,
                            "toPort": 8100,
                            "ipRanges": {"items": {"cidrIp": "0.0.0.0/0"}},
                        }
                    },
                },
            ),
            expect=1,
        ),
        Case(
            "modify rule to world",
            _modify(
                SG,
                {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "CidrIpv4": "0.0.0.0/0", "Description": "db"},
            ),
            expect=1,
        ),
        Case(
            "modify several rules",
            _modify(
                SG,
                {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIpv4": "10.0.0.0/8"},
                {"IpProtocol": "-1", "CidrIpv6": "::/0"},
            ),
            expect=1,
        ),
        Case("office range only", _ingress(SG, _perm("tcp", 22, 22, ("203.0.113.0/24",))), expect=0),
        Case(
            "referenced group",
            _ingress(
                SG,
                _perm(
                    "tcp", 5432, 5432, groups={"items": [{"groupId": "sg-0aaaabbbbccccdddd", "userId": "111122223333"}]}
                ),
            ),
            expect=0,
        ),
        Case(
            "prefix list",
            _ingress(SG, _perm("tcp", 443, 443, prefixListIds={"items": [{"prefixListId": "pl-63a5400a"}]})),
            expect=0,
        ),
        Case(
            "failed call",
            _ingress(SG, _perm("tcp", 22, 22, ("0.0.0.0/0",)), response={}, errorCode="Client.UnauthorizedOperation"),
            expect=0,
        ),
        Case(
            "ignored web ports",
            _ingress(SG, _perm("tcp", 443, 443, ("0.0.0.0/0",)), _perm("tcp", 80, 80, ("0.0.0.0/0",))),
            expect=0,
            params={"ignore_ports": [80, "tcp/443"]},
        ),
        Case(
            "ignoring 443 does not hide 22",
            _ingress(SG, _perm("tcp", 443, 443, ("0.0.0.0/0",)), _perm("tcp", 22, 22, ("0.0.0.0/0",))),
            expect=1,
            params={"ignore_ports": [443]},
        ),
        Case(
            "modify to a private range",
            _modify(SG, {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIpv4": "10.1.0.0/16"}),
            expect=0,
        ),
    ],
    validate=validate,
    param_docs=PARAM_DOCS,
)
def security_group_open_to_internet(e: Event, p: Params) -> Hit | None:
    """A security group rule now lets the whole internet in: a CIDR of 0.0.0.0/0 or ::/0 (any /0
    block) in AuthorizeSecurityGroupIngress (ipPermissions items with ipRanges and ipv6Ranges, the
    legacy top-level cidrIp form, and the response's securityGroupRuleSet) or ModifySecurityGroupRules
    (ModifySecurityGroupRulesRequest.SecurityGroupRule, one object or a list). Failed calls raise
    nothing. Rules that reference prefix lists or security groups are not internet CIDRs. Note that
    ModifySecurityGroupRules does not say whether the rule it changes is ingress or egress, so a
    modified egress rule to the world is reported too. `ignore_ports` drops TCP/UDP permissions whose
    whole port range is listed (all-traffic permissions are never ignored)."""
    if e.error_code:
        return None
    open_rules = exposures(e)
    if not open_rules:
        return None
    ranges = ignored_ranges(p.ignore_ports) if p.ignore_ports else ()
    open_rules = [x for x in open_rules if not _ignored(x, ranges)]
    if not open_rules:
        return None
    group = group_id(e) or "unknown group"
    ports = sorted({x.ports for x in open_rules})
    cidrs = sorted({x.cidr for x in open_rules})
    arn = f"arn:aws:ec2:{e.region}:{e.account}:security-group/{group}" if group.startswith("sg-") else group
    return Hit(
        key=f"{e.account}|{e.region}|{group}|{','.join(ports)}",
        resources=(arn,),
        summary=f"{group} open to {', '.join(cidrs)} on {', '.join(ports)} by {e.principal or 'unknown principal'}",
        context={
            "group_id": group,
            "ports": ports,
            "cidrs": cidrs,
            "permissions": [{"ports": x.ports, "cidr": x.cidr} for x in open_rules],
        },
    )
