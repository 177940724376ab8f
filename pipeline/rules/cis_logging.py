"""CIS AWS Foundations 4.5, 4.7, 4.8, 4.9 and 4.15: changes to logging, keys, bucket policies,
AWS Config and AWS Organizations. Every event named matches, whatever its outcome (see cis_common)."""

from __future__ import annotations

from pipeline.cases import call, role_session
from pipeline.rule import Case
from pipeline.rules.cis_common import change_monitor

ANY = "*"
CLOUDTRAIL = "cloudtrail.amazonaws.com"
KMS = "kms.amazonaws.com"
S3 = "s3.amazonaws.com"
CONFIG = "config.amazonaws.com"
ORGS = "organizations.amazonaws.com"
TRAIL_ARN = "arn:aws:cloudtrail:us-east-1:111122223333:trail/org-trail"

change_monitor(
    control="CIS 4.5",
    id="cis-cloudtrail-config-changes",
    title="CloudTrail configuration changes (CIS 4.5)",
    severity="info",
    attack="T1562.008",
    events={ANY: ["CreateTrail", "UpdateTrail", "DeleteTrail", "StartLogging", "StopLogging"]},
    description=(
        "A trail was created, updated, deleted, started or stopped. CIS filter: `($.eventName = CreateTrail) || "
        "($.eventName = UpdateTrail) || ($.eventName = DeleteTrail) || ($.eventName = StartLogging) || "
        "($.eventName = StopLogging)`, with no eventSource. Failed calls match too: an attempt to blind "
        "the trail matters even when denied."
    ),
    runbook=(
        "StopLogging, DeleteTrail and an UpdateTrail that changes the bucket, log group or multi-region "
        "flag blind the audit trail. Confirm the change was planned; if not, restart logging "
        "(aws cloudtrail start-logging), restore the trail settings and investigate the caller's other activity."
    ),
    cases=[
        Case("stop logging", call(CLOUDTRAIL, "StopLogging", {"name": TRAIL_ARN}), expect=1),
        Case("delete trail", call(CLOUDTRAIL, "DeleteTrail", {"name": "org-trail"}), expect=1),
        Case(
            "update trail",
            call(
                CLOUDTRAIL,
                "UpdateTrail",
                {"name": "org-trail", "s3BucketName": "elsewhere"},
                {"name": "org-trail", "s3BucketName": "elsewhere", "trailARN": TRAIL_ARN},
            ),
            expect=1,
        ),
        Case(
            "denied stop still counts",
            call(
                CLOUDTRAIL,
                "StopLogging",
                {"name": TRAIL_ARN},
                errorCode="AccessDeniedException",
                userIdentity=role_session("ci", "build-7"),
            ),
            expect=1,
        ),
        Case("reading trail status", call(CLOUDTRAIL, "GetTrailStatus", {"name": TRAIL_ARN}), expect=0),
        Case(
            "event selectors are not in the CIS list",
            call(CLOUDTRAIL, "PutEventSelectors", {"trailName": "org-trail", "eventSelectors": []}),
            expect=0,
        ),
    ],
)

change_monitor(
    control="CIS 4.7",
    id="cis-kms-cmk-disabled-or-deleted",
    title="Customer managed keys disabled or scheduled for deletion (CIS 4.7)",
    severity="high",
    attack="T1485",
    events={KMS: ["DisableKey", "ScheduleKeyDeletion"]},
    description=(
        "A KMS key was disabled or scheduled for deletion: data encrypted under it becomes unreadable. "
        "CIS filter: `($.eventSource = kms.amazonaws.com) && (($.eventName = DisableKey) || "
        "($.eventName = ScheduleKeyDeletion))`. Failed calls match too."
    ),
    runbook=(
        "Confirm the key is really retired. If not, cancel the deletion (aws kms cancel-key-deletion) "
        "within the waiting period and re-enable the key (aws kms enable-key)."
    ),
    cases=[
        Case(
            "schedule deletion",
            call(
                KMS,
                "ScheduleKeyDeletion",
                {
                    "keyId": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                    "pendingWindowInDays": 7,
                },
                {
                    "keyId": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                    "deletionDate": "Jul 8, 2024, 2:00:00 PM",
                    "keyState": "PendingDeletion",
                    "pendingWindowInDays": 7,
                },
            ),
            expect=1,
        ),
        Case("disable key", call(KMS, "DisableKey", {"keyId": "1234abcd-12ab-34cd-56ef-1234567890ab"}), expect=1),
        Case("enable key", call(KMS, "EnableKey", {"keyId": "1234abcd-12ab-34cd-56ef-1234567890ab"}), expect=0),
        Case("same name from another service", call("example.amazonaws.com", "DisableKey", {"keyId": "k"}), expect=0),
    ],
)

change_monitor(
    control="CIS 4.8",
    id="cis-s3-bucket-policy-changes",
    title="S3 bucket policy changes (CIS 4.8)",
    severity="info",
    attack="T1530",
    events={
        S3: [
            "PutBucketAcl",
            "PutBucketPolicy",
            "PutBucketCors",
            "PutBucketLifecycle",
            "PutBucketReplication",
            "DeleteBucketPolicy",
            "DeleteBucketCors",
            "DeleteBucketLifecycle",
            "DeleteBucketReplication",
        ]
    },
    description=(
        "A bucket's ACL, policy, CORS, lifecycle or replication configuration changed. CIS filter: "
        "`($.eventSource = s3.amazonaws.com) && (PutBucketAcl, PutBucketPolicy, PutBucketCors, "
        "PutBucketLifecycle, PutBucketReplication, DeleteBucketPolicy, DeleteBucketCors, "
        "DeleteBucketLifecycle, DeleteBucketReplication)`. Failed calls match too."
    ),
    runbook=(
        'Read the new policy or ACL: grants to "*", to AllUsers/AuthenticatedUsers or to foreign '
        "accounts expose data; replication to a foreign bucket copies it out; a lifecycle rule can expire it."
    ),
    cases=[
        Case(
            "public bucket policy",
            call(
                S3,
                "PutBucketPolicy",
                {
                    "bucketName": "payroll-exports",
                    "Host": "payroll-exports.s3.amazonaws.com",
                    "policy": "",
                    "bucketPolicy": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": "*",
                                "Action": "s3:GetObject",
                                "Resource": "arn:aws:s3:::payroll-exports/*",
                            }
                        ],
                    },
                },
            ),
            expect=1,
        ),
        Case("delete bucket policy", call(S3, "DeleteBucketPolicy", {"bucketName": "logs", "policy": ""}), expect=1),
        Case(
            "acl", call(S3, "PutBucketAcl", {"bucketName": "logs", "acl": "", "x-amz-acl": ["public-read"]}), expect=1
        ),
        Case("reading a policy", call(S3, "GetBucketPolicy", {"bucketName": "logs", "policy": ""}), expect=0),
        Case("object write", call(S3, "PutObject", {"bucketName": "logs", "key": "a.txt"}), expect=0),
    ],
)

change_monitor(
    control="CIS 4.9",
    id="cis-aws-config-changes",
    title="AWS Config configuration changes (CIS 4.9)",
    severity="info",
    attack="T1562.001",
    events={
        CONFIG: ["StopConfigurationRecorder", "DeleteDeliveryChannel", "PutDeliveryChannel", "PutConfigurationRecorder"]
    },
    description=(
        "The AWS Config recorder or delivery channel was stopped, deleted or changed. CIS filter: "
        "`($.eventSource = config.amazonaws.com) && (($.eventName = StopConfigurationRecorder) || "
        "($.eventName = DeleteDeliveryChannel) || ($.eventName = PutDeliveryChannel) || "
        "($.eventName = PutConfigurationRecorder))`. Failed calls match too."
    ),
    runbook=(
        "A stopped recorder hides resource changes from compliance checks. Confirm the change was "
        "planned; otherwise restart the recorder (aws configservice start-configuration-recorder) and "
        "restore the delivery channel."
    ),
    cases=[
        Case(
            "stop recorder",
            call(CONFIG, "StopConfigurationRecorder", {"configurationRecorderName": "default"}),
            expect=1,
        ),
        Case(
            "change recorder",
            call(
                CONFIG,
                "PutConfigurationRecorder",
                {
                    "configurationRecorder": {
                        "name": "default",
                        "roleARN": "arn:aws:iam::111122223333:role/config",
                        "recordingGroup": {"allSupported": False, "resourceTypes": []},
                    }
                },
            ),
            expect=1,
        ),
        Case("delete channel", call(CONFIG, "DeleteDeliveryChannel", {"deliveryChannelName": "default"}), expect=1),
        Case(
            "start recorder",
            call(CONFIG, "StartConfigurationRecorder", {"configurationRecorderName": "default"}),
            expect=0,
        ),
        Case("describe", call(CONFIG, "DescribeConfigurationRecorders"), expect=0),
    ],
)

ORGANIZATIONS_EVENTS = [
    "AcceptHandshake",
    "AttachPolicy",
    "CreateAccount",
    "CreateOrganizationalUnit",
    "CreatePolicy",
    "DeclineHandshake",
    "DeleteOrganization",
    "DeleteOrganizationalUnit",
    "DeletePolicy",
    "DetachPolicy",
    "DisablePolicyType",
    "EnablePolicyType",
    "InviteAccountToOrganization",
    "LeaveOrganization",
    "MoveAccount",
    "RemoveAccountFromOrganization",
    "UpdatePolicy",
    "UpdateOrganizationalUnit",
]

change_monitor(
    control="CIS 4.15",
    id="cis-organizations-changes",
    title="AWS Organizations changes (CIS 4.15)",
    severity="info",
    attack=("T1666", "T1484.002"),
    events={ORGS: ORGANIZATIONS_EVENTS},
    description=(
        "A change to the organization: accounts created, invited, moved, removed or leaving; OUs, "
        "service control policies and policy types changed; handshakes answered. CIS filter: "
        "`($.eventSource = organizations.amazonaws.com)` and the 18 event names. Failed calls match too: "
        "a denied LeaveOrganization is an attempt to escape the organization's guardrails."
    ),
    runbook=(
        "Organization changes are rare and made by a few administrators. Confirm the change; a "
        "LeaveOrganization, a detached SCP or a new account outside the provisioning pipeline needs "
        "immediate review of the caller's other activity."
    ),
    cases=[
        Case(
            "leave organization denied",
            call(
                ORGS,
                "LeaveOrganization",
                errorCode="AccessDenied",
                errorMessage="not authorized to perform: organizations:LeaveOrganization",
                userIdentity=role_session("member-admin", "s1"),
            ),
            expect=1,
        ),
        Case(
            "detach scp",
            call(ORGS, "DetachPolicy", {"policyId": "p-abcd1234", "targetId": "ou-ab12-cdef3456"}),
            expect=1,
        ),
        Case(
            "create account",
            call(
                ORGS,
                "CreateAccount",
                {"accountName": "sandbox", "email": "sandbox@example.com"},
                {
                    "createAccountStatus": {
                        "id": "car-0123456789abcdef",
                        "accountName": "sandbox",
                        "state": "IN_PROGRESS",
                    }
                },
            ),
            expect=1,
        ),
        Case("list accounts", call(ORGS, "ListAccounts"), expect=0),
        Case(
            "iam CreatePolicy is not an organizations change",
            call("iam.amazonaws.com", "CreatePolicy", {"policyName": "p", "policyDocument": "{}"}),
            expect=0,
        ),
    ],
)
