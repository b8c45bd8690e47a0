"""Pseudonyms for card and terminal ids: a keyed hash (HMAC-SHA-256), never a plain one.

A card number has so little entropy (a known BIN, a Luhn digit, a few unknown digits) that
an unkeyed or publicly salted SHA-256 of it is reversed by enumeration in seconds. Every
card-derived value that is stored or logged (state keys, list keys, tokens in review
messages and logs, request digests, batch-scoring output) is therefore an HMAC under a
secret key: without the key, nothing stored says which card it was.

The key comes from the secret store (``fraud.storage.secrets``): Secrets Manager in AWS
(the CDK app generates it), a generated local file otherwise. Changing it orphans the
stored state and lists, so it is made once and kept.
"""

from __future__ import annotations

import hmac
import logging
import secrets

from .storage.secrets import SecretNotFound, SecretStore

log = logging.getLogger(__name__)
HASH_KEY_SECRET = "hash-key"   # the local secret's name; in AWS the secret's ARN is configured
HASH_KEY_FIELD = "hash_key"
MIN_KEY_BYTES = 32


class Pseudonymizer:
    """HMAC-SHA-256 of ``kind`` and ``value`` under one secret key, as hex."""

    def __init__(self, key: bytes):
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the hash key needs at least {MIN_KEY_BYTES} bytes, got {len(key)}")
        self._key = key

    def __repr__(self) -> str:  # never the key
        return "Pseudonymizer(<key hidden>)"

    @classmethod
    def ephemeral(cls) -> "Pseudonymizer":
        """A random key for this process only (in-memory state, tests)."""
        return cls(secrets.token_bytes(MIN_KEY_BYTES))

    def digest(self, kind: str, value, length: int = 32) -> str:
        mac = hmac.digest(self._key, f"{kind}\x00{value}".encode(), "sha256")
        return mac.hex()[:length]

    def card_token(self, card_id: str) -> str:
        """What logs, review messages and batch output carry instead of the card id."""
        return "card_" + self.digest("card", card_id, 16)


def load_pseudonymizer(store: SecretStore, name: str = HASH_KEY_SECRET, create: bool = False) -> Pseudonymizer:
    """The key from ``store``; ``create``: generate and keep one where none exists (local only:
    in AWS the deployment creates it, and a missing secret is a deployment error)."""
    try:
        key = store.get(name)[HASH_KEY_FIELD]
    except SecretNotFound:
        if not create:
            raise
        key = store.create(name, {HASH_KEY_FIELD: secrets.token_hex(32)})[HASH_KEY_FIELD]
        log.info("hash key for card and terminal ids: secret %r (created if it was missing)", name)
    except KeyError as exc:
        raise SecretNotFound(f"secret {name!r} has no {HASH_KEY_FIELD!r} field") from exc
    return Pseudonymizer(key.encode())


def deployment_pseudonymizer(store: SecretStore, secret_arn: str | None) -> Pseudonymizer:
    """The deployment's key: the Secrets Manager secret ``secret_arn`` where one is given,
    else the local one in ``store`` (made on first use)."""
    if secret_arn:
        return load_pseudonymizer(store, secret_arn)
    return load_pseudonymizer(store, HASH_KEY_SECRET, create=True)


def configured_pseudonymizer(endpoint_url: str | None = None) -> Pseudonymizer:
    """The key the way the API finds it, for jobs outside the API (batch scoring):
    ``FRAUD_HASH_KEY_SECRET_ARN`` (Secrets Manager), else the local secrets directory
    (``FRAUD_SECRETS_DIR``, default ``.fraud``), created there if missing."""
    import os

    from .storage.secrets import open_secret_store

    arn = os.environ.get("FRAUD_HASH_KEY_SECRET_ARN")
    return deployment_pseudonymizer(open_secret_store(bool(arn), endpoint_url), arn)
