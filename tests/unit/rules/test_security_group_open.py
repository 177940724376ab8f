"""ec2-security-group-open-to-internet: every shape of ipPermissions, port naming, ignore_ports."""

from __future__ import annotations

import json

import pytest

from pipeline.config import Config, ConfigError
from pipeline.detector import Detector
from pipeline.event import Event
from pipeline.rule import REGISTRY
from pipeline.rules import builtin_rules
from pipeline.ruletest import complete_record, run_events, validate_params
from tests.support.corpus import STRATUS

builtin_rules()
RULE = REGISTRY["ec2-security-group-open-to-internet"]
SG = "sg-0a1b2c3d4e5f60718"


def authorize(request: dict, response: dict | None = None, **fields) -> dict:
    return {
        "eventSource": "ec2.amazonaws.com",
        "eventName": "AuthorizeSecurityGroupIngress",
        "requestParameters": {"groupId": SG, **request},
        "responseElements": response,
        **fields,
    }


def modify(rules, group: str = SG) -> dict:
    return {
        "eventSource": "ec2.amazonaws.com",
        "eventName": "ModifySecurityGroupRules",
        "requestParameters": {"ModifySecurityGroupRulesRequest": {"GroupId": group, "SecurityGroupRule": rules}},
    }


def perms(*items) -> dict:
    return {"ipPermissions": {"items": list(items)}}


def findings(*records, **params):
    return run_events(RULE, list(records), params=params)


def one(*records, **params):
    found = findings(*records, **params)
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize(
    "record, ports, cidr",
    [
        # items as a list, ipRanges items as a list
        (
            authorize(
                perms(
                    {
                        "ipProtocol": "tcp",
                        "fromPort": 22,
                        "toPort": 22,
                        "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]},
                    }
                )
            ),
            ["tcp/22"],
            "0.0.0.0/0",
        ),
        # items as one object; ipRanges items as one object
        (
            authorize(
                {
                    "ipPermissions": {
                        "items": {
                            "ipProtocol": "tcp",
                            "fromPort": 8000,
                            "toPort": 8100,
                            "ipRanges": {"items": {"cidrIp": "0.0.0.0/0"}},
                        }
                    }
                }
            ),
            ["tcp/8000-8100"],
            "0.0.0.0/0",
        ),
        # IPv6
        (
            authorize(
                perms(
                    {"ipProtocol": "udp", "fromPort": 53, "toPort": 53, "ipv6Ranges": {"items": [{"cidrIpv6": "::/0"}]}}
                )
            ),
            ["udp/53"],
            "::/0",
        ),
        # all traffic, no ports
        (
            authorize(perms({"ipProtocol": "-1", "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}})),
            ["all traffic"],
            "0.0.0.0/0",
        ),
        # protocol numbers and string ports
        (
            authorize(
                perms(
                    {
                        "ipProtocol": "6",
                        "fromPort": "3389",
                        "toPort": "3389",
                        "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]},
                    }
                )
            ),
            ["tcp/3389"],
            "0.0.0.0/0",
        ),
        (
            authorize(
                perms(
                    {
                        "ipProtocol": "icmp",
                        "fromPort": -1,
                        "toPort": -1,
                        "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]},
                    }
                )
            ),
            ["icmp"],
            "0.0.0.0/0",
        ),
        (
            authorize(
                perms(
                    {
                        "ipProtocol": "tcp",
                        "fromPort": 0,
                        "toPort": 65535,
                        "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]},
                    }
                )
            ),
            ["tcp/all ports"],
            "0.0.0.0/0",
        ),
        # the legacy top-level form (as in the corpus: the address is anonymized, the /0 stays)
        (
            authorize(
                {"ipPermissions": {}, "cidrIp": "208.236.235.254/0", "ipProtocol": "tcp", "fromPort": 22, "toPort": 22}
            ),
            ["tcp/22"],
            "0.0.0.0/0",
        ),
        # only the response says what was created
        (
            authorize(
                {},
                {
                    "_return": True,
                    "securityGroupRuleSet": {
                        "items": [
                            {
                                "groupId": SG,
                                "isEgress": False,
                                "ipProtocol": "tcp",
                                "fromPort": 9200,
                                "toPort": 9200,
                                "cidrIpv4": "0.0.0.0/0",
                            }
                        ]
                    },
                },
            ),
            ["tcp/9200"],
            "0.0.0.0/0",
        ),
        # ModifySecurityGroupRules, one rule as an object
        (
            modify(
                {
                    "SecurityGroupRuleId": "sgr-1",
                    "SecurityGroupRule": {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIpv4": "0.0.0.0/0"},
                }
            ),
            ["tcp/22"],
            "0.0.0.0/0",
        ),
        # ModifySecurityGroupRules, several rules as a list, string ports, IPv6
        (
            modify(
                [
                    {
                        "SecurityGroupRuleId": "sgr-1",
                        "SecurityGroupRule": {
                            "IpProtocol": "tcp",
                            "FromPort": "443",
                            "ToPort": "443",
                            "CidrIpv4": "10.0.0.0/8",
                        },
                    },
                    {
                        "SecurityGroupRuleId": "sgr-2",
                        "SecurityGroupRule": {
                            "IpProtocol": "tcp",
                            "FromPort": "5432",
                            "ToPort": "5432",
                            "CidrIpv6": "::/0",
                        },
                    },
                ]
            ),
            ["tcp/5432"],
            "::/0",
        ),
    ],
)
def test_every_shape(record, ports, cidr):
    finding = one(record)
    assert finding.context["ports"] == ports
    assert finding.context["cidrs"] == [cidr]
    assert finding.context["group_id"] == SG
    assert SG in finding.summary and cidr in finding.summary and ports[0] in finding.summary
    assert finding.resources == (f"arn:aws:ec2:us-east-1:111122223333:security-group/{SG}",)


def test_several_ports_in_one_call_make_one_finding_naming_all():
    record = authorize(
        perms(
            {
                "ipProtocol": "tcp",
                "fromPort": 22,
                "toPort": 22,
                "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}, {"cidrIp": "10.0.0.0/8"}]},
            },
            {"ipProtocol": "tcp", "fromPort": 3389, "toPort": 3389, "ipv6Ranges": {"items": [{"cidrIpv6": "::/0"}]}},
            {"ipProtocol": "tcp", "fromPort": 443, "toPort": 443, "ipRanges": {"items": [{"cidrIp": "192.0.2.0/24"}]}},
        )
    )
    finding = one(record)
    assert finding.context["ports"] == ["tcp/22", "tcp/3389"]
    assert finding.context["cidrs"] == ["0.0.0.0/0", "::/0"]


def test_request_and_response_of_one_rule_are_not_counted_twice():
    record = authorize(
        {"ipPermissions": {}, "cidrIp": "0.0.0.0/0", "ipProtocol": "tcp", "fromPort": 22, "toPort": 22},
        {
            "securityGroupRuleSet": {
                "items": [
                    {"isEgress": False, "ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "cidrIpv4": "0.0.0.0/0"}
                ]
            }
        },
    )
    assert one(record).context["permissions"] == [{"ports": "tcp/22", "cidr": "0.0.0.0/0"}]


@pytest.mark.parametrize(
    "record",
    [
        authorize(
            perms(
                {
                    "ipProtocol": "tcp",
                    "fromPort": 22,
                    "toPort": 22,
                    "ipRanges": {"items": [{"cidrIp": "203.0.113.0/24"}]},
                }
            )
        ),
        authorize(
            perms({"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "ipRanges": {"items": [{"cidrIp": "0.0.0.0/1"}]}})
        ),
        authorize(
            perms(
                {
                    "ipProtocol": "tcp",
                    "fromPort": 22,
                    "toPort": 22,
                    "groups": {"items": [{"groupId": "sg-0ffffffffffffffff"}]},
                }
            )
        ),
        authorize(
            perms(
                {
                    "ipProtocol": "tcp",
                    "fromPort": 443,
                    "toPort": 443,
                    "prefixListIds": {"items": [{"prefixListId": "pl-0123abcd"}]},
                }
            )
        ),
        authorize(
            perms(
                {
                    "ipProtocol": "tcp",
                    "fromPort": 22,
                    "toPort": 22,
                    "ipRanges": {"items": [{"cidrIp": "not-a-cidr/0x"}]},
                }
            )
        ),
        authorize(
            {}, {"securityGroupRuleSet": {"items": [{"isEgress": True, "ipProtocol": "-1", "cidrIpv4": "0.0.0.0/0"}]}}
        ),
        authorize(
            perms(
                {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}
            ),
            errorCode="Client.UnauthorizedOperation",
            errorMessage="You are not authorized to perform this operation.",
        ),
        authorize(
            perms(
                {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}
            ),
            errorCode="Client.InvalidPermission.Duplicate",
        ),
        {**modify({"SecurityGroupRule": {"IpProtocol": "-1", "CidrIpv4": "0.0.0.0/0"}}), "errorCode": "AccessDenied"},
        modify(
            {
                "SecurityGroupRuleId": "sgr-1",
                "SecurityGroupRule": {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "PrefixListId": "pl-1"},
            }
        ),
        {
            "eventSource": "ec2.amazonaws.com",
            "eventName": "AuthorizeSecurityGroupEgress",
            "requestParameters": {
                "groupId": SG,
                **perms({"ipProtocol": "-1", "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}),
            },
        },
    ],
)
def test_no_finding(record):
    assert findings(record) == []


def test_corpus_file():
    path = STRATUS / "aws.exfiltration.ec2-security-group-open-port-22-ingress.json"
    detector = Detector(rules=[RULE], config=Config.from_dict())
    events = [Event.from_record(r) for r in json.loads(path.read_text())]
    found = [f for e in events for f in detector.process(e)]
    assert len(found) == 1
    assert found[0].context["ports"] == ["tcp/22"]
    assert found[0].context["group_id"] == "sg-003dc7f1f1c686164"


WEB = authorize(
    perms(
        {"ipProtocol": "tcp", "fromPort": 80, "toPort": 80, "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}},
        {"ipProtocol": "tcp", "fromPort": 443, "toPort": 443, "ipv6Ranges": {"items": [{"cidrIpv6": "::/0"}]}},
    )
)


@pytest.mark.parametrize(
    "ignore, expected_ports",
    [
        ([], ["tcp/443", "tcp/80"]),
        ([80], ["tcp/443"]),
        ([80, 443], None),
        (["80", "tcp/443"], None),
        (["udp/443", 80], ["tcp/443"]),  # a UDP exception does not hide TCP
        (["1-1024"], None),
        (["81-442"], ["tcp/443", "tcp/80"]),
    ],
)
def test_ignore_ports(ignore, expected_ports):
    found = findings(WEB, ignore_ports=ignore)
    if expected_ports is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0].context["ports"] == expected_ports


def test_ignore_ports_needs_the_whole_range_and_never_hides_all_traffic():
    wide = authorize(
        perms({"ipProtocol": "tcp", "fromPort": 80, "toPort": 8080, "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}})
    )
    assert len(findings(wide, ignore_ports=[80, 443])) == 1
    everything = authorize(perms({"ipProtocol": "-1", "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}))
    assert len(findings(everything, ignore_ports=["0-65535"])) == 1


@pytest.mark.parametrize("bad", ["ssh", "tcp/", "icmp/8", 70000, -1, "443-80", 1.5, True, ["443"]])
def test_bad_ignore_ports_are_config_errors(bad):
    config = Config.from_dict({"rules": {RULE.id: {"ignore_ports": [bad]}}})
    with pytest.raises(ConfigError, match="ignore_ports") as info:
        validate_params(RULE, config)
    assert repr(bad) in str(info.value)


def test_dedup_per_group_and_ports_per_hour():
    ssh = authorize(
        perms({"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}})
    )
    other_group = {**ssh, "requestParameters": {**ssh["requestParameters"], "groupId": "sg-0999"}}
    ids = {f.id for f in findings(ssh, ssh, other_group)}
    assert len(ids) == 2


HOSTILE = [
    None,
    0,
    True,
    "",
    "x" * 5000,
    [],
    [None, 1, "a"],
    {},
    {"items": None},
    {"items": "0.0.0.0/0"},
    {"items": [{"ipRanges": {"items": [{"cidrIp": 7}]}}]},
    {"items": [{"fromPort": [], "toPort": {}}]},
]


def test_never_raises_on_wrong_types():
    detector = Detector(rules=[RULE], config=Config.from_dict())
    index = 0
    for name in ("AuthorizeSecurityGroupIngress", "ModifySecurityGroupRules"):
        for value in HOSTILE:
            for fields in (
                {"requestParameters": value},
                {"responseElements": value},
                {
                    "requestParameters": {
                        "ipPermissions": value,
                        "groupId": value,
                        "cidrIp": value,
                        "fromPort": value,
                        "ipProtocol": value,
                    }
                },
                {"requestParameters": {"ModifySecurityGroupRulesRequest": value}},
                {
                    "requestParameters": {
                        "ModifySecurityGroupRulesRequest": {"GroupId": value, "SecurityGroupRule": value}
                    }
                },
                {
                    "requestParameters": {
                        "ModifySecurityGroupRulesRequest": {
                            "SecurityGroupRule": {
                                "SecurityGroupRule": {"CidrIpv4": "0.0.0.0/0", "FromPort": value, "IpProtocol": value}
                            }
                        }
                    }
                },
                {"responseElements": {"securityGroupRuleSet": value}},
            ):
                record = complete_record(
                    {"eventSource": "ec2.amazonaws.com", "eventName": name, **fields}, index, "hostile"
                )
                detector.process(Event.from_record(record))
                index += 1
    assert detector.stats.rule_errors == {}, detector.stats.last_errors
