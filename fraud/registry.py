"""The model registry: immutable versions and one champion pointer, on a blob store
(a local directory by default, or an S3 prefix).

    versions/<version>/...            model files, calibration, thresholds, feature spec,
                                       metrics, config, training facts
    versions/<version>/twin-...       the twin's model files, when the served model is the
                                       latest refit (fraud.refit): what the gate judges
    versions/<version>/manifest.json  SHA-256 of every file; written last
    champion.json                     {"version": ...}: the one the API serves
    challenger.json                   {"version": ..., "mode": "shadow"|"canary", ...}: the one
                                       the API scores beside it (version null: none)
    events/<time>-<action>.json       audit trail of promotions, rollbacks and challenger changes

A version exists once its manifest exists, and nothing in it is ever rewritten. The
champion changes only by one atomic write of ``champion.json``; a crash at any earlier
step leaves the previous champion in place. Loading verifies every file's hash and refuses
a tampered or missing file.

The manifest is authenticated: an HMAC under the deployment's secret key (the key of
``fraud.pseudonym``, in a domain of its own), so whoever can write to the bucket but does
not hold the key cannot swap a model or its thresholds by rewriting a file and its hash.
Version ids and file names must be plain names: a crafted manifest cannot make the loader
write outside its directory.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from .bundle import ModelBundle
from .calibration import Calibrator
from .models import Candidate
from .pseudonym import Pseudonymizer, configured_pseudonymizer
from .storage.blob import BlobNotFound, BlobStore, open_blob_store

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
CHAMPION = "champion.json"
CHALLENGER = "challenger.json"
CHALLENGER_MODES = ("shadow", "canary")
TWIN_PREFIX = "twin-"   # the twin's model files (fraud.refit): loaded only by load_twin


class RegistryError(RuntimeError):
    pass


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _plain(name: str, what: str) -> str:
    if not isinstance(name, str) or not PLAIN_NAME.match(name) or ".." in name:
        raise RegistryError(f"{what} {name!r} is not a plain name; refusing it")
    return name


class ModelRegistry:
    def __init__(self, store: BlobStore, keys: Pseudonymizer | None = None, endpoint_url: str | None = None):
        """``keys`` signs and verifies manifests; by default the configured key (the API's:
        Secrets Manager where ``FRAUD_HASH_KEY_SECRET_ARN`` is set, else the local one),
        read when first needed."""
        self.store = store
        self._keys = keys
        self._endpoint_url = endpoint_url

    @classmethod
    def open(cls, uri, endpoint_url: str | None = None, keys: Pseudonymizer | None = None) -> "ModelRegistry":
        return cls(open_blob_store(uri, endpoint_url), keys, endpoint_url)

    @property
    def keys(self) -> Pseudonymizer:
        if self._keys is None:
            self._keys = configured_pseudonymizer(self._endpoint_url)
        return self._keys

    def _signature(self, manifest: dict) -> str:
        body = json.dumps({k: v for k, v in manifest.items() if k != "signature"}, sort_keys=True,
                          separators=(",", ":"))
        return self.keys.digest("registry-manifest", body, 64)

    @property
    def uri(self) -> str:
        return self.store.uri

    # -- versions --------------------------------------------------------------------------
    def publish(self, bundle: ModelBundle, extra: dict[str, dict] | None = None, created_from: dict | None = None,
                twin=None) -> str:
        """Write a new immutable version; returns its id. Does not promote it. ``twin``: the
        bundle the test figures are of when the served model is a latest refit
        (``fraud.refit``): its model and calibrator are stored as ``twin-*`` files, for
        ``load_twin``."""
        version = f"{_now():%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
        prefix = f"versions/{version}"
        if self.store.exists(f"{prefix}/{MANIFEST}"):
            raise RegistryError(f"version {version} already exists")
        with tempfile.TemporaryDirectory() as tmp:
            files = [(path.name, path) for path in bundle.write(Path(tmp) / "bundle")]
            for name, payload in (extra or {}).items():
                path = Path(tmp) / name
                path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
                files.append((name, path))
            if twin is not None:
                (Path(tmp) / "twin").mkdir()
                calibration = Path(tmp) / "twin" / "calibration.json"
                calibration.write_text(json.dumps(twin.calibrator.to_dict(), indent=2, sort_keys=True))
                files += [(TWIN_PREFIX + path.name, path)
                          for path in [*twin.model.save(Path(tmp) / "twin"), calibration]]
            digests = {}
            for name, path in files:
                data = path.read_bytes()
                self.store.put(f"{prefix}/{name}", data)
                digests[name] = {"sha256": sha256(data), "bytes": len(data)}
        manifest = {"version": version, "created_at": _now().isoformat(), "files": digests,
                    "model_kind": bundle.model.kind, **(created_from or {})}
        manifest["signature"] = self._signature(manifest)
        self.store.put(f"{prefix}/{MANIFEST}", json.dumps(manifest, indent=2, sort_keys=True).encode())
        log.info("published model version %s to %s", version, self.store.url(prefix))
        return version

    def versions(self) -> list[str]:
        """Complete versions (with a manifest), oldest first."""
        keys = self.store.list("versions")
        return sorted({k.split("/")[1] for k in keys if k.endswith(f"/{MANIFEST}")})

    def manifest(self, version: str) -> dict:
        """The version's manifest, authenticated, its file names checked."""
        _plain(version, "model version")
        try:
            manifest = json.loads(self.store.get(f"versions/{version}/{MANIFEST}"))
        except BlobNotFound as exc:
            raise RegistryError(f"model version {version!r} does not exist in {self.uri} "
                                f"(or was never completed)") from exc
        signature = manifest.get("signature")
        if not isinstance(signature, str) or not hmac.compare_digest(signature, self._signature(manifest)):
            raise RegistryError(f"the manifest of model version {version} is not signed with this deployment's key "
                                "(rewritten, or published by another deployment); refusing it")
        if manifest.get("version") != version:
            raise RegistryError(f"the manifest under {version} describes version {manifest.get('version')!r}")
        for name in manifest["files"]:
            _plain(name, f"model version {version}: file name")
        return manifest

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
        """Download, verify and open a version (the model it serves)."""
        manifest = self.manifest(version)
        with tempfile.TemporaryDirectory() as tmp:
            for name in manifest["files"]:
                if not name.startswith(TWIN_PREFIX):
                    (Path(tmp) / name).write_bytes(self.read_file(version, name))
            bundle = ModelBundle.read(Path(tmp))
        bundle.metadata = {**bundle.metadata, "version": version}
        return bundle

    def load_twin(self, version: str) -> ModelBundle:
        """The version as the gate judges it: its bundle with the twin's model and calibrator
        when it has them (the served model was then trained on the newest window, so only the
        twin has a window left that neither it nor a later model saw; ``fraud.refit``), else
        ``load``."""
        bundle = self.load(version)
        names = [n for n in self.manifest(version)["files"] if n.startswith(TWIN_PREFIX)]
        if not names:
            return bundle
        with tempfile.TemporaryDirectory() as tmp:
            for name in names:
                if name == TWIN_PREFIX:
                    raise RegistryError(f"model version {version}: a twin file without a name")
                (Path(tmp) / name[len(TWIN_PREFIX):]).write_bytes(self.read_file(version, name))
            bundle.model = Candidate.load(Path(tmp))
            bundle.calibrator = Calibrator.from_dict(json.loads((Path(tmp) / "calibration.json").read_text()))
        bundle.metadata = {**bundle.metadata, "model": "twin"}
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

    def promote(self, version: str, reason: str, action: str = "promote") -> bool:
        """Make ``version`` the champion: verify it, record the event, switch the pointer.
        False, and nothing written, when it is the champion already."""
        self.load(version)  # refuses incomplete or tampered versions before anything changes
        previous = self.champion()
        if previous == version:
            log.info("%s: %s is the champion already; nothing changed", action, version)
            return False
        if not self.store.exists(CHALLENGER):  # an explicit "none": S3 answers the API (no s3:ListBucket) 403 for
            self.store.put(CHALLENGER, json.dumps({"version": None, "action": "none"}).encode())  # a missing key
        record = {"version": version, "previous": previous, "at": _now().isoformat(), "reason": reason,
                  "action": action}
        self.store.put(f"events/{_now():%Y%m%dT%H%M%S.%fZ}-{action}-{version}.json",
                       json.dumps(record, indent=2).encode())
        self.store.put(CHAMPION, json.dumps(record, indent=2).encode())  # the atomic switch
        log.info("%s: champion is now %s (was %s): %s", action, version, previous, reason)
        if (self.challenger() or {}).get("version") == version:  # it serves now; nothing to score beside it
            self.clear_challenger(f"{action}d to champion: {reason}", action="challenger-promoted")
        return True

    def rollback(self, version: str, reason: str = "manual rollback") -> bool:
        return self.promote(version, reason, action="rollback")

    def events(self) -> list[dict]:
        return [json.loads(self.store.get(k)) for k in self.store.list("events")]

    # -- the challenger pointer (scored beside the champion: fraud.challenger) ------------------
    def challenger(self) -> dict | None:
        """{version, mode, canary_share, since, ...} of the challenger, or None when none is set.
        ``since``: when this version began to be scored beside the champion (kept when only
        its mode or share changes), what the minimum shadow period counts from."""
        try:
            record = json.loads(self.store.get(CHALLENGER))
        except BlobNotFound:
            return None
        return record if record.get("version") else None

    def set_challenger(self, version: str, mode: str = "shadow", canary_share: float = 0.0,
                       reason: str = "manual") -> dict:
        """Make ``version`` the challenger: verified like a promotion, recorded as an event,
        then one write of the pointer. Shadow mode decides nothing (share 0); canary mode lets
        it decide ``canary_share`` (0 < share <= 1) of the transactions."""
        _plain(version, "model version")
        if mode not in CHALLENGER_MODES:
            raise RegistryError(f"challenger mode {mode!r} is not one of {', '.join(CHALLENGER_MODES)}")
        share = float(canary_share)
        if mode == "shadow" and share != 0.0:
            raise RegistryError(f"a shadow challenger decides nothing: canary share {share} given; use mode 'canary'")
        if mode == "canary" and not 0.0 < share <= 1.0:
            raise RegistryError(f"a canary share must lie in (0, 1], got {share}")
        if version == self.champion():
            raise RegistryError(f"{version} is the champion; a challenger must be another version")
        self.load(version)  # refuses incomplete or tampered versions before anything changes
        current = self.challenger()
        since = current["since"] if current and current["version"] == version else _now().isoformat()
        record = {"version": version, "mode": mode, "canary_share": share, "since": since,
                  "previous": current["version"] if current else None, "champion": self.champion(),
                  "at": _now().isoformat(), "reason": reason, "action": "challenger-set"}
        self._challenger_write(record)
        log.info("challenger is now %s (%s, canary share %.3f): %s", version, mode, share, reason)
        return record

    def clear_challenger(self, reason: str, action: str = "challenger-clear") -> bool:
        """No challenger any more (``action`` names why in the audit trail, e.g. a canary
        rollback); False, and nothing written, when none is set."""
        current = self.challenger()
        if current is None:
            return False
        self._challenger_write({"version": None, "previous": current["version"], "mode": current["mode"],
                                "at": _now().isoformat(), "reason": reason, "action": action})
        log.warning("%s: challenger %s cleared: %s", action, current["version"], reason)
        return True

    def _challenger_write(self, record: dict) -> None:
        name = record["version"] or record["previous"]
        self.store.put(f"events/{_now():%Y%m%dT%H%M%S.%fZ}-{record['action']}-{name}.json",
                       json.dumps(record, indent=2).encode())
        self.store.put(CHALLENGER, json.dumps(record, indent=2).encode())  # the atomic switch
