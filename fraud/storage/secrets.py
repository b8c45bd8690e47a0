"""Secret store: small JSON documents by name, in a private local directory or AWS Secrets
Manager.

Two secrets live here: the key of the keyed hash that turns card and terminal ids into
pseudonyms (``fraud.pseudonym``), and the SHA-256 digests of the API keys. Locally they are
files under ``.fraud/`` (directory 0700, files 0600), created on first use, so a local
server keeps its keys across restarts; in AWS the CDK app creates the secrets and passes
their ARNs.
"""

from __future__ import annotations

import json
import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path


DEFAULT_LOCAL_DIR = ".fraud"


class SecretNotFound(KeyError):
    pass


class SecretStore(ABC):
    @abstractmethod
    def get(self, name: str) -> dict:
        """The secret's JSON document; ``SecretNotFound`` when there is none."""

    @abstractmethod
    def put(self, name: str, value: dict) -> None:
        """Replace the secret's document (a new version in Secrets Manager)."""

    @abstractmethod
    def create(self, name: str, value: dict) -> dict:
        """Store ``value`` unless the secret exists; returns the stored document (two
        processes creating at once agree on one)."""


class LocalSecretStore(SecretStore):
    """``<root>/<name>.json``, readable by the owner only."""

    def __init__(self, root: str | Path = ".fraud"):
        self.root = Path(root)

    def _path(self, name: str) -> Path:
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"secret name {name!r} must be a plain file name")
        return self.root / f"{name}.json"

    def get(self, name: str) -> dict:
        try:
            return json.loads(self._path(name).read_text())
        except FileNotFoundError as exc:
            raise SecretNotFound(f"no secret {name!r} in {self.root}") from exc

    def _write_temp(self, name: str, value: dict) -> str:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{name}.", suffix=".tmp")  # created 0600
        with os.fdopen(fd, "w") as fh:
            json.dump(value, fh)
            fh.flush()
            os.fsync(fh.fileno())
        return tmp

    def put(self, name: str, value: dict) -> None:
        path = self._path(name)
        tmp = self._write_temp(name, value)
        try:
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def create(self, name: str, value: dict) -> dict:
        path = self._path(name)
        tmp = self._write_temp(name, value)
        try:
            os.link(tmp, path)  # atomic, and fails where the file exists
        except FileExistsError:
            return self.get(name)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return value


class SecretsManagerStore(SecretStore):
    """Secrets Manager; ``name`` is the secret's ARN (or name)."""

    def __init__(self, endpoint_url: str | None = None, secrets_client=None):
        from .aws import client

        self.sm = secrets_client or client("secretsmanager", endpoint_url)

    def get(self, name: str) -> dict:
        try:
            out = self.sm.get_secret_value(SecretId=name)
        except self.sm.exceptions.ResourceNotFoundException as exc:
            raise SecretNotFound(f"no secret {name!r} in Secrets Manager") from exc
        return json.loads(out["SecretString"])

    def put(self, name: str, value: dict) -> None:
        self.sm.put_secret_value(SecretId=name, SecretString=json.dumps(value))

    def create(self, name: str, value: dict) -> dict:
        try:
            self.sm.create_secret(Name=name, SecretString=json.dumps(value))
        except self.sm.exceptions.ResourceExistsException:
            return self.get(name)
        return value


def open_secret_store(aws: bool, endpoint_url: str | None = None, local_dir: str | None = None) -> SecretStore:
    """Secrets Manager in AWS, else the local directory (``FRAUD_SECRETS_DIR``, default ``.fraud``)."""
    if aws:
        return SecretsManagerStore(endpoint_url)
    return LocalSecretStore(local_dir or os.environ.get("FRAUD_SECRETS_DIR") or DEFAULT_LOCAL_DIR)
