"""CloudTrail records with the field shapes AWS writes, one constructor per kind of call.

Field order, nesting (`instancesSet.items`, `ipPermissions.items`, `tagSpecificationSet.items`),
string-typed booleans in `sessionContext`, `null` request/response elements, and the absence of
`tlsDetails` on calls AWS services make for themselves all follow real records.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from pipeline.scenario.ids import Ids, iso, java_date
from pipeline.scenario.org import Actor, service_identity

TLS = (
    {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256"},
    {"tlsVersion": "TLSv1.2", "cipherSuite": "ECDHE-RSA-AES128-GCM-SHA256"},
)
VERSIONS = {
    "ec2.amazonaws.com": "1.09",
    "iam.amazonaws.com": "1.09",
    "sts.amazonaws.com": "1.08",
    "s3.amazonaws.com": "1.10",
    "signin.amazonaws.com": "1.08",
    "kms.amazonaws.com": "1.08",
    "cloudtrail.amazonaws.com": "1.10",
}
GLOBAL_SOURCES = {
    "iam.amazonaws.com": "iam.amazonaws.com",
    "signin.amazonaws.com": "signin.aws.amazon.com",
    "organizations.amazonaws.com": "organizations.us-east-1.amazonaws.com",
}


def tags_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in tags.items()]


class Shapes:
    """Builds records. `rng` and `ids` come from the scenario's seed."""

    def __init__(self, rng: random.Random, ids: Ids) -> None:
        self.rng = rng
        self.ids = ids

    # -- the envelope every API call shares ---------------------------------------------------------
    def call(
        self,
        actor: Actor,
        t: float,
        region: str,
        source: str,
        name: str,
        *,
        request: dict[str, Any] | None = None,
        response: dict[str, Any] | None = None,
        read_only: bool = False,
        error: tuple[str, str] | None = None,
        resources: list[dict[str, Any]] | None = None,
        additional: dict[str, Any] | None = None,
        event_type: str = "AwsApiCall",
        category: str = "Management",
        ip: str = "",
        agent: str = "",
        identity: dict[str, Any] | None = None,
        host: str = "",
        recipient: str = "",
        request_id: str = "",
    ) -> dict[str, Any]:
        rng = self.rng
        ev: dict[str, Any] = {
            "eventVersion": VERSIONS.get(source, "1.08"),
            "userIdentity": identity if identity is not None else actor.identity,
            "eventTime": iso(t),
            "eventSource": source,
            "eventName": name,
            "awsRegion": region,
            "sourceIPAddress": ip or rng.choice(actor.ips),
            "userAgent": agent or rng.choice(actor.agents),
        }
        if error:
            ev["errorCode"], ev["errorMessage"] = error
        ev["requestParameters"] = request
        ev["responseElements"] = None if error else response
        if additional is not None:
            ev["additionalEventData"] = additional
        ev["requestID"] = request_id or self.ids.uuid()
        ev["eventID"] = self.ids.uuid()
        ev["readOnly"] = read_only
        if resources:
            ev["resources"] = resources
        ev["eventType"] = event_type
        ev["managementEvent"] = category == "Management"
        ev["recipientAccountId"] = recipient or actor.account.id
        ev["eventCategory"] = category
        vpce = actor.extra.get("vpce")
        if vpce and not ip:
            ev["vpcEndpointId"] = vpce
            ev["vpcEndpointAccountId"] = actor.account.id
        if actor.tls and event_type == "AwsApiCall":
            tls = rng.choice(TLS)
            ev["tlsDetails"] = {**tls, "clientProvidedHostHeader": host or _host(source, region)}
        return ev

    def denied(self, actor: Actor, action: str, resource: str = "*") -> tuple[str, str]:
        return (
            "AccessDenied",
            f"User: {actor.identity.get('arn')} is not authorized to perform: {action} on "
            f"resource: {resource} because no identity-based policy allows the {action} action",
        )

    def ec2_denied(self, actor: Actor, action: str, resource: str) -> tuple[str, str]:
        return (
            "Client.UnauthorizedOperation",
            f"You are not authorized to perform this operation. User: {actor.identity.get('arn')} is not "
            f"authorized to perform: {action} on resource: {resource} because no identity-based policy allows "
            f"the {action} action. Encoded authorization failure message: {self.ids.alnum(96)}",
        )

    # -- EC2 -----------------------------------------------------------------------------------------
    def ec2_describe(self, actor: Actor, t: float, region: str, name: str, **kw: Any) -> dict[str, Any]:
        request = _DESCRIBE_REQUESTS.get(name, {"filterSet": {}})
        return self.call(actor, t, region, "ec2.amazonaws.com", name, request=request, read_only=True, **kw)

    def run_instances(
        self,
        actor: Actor,
        t: float,
        region: str,
        instance_ids: list[str],
        *,
        tags: dict[str, str] | None,
        instance_type: str = "t3.medium",
        image: str = "",
        error: tuple[str, str] | None = None,
        **kw: Any,
    ) -> dict[str, Any]:
        ids = self.ids
        image = image or ids.resource("ami")
        subnet, sg = ids.resource("subnet"), ids.resource("sg")
        request: dict[str, Any] = {
            "instancesSet": {
                "items": [{"imageId": image, "minCount": len(instance_ids), "maxCount": len(instance_ids)}]
            },
            "groupSet": {"items": [{"groupId": sg}]},
            "instanceType": instance_type,
            "blockDeviceMapping": {},
            "monitoring": {"enabled": False},
            "subnetId": subnet,
            "disableApiTermination": False,
            "disableApiStop": False,
            "clientToken": ids.uuid(),
            "metadataOptions": {"httpTokens": "required", "httpEndpoint": "enabled"},
        }
        if tags:
            request["tagSpecificationSet"] = {
                "items": [
                    {"resourceType": "instance", "tags": tags_list(tags)},
                    {"resourceType": "volume", "tags": tags_list(tags)},
                ]
            }
        reservation = ids.resource("r")
        launch_ms = int(t * 1000)
        items = []
        for n, iid in enumerate(instance_ids):
            item: dict[str, Any] = {
                "instanceId": iid,
                "imageId": image,
                "currentInstanceBootMode": "legacy-bios",
                "instanceState": {"code": 0, "name": "pending"},
                "privateDnsName": f"ip-10-{self.rng.randrange(256)}-{self.rng.randrange(256)}-"
                f"{self.rng.randrange(1, 255)}.ec2.internal",
                "amiLaunchIndex": n,
                "productCodes": {},
                "instanceType": instance_type,
                "launchTime": launch_ms,
                "placement": {"availabilityZone": f"{region}{self.rng.choice('abc')}", "tenancy": "default"},
                "monitoring": {"state": "disabled"},
                "subnetId": subnet,
                "vpcId": ids.resource("vpc"),
                "privateIpAddress": f"10.{self.rng.randrange(256)}.{self.rng.randrange(256)}."
                f"{self.rng.randrange(1, 255)}",
                "stateReason": {"code": "pending", "message": "pending"},
                "architecture": "x86_64",
                "rootDeviceType": "ebs",
                "rootDeviceName": "/dev/xvda",
                "blockDeviceMapping": {},
                "virtualizationType": "hvm",
                "hypervisor": "xen",
                "groupSet": {"items": [{"groupId": sg, "groupName": "app"}]},
                "sourceDestCheck": True,
                "networkInterfaceSet": {},
                "ebsOptimized": False,
                "enaSupport": True,
                "metadataOptions": {
                    "state": "pending",
                    "httpTokens": "required",
                    "httpPutResponseHopLimit": 2,
                    "httpEndpoint": "enabled",
                },
            }
            if tags:
                item["tagSet"] = {"items": tags_list(tags)}
            items.append(item)
        response = {
            "requestId": "",
            "reservationId": reservation,
            "ownerId": actor.account.id,
            "groupSet": {},
            "instancesSet": {"items": items},
        }
        ev = self.call(
            actor, t, region, "ec2.amazonaws.com", "RunInstances", request=request, response=response, error=error, **kw
        )
        if ev["responseElements"]:
            ev["responseElements"]["requestId"] = ev["requestID"]
        return ev

    def create_tags(
        self, actor: Actor, t: float, region: str, resource_ids: Iterable[str], tags: dict[str, str], **kw: Any
    ) -> dict[str, Any]:
        request = {
            "resourcesSet": {"items": [{"resourceId": r} for r in resource_ids]},
            "tagSet": {"items": tags_list(tags)},
        }
        ev = self.call(
            actor, t, region, "ec2.amazonaws.com", "CreateTags", request=request, response={"_return": True}, **kw
        )
        ev["responseElements"] = {"requestId": ev["requestID"], "_return": True}
        return ev

    def delete_tags(
        self, actor: Actor, t: float, region: str, resource_ids: Iterable[str], keys: Iterable[str], **kw: Any
    ) -> dict[str, Any]:
        request = {
            "resourcesSet": {"items": [{"resourceId": r} for r in resource_ids]},
            "tagSet": {"items": [{"key": k} for k in keys]},
        }
        ev = self.call(
            actor, t, region, "ec2.amazonaws.com", "DeleteTags", request=request, response={"_return": True}, **kw
        )
        ev["responseElements"] = {"requestId": ev["requestID"], "_return": True}
        return ev

    def terminate_instances(
        self, actor: Actor, t: float, region: str, instance_ids: list[str], **kw: Any
    ) -> dict[str, Any]:
        request = {"instancesSet": {"items": [{"instanceId": i} for i in instance_ids]}}
        response = {
            "requestId": "",
            "instancesSet": {
                "items": [
                    {
                        "instanceId": i,
                        "currentState": {"code": 32, "name": "shutting-down"},
                        "previousState": {"code": 16, "name": "running"},
                    }
                    for i in instance_ids
                ]
            },
        }
        ev = self.call(
            actor, t, region, "ec2.amazonaws.com", "TerminateInstances", request=request, response=response, **kw
        )
        ev["responseElements"]["requestId"] = ev["requestID"]
        return ev

    def authorize_ingress(
        self, actor: Actor, t: float, region: str, group_id: str, rules: list[tuple[str, int, int, str]], **kw: Any
    ) -> dict[str, Any]:
        """`rules`: (protocol, from port, to port, CIDR) — IPv6 CIDRs go to ipv6Ranges, "sg-..." to groups."""
        perms = []
        rule_set = []
        for proto, lo, hi, cidr in rules:
            perm: dict[str, Any] = {
                "ipProtocol": proto,
                "fromPort": lo,
                "toPort": hi,
                "groups": {},
                "ipRanges": {},
                "ipv6Ranges": {},
                "prefixListIds": {},
            }
            out: dict[str, Any] = {
                "groupOwnerId": actor.account.id,
                "groupId": group_id,
                "isEgress": False,
                "ipProtocol": proto,
                "fromPort": lo,
                "toPort": hi,
                "securityGroupRuleId": self.ids.resource("sgr"),
            }
            if cidr.startswith("sg-"):
                perm["groups"] = {"items": [{"groupId": cidr}]}
                out["referencedGroupInfo"] = {"groupId": cidr, "userId": actor.account.id}
            elif ":" in cidr:
                perm["ipv6Ranges"] = {"items": [{"cidrIpv6": cidr}]}
                out["cidrIpv6"] = cidr
            else:
                perm["ipRanges"] = {"items": [{"cidrIp": cidr, "description": "managed by terraform"}]}
                out["cidrIpv4"] = cidr
            perms.append(perm)
            rule_set.append(out)
        request = {"groupId": group_id, "ipPermissions": {"items": perms}}
        response = {"requestId": "", "_return": True, "securityGroupRuleSet": {"items": rule_set}}
        ev = self.call(
            actor,
            t,
            region,
            "ec2.amazonaws.com",
            "AuthorizeSecurityGroupIngress",
            request=request,
            response=response,
            **kw,
        )
        if ev["responseElements"]:
            ev["responseElements"]["requestId"] = ev["requestID"]
        return ev

    # -- sign-in -------------------------------------------------------------------------------------
    def console_login(
        self,
        actor: Actor,
        t: float,
        *,
        success: bool,
        mfa: bool,
        ip: str = "",
        agent: str = "",
        user_name: str = "",
        identity: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """ConsoleLogin as signin.amazonaws.com writes it; a failed IAM-user sign-in carries no ARN."""
        if identity is None:
            if actor.kind == "human-iam" or user_name:
                acct = actor.account.id
                name = user_name or actor.user_name
                identity = {
                    "type": "IAMUser",
                    "principalId": actor.extra.get("principal_id", "") if not user_name else self.ids.key_id("AIDA"),
                    "accountId": acct,
                    "accessKeyId": "",
                    "userName": name,
                }
                if success:
                    identity["arn"] = f"arn:aws:iam::{acct}:user/{name}"
            else:
                identity = actor.identity
        ev: dict[str, Any] = {
            "eventVersion": "1.08",
            "userIdentity": identity,
            "eventTime": iso(t),
            "eventSource": "signin.amazonaws.com",
            "eventName": "ConsoleLogin",
            "awsRegion": "us-east-1",
            "sourceIPAddress": ip or self.rng.choice(actor.ips),
            "userAgent": agent or actor.extra.get("browser", "Mozilla/5.0"),
        }
        if not success:
            ev["errorMessage"] = "Failed authentication"
        ev["requestParameters"] = None
        ev["responseElements"] = {"ConsoleLogin": "Success" if success else "Failure"}
        ev["additionalEventData"] = {
            "LoginTo": "https://console.aws.amazon.com/console/home?hashArgs=%23&isauthcode=true&state=hashArgsFromTB",
            "MobileVersion": "No",
            "MFAUsed": "Yes" if mfa else "No",
        }
        if mfa and success and identity.get("type") == "IAMUser":
            ev["additionalEventData"]["MFAIdentifier"] = (
                f"arn:aws:iam::{identity.get('accountId')}:mfa/{identity.get('userName')}"
            )
        ev["eventID"] = self.ids.uuid()
        ev["readOnly"] = False
        ev["eventType"] = "AwsConsoleSignIn"
        ev["managementEvent"] = True
        ev["recipientAccountId"] = actor.account.id
        ev["eventCategory"] = "Management"
        return ev

    def federated_login(self, actor: Actor, t: float, ip: str = "") -> dict[str, Any]:
        """An IAM Identity Center (SSO) console sign-in: an AssumedRole identity and MFAUsed "No", as AWS
        writes it for federation (the MFA happened at the identity provider)."""
        ev = self.console_login(actor, t, success=True, mfa=False, ip=ip)
        ev["additionalEventData"] = {
            "MobileVersion": "No",
            "MFAUsed": "No",
            "SamlProviderArn": f"arn:aws:iam::{actor.account.id}:saml-provider/AWSSSO_b1e3a0c9d2f4e6a8_DO_NOT_DELETE",
        }
        return ev

    # -- IAM -----------------------------------------------------------------------------------------
    def iam(
        self,
        actor: Actor,
        t: float,
        name: str,
        request: dict[str, Any] | None,
        response: dict[str, Any] | None = None,
        read_only: bool = False,
        **kw: Any,
    ) -> dict[str, Any]:
        return self.call(
            actor,
            t,
            "us-east-1",
            "iam.amazonaws.com",
            name,
            request=request,
            response=response,
            read_only=read_only,
            **kw,
        )

    def create_user(self, actor: Actor, t: float, user: str, **kw: Any) -> dict[str, Any]:
        acct = actor.account.id
        return self.iam(
            actor,
            t,
            "CreateUser",
            {"userName": user},
            {
                "user": {
                    "path": "/",
                    "userName": user,
                    "userId": self.ids.key_id("AIDA"),
                    "arn": f"arn:aws:iam::{acct}:user/{user}",
                    "createDate": java_date(t),
                }
            },
            **kw,
        )

    def create_access_key(self, actor: Actor, t: float, user: str, **kw: Any) -> dict[str, Any]:
        return self.iam(
            actor,
            t,
            "CreateAccessKey",
            {"userName": user},
            {
                "accessKey": {
                    "userName": user,
                    "accessKeyId": self.ids.key_id("AKIA"),
                    "status": "Active",
                    "createDate": java_date(t),
                }
            },
            **kw,
        )

    def attach_user_policy(self, actor: Actor, t: float, user: str, policy_arn: str, **kw: Any) -> dict[str, Any]:
        return self.iam(actor, t, "AttachUserPolicy", {"userName": user, "policyArn": policy_arn}, None, **kw)

    def create_login_profile(self, actor: Actor, t: float, user: str, reset: bool = False, **kw: Any) -> dict[str, Any]:
        return self.iam(
            actor,
            t,
            "CreateLoginProfile",
            {"userName": user, "passwordResetRequired": reset},
            {"loginProfile": {"userName": user, "createDate": java_date(t), "passwordResetRequired": reset}},
            **kw,
        )

    def enable_mfa(self, actor: Actor, t: float, user: str, **kw: Any) -> dict[str, Any]:
        return self.iam(
            actor,
            t,
            "EnableMFADevice",
            {"userName": user, "serialNumber": f"arn:aws:iam::{actor.account.id}:mfa/{user}"},
            None,
            **kw,
        )

    # -- STS -----------------------------------------------------------------------------------------
    def assume_role(self, caller: Actor, t: float, region: str, target: Actor, **kw: Any) -> dict[str, Any]:
        """`caller` assumes `target`'s role; an AWS service caller has an AWSService identity."""
        session = target.identity["arn"].rsplit("/", 1)[-1]
        role_id = target.identity["principalId"].split(":", 1)[0]
        response = {
            "credentials": {
                "accessKeyId": target.identity["accessKeyId"],
                "sessionToken": self.ids.alnum(64),
                "expiration": java_date(t + 3600),
            },
            "assumedRoleUser": {"assumedRoleId": f"{role_id}:{session}", "arn": target.identity["arn"]},
        }
        request = {"roleArn": target.role_arn, "roleSessionName": session, "durationSeconds": 3600}
        resources = [{"accountId": target.account.id, "type": "AWS::IAM::Role", "ARN": target.role_arn}]
        ev = self.call(
            caller,
            t,
            region,
            "sts.amazonaws.com",
            "AssumeRole",
            request=request,
            response=response,
            read_only=True,
            resources=resources,
            recipient=target.account.id,
            **kw,
        )
        if caller.account is not target.account:
            ev["sharedEventID"] = self.ids.uuid()
        return ev

    def service_assume_role(self, service: str, t: float, region: str, target: Actor) -> dict[str, Any]:
        ev = self.assume_role(target, t, region, target, identity=service_identity(service), ip=service, agent=service)
        ev.pop("tlsDetails", None)
        return ev

    def get_caller_identity(self, actor: Actor, t: float, region: str, **kw: Any) -> dict[str, Any]:
        return self.call(actor, t, region, "sts.amazonaws.com", "GetCallerIdentity", read_only=True, **kw)

    # -- data events ---------------------------------------------------------------------------------
    def s3_object(
        self, actor: Actor, t: float, region: str, bucket: str, key: str, write: bool, **kw: Any
    ) -> dict[str, Any]:
        size = self.rng.randrange(200, 2_000_000)
        request = {"bucketName": bucket, "Host": f"{bucket}.s3.{region}.amazonaws.com", "key": key}
        additional = {
            "SignatureVersion": "SigV4",
            "CipherSuite": "TLS_AES_128_GCM_SHA256",
            "bytesTransferredIn": size if write else 0,
            "AuthenticationMethod": "AuthHeader",
            "x-amz-id-2": self.ids.alnum(76),
            "bytesTransferredOut": 0 if write else size,
        }
        resources = [
            {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
            {"accountId": actor.account.id, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"},
        ]
        response = (
            {
                "x-amz-server-side-encryption": "aws:kms",
                "x-amz-server-side-encryption-aws-kms-key-id": actor.account.kms_key,
            }
            if write
            else None
        )
        return self.call(
            actor,
            t,
            region,
            "s3.amazonaws.com",
            "PutObject" if write else "GetObject",
            request=request,
            response=response,
            read_only=not write,
            additional=additional,
            resources=resources,
            category="Data",
            host=request["Host"],
            **kw,
        )

    def kms_decrypt(self, actor: Actor, t: float, region: str, bucket: str, key: str) -> dict[str, Any]:
        """KMS Decrypt that S3 makes on the caller's behalf (SSE-KMS): invokedBy, no TLS details."""
        identity = {**actor.identity, "invokedBy": "s3.amazonaws.com"}
        kms_key = actor.account.kms_key
        ev = self.call(
            actor,
            t,
            region,
            "kms.amazonaws.com",
            "Decrypt",
            identity=identity,
            ip="s3.amazonaws.com",
            agent="s3.amazonaws.com",
            read_only=True,
            request={
                "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
                "encryptionContext": {"aws:s3:arn": f"arn:aws:s3:::{bucket}/{key}"},
            },
            resources=[{"accountId": actor.account.id, "type": "AWS::KMS::Key", "ARN": kms_key}],
        )
        ev.pop("tlsDetails", None)
        return ev

    def kms_rotation(self, actor: Actor, t: float, region: str) -> dict[str, Any]:
        """The AwsServiceEvent KMS writes when it rotates a key by itself."""
        acct = actor.account
        ev = self.call(
            actor,
            t,
            region,
            "kms.amazonaws.com",
            "RotateKey",
            identity={"accountId": acct.id, "invokedBy": "kms.amazonaws.com"},
            ip="kms.amazonaws.com",
            agent="kms.amazonaws.com",
            event_type="AwsServiceEvent",
            resources=[{"accountId": acct.id, "type": "AWS::KMS::Key", "ARN": acct.kms_key}],
        )
        ev.pop("requestID")
        ev["serviceEventDetails"] = {"keyRotationStatus": "SUCCEEDED"}
        return ev


def _host(source: str, region: str) -> str:
    if source in GLOBAL_SOURCES:
        return GLOBAL_SOURCES[source]
    return f"{source.split('.', 1)[0]}.{region}.amazonaws.com"


_DESCRIBE_REQUESTS: dict[str, dict[str, Any]] = {
    "DescribeInstances": {"instancesSet": {}, "filterSet": {}},
    "DescribeSecurityGroups": {"securityGroupSet": {}, "securityGroupIdSet": {}, "filterSet": {}},
    "DescribeVolumes": {"volumeSet": {}, "filterSet": {}},
    "DescribeSubnets": {"subnetSet": {}, "filterSet": {}},
    "DescribeVpcs": {"vpcSet": {}, "filterSet": {}},
    "DescribeNetworkInterfaces": {"networkInterfaceIdSet": {}, "filterSet": {}},
    "DescribeImages": {
        "executableBySet": {},
        "imagesSet": {},
        "ownersSet": {"items": [{"owner": "self"}]},
        "filterSet": {},
    },
    "DescribeTags": {
        "filterSet": {"items": [{"name": "resource-type", "valueSet": {"items": [{"value": "instance"}]}}]}
    },
    "DescribeRegions": {"regionSet": {}},
    "DescribeInstanceStatus": {"instancesSet": {}, "filterSet": {}, "includeAllInstances": False},
}
