"""Realistic CloudTrail calls on each resource type of the table: the request and response elements the
services write for creating, tagging, untagging and deleting a resource. The tag rules' cases and the
scenario generator both build their records from these (each adds the envelope it needs).

`SAMPLES[type].create(rid, tags, account, region)` and friends give a `Call`: eventSource, eventName,
requestParameters, responseElements. `rid` is the resource's id as the table keys it (a bucket name, an
instance id, a load balancer's "app/name/hash"); `name_of(type, n)` makes a realistic one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Tags = Mapping[str, str]


@dataclass(frozen=True)
class Call:
    """The parts of a CloudTrail record a sample gives."""

    source: str
    name: str
    request: dict[str, Any] | None
    response: dict[str, Any] | None = None


def _hex(seed: str, n: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


def _pairs(tags: Tags | None, key: str = "key", value: str = "value") -> list[dict[str, str]]:
    return [{key: k, value: v} for k, v in (tags or {}).items()]


def _ec2_spec(resource_type: str, tags: Tags | None) -> dict[str, Any]:
    return {"tagSpecificationSet": {"items": [{"resourceType": resource_type, "tags": _pairs(tags)}]}} if tags else {}


def _ec2_ok(rid: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"requestId": f"{_hex(rid, 8)}-8c3e-4b6f-9a1d-{_hex(rid + 'r', 12)}", "_return": True, **(extra or {})}


class Sample:
    """How one resource type's calls look. Subclasses write `create`, `tag`, `untag` and `delete`;
    `replace` is whether `tag` replaces the whole tag set (S3)."""

    type = ""
    source = ""
    replace = False

    def create(self, rid: str, tags: Tags | None, account: str, region: str) -> Call:
        raise NotImplementedError

    def tag(self, rid: str, tags: Tags, account: str, region: str) -> Call:
        raise NotImplementedError

    def untag(self, rid: str, keys: list[str], account: str, region: str) -> Call:
        raise NotImplementedError

    def delete(self, rid: str, account: str, region: str) -> Call:
        raise NotImplementedError


class _Ec2(Sample):
    """EC2 resources: CreateTags and DeleteTags name them by id, with resources of any type."""

    source = "ec2.amazonaws.com"

    def tag(self, rid: str, tags: Tags, account: str, region: str) -> Call:
        return Call(
            self.source,
            "CreateTags",
            {"resourcesSet": {"items": [{"resourceId": rid}]}, "tagSet": {"items": _pairs(tags)}},
            _ec2_ok(rid),
        )

    def untag(self, rid: str, keys: list[str], account: str, region: str) -> Call:
        return Call(
            self.source,
            "DeleteTags",
            {"resourcesSet": {"items": [{"resourceId": rid}]}, "tagSet": {"items": [{"key": k} for k in keys]}},
            _ec2_ok(rid),
        )


class Volume(_Ec2):
    type = "ebs-volume"

    def create(self, rid: str, tags: Tags | None, account: str, region: str) -> Call:
        request = {
            "size": 100,
            "zone": f"{region}a",
            "volumeType": "gp3",
            "encrypted": True,
            **_ec2_spec("volume", tags),
        }
        response = {
            "requestId": _ec2_ok(rid)["requestId"],
            "volumeId": rid,
            "size": 100,
            "zone": f"{region}a",
            "status": "creating",
            "createTime": 1719842400000,
            "volumeType": "gp3",
            "iops": 3000,
            "encrypted": True,
            "multiAttachEnabled": False,
            "throughput": 125,
        }
        if tags:
            response["tagSet"] = {"items": _pairs(tags)}
        return Call(self.source, "CreateVolume", request, response)

    def delete(self, rid: str, account: str, region: str) -> Call:
        return Call(self.source, "DeleteVolume", {"volumeId": rid}, _ec2_ok(rid))


class Snapshot(_Ec2):
    type = "ebs-snapshot"

    def create(self, rid: str, tags: Tags | None, account: str, region: str) -> Call:
        volume = f"vol-0{_hex(rid, 16)}"
        request = {"volumeId": volume, "description": "nightly backup", **_ec2_spec("snapshot", tags)}
        response = {
            "requestId": _ec2_ok(rid)["requestId"],
            "snapshotId": rid,
            "volumeId": volume,
            "status": "pending",
            "startTime": 1719842400000,
            "progress": "",
            "ownerId": account,
            "description": "nightly backup",
            "volumeSize": 100,
            "encrypted": True,
        }
        if tags:
            response["tagSet"] = {"items": _pairs(tags)}
        return Call(self.source, "CreateSnapshot", request, response)

    def delete(self, rid: str, account: str, region: str) -> Call:
        return Call(self.source, "DeleteSnapshot", {"snapshotId": rid}, _ec2_ok(rid))


class Image(_Ec2):
    type = "ec2-image"

    def create(self, rid: str, tags: Tags | None, account: str, region: str) -> Call:
        request = {
            "instanceId": f"i-0{_hex(rid, 16)}",
            "name": f"golden-{_hex(rid, 6)}",
            "noReboot": True,
            "blockDeviceMapping": {},
            **_ec2_spec("image", tags),
        }
        return Call(self.source, "CreateImage", request, {"requestId": _ec2_ok(rid)["requestId"], "imageId": rid})

    def delete(self, rid: str, account: str, region: str) -> Call:
        return Call(self.source, "DeregisterImage", {"imageId": rid}, _ec2_ok(rid))


class SecurityGroup(_Ec2):
    type = "security-group"

    def create(self, rid: str, tags: Tags | None, account: str, region: str) -> Call:
        request = {
            "groupName": f"app-{_hex(rid, 6)}",
            "groupDescription": "app tier",
            "vpcId": f"vpc-0{_hex(rid, 16)}",
            **_ec2_spec("security-group", tags),
        }
        return Call(self.source, "CreateSecurityGroup", request, _ec2_ok(rid, {"groupId": rid}))

    def delete(self, rid: str, account: str, region: str) -> Call:
        return Call(self.source, "DeleteSecurityGroup", {"groupId": rid}, _ec2_ok(rid, {"groupId": rid}))


class Bucket(Sample):
    type = "s3-bucket"
    source = "s3.amazonaws.com"
    replace = True

    @staticmethod
    def _host(bucket: str, region: str) -> str:
        return f"{bucket}.s3.{region}.amazonaws.com"

    def create(self, rid: str, tags: Tags | None, account: str, region: str) -> Call:
        request: dict[str, Any] = {"bucketName": rid, "Host": self._host(rid, region)}
        config: dict[str, Any] = {} if region == "us-east-1" else {"LocationConstraint": region}
        if tags:
            config["Tags"] = {"Tag": [{"Value": v, "Key": k} for k, v in tags.items()]}
        if config:
            request["CreateBucketConfiguration"] = {"xmlns": "http://s3.amazonaws.com/doc/2006-03-01/", **config}
        return Call(self.source, "CreateBucket", request, None)

    def tag(self, rid: str, tags: Tags, account: str, region: str) -> Call:
        found = [{"Value": v, "Key": k} for k, v in tags.items()]
        tag_set = {"Tag": found[0] if len(found) == 1 else found} if found else {}  # one tag: S3 writes an object
        return Call(
            self.source,
            "PutBucketTagging",
            {
                "Tagging": {"xmlns": "http://s3.amazonaws.com/doc/2006-03-01/", "TagSet": tag_set},
                "tagging": "",
                "bucketName": rid,
                "Host": self._host(rid, region),
            },
            None,
        )

    def untag(self, rid: str, keys: list[str], account: str, region: str) -> Call:
        return Call(
            self.source,
            "DeleteBucketTagging",
            {"bucketName": rid, "Host": self._host(rid, region), "tagging": ""},
            None,
        )

    def delete(self, rid: str, account: str, region: str) -> Call:
        return Call(self.source, "DeleteBucket", {"bucketName": rid, "Host": self._host(rid, region)}, None)


class _Rds(Sample):
    source = "rds.amazonaws.com"
    kind = "db"

    def arn(self, rid: str, account: str, region: str) -> str:
        return f"arn:aws:rds:{region}:{account}:{self.kind}:{rid}"

    def tag(self, rid: str, tags: Tags, account: str, region: str) -> Call:
        return Call(
            self.source,
            "AddTagsToResource",
            {"resourceName": self.arn(rid, account, region), "tags": _pairs(tags)},
            None,
        )

    def untag(self, rid: str, keys: list[str], account: str, region: str) -> Call:
        return Call(
            self.source,
            "RemoveTagsFromResource",
            {"resourceName": self.arn(rid, account, region), "tagKeys": list(keys)},
            None,
        )


class DbInstance(_Rds):
    type = "rds-instance"

    def create(self, rid: str, tags: Tags | None, account: str, region: str) -> Call:
        request = {
            "dBInstanceIdentifier": rid,
            "allocatedStorage": 20,
            "dBInstanceClass": "db.t4g.medium",
            "engine": "postgres",
            "engineVersion": "16.3",
            "masterUsername": "app",
            "masterUserPassword": "****",
            "publiclyAccessible": False,
            "storageEncrypted": True,
            "multiAZ": False,
            "tags": _pairs(tags),
        }
        response = {
            "dBInstanceIdentifier": rid,
            "dBInstanceClass": "db.t4g.medium",
            "engine": "postgres",
            "dBInstanceStatus": "creating",
            "masterUsername": "app",
            "allocatedStorage": 20,
            "publiclyAccessible": False,
            "storageEncrypted": True,
            "dbiResourceId": f"db-{_hex(rid, 26).upper()}",
            "dBInstanceArn": self.arn(rid, account, region),
            "tagList": _pairs(tags),
        }
        return Call(self.source, "CreateDBInstance", request, response)

    def delete(self, rid: str, account: str, region: str) -> Call:
        return Call(
            self.source,
            "DeleteDBInstance",
            {
                "dBInstanceIdentifier": rid,
                "skipFinalSnapshot": False,
                "finalDBSnapshotIdentifier": f"{rid}-final",
                "deleteAutomatedBackups": False,
            },
            {
                "dBInstanceIdentifier": rid,
                "dBInstanceStatus": "deleting",
                "dBInstanceArn": self.arn(rid, account, region),
            },
        )


class DbCluster(_Rds):
    type = "rds-cluster"
    kind = "cluster"

    def create(self, rid: str, tags: Tags | None, account: str, region: str) -> Call:
        request = {
            "dBClusterIdentifier": rid,
            "engine": "aurora-postgresql",
            "engineVersion": "16.2",
            "masterUsername": "app",
            "masterUserPassword": "****",
            "storageEncrypted": True,
            "tags": _pairs(tags),
        }
        response = {
            "dBClusterIdentifier": rid,
            "engine": "aurora-postgresql",
            "status": "creating",
            "dbClusterResourceId": f"cluster-{_hex(rid, 26).upper()}",
            "dBClusterArn": self.arn(rid, account, region),
            "tagList": _pairs(tags),
        }
        return Call(self.source, "CreateDBCluster", request, response)

    def delete(self, rid: str, account: str, region: str) -> Call:
        return Call(
            self.source,
            "DeleteDBCluster",
            {"dBClusterIdentifier": rid, "skipFinalSnapshot": False, "finalDBSnapshotIdentifier": f"{rid}-final"},
            {"dBClusterIdentifier": rid, "status": "deleting", "dBClusterArn": self.arn(rid, account, region)},
        )


class Function(Sample):
    type = "lambda-function"
    source = "lambda.amazonaws.com"

    @staticmethod
    def arn(rid: str, account: str, region: str) -> str:
        return f"arn:aws:lambda:{region}:{account}:function:{rid}"

    def create(self, rid: str, tags: Tags | None, account: str, region: str) -> Call:
        role = f"arn:aws:iam::{account}:role/{rid}-role"
        request = {
            "functionName": rid,
            "runtime": "python3.12",
            "role": role,
            "handler": "app.handler",
            "code": {},
            "timeout": 30,
            "memorySize": 256,
            "publish": False,
            "tags": dict(tags or {}),
        }
        response = {
            "functionName": rid,
            "functionArn": self.arn(rid, account, region),
            "runtime": "python3.12",
            "role": role,
            "handler": "app.handler",
            "codeSize": 4213,
            "timeout": 30,
            "memorySize": 256,
            "version": "$LATEST",
            "state": "Pending",
            "stateReasonCode": "Creating",
            "packageType": "Zip",
            "architectures": ["arm64"],
        }
        return Call(self.source, "CreateFunction20150331", request, response)

    def tag(self, rid: str, tags: Tags, account: str, region: str) -> Call:
        return Call(
            self.source, "TagResource20170331v2", {"resource": self.arn(rid, account, region), "tags": dict(tags)}, None
        )

    def untag(self, rid: str, keys: list[str], account: str, region: str) -> Call:
        return Call(
            self.source,
            "UntagResource20170331v2",
            {"resource": self.arn(rid, account, region), "tagKeys": list(keys)},
            None,
        )

    def delete(self, rid: str, account: str, region: str) -> Call:
        return Call(self.source, "DeleteFunction20150331", {"functionName": rid}, None)


class Table(Sample):
    type = "dynamodb-table"
    source = "dynamodb.amazonaws.com"

    @staticmethod
    def arn(rid: str, account: str, region: str) -> str:
        return f"arn:aws:dynamodb:{region}:{account}:table/{rid}"

    def create(self, rid: str, tags: Tags | None, account: str, region: str) -> Call:
        request = {
            "tableName": rid,
            "attributeDefinitions": [{"attributeName": "pk", "attributeType": "S"}],
            "keySchema": [{"attributeName": "pk", "keyType": "HASH"}],
            "billingMode": "PAY_PER_REQUEST",
            "tags": _pairs(tags),
        }
        response = {
            "tableDescription": {
                "tableName": rid,
                "tableStatus": "CREATING",
                "itemCount": 0,
                "tableArn": self.arn(rid, account, region),
                "tableSizeBytes": 0,
                "tableId": f"{_hex(rid, 8)}-4c1d-4a6e-9f2b-{_hex(rid + 't', 12)}",
            }
        }
        return Call(self.source, "CreateTable", request, response)

    def tag(self, rid: str, tags: Tags, account: str, region: str) -> Call:
        return Call(
            self.source, "TagResource", {"resourceArn": self.arn(rid, account, region), "tags": _pairs(tags)}, None
        )

    def untag(self, rid: str, keys: list[str], account: str, region: str) -> Call:
        return Call(
            self.source, "UntagResource", {"resourceArn": self.arn(rid, account, region), "tagKeys": list(keys)}, None
        )

    def delete(self, rid: str, account: str, region: str) -> Call:
        return Call(
            self.source,
            "DeleteTable",
            {"tableName": rid},
            {
                "tableDescription": {
                    "tableName": rid,
                    "tableStatus": "DELETING",
                    "tableArn": self.arn(rid, account, region),
                }
            },
        )


class Queue(Sample):
    type = "sqs-queue"
    source = "sqs.amazonaws.com"

    @staticmethod
    def url(rid: str, account: str, region: str) -> str:
        return f"https://sqs.{region}.amazonaws.com/{account}/{rid}"

    def create(self, rid: str, tags: Tags | None, account: str, region: str) -> Call:
        request: dict[str, Any] = {
            "queueName": rid,
            "attribute": {"VisibilityTimeout": "60", "MessageRetentionPeriod": "345600"},
        }
        if tags:
            request["tags"] = dict(tags)
        return Call(self.source, "CreateQueue", request, {"queueUrl": self.url(rid, account, region)})

    def tag(self, rid: str, tags: Tags, account: str, region: str) -> Call:
        return Call(self.source, "TagQueue", {"queueUrl": self.url(rid, account, region), "tags": dict(tags)}, None)

    def untag(self, rid: str, keys: list[str], account: str, region: str) -> Call:
        return Call(
            self.source, "UntagQueue", {"queueUrl": self.url(rid, account, region), "tagKeys": list(keys)}, None
        )

    def delete(self, rid: str, account: str, region: str) -> Call:
        return Call(self.source, "DeleteQueue", {"queueUrl": self.url(rid, account, region)}, None)


class Topic(Sample):
    type = "sns-topic"
    source = "sns.amazonaws.com"

    @staticmethod
    def arn(rid: str, account: str, region: str) -> str:
        return f"arn:aws:sns:{region}:{account}:{rid}"

    def create(self, rid: str, tags: Tags | None, account: str, region: str) -> Call:
        request: dict[str, Any] = {"name": rid}
        if tags:
            request["tags"] = _pairs(tags)
        return Call(self.source, "CreateTopic", request, {"topicArn": self.arn(rid, account, region)})

    def tag(self, rid: str, tags: Tags, account: str, region: str) -> Call:
        return Call(
            self.source, "TagResource", {"resourceArn": self.arn(rid, account, region), "tags": _pairs(tags)}, None
        )

    def untag(self, rid: str, keys: list[str], account: str, region: str) -> Call:
        return Call(
            self.source, "UntagResource", {"resourceArn": self.arn(rid, account, region), "tagKeys": list(keys)}, None
        )

    def delete(self, rid: str, account: str, region: str) -> Call:
        return Call(self.source, "DeleteTopic", {"topicArn": self.arn(rid, account, region)}, None)


class EcsCluster(Sample):
    type = "ecs-cluster"
    source = "ecs.amazonaws.com"

    @staticmethod
    def arn(rid: str, account: str, region: str) -> str:
        return f"arn:aws:ecs:{region}:{account}:cluster/{rid}"

    def create(self, rid: str, tags: Tags | None, account: str, region: str) -> Call:
        request: dict[str, Any] = {"clusterName": rid, "settings": [{"name": "containerInsights", "value": "enabled"}]}
        if tags:
            request["tags"] = _pairs(tags)
        response = {
            "cluster": {
                "clusterArn": self.arn(rid, account, region),
                "clusterName": rid,
                "status": "ACTIVE",
                "registeredContainerInstancesCount": 0,
                "runningTasksCount": 0,
                "pendingTasksCount": 0,
                "activeServicesCount": 0,
                "statistics": [],
                "tags": _pairs(tags),
            }
        }
        return Call(self.source, "CreateCluster", request, response)

    def tag(self, rid: str, tags: Tags, account: str, region: str) -> Call:
        return Call(
            self.source, "TagResource", {"resourceArn": self.arn(rid, account, region), "tags": _pairs(tags)}, {}
        )

    def untag(self, rid: str, keys: list[str], account: str, region: str) -> Call:
        return Call(
            self.source, "UntagResource", {"resourceArn": self.arn(rid, account, region), "tagKeys": list(keys)}, {}
        )

    def delete(self, rid: str, account: str, region: str) -> Call:
        return Call(
            self.source,
            "DeleteCluster",
            {"cluster": rid},
            {"cluster": {"clusterArn": self.arn(rid, account, region), "clusterName": rid, "status": "INACTIVE"}},
        )


class EksCluster(Sample):
    type = "eks-cluster"
    source = "eks.amazonaws.com"

    @staticmethod
    def arn(rid: str, account: str, region: str) -> str:
        return f"arn:aws:eks:{region}:{account}:cluster/{rid}"

    def create(self, rid: str, tags: Tags | None, account: str, region: str) -> Call:
        role = f"arn:aws:iam::{account}:role/eks-cluster-role"
        vpc = {"subnetIds": [f"subnet-0{_hex(rid, 16)}", f"subnet-0{_hex(rid + 'b', 16)}"]}
        request: dict[str, Any] = {"name": rid, "version": "1.30", "roleArn": role, "resourcesVpcConfig": vpc}
        if tags:
            request["tags"] = dict(tags)
        response = {
            "cluster": {
                "name": rid,
                "arn": self.arn(rid, account, region),
                "version": "1.30",
                "roleArn": role,
                "status": "CREATING",
                "tags": dict(tags or {}),
            }
        }
        return Call(self.source, "CreateCluster", request, response)

    def tag(self, rid: str, tags: Tags, account: str, region: str) -> Call:
        return Call(
            self.source, "TagResource", {"resourceArn": self.arn(rid, account, region), "tags": dict(tags)}, None
        )

    def untag(self, rid: str, keys: list[str], account: str, region: str) -> Call:
        return Call(
            self.source, "UntagResource", {"resourceArn": self.arn(rid, account, region), "tagKeys": list(keys)}, None
        )

    def delete(self, rid: str, account: str, region: str) -> Call:
        return Call(
            self.source,
            "DeleteCluster",
            {"name": rid},
            {"cluster": {"name": rid, "arn": self.arn(rid, account, region), "status": "DELETING"}},
        )


class LoadBalancer(Sample):
    type = "elbv2-load-balancer"
    source = "elasticloadbalancing.amazonaws.com"

    @staticmethod
    def arn(rid: str, account: str, region: str) -> str:
        return f"arn:aws:elasticloadbalancing:{region}:{account}:loadbalancer/{rid}"

    def create(self, rid: str, tags: Tags | None, account: str, region: str) -> Call:
        kind, name, _ = [*rid.split("/"), "", ""][:3]
        subnets = [f"subnet-0{_hex(rid, 16)}", f"subnet-0{_hex(rid + 'b', 16)}"]
        request: dict[str, Any] = {
            "name": name,
            "subnets": subnets,
            "securityGroups": [f"sg-0{_hex(rid, 16)}"],
            "scheme": "internal",
            "type": "application" if kind == "app" else "network",
        }
        if tags:
            request["tags"] = _pairs(tags)
        response = {
            "loadBalancers": [
                {
                    "loadBalancerArn": self.arn(rid, account, region),
                    "loadBalancerName": name,
                    "scheme": "internal",
                    "dNSName": f"internal-{name}-{_hex(rid, 10)}.{region}.elb.amazonaws.com",
                    "type": request["type"],
                    "vpcId": f"vpc-0{_hex(rid, 16)}",
                    "state": {"code": "provisioning"},
                    "ipAddressType": "ipv4",
                }
            ]
        }
        return Call(self.source, "CreateLoadBalancer", request, response)

    def tag(self, rid: str, tags: Tags, account: str, region: str) -> Call:
        return Call(
            self.source, "AddTags", {"resourceArns": [self.arn(rid, account, region)], "tags": _pairs(tags)}, None
        )

    def untag(self, rid: str, keys: list[str], account: str, region: str) -> Call:
        return Call(
            self.source, "RemoveTags", {"resourceArns": [self.arn(rid, account, region)], "tagKeys": list(keys)}, None
        )

    def delete(self, rid: str, account: str, region: str) -> Call:
        return Call(self.source, "DeleteLoadBalancer", {"loadBalancerArn": self.arn(rid, account, region)}, None)


class AutoScalingGroup(Sample):
    type = "autoscaling-group"
    source = "autoscaling.amazonaws.com"

    def create(self, rid: str, tags: Tags | None, account: str, region: str) -> Call:
        request: dict[str, Any] = {
            "autoScalingGroupName": rid,
            "minSize": 2,
            "maxSize": 6,
            "desiredCapacity": 2,
            "launchTemplate": {"launchTemplateName": f"{rid}-lt", "version": "$Latest"},
            "vPCZoneIdentifier": f"subnet-0{_hex(rid, 16)},subnet-0{_hex(rid + 'b', 16)}",
        }
        if tags:
            request["tags"] = [{"key": k, "value": v, "propagateAtLaunch": True} for k, v in tags.items()]
        return Call(self.source, "CreateAutoScalingGroup", request, None)

    def tag(self, rid: str, tags: Tags, account: str, region: str) -> Call:
        return Call(
            self.source,
            "CreateOrUpdateTags",
            {
                "tags": [
                    {
                        "resourceId": rid,
                        "resourceType": "auto-scaling-group",
                        "key": k,
                        "value": v,
                        "propagateAtLaunch": True,
                    }
                    for k, v in tags.items()
                ]
            },
            None,
        )

    def untag(self, rid: str, keys: list[str], account: str, region: str) -> Call:
        return Call(
            self.source,
            "DeleteTags",
            {"tags": [{"resourceId": rid, "resourceType": "auto-scaling-group", "key": k} for k in keys]},
            None,
        )

    def delete(self, rid: str, account: str, region: str) -> Call:
        return Call(self.source, "DeleteAutoScalingGroup", {"autoScalingGroupName": rid, "forceDelete": True}, None)


class Key(Sample):
    type = "kms-key"
    source = "kms.amazonaws.com"

    @staticmethod
    def arn(rid: str, account: str, region: str) -> str:
        return f"arn:aws:kms:{region}:{account}:key/{rid}"

    def create(self, rid: str, tags: Tags | None, account: str, region: str) -> Call:
        request: dict[str, Any] = {
            "description": "application data key",
            "keyUsage": "ENCRYPT_DECRYPT",
            "keySpec": "SYMMETRIC_DEFAULT",
            "customerMasterKeySpec": "SYMMETRIC_DEFAULT",
            "origin": "AWS_KMS",
            "bypassPolicyLockoutSafetyCheck": False,
        }
        if tags:
            request["tags"] = _pairs(tags, "tagKey", "tagValue")
        metadata = {
            "aWSAccountId": account,
            "keyId": rid,
            "arn": self.arn(rid, account, region),
            "creationDate": "Jul 1, 2024, 2:00:00 PM",
            "enabled": True,
            "description": "application data key",
            "keyUsage": "ENCRYPT_DECRYPT",
            "keyState": "Enabled",
            "origin": "AWS_KMS",
            "keyManager": "CUSTOMER",
            "customerMasterKeySpec": "SYMMETRIC_DEFAULT",
            "keySpec": "SYMMETRIC_DEFAULT",
            "encryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
            "multiRegion": False,
        }
        return Call(self.source, "CreateKey", request, {"keyMetadata": metadata})

    def tag(self, rid: str, tags: Tags, account: str, region: str) -> Call:
        return Call(self.source, "TagResource", {"keyId": rid, "tags": _pairs(tags, "tagKey", "tagValue")}, None)

    def untag(self, rid: str, keys: list[str], account: str, region: str) -> Call:
        return Call(
            self.source, "UntagResource", {"keyId": self.arn(rid, account, region), "tagKeys": list(keys)}, None
        )

    def delete(self, rid: str, account: str, region: str) -> Call:
        return Call(
            self.source,
            "ScheduleKeyDeletion",
            {"keyId": rid, "pendingWindowInDays": 7},
            {
                "keyId": self.arn(rid, account, region),
                "deletionDate": "Jul 8, 2024, 2:00:00 PM",
                "keyState": "PendingDeletion",
                "pendingWindowInDays": 7,
            },
        )


class Secret(Sample):
    type = "secretsmanager-secret"
    source = "secretsmanager.amazonaws.com"

    @staticmethod
    def arn(rid: str, account: str, region: str) -> str:
        return f"arn:aws:secretsmanager:{region}:{account}:secret:{rid}-{_hex(rid, 6)}"

    def create(self, rid: str, tags: Tags | None, account: str, region: str) -> Call:
        request: dict[str, Any] = {
            "name": rid,
            "clientRequestToken": f"{_hex(rid, 8)}-0c1d-4e2f-8a3b-{_hex(rid, 12)}",
            "description": "database credentials",
            "secretString": "HIDDEN_DUE_TO_SECURITY_REASONS",
        }
        if tags:
            request["tags"] = _pairs(tags)
        return Call(
            self.source,
            "CreateSecret",
            request,
            {
                "aRN": self.arn(rid, account, region),
                "name": rid,
                "versionId": f"{_hex(rid, 8)}-7e1a-4f3b-9c2d-{_hex(rid + 'v', 12)}",
            },
        )

    def tag(self, rid: str, tags: Tags, account: str, region: str) -> Call:
        return Call(
            self.source, "TagResource", {"secretId": self.arn(rid, account, region), "tags": _pairs(tags)}, None
        )

    def untag(self, rid: str, keys: list[str], account: str, region: str) -> Call:
        return Call(self.source, "UntagResource", {"secretId": rid, "tagKeys": list(keys)}, None)

    def delete(self, rid: str, account: str, region: str) -> Call:
        return Call(
            self.source,
            "DeleteSecret",
            {"secretId": self.arn(rid, account, region), "recoveryWindowInDays": 7},
            {"aRN": self.arn(rid, account, region), "name": rid, "deletionDate": "Jul 8, 2024, 2:00:00 PM"},
        )


SAMPLES: dict[str, Sample] = {
    s.type: s
    for s in (
        Volume(),
        Snapshot(),
        Image(),
        SecurityGroup(),
        Bucket(),
        DbInstance(),
        DbCluster(),
        Function(),
        Table(),
        Queue(),
        Topic(),
        EcsCluster(),
        EksCluster(),
        LoadBalancer(),
        AutoScalingGroup(),
        Key(),
        Secret(),
    )
}

_NAMES: dict[str, Callable[[str], str]] = {
    "ebs-volume": lambda h: f"vol-0{h[:16]}",
    "ebs-snapshot": lambda h: f"snap-0{h[:16]}",
    "ec2-image": lambda h: f"ami-0{h[:16]}",
    "security-group": lambda h: f"sg-0{h[:16]}",
    "s3-bucket": lambda h: f"acme-data-{h[:10]}",
    "rds-instance": lambda h: f"orders-db-{h[:6]}",
    "rds-cluster": lambda h: f"ledger-aurora-{h[:6]}",
    "lambda-function": lambda h: f"invoice-renderer-{h[:6]}",
    "dynamodb-table": lambda h: f"sessions-{h[:6]}",
    "sqs-queue": lambda h: f"orders-events-{h[:6]}",
    "sns-topic": lambda h: f"alerts-{h[:6]}",
    "ecs-cluster": lambda h: f"batch-{h[:6]}",
    "eks-cluster": lambda h: f"platform-{h[:6]}",
    "elbv2-load-balancer": lambda h: f"app/internal-api-{h[:6]}/{h[6:22]}",
    "autoscaling-group": lambda h: f"workers-{h[:6]}",
    "kms-key": lambda h: f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}",
    "secretsmanager-secret": lambda h: f"prod/orders/db-{h[:6]}",
}


def name_of(type_name: str, seed: str) -> str:
    """A realistic id of a resource of `type_name`, drawn from `seed`."""
    return _NAMES[type_name](_hex(f"{type_name}\x1f{seed}", 32))
