"""API-key authentication and keeping card identifiers out of logs.

Keys are never stored: the service holds SHA-256 digests (from the environment or a
Secrets Manager secret) and compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from .settings import Settings


def key_digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


class ApiKeyChecker:
    def __init__(self, settings: Settings, secrets_client=None, refresh_s: float = 300):
        self.settings = settings
        self._secrets = secrets_client
        self._refresh_s = refresh_s
        self._digests: set[str] = set()
        self._loaded_at = -1e18

    def _load(self) -> set[str]:
        digests = {d.strip().lower() for d in self.settings.api_key_hashes.split(",") if d.strip()}
        if self.settings.api_key_secret_arn:
            from fraud.storage.aws import client

            sm = self._secrets or client("secretsmanager", self.settings.aws_endpoint_url)
            secret = json.loads(sm.get_secret_value(SecretId=self.settings.api_key_secret_arn)["SecretString"])
            digests |= {d.lower() for d in secret.get("api_key_hashes", [])}
        return digests

    def digests(self) -> set[str]:
        if time.monotonic() - self._loaded_at > self._refresh_s:
            self._digests = self._load()
            self._loaded_at = time.monotonic()
        return self._digests

    def is_valid(self, api_key: str | None) -> bool:
        if not api_key:
            return False
        candidate = key_digest(api_key)
        return any(hmac.compare_digest(candidate, d) for d in self.digests())


def card_token(card_id: str, salt: str) -> str:
    """What logs and messages carry instead of the card id."""
    return "card_" + hashlib.sha256(f"{salt}:{card_id}".encode()).hexdigest()[:16]
