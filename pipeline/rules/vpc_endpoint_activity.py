"""VPC endpoint network activity: through the account's VPC endpoints, is someone trying to reach what
the endpoint policy forbids, is a principal of another account using them, or is S3 data reached from a
public address?

These are CloudTrail network activity events (`eventType: AwsVpceEvent`, `eventCategory:
NetworkActivity`), recorded for the endpoint owner when the trail logs them, for the services that
support them (NETWORK_ACTIVITY_SOURCES): the rule looks only at those services' events, so an event of
any other costs it nothing.
"""

from __future__ import annotations

from typing import Any

from pipeline.cases import ACCOUNT
from pipeline.event import Event, text
from pipeline.rule import ANY, Case, Gate, Hit, Params, match
from pipeline.rules.attack_common import OTHER_ACCOUNT, public_address
from pipeline.rules.change_common import change_hit

NETWORK_ACTIVITY_SOURCES = (
    "cloudtrail.amazonaws.com",
    "ec2.amazonaws.com",
    "kms.amazonaws.com",
    "s3.amazonaws.com",
    "secretsmanager.amazonaws.com",
)
S3_DATA = frozenset(
    {
        "GetObject",
        "GetObjectVersion",
        "GetObjectAcl",
        "PutObject",
        "PutObjectAcl",
        "CopyObject",
        "DeleteObject",
        "DeleteObjects",
        "DeleteObjectVersion",
        "UploadPart",
        "CompleteMultipartUpload",
    }
)


def _vpce(
    name: str = "GetObject",
    source: str = "s3.amazonaws.com",
    ip: str = "10.0.12.34",
    identity: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    return {
        "eventSource": source,
        "eventName": name,
        "eventType": "AwsVpceEvent",
        "eventCategory": "NetworkActivity",
        "managementEvent": False,
        "sourceIPAddress": ip,
        "userIdentity": identity
        or {"type": "AWSAccount", "principalId": "AROAEXAMPLEROLEID1234:app", "accountId": ACCOUNT},
        "requestParameters": {"bucketName": "customer-data", "key": "exports/customers.csv"},
        "vpcEndpointId": "vpce-0a1b2c3d4e5f60718",
        "vpcEndpointAccountId": ACCOUNT,
        **fields,
    }


NETWORK_ONLY = {"console": "a network activity event records a request through the endpoint, not a console call"}
DENIED: dict[str, Any] = {
    "errorCode": "VpceAccessDenied",
    "errorMessage": "The request was denied due to a VPC endpoint policy",
}


@match(
    id="vpc-endpoint-unexpected-access",
    title="VPC endpoint used against its policy, by an outside account, or from a public address",
    severity="medium",
    attack=("T1599", "T1048", "T1526"),
    events=dict.fromkeys(NETWORK_ACTIVITY_SOURCES, ANY),
    gates=[Gate.of("eventType", equals=["AwsVpceEvent"])],
    params={"allowed_accounts": []},
    dedup="1h",
    runbook=(
        "Look at who made the request through the endpoint and where it was going. A denial by the endpoint "
        "policy often means a workload tried to send data to a bucket or key outside the organization; an "
        "outside principal means someone else's credentials are used from inside the VPC. Investigate the "
        "instance or workload at the source address."
    ),
    cases=[
        Case(
            "denied by the endpoint policy",
            _vpce("PutObject", **DENIED, requestParameters={"bucketName": "exfil-drop-7731", "key": "dump.tar"}),
            expect=1,
            no_form=NETWORK_ONLY,
        ),
        Case(
            "principal of another account through the endpoint",
            _vpce(identity={"type": "AWSAccount", "principalId": "AROAEXAMPLEOTHER:x", "accountId": OTHER_ACCOUNT}),
            expect=1,
            no_form=NETWORK_ONLY,
        ),
        Case(
            "S3 data from a public address through the endpoint",
            _vpce(ip="81.2.69.142", identity={"type": "IAMUser", "principalId": "AIDAEXAMPLE", "accountId": ACCOUNT}),
            expect=1,
            no_form=NETWORK_ONLY,
        ),
        Case("the account's own workload", _vpce(), expect=0),
        Case(
            "a partner account that is expected",
            _vpce(identity={"type": "AWSAccount", "principalId": "AROAEXAMPLEOTHER:x", "accountId": OTHER_ACCOUNT}),
            expect=0,
            params={"allowed_accounts": [OTHER_ACCOUNT]},
        ),
        Case(
            "an ordinary API call, not a network activity event",
            {**_vpce(**DENIED), "eventType": "AwsApiCall", "eventCategory": "Management"},
            expect=0,
        ),
    ],
)
def vpc_endpoint_unexpected_access(e: Event, p: Params) -> Hit | None:
    """A VPC endpoint network activity event that is a denial by the endpoint policy (VpceAccessDenied),
    comes from a principal of an account other than the endpoint's (not in `allowed_accounts`), or is an
    S3 data call from a public source address. These events have no console or CloudFormation form: they
    record network requests through the endpoint, whoever makes them. Ordinary calls through an endpoint
    are not findings."""
    if e.raw.get("eventType") != "AwsVpceEvent":
        return None
    owner = e.text("vpcEndpointAccountId") or e.account
    caller_account = text(e.identity.get("accountId"))
    if e.error_code == "VpceAccessDenied":
        why = "denied by the endpoint policy"
    elif caller_account and caller_account != owner and caller_account not in p.allowed_accounts:
        why = f"by a principal of account {caller_account}"
    elif e.source == "s3.amazonaws.com" and e.name in S3_DATA and public_address(e.source_ip) is not None:
        why = f"from public address {e.source_ip}"
    else:
        return None
    endpoint = e.text("vpcEndpointId")
    return change_hit(
        e,
        f"{e.source.split('.')[0]} {e.name} through endpoint",
        endpoint,
        why,
        key=f"{endpoint}|{why}",
        reason=why,
        caller_account=caller_account,
    )
