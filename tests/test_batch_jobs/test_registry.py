"""The registry: immutable verified versions, an atomic champion pointer, rollback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fraud.registry import ModelRegistry, RegistryError
from fraud.storage.blob import LocalBlobStore


class Crash(Exception):
    pass


@pytest.fixture
def registry(tmp_path, small_training):
    reg = ModelRegistry(LocalBlobStore(tmp_path / "registry"))
    first = reg.publish(small_training.bundle, extra={"metrics.json": {"run": 1}})
    reg.promote(first, "first model")
    return reg, first


def test_publish_load_predicts_identically(registry, small_training, small_features):
    reg, version = registry
    _, features = small_features
    loaded = reg.load(version)
    np.testing.assert_array_equal(loaded.predict_proba(features.iloc[:2000]),
                                  small_training.bundle.predict_proba(features.iloc[:2000]))
    manifest = reg.manifest(version)
    assert {"calibration.json", "thresholds.json", "feature_spec.json", "metrics.json", "candidate.json"} <= set(
        manifest["files"])
    assert all(len(f["sha256"]) == 64 for f in manifest["files"].values())
    assert not any(name.endswith((".pkl", ".pickle", ".joblib")) for name in manifest["files"])


def test_tampered_or_missing_files_are_refused(registry):
    reg, version = registry
    root = reg.store.root / "versions" / version
    model_file = next(p for p in root.iterdir() if p.name.startswith("model.") and "focal" not in p.name)
    original = model_file.read_bytes()
    model_file.write_bytes(original.replace(b"0", b"1", 1))
    with pytest.raises(RegistryError, match="does not match its SHA-256"):
        reg.load(version)
    model_file.write_bytes(original)
    (root / "thresholds.json").unlink()
    with pytest.raises(RegistryError, match="missing thresholds.json"):
        reg.load(version)
    with pytest.raises(RegistryError, match="refusing"):
        reg.promote(version, "a broken version must not become champion")


@pytest.mark.parametrize("crash_after", range(0, 16))
def test_a_crash_at_any_step_leaves_the_champion_in_place(tmp_path, registry, small_training, monkeypatch, crash_after):
    reg, champion = registry
    calls = {"n": 0}
    real_put = LocalBlobStore.put

    def failing_put(self, key, data):
        if calls["n"] >= crash_after:
            raise Crash(f"killed before writing {key}")
        calls["n"] += 1
        return real_put(self, key, data)

    monkeypatch.setattr(LocalBlobStore, "put", failing_put)
    try:
        version = reg.publish(small_training.bundle, extra={"metrics.json": {"run": 2}})
        reg.promote(version, "second model")
        finished = True
    except Crash:
        finished = False
    monkeypatch.setattr(LocalBlobStore, "put", real_put)
    current = reg.champion()
    if finished:
        assert current != champion
    else:
        assert current == champion  # the pointer only moves in the very last write
    for version in reg.versions():  # a listed version is complete: no half-written one is listed
        reg.load(version)


def test_rollback_is_one_command(tmp_path, registry, small_training):
    from batch_jobs.cli import main

    reg, first = registry
    second = reg.publish(small_training.bundle)
    reg.promote(second, "newer")
    assert reg.champion() == second
    assert main(["--registry", str(reg.store.root), "rollback", first, "--reason", "bad night"]) == 0
    assert reg.champion() == first
    record = json.loads((reg.store.root / "champion.json").read_text())
    assert record["action"] == "rollback" and record["previous"] == second and record["reason"] == "bad night"
    assert [e["action"] for e in reg.events()] == ["promote", "promote", "rollback"]
    assert main(["--registry", str(reg.store.root), "rollback", "no-such-version"]) == 2
    assert reg.champion() == first


def _stores(kind, tmp_path, moto_server=None):
    if kind == "local":
        return LocalBlobStore(tmp_path / "registry")
    from fraud.storage.aws import client
    from fraud.storage.blob import S3BlobStore

    bucket = f"crafted-{tmp_path.name.lower().replace('_', '-')[-40:]}"
    client("s3", moto_server).create_bucket(Bucket=bucket)
    return S3BlobStore(bucket, "registry", endpoint_url=moto_server)


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_crafted_or_rewritten_manifests_are_refused(kind, tmp_path, small_training, request, monkeypatch, capsys):
    """Whoever can write to the registry but lacks the key cannot swap what is served, and no
    manifest, even a correctly signed one, makes the loader write outside its directory."""
    from batch_jobs.cli import main
    from fraud.registry import sha256

    moto = request.getfixturevalue("moto_server") if kind == "s3" else None
    reg = ModelRegistry(_stores(kind, tmp_path, moto))
    first = reg.publish(small_training.bundle)
    reg.promote(first, "first")
    key = f"versions/{first}/manifest.json"
    honest = json.loads(reg.store.get(key))

    # 1. thresholds rewritten, their new SHA-256 put in the manifest: the signature no longer matches
    lenient = b'{"review": 0.99, "decline": 1.5}'
    reg.store.put(f"versions/{first}/thresholds.json", lenient)
    forged = {**honest, "files": {**honest["files"], "thresholds.json": {"sha256": sha256(lenient),
                                                                         "bytes": len(lenient)}}}
    reg.store.put(key, json.dumps(forged).encode())
    with pytest.raises(RegistryError, match="not signed with this deployment's key"):
        reg.load(first)

    # 2. a file name that climbs out of the loader's temporary directory, its content in place
    # and its hash right: refused even when signed
    import secrets
    import tempfile

    name = f"../outside-{secrets.token_hex(4)}.txt"
    outside = Path(tempfile.gettempdir()) / name[3:]
    payload = b"written by a crafted manifest"
    reg.store.put(f"versions/{first}/{name}", payload)
    climbing = {**honest, "files": {**honest["files"], name: {"sha256": sha256(payload), "bytes": len(payload)}}}
    climbing["signature"] = reg._signature(climbing)
    reg.store.put(key, json.dumps(climbing).encode())
    with pytest.raises(RegistryError, match="not a plain name"):
        reg.load(first)
    registry_arg = str(reg.store.root) if kind == "local" else reg.uri
    if kind == "s3":
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto)
    assert main(["--registry", registry_arg, "promote", first, "--reason", "crafted"]) == 2
    assert not outside.exists()
    capsys.readouterr()
    assert main(["--registry", registry_arg, "registry", "list"]) == 0  # listed with why it is refused
    assert f"{first}  refused: model version {first}: file name" in capsys.readouterr().out
    with pytest.raises(RegistryError, match="not a plain name"):
        reg.manifest("../../escape")
