"""Infrastructure: the CloudFormation template and its reader, the AWS target, the stack's outputs and resource
names, provisioning, the embedded emulator, the CloudTrail player (docs/architecture.md, "Layers")."""
