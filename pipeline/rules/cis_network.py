"""CIS AWS Foundations 4.10 to 4.14: security group, network ACL, gateway, route table and VPC changes.

The CIS filters name only eventName, so the rules match those names from any event source (they
are all EC2 calls in practice). Every call matches, whatever its outcome (see cis_common).
"""

from __future__ import annotations

from pipeline.cases import call
from pipeline.rule import Case
from pipeline.rules.cis_common import change_monitor

ANY = "*"
EC2 = "ec2.amazonaws.com"
NETWORK_RUNBOOK = (
    "Compare the change with the infrastructure-as-code that owns the network. Changes made by hand "
    "or by an unexpected principal, and anything that opens a path to or from the internet or "
    "another VPC, need review; revert them if nobody owns them."
)

change_monitor(
    control="CIS 4.10",
    id="cis-security-group-changes",
    title="Security group changes (CIS 4.10)",
    severity="info",
    attack="T1562.007",
    events={
        ANY: [
            "AuthorizeSecurityGroupIngress",
            "AuthorizeSecurityGroupEgress",
            "RevokeSecurityGroupIngress",
            "RevokeSecurityGroupEgress",
            "CreateSecurityGroup",
            "DeleteSecurityGroup",
        ]
    },
    description=(
        "A security group was created, deleted, or had rules authorized or revoked. CIS filter: "
        "AuthorizeSecurityGroupIngress, AuthorizeSecurityGroupEgress, RevokeSecurityGroupIngress, "
        "RevokeSecurityGroupEgress, CreateSecurityGroup, DeleteSecurityGroup. Rules opened to the whole "
        "internet have their own, more severe rule (ec2-security-group-open-to-internet)."
    ),
    runbook=NETWORK_RUNBOOK,
    cases=[
        Case(
            "ingress from office",
            call(
                EC2,
                "AuthorizeSecurityGroupIngress",
                {
                    "groupId": "sg-0123456789abcdef0",
                    "ipPermissions": {
                        "items": [
                            {
                                "ipProtocol": "tcp",
                                "fromPort": 443,
                                "toPort": 443,
                                "ipRanges": {"items": [{"cidrIp": "203.0.113.0/24"}]},
                            }
                        ]
                    },
                },
            ),
            expect=1,
        ),
        Case(
            "create group",
            call(
                EC2,
                "CreateSecurityGroup",
                {"groupName": "web", "groupDescription": "web", "vpcId": "vpc-0a1b2c3d"},
                {"_return": True, "groupId": "sg-0fedcba9876543210"},
            ),
            expect=1,
        ),
        Case("describe groups", call(EC2, "DescribeSecurityGroups", {"securityGroupIdSet": {}}), expect=0),
        Case(
            "modify rules is not in the CIS list",
            call(
                EC2,
                "ModifySecurityGroupRules",
                {"ModifySecurityGroupRulesRequest": {"GroupId": "sg-0123456789abcdef0"}},
            ),
            expect=0,
        ),
    ],
)

change_monitor(
    control="CIS 4.11",
    id="cis-nacl-changes",
    title="Network ACL changes (CIS 4.11)",
    severity="info",
    attack="T1562.007",
    events={
        ANY: [
            "CreateNetworkAcl",
            "CreateNetworkAclEntry",
            "DeleteNetworkAcl",
            "DeleteNetworkAclEntry",
            "ReplaceNetworkAclEntry",
            "ReplaceNetworkAclAssociation",
        ]
    },
    description=(
        "A network ACL or one of its entries was created, deleted or replaced. CIS filter: CreateNetworkAcl, "
        "CreateNetworkAclEntry, DeleteNetworkAcl, DeleteNetworkAclEntry, ReplaceNetworkAclEntry, "
        "ReplaceNetworkAclAssociation."
    ),
    runbook=NETWORK_RUNBOOK,
    cases=[
        Case(
            "allow all entry",
            call(
                EC2,
                "CreateNetworkAclEntry",
                {
                    "networkAclId": "acl-0123456789abcdef0",
                    "ruleNumber": 100,
                    "egress": False,
                    "ruleAction": "allow",
                    "icmpTypeCode": {},
                    "portRange": {},
                    "aclProtocol": "-1",
                    "cidrBlock": "0.0.0.0/0",
                },
            ),
            expect=1,
        ),
        Case(
            "replace association",
            call(
                EC2,
                "ReplaceNetworkAclAssociation",
                {"associationId": "aclassoc-0a1b2c3d", "networkAclId": "acl-0123456789abcdef0"},
            ),
            expect=1,
        ),
        Case("describe", call(EC2, "DescribeNetworkAcls"), expect=0),
    ],
)

change_monitor(
    control="CIS 4.12",
    id="cis-network-gateway-changes",
    title="Network gateway changes (CIS 4.12)",
    severity="info",
    attack="T1599",
    events={
        ANY: [
            "CreateCustomerGateway",
            "DeleteCustomerGateway",
            "AttachInternetGateway",
            "CreateInternetGateway",
            "DeleteInternetGateway",
            "DetachInternetGateway",
        ]
    },
    description=(
        "An internet or customer gateway was created, deleted, attached or detached. CIS filter: "
        "CreateCustomerGateway, DeleteCustomerGateway, AttachInternetGateway, CreateInternetGateway, "
        "DeleteInternetGateway, DetachInternetGateway."
    ),
    runbook=NETWORK_RUNBOOK,
    cases=[
        Case(
            "attach igw to private vpc",
            call(EC2, "AttachInternetGateway", {"internetGatewayId": "igw-0123456789abcdef0", "vpcId": "vpc-0a1b2c3d"}),
            expect=1,
        ),
        Case(
            "customer gateway",
            call(
                EC2,
                "CreateCustomerGateway",
                {"type": "ipsec.1", "ipAddress": "203.0.113.12", "bgpAsn": 65000},
                {"customerGateway": {"customerGatewayId": "cgw-0e11f167", "state": "pending"}},
            ),
            expect=1,
        ),
        Case("describe", call(EC2, "DescribeInternetGateways"), expect=0),
        Case("nat gateway is not in the CIS list", call(EC2, "CreateNatGateway", {"subnetId": "subnet-1"}), expect=0),
    ],
)

change_monitor(
    control="CIS 4.13",
    id="cis-route-table-changes",
    title="Route table changes (CIS 4.13)",
    severity="info",
    attack="T1599",
    events={
        ANY: [
            "CreateRoute",
            "CreateRouteTable",
            "ReplaceRoute",
            "ReplaceRouteTableAssociation",
            "DeleteRouteTable",
            "DeleteRoute",
            "DisassociateRouteTable",
        ]
    },
    description=(
        "A route or route table was created, replaced, deleted or (dis)associated. CIS filter: CreateRoute, "
        "CreateRouteTable, ReplaceRoute, ReplaceRouteTableAssociation, DeleteRouteTable, DeleteRoute, "
        "DisassociateRouteTable."
    ),
    runbook=NETWORK_RUNBOOK,
    cases=[
        Case(
            "default route to igw",
            call(
                EC2,
                "CreateRoute",
                {
                    "routeTableId": "rtb-0123456789abcdef0",
                    "destinationCidrBlock": "0.0.0.0/0",
                    "gatewayId": "igw-0123456789abcdef0",
                },
                {"_return": True},
            ),
            expect=1,
        ),
        Case(
            "delete route",
            call(EC2, "DeleteRoute", {"routeTableId": "rtb-0123456789abcdef0", "destinationCidrBlock": "10.2.0.0/16"}),
            expect=1,
        ),
        Case("describe", call(EC2, "DescribeRouteTables"), expect=0),
    ],
)

change_monitor(
    control="CIS 4.14",
    id="cis-vpc-changes",
    title="VPC changes (CIS 4.14)",
    severity="info",
    attack="T1599",
    events={
        ANY: [
            "CreateVpc",
            "DeleteVpc",
            "ModifyVpcAttribute",
            "AcceptVpcPeeringConnection",
            "CreateVpcPeeringConnection",
            "DeleteVpcPeeringConnection",
            "RejectVpcPeeringConnection",
            "AttachClassicLinkVpc",
            "DetachClassicLinkVpc",
            "DisableVpcClassicLink",
            "EnableVpcClassicLink",
        ]
    },
    description=(
        "A VPC was created, deleted or modified, or a peering or ClassicLink connection changed. CIS filter: "
        "CreateVpc, DeleteVpc, ModifyVpcAttribute, AcceptVpcPeeringConnection, CreateVpcPeeringConnection, "
        "DeleteVpcPeeringConnection, RejectVpcPeeringConnection, AttachClassicLinkVpc, DetachClassicLinkVpc, "
        "DisableVpcClassicLink, EnableVpcClassicLink."
    ),
    runbook=NETWORK_RUNBOOK,
    cases=[
        Case(
            "peering to foreign account",
            call(
                EC2,
                "CreateVpcPeeringConnection",
                {"vpcId": "vpc-0a1b2c3d", "peerVpcId": "vpc-0f9e8d7c", "peerOwnerId": "444455556666"},
                {"vpcPeeringConnection": {"vpcPeeringConnectionId": "pcx-0123456789abcdef0"}},
            ),
            expect=1,
        ),
        Case(
            "create vpc",
            call(
                EC2,
                "CreateVpc",
                {"cidrBlock": "10.9.0.0/16"},
                {"vpc": {"vpcId": "vpc-0abcdef1234567890", "cidrBlock": "10.9.0.0/16"}},
            ),
            expect=1,
        ),
        Case("describe", call(EC2, "DescribeVpcs"), expect=0),
        Case("subnet is not in the CIS list", call(EC2, "CreateSubnet", {"vpcId": "vpc-0a1b2c3d"}), expect=0),
    ],
)
