"""The model registry: immutable versions and one champion pointer, on a blob store
(a local directory by default, or an S3 prefix).

    versions/<version>/...            model files, calibration, thresholds, feature spec,
                                       metrics, config, training facts
    versions/<version>/manifest.json  SHA-256 of every file; written last
    champion.json                     {"version": ...}: the one the API serves
    events/<time>-<action>.json       audit trail of promotions and rollbacks

A version exists once its manifest exists, and nothing in it is ever rewritten. The
champion changes only by one atomic write of ``champion.json``; a crash at any earlier
step leaves the previous champion in place. Loading verifies every file's hash and refuses
a tampered or missing file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from .bundle import ModelBundle
from .storage.blob import BlobNotFound, BlobStore, open_blob_store

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
CHAMPION = "champion.json"


class RegistryError(RuntimeError):
    pass


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


class ModelRegistry:
    def __init__(self, store: BlobStore):
        self.store = store

    @classmethod
    def open(cls, uri, endpoint_url: str | None = None) -> "ModelRegistry":
        return cls(open_blob_store(uri, endpoint_url))

    @property
    def uri(self) -> str:
        return self.store.uri

    # -- versions --------------------------------------------------------------------------
    def publish(self, bundle: ModelBundle, extra: dict[str, dict] | None = None, created_from: dict | None = None) -> str:
        """Write a new immutable version; returns its id. Does not promote it."""
        version = f"{_now():%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
        prefix = f"versions/{version}"
        if self.store.exists(f"{prefix}/{MANIFEST}"):
            raise RegistryError(f"version {version} already exists")
        with tempfile.TemporaryDirectory() as tmp:
            files = bundle.write(Path(tmp))
            for name, payload in (extra or {}).items():
                path = Path(tmp) / name
                path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
                files.append(path)
            digests = {}
            for path in files:
                data = path.read_bytes()
                self.store.put(f"{prefix}/{path.name}", data)
                digests[path.name] = {"sha256": sha256(data), "bytes": len(data)}
        manifest = {"version": version, "created_at": _now().isoformat(), "files": digests,
                    "model_kind": bundle.model.kind, **(created_from or {})}
        self.store.put(f"{prefix}/{MANIFEST}", json.dumps(manifest, indent=2, sort_keys=True).encode())
        log.info("published model version %s to %s", version, self.store.url(prefix))
        return version

    def versions(self) -> list[str]:
        """Complete versions (with a manifest), oldest first."""
        keys = self.store.list("versions")
        return sorted({k.split("/")[1] for k in keys if k.endswith(f"/{MANIFEST}")})

    def manifest(self, version: str) -> dict:
        try:
            return json.loads(self.store.get(f"versions/{version}/{MANIFEST}"))
        except BlobNotFound as exc:
            raise RegistryError(f"model version {version!r} does not exist in {self.uri} "
                                f"(or was never completed)") from exc

    def read_file(self, version: str, name: str) -> bytes:
        """A file of a version, verified against the manifest."""
        manifest = self.manifest(version)
        expected = manifest["files"].get(name)
        if expected is None:
            raise RegistryError(f"{name} is not part of model version {version}")
        try:
            data = self.store.get(f"versions/{version}/{name}")
        except BlobNotFound as exc:
            raise RegistryError(f"model version {version} is missing {name}; refusing to load it") from exc
        if sha256(data) != expected["sha256"]:
            raise RegistryError(f"model version {version}: {name} does not match its SHA-256 in the manifest "
                                f"(expected {expected['sha256'][:12]}..., got {sha256(data)[:12]}...); "
                                "the file was modified or corrupted; refusing to load it")
        return data

    def load(self, version: str) -> ModelBundle:
        """Download, verify and open a version."""
        manifest = self.manifest(version)
        with tempfile.TemporaryDirectory() as tmp:
            for name in manifest["files"]:
                (Path(tmp) / name).write_bytes(self.read_file(version, name))
            bundle = ModelBundle.read(Path(tmp))
        bundle.metadata = {**bundle.metadata, "version": version}
        return bundle

    def read_json(self, version: str, name: str) -> dict:
        return json.loads(self.read_file(version, name))

    # -- the champion pointer ----------------------------------------------------------------
    def champion(self) -> str | None:
        try:
            return json.loads(self.store.get(CHAMPION))["version"]
        except BlobNotFound:
            return None

    def champion_record(self) -> dict | None:
        try:
            return json.loads(self.store.get(CHAMPION))
        except BlobNotFound:
            return None

    def load_champion(self) -> ModelBundle:
        version = self.champion()
        if version is None:
            raise RegistryError(f"no champion model in {self.uri}; train one with `fraud train`")
        return self.load(version)

    def promote(self, version: str, reason: str, action: str = "promote") -> None:
        """Make ``version`` the champion: verify it, record the event, switch the pointer."""
        self.load(version)  # refuses incomplete or tampered versions before anything changes
        previous = self.champion()
        record = {"version": version, "previous": previous, "at": _now().isoformat(), "reason": reason,
                  "action": action}
        self.store.put(f"events/{_now():%Y%m%dT%H%M%S.%fZ}-{action}-{version}.json",
                       json.dumps(record, indent=2).encode())
        self.store.put(CHAMPION, json.dumps(record, indent=2).encode())  # the atomic switch
        log.info("%s: champion is now %s (was %s): %s", action, version, previous, reason)

    def rollback(self, version: str, reason: str = "manual rollback") -> None:
        self.promote(version, reason, action="rollback")

    def events(self) -> list[dict]:
        return [json.loads(self.store.get(k)) for k in self.store.list("events")]
