"""Discovery: reading configuration that reveals secrets or the layout of the estate."""

from __future__ import annotations

from pipeline.cases import call, failed, in_console, service_linked
from pipeline.event import Event
from pipeline.rule import Case, Hit, Params, match
from pipeline.rules.attack_common import actor, attempted, by_aws_service, from_console, outcome

EC2 = "ec2.amazonaws.com"


@match(
    id="ec2-instance-user-data-read",
    title="EC2 instance user data read through the API",
    severity="medium",
    attack=("T1580", "T1552"),
    events={EC2: ["DescribeInstanceAttribute"]},
    params={"include_failed": True, "include_console": True},
    dedup="1h",
    runbook=(
        "User data often holds bootstrap secrets. Ask the principal why it read user data (a security scanner "
        "is a common legitimate reader: allowlist it). If unexpected: list the instances it read, rotate any "
        "credentials embedded in their user data, revoke the principal's sessions and keys."
    ),
    cases=[
        Case(
            "API read",
            call(EC2, "DescribeInstanceAttribute", {"attribute": "userData", "instanceId": "i-0123456789abcdef0"}),
            expect=1,
        ),
        Case(
            "denied attempts are the behaviour",
            [
                call(
                    EC2,
                    "DescribeInstanceAttribute",
                    {"attribute": "userData", "instanceId": f"i-0{i}"},
                    **failed("Client.UnauthorizedOperation"),
                )
                for i in range(3)
            ],
            expect=1,
        ),
        Case(
            "other attribute",
            call(EC2, "DescribeInstanceAttribute", {"attribute": "instanceType", "instanceId": "i-0123456789abcdef0"}),
            expect=0,
        ),
        Case(
            "console views ignored when configured",
            call(
                EC2,
                "DescribeInstanceAttribute",
                {"attribute": "userData", "instanceId": "i-0123456789abcdef0"},
                **in_console(),
            ),
            expect=0,
            params={"include_console": False},
        ),
        Case(
            "AWS Config recording the instance",
            call(
                EC2,
                "DescribeInstanceAttribute",
                {"attribute": "userData", "instanceId": "i-0123456789abcdef0"},
                userIdentity=service_linked("config", "AWSServiceRoleForConfig"),
            ),
            expect=0,
        ),
    ],
)
def ec2_instance_user_data_read(e: Event, p: Params) -> Hit | None:
    """DescribeInstanceAttribute for `userData` returns an instance's bootstrap script, where credentials
    and internal endpoints are often left. Attackers sweep it across instances. Denied calls count by
    default (`include_failed`): the sweep is the behaviour even when the policy stops it. Console sessions
    count too (the user-data view shows the same secrets); `include_console` false leaves them out; calls
    AWS makes itself (AWS Config's service-linked role) are not findings. A distinct-instances-per-principal
    threshold would separate a sweep from one look."""
    if e.text("requestParameters", "attribute").lower() != "userdata":
        return None
    if by_aws_service(e) or not attempted(e, p.include_failed) or (from_console(e) and not p.include_console):
        return None
    instance = e.text("requestParameters", "instanceId")
    return Hit(
        key=actor(e),
        resources=(instance,) if instance else (),
        summary=f"User data of {instance or 'an instance'} read by {e.principal}{outcome(e)}",
        context={"instance_id": instance, "error_code": e.error_code},
    )
