"""Secret references in destination settings, read once at start-up: "env:NAME" (an environment variable,
for local runs), "ssm:NAME" or an SSM parameter ARN (SecureString decrypted), "secretsmanager:ID" or a
Secrets Manager ARN (its SecretString; "...#key" picks one key of a JSON secret). Anything else is the
value itself. A reference that cannot be read is a ConfigError naming the setting and the reference, never
a value."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from consumers.sinks.retry import error_code
from pipeline.config import ConfigError


class Secrets:
    def __init__(self, client: Callable[[str], Any], env: Mapping[str, str] | None = None) -> None:
        self._client = client  # service name -> boto3 client, made only when a reference needs it
        self._env = os.environ if env is None else env
        self.read_values: list[str] = []  # what was read: a caller may scrub these from anything it prints

    def value(self, ref: str, where: str) -> str:
        """The value `ref` stands for; ConfigError naming `where` if it cannot be read or is empty."""
        try:
            value = self._read(ref)
        except ConfigError as exc:
            raise ConfigError(f"{where}: the secret {ref!r} cannot be read: {exc}") from None
        if not value.strip():
            raise ConfigError(f"{where}: the secret {ref!r} is empty")
        if value not in self.read_values and value != ref:
            self.read_values.append(value)
        return value.strip()

    def _read(self, ref: str) -> str:
        if ref.startswith("env:"):
            name = ref[4:]
            if name not in self._env:
                raise ConfigError(f"the environment variable {name} is not set")
            return self._env[name]
        if ref.startswith(("ssm:", "arn:aws:ssm:")):
            name = ref[4:] if ref.startswith("ssm:") else ref
            try:
                return str(self._client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])
            except Exception as exc:  # botocore's errors: not found, access denied, unreachable
                raise ConfigError(f"SSM GetParameter failed ({error_code(exc) or type(exc).__name__})") from None
        if ref.startswith(("secretsmanager:", "arn:aws:secretsmanager:")):
            secret_id = ref[len("secretsmanager:") :] if ref.startswith("secretsmanager:") else ref
            key = ""
            if "#" in secret_id:
                secret_id, key = secret_id.rsplit("#", 1)
            try:
                text = str(self._client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"])
            except Exception as exc:  # botocore's errors, or a binary secret without SecretString
                raise ConfigError(
                    f"Secrets Manager GetSecretValue failed ({error_code(exc) or type(exc).__name__})"
                ) from None
            if not key:
                return text
            try:
                picked = json.loads(text)[key]
            except (ValueError, KeyError, TypeError):
                raise ConfigError(f"the secret is not a JSON object with the key {key!r}") from None
            return str(picked)
        return ref
