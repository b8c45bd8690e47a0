"""API-key authentication, and where the service's secrets come from.

Keys are never stored: the service holds SHA-256 digests (from the environment, the local
secrets directory or a Secrets Manager secret) and compares in constant time.
"""

from __future__ import annotations

import hmac
import time

from fraud.api_keys import API_KEYS_SECRET, key_digest, stored_digests
from fraud.pseudonym import Pseudonymizer, deployment_pseudonymizer
from fraud.storage.secrets import SecretStore, open_secret_store

from .settings import Settings


def secret_store(settings: Settings) -> SecretStore:
    return open_secret_store(settings.backend == "aws", settings.aws_endpoint_url, settings.secrets_dir)


def load_hash_key(settings: Settings, store: SecretStore | None = None) -> Pseudonymizer:
    """The key for card and terminal pseudonyms; in AWS a missing secret stops the start."""
    aws = settings.backend == "aws"
    if aws and not settings.hash_key_secret_arn:
        raise RuntimeError("FRAUD_HASH_KEY_SECRET_ARN is not set: in AWS the card-hash key comes from "
                           "Secrets Manager (the CDK app creates the secret and sets the variable)")
    return deployment_pseudonymizer(store or secret_store(settings), settings.hash_key_secret_arn if aws else None)


class ApiKeyChecker:
    def __init__(self, settings: Settings, store: SecretStore | None = None, refresh_s: float = 300):
        self.settings = settings
        self._store = store or secret_store(settings)
        self._refresh_s = refresh_s
        self._digests: set[str] = set()
        self._loaded_at = -1e18

    def _load(self) -> set[str]:
        digests = {d.strip().lower() for d in self.settings.api_key_hashes.split(",") if d.strip()}
        if self.settings.backend == "aws":
            if self.settings.api_key_secret_arn:
                digests |= stored_digests(self._store, self.settings.api_key_secret_arn)
        else:
            digests |= stored_digests(self._store, API_KEYS_SECRET)
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
