"""API keys: made once, shown once, kept only as SHA-256 digests in the secret store.

The API compares a request's key digest with the stored ones; nobody who reads the store
(the local file or the Secrets Manager secret) learns a key. A key is 32 random bytes, so
an unkeyed digest is safe here (unlike a card number, it cannot be enumerated).
"""

from __future__ import annotations

import hashlib
import secrets

from .storage.secrets import SecretNotFound, SecretStore

API_KEYS_SECRET = "api-keys"  # the local secret's name; in AWS the secret's ARN is configured
DIGESTS_FIELD = "api_key_hashes"


def key_digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def stored_digests(store: SecretStore, name: str = API_KEYS_SECRET) -> set[str]:
    """The accepted digests (none when the secret does not exist yet)."""
    try:
        document = store.get(name)
    except SecretNotFound:
        return set()
    return {d.strip().lower() for d in document.get(DIGESTS_FIELD, []) if d.strip()}


def create_api_key(store: SecretStore, name: str = API_KEYS_SECRET) -> str:
    """A new key, its digest added to the secret; the key itself is returned, never stored.

    Read-modify-write: two operators adding keys at the same moment can lose one (the
    lost key is refused with 401 and can simply be made again)."""
    api_key = "fk_" + secrets.token_urlsafe(32)
    try:
        document = store.get(name)
    except SecretNotFound:
        document = {}
    digests = list(document.get(DIGESTS_FIELD, []))
    store.put(name, {**document, DIGESTS_FIELD: digests + [key_digest(api_key)]})
    return api_key
