"""Defense evasion: turning off or narrowing the logs a responder relies on, and leaving the organization
whose guardrails (SCPs, delegated security tooling) watch the account."""

from __future__ import annotations

from typing import Any

from pipeline.cases import call, failed, role_session, service_linked, via_service
from pipeline.event import Event, items, mapping, text
from pipeline.rule import Case, Hit, Params, match
from pipeline.rules.attack_common import actor, attempted, by_aws_service, outcome, strings

CLOUDTRAIL = "cloudtrail.amazonaws.com"
RESOLVER = "route53resolver.amazonaws.com"

LOG_RUNBOOK = (
    "Confirm with the principal's owner whether the change was planned. If not: restore logging at once "
    "(StartLogging / recreate the trail or configuration from infrastructure code), treat the principal as "
    "compromised (revoke sessions, deactivate keys), and review its activity and everything logged elsewhere "
    "(other trails, organization trail, CloudWatch) around the gap."
)


def _tamper_hit(e: Event, what: str, target: str, **context: Any) -> Hit:
    return Hit(
        key=f"{actor(e)}|{e.name}|{target}",
        resources=(target,) if target else (),
        summary=f"{what} {target}".rstrip() + f" by {e.principal}{outcome(e)}",
        context={"target": target, "succeeded": e.succeeded, "error_code": e.error_code, **context},
    )


@match(
    id="cloudtrail-logging-stopped",
    title="CloudTrail logging stopped",
    severity="high",
    attack="T1562.008",
    events={CLOUDTRAIL: ["StopLogging"]},
    params={"include_failed": True},
    runbook=LOG_RUNBOOK,
    cases=[
        Case("stopped", call(CLOUDTRAIL, "StopLogging", {"name": "main"}), expect=1),
        Case("denied attempt still reported", call(CLOUDTRAIL, "StopLogging", {"name": "main"}, **failed()), expect=1),
        Case(
            "failures ignored when configured",
            call(CLOUDTRAIL, "StopLogging", {"name": "main"}, **failed()),
            expect=0,
            params={"include_failed": False},
        ),
        Case(
            "service-linked role (e.g. Control Tower)",
            call(
                CLOUDTRAIL,
                "StopLogging",
                {"name": "aws-controltower-BaselineCloudTrail"},
                userIdentity=service_linked("controltower", "AWSServiceRoleForAWSControlTower"),
            ),
            expect=0,
        ),
    ],
)
def cloudtrail_logging_stopped(e: Event, p: Params) -> Hit | None:
    """StopLogging turns a trail off while leaving it in place, so nothing looks deleted. A denied
    attempt is reported too (`include_failed`): trying to blind the defenders is the behaviour. Calls AWS
    makes itself (service-linked roles such as Control Tower's) are not findings."""
    if by_aws_service(e) or not attempted(e, p.include_failed):
        return None
    return _tamper_hit(e, "Logging stopped on trail", e.text("requestParameters", "name"))


@match(
    id="cloudtrail-trail-deleted",
    title="CloudTrail trail deleted",
    severity="high",
    attack="T1562.008",
    events={CLOUDTRAIL: ["DeleteTrail"]},
    params={"include_failed": True},
    runbook=LOG_RUNBOOK,
    cases=[
        Case("deleted", call(CLOUDTRAIL, "DeleteTrail", {"name": "main"}), expect=1),
        Case("denied attempt", call(CLOUDTRAIL, "DeleteTrail", {"name": "main"}, **failed()), expect=1),
        Case(
            "deleted with the stack that held it",
            call(CLOUDTRAIL, "DeleteTrail", {"name": "main"}, **via_service("cloudformation")),
            expect=1,
        ),
        Case(
            "Control Tower's service-linked role",
            call(
                CLOUDTRAIL,
                "DeleteTrail",
                {"name": "aws-controltower-BaselineCloudTrail"},
                userIdentity=service_linked("controltower", "AWSServiceRoleForAWSControlTower"),
            ),
            expect=0,
        ),
    ],
)
def cloudtrail_trail_deleted(e: Event, p: Params) -> Hit | None:
    """DeleteTrail removes a trail and its logging. Denied attempts are reported too (`include_failed`).
    Deletions by service-linked roles (Control Tower) are not findings; a trail deleted with its stack is
    the act of whoever deleted or updated the stack."""
    if by_aws_service(e) or not attempted(e, p.include_failed):
        return None
    return _tamper_hit(e, "Trail deleted:", e.text("requestParameters", "name"))


def _basic_selectors_log_writes(selectors: list[Any]) -> bool:
    for sel in selectors:
        sel = mapping(sel)
        rw = text(sel.get("readWriteType")) or "All"
        if sel.get("includeManagementEvents", True) is not False and rw in ("All", "WriteOnly"):
            return True
    return False


def _advanced_selectors_log_writes(selectors: list[Any]) -> bool:
    for sel in selectors:
        fields = {text(mapping(f).get("field")): mapping(f) for f in items(mapping(sel).get("fieldSelectors"))}
        category = fields.get("eventCategory")
        if category is None or "Management" not in strings(category.get("equals")):
            continue
        read_only = fields.get("readOnly")
        if read_only is None or "false" in [v.lower() for v in strings(read_only.get("equals"))]:
            return True
    return False


@match(
    id="cloudtrail-event-selectors-reduce-logging",
    title="CloudTrail event selectors stop logging management write events",
    severity="high",
    attack="T1562.008",
    events={CLOUDTRAIL: ["PutEventSelectors"]},
    params={"include_failed": True},
    runbook=LOG_RUNBOOK,
    cases=[
        Case(
            "management events excluded",
            call(
                CLOUDTRAIL,
                "PutEventSelectors",
                {
                    "trailName": "main",
                    "eventSelectors": [
                        {
                            "includeManagementEvents": False,
                            "readWriteType": "ReadOnly",
                            "dataResources": [{"type": "AWS::S3::Object", "values": []}],
                        }
                    ],
                },
            ),
            expect=1,
        ),
        Case(
            "advanced selectors keep only reads",
            call(
                CLOUDTRAIL,
                "PutEventSelectors",
                {
                    "trailName": "main",
                    "advancedEventSelectors": [
                        {
                            "name": "reads",
                            "fieldSelectors": [
                                {"field": "eventCategory", "equals": ["Management"]},
                                {"field": "readOnly", "equals": ["true"]},
                            ],
                        }
                    ],
                },
            ),
            expect=1,
        ),
        Case(
            "adding S3 data events while keeping management events",
            call(
                CLOUDTRAIL,
                "PutEventSelectors",
                {
                    "trailName": "main",
                    "eventSelectors": [
                        {
                            "includeManagementEvents": True,
                            "readWriteType": "All",
                            "dataResources": [{"type": "AWS::S3::Object", "values": ["arn:aws:s3:::b/"]}],
                        }
                    ],
                },
            ),
            expect=0,
        ),
        Case(
            "advanced selectors logging all management events",
            call(
                CLOUDTRAIL,
                "PutEventSelectors",
                {
                    "trailName": "main",
                    "advancedEventSelectors": [
                        {"name": "mgmt", "fieldSelectors": [{"field": "eventCategory", "equals": ["Management"]}]}
                    ],
                },
            ),
            expect=0,
        ),
    ],
)
def cloudtrail_event_selectors_reduce_logging(e: Event, p: Params) -> Hit | None:
    """PutEventSelectors that leave a trail running but no longer logging management write events
    (includeManagementEvents false, ReadOnly selectors, or advanced selectors without a management
    selector that covers writes): the trail looks healthy while the attacker's changes go unrecorded.
    Adding data events while keeping management writes is not a finding. Denied attempts count
    (`include_failed`); calls AWS makes itself are not findings."""
    if by_aws_service(e) or not attempted(e, p.include_failed):
        return None
    basic = items(e.request.get("eventSelectors"))
    advanced = items(e.request.get("advancedEventSelectors"))
    if not basic and not advanced:
        return None
    if _basic_selectors_log_writes(basic) or _advanced_selectors_log_writes(advanced):
        return None
    trail = e.text("requestParameters", "trailName")
    return _tamper_hit(e, "Management write events no longer logged by trail", trail, selectors=(basic or advanced)[:5])


@match(
    id="route53-resolver-query-logging-deleted",
    title="Route 53 Resolver DNS query logging removed",
    severity="high",
    attack="T1562.008",
    events={RESOLVER: ["DeleteResolverQueryLogConfig", "DisassociateResolverQueryLogConfig"]},
    params={"include_failed": True},
    runbook=LOG_RUNBOOK,
    cases=[
        Case(
            "config deleted",
            call(RESOLVER, "DeleteResolverQueryLogConfig", {"resolverQueryLogConfigId": "rqlc-0123456789abcdef"}),
            expect=1,
        ),
        Case(
            "VPC disassociated",
            call(
                RESOLVER,
                "DisassociateResolverQueryLogConfig",
                {"resolverQueryLogConfigId": "rqlc-0123", "resourceId": "vpc-0abc"},
            ),
            expect=1,
        ),
        Case(
            "deleted with the stack that held it",
            call(
                RESOLVER,
                "DeleteResolverQueryLogConfig",
                {"resolverQueryLogConfigId": "rqlc-0123"},
                **via_service("cloudformation"),
            ),
            expect=1,
        ),
        Case(
            "failures ignored when configured",
            call(RESOLVER, "DeleteResolverQueryLogConfig", {"resolverQueryLogConfigId": "rqlc-0123"}, **failed()),
            expect=0,
            params={"include_failed": False},
        ),
    ],
)
def route53_resolver_query_logging_deleted(e: Event, p: Params) -> Hit | None:
    """Deleting a Route 53 Resolver query logging configuration, or detaching it from a VPC, stops DNS
    query logs (the record of C2 and exfiltration domains). Denied attempts count (`include_failed`);
    calls AWS makes itself are not findings."""
    if by_aws_service(e) or not attempted(e, p.include_failed):
        return None
    config = e.text("requestParameters", "resolverQueryLogConfigId")
    vpc = e.text("requestParameters", "resourceId")
    return _tamper_hit(e, "DNS query logging removed:", config, vpc=vpc)


@match(
    id="organizations-leave-attempted",
    title="Account tried to leave its AWS Organization",
    severity="high",
    attack="T1666",
    events={"organizations.amazonaws.com": ["LeaveOrganization"]},
    runbook=(
        "A member account tried to leave the organization, which would drop its SCPs, the organization trail "
        "and delegated security services. Confirm with the account owner; if unplanned, treat the principal as "
        "compromised, and if the call succeeded re-invite the account and re-apply guardrails."
    ),
    cases=[
        Case(
            "denied attempt",
            call("organizations.amazonaws.com", "LeaveOrganization", userIdentity=role_session("admin"), **failed()),
            expect=1,
        ),
        Case("left", call("organizations.amazonaws.com", "LeaveOrganization"), expect=1),
        Case("other organizations call", call("organizations.amazonaws.com", "DescribeOrganization"), expect=0),
    ],
)
def organizations_leave_attempted(e: Event, p: Params) -> Hit | None:
    """LeaveOrganization from a member account, whether it succeeded or was denied: leaving is rare and
    removes the organization's guardrails, so an attempt is the behaviour (SCPs usually deny it, which is
    why the denied call is what an intrusion shows). Calls AWS makes itself are not findings."""
    if by_aws_service(e):
        return None
    return _tamper_hit(e, "LeaveOrganization from account", e.account)


def _flow_log_ids(e: Event) -> list[str]:
    request = e.request
    ids = strings(request.get("flowLogIds")) or strings(request.get("FlowLogIds"))
    wrapped = mapping(request.get("DeleteFlowLogsRequest"))
    for entry in items(wrapped.get("FlowLogId")) or [wrapped.get("FlowLogId")]:
        entry_map = mapping(entry)
        value = text(entry_map.get("content")) or text(entry)
        if value:
            ids.append(value)
    return ids[:50]


@match(
    id="vpc-flow-logs-deleted",
    title="VPC flow logs deleted",
    severity="high",
    attack="T1562.008",
    events={"ec2.amazonaws.com": ["DeleteFlowLogs"]},
    params={"include_failed": True},
    runbook=LOG_RUNBOOK,
    cases=[
        Case(
            "deleted (XML-style request)",
            call(
                "ec2.amazonaws.com",
                "DeleteFlowLogs",
                {"DeleteFlowLogsRequest": {"FlowLogId": {"content": "fl-0123456789abcdef0", "tag": 1}}},
            ),
            expect=1,
        ),
        Case(
            "deleted (list of ids)",
            call("ec2.amazonaws.com", "DeleteFlowLogs", {"flowLogIds": ["fl-1", "fl-2"]}),
            expect=1,
        ),
        Case(
            "deleted with the stack that held it",
            call("ec2.amazonaws.com", "DeleteFlowLogs", {"flowLogIds": ["fl-1"]}, **via_service("cloudformation")),
            expect=1,
        ),
        Case(
            "failures ignored when configured",
            call("ec2.amazonaws.com", "DeleteFlowLogs", {"flowLogIds": ["fl-1"]}, **failed()),
            expect=0,
            params={"include_failed": False},
        ),
    ],
)
def vpc_flow_logs_deleted(e: Event, p: Params) -> Hit | None:
    """DeleteFlowLogs stops recording network traffic metadata for VPCs, subnets or interfaces. The flow
    log ids are read from every request shape CloudTrail uses. Denied attempts count (`include_failed`);
    calls AWS makes itself are not findings."""
    if by_aws_service(e) or not attempted(e, p.include_failed):
        return None
    ids = _flow_log_ids(e)
    hit = _tamper_hit(e, "Flow logs deleted:", ",".join(ids[:5]))
    return Hit(key=hit.key, resources=tuple(ids), summary=hit.summary, context=hit.context)


CONFIG = "config.amazonaws.com"


@match(
    id="config-recording-stopped",
    title="AWS Config recording stopped or its recorder or delivery channel deleted",
    severity="high",
    attack="T1562.001",
    events={CONFIG: ["StopConfigurationRecorder", "DeleteConfigurationRecorder", "DeleteDeliveryChannel"]},
    params={"include_failed": True},
    runbook=LOG_RUNBOOK,
    cases=[
        Case(
            "recorder stopped",
            call(CONFIG, "StopConfigurationRecorder", {"configurationRecorderName": "default"}),
            expect=1,
        ),
        Case(
            "delivery channel deleted",
            call(CONFIG, "DeleteDeliveryChannel", {"deliveryChannelName": "default"}),
            expect=1,
        ),
        Case(
            "denied attempt",
            call(CONFIG, "DeleteConfigurationRecorder", {"configurationRecorderName": "default"}, **failed()),
            expect=1,
        ),
        Case(
            "recorder started",
            call(CONFIG, "StartConfigurationRecorder", {"configurationRecorderName": "default"}),
            expect=0,
        ),
        Case(
            "Control Tower's service-linked role",
            call(
                CONFIG,
                "StopConfigurationRecorder",
                {"configurationRecorderName": "aws-controltower-BaselineConfigRecorder"},
                userIdentity=service_linked("controltower", "AWSServiceRoleForAWSControlTower"),
            ),
            expect=0,
        ),
    ],
)
def config_recording_stopped(e: Event, p: Params) -> Hit | None:
    """The AWS Config recorder stopped or deleted, or its delivery channel deleted: resource changes stop
    being recorded, and the compliance rules that read them go blind. (The CIS 4.9 monitor records every
    Config change; this rule is the part of it that turns the control off.) Denied attempts count
    (`include_failed`); calls AWS makes itself are not findings."""
    if by_aws_service(e) or not attempted(e, p.include_failed):
        return None
    target = e.text("requestParameters", "configurationRecorderName") or e.text(
        "requestParameters", "deliveryChannelName"
    )
    return _tamper_hit(e, f"{e.name}:", target)


ORGANIZATIONS = "organizations.amazonaws.com"
FULL_ACCESS = "p-FullAWSAccess"


@match(
    id="organization-scp-removed",
    title="Service control policy detached or SCPs disabled in the organization",
    severity="high",
    attack=("T1562.001", "T1484.002"),
    events={ORGANIZATIONS: ["DetachPolicy", "DisablePolicyType"]},
    params={"include_failed": True},
    runbook=(
        "SCPs are the guardrails member accounts cannot change. Confirm the change with the organization's "
        "administrators; if unplanned, re-attach the policy (or re-enable the policy type), and review what the "
        "accounts it covered did while it was off, and the caller's other activity."
    ),
    cases=[
        Case(
            "guardrail detached from an OU",
            call(ORGANIZATIONS, "DetachPolicy", {"policyId": "p-examplescp1", "targetId": "ou-ab12-cdef3456"}),
            expect=1,
        ),
        Case(
            "SCPs disabled for the root",
            call(ORGANIZATIONS, "DisablePolicyType", {"rootId": "r-ab12", "policyType": "SERVICE_CONTROL_POLICY"}),
            expect=1,
        ),
        Case(
            "tag policies disabled",
            call(ORGANIZATIONS, "DisablePolicyType", {"rootId": "r-ab12", "policyType": "TAG_POLICY"}),
            expect=0,
        ),
        Case(
            "FullAWSAccess detached (restricts, not widens)",
            call(ORGANIZATIONS, "DetachPolicy", {"policyId": FULL_ACCESS, "targetId": "ou-ab12-cdef3456"}),
            expect=0,
        ),
        Case(
            "policy attached",
            call(ORGANIZATIONS, "AttachPolicy", {"policyId": "p-examplescp1", "targetId": "ou-ab12-cdef3456"}),
            expect=0,
        ),
    ],
)
def organization_scp_removed(e: Event, p: Params) -> Hit | None:
    """DetachPolicy (any policy but FullAWSAccess, whose removal restricts; CloudTrail does not say the
    detached policy's type, so tag and backup policies count too) or DisablePolicyType for service
    control policies: the organization's guardrails lifted from accounts. (The CIS 4.15 monitor records
    every organization change; this rule is the part of it that weakens the guardrails.) Denied attempts
    count (`include_failed`); calls AWS makes itself are not findings."""
    if by_aws_service(e) or not attempted(e, p.include_failed):
        return None
    if e.name == "DisablePolicyType":
        if e.text("requestParameters", "policyType") != "SERVICE_CONTROL_POLICY":
            return None
        return _tamper_hit(e, "Service control policies disabled on", e.text("requestParameters", "rootId"))
    policy = e.text("requestParameters", "policyId")
    if policy == FULL_ACCESS:
        return None
    target = e.text("requestParameters", "targetId")
    return _tamper_hit(e, f"Policy {policy or '?'} detached from", target, policy_id=policy)
