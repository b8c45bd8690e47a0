"""``fraud state load``: the online feature state from history, as the batch engine computes it."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from batch_jobs.state_load import load_state, read_watermark
from fraud.features.online import STATE_WATERMARK_KEY as WATERMARK_KEY
from fraud.features.batch import build_features
from fraud.features.spec import TERMINAL, Feature
from fraud.pseudonym import configured_pseudonymizer
from fraud.storage.kv import DynamoDBKeyValueStore, InMemoryKeyValueStore
from helpers.replay import assert_equal_batch, replay

N_SLICE_CARDS = 250  # DynamoDB on moto copies the table on every transaction: keep it small


@pytest.fixture(scope="module")
def keys():
    return configured_pseudonymizer()  # the key the CLI and the API use (FRAUD_SECRETS_DIR of the tests)


@pytest.fixture(scope="module")
def day(small_transactions):
    return small_transactions["timestamp"].min().normalize() + pd.Timedelta(days=35)


@pytest.fixture(scope="module")
def slice_dir(small_sim_dir, tmp_path_factory):
    """The small simulation restricted to a few cards, as daily partitions."""
    out = tmp_path_factory.mktemp("slice") / "transactions"
    files = sorted(Path(small_sim_dir).rglob("*.parquet"))
    cards = set(sorted(pd.read_parquet(files[0])["card_id"].unique())[:N_SLICE_CARDS])
    for path in files:
        frame = pd.read_parquet(path)
        target = out / path.relative_to(small_sim_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        frame[frame["card_id"].isin(cards)].to_parquet(target, index=False)
    return out


@pytest.fixture(scope="module")
def slice_transactions(slice_dir, default_config):
    from fraud.io import load_transactions

    frame, _ = load_transactions(slice_dir, default_config, require_label=True)
    return frame


def test_state_load_then_replay_equals_batch_in_memory(small_transactions, small_features, keys, day):
    spec, features = small_features
    store = InMemoryKeyValueStore()
    summary = load_state(small_transactions, spec, store, keys, as_of=day, source="small")
    mark = read_watermark(store)
    assert pd.Timestamp(mark["transactions_until"]) < day and pd.Timestamp(mark["labels_until"]) < day
    assert mark["cards"] == summary.cards > 0 and mark["terminals"] == summary.terminals > 0
    online, _ = replay(small_transactions, spec, day, store, hours=24, keys=keys, load_history=False)
    assert_equal_batch(online, features, at_least=1000)


def test_state_load_then_replay_equals_batch_in_dynamodb(moto_server, slice_transactions, small_features, keys,
                                                        day):
    spec, _ = small_features
    features = build_features(slice_transactions, spec)
    table = "fraud-state-load-replay"
    DynamoDBKeyValueStore.create_table(table, moto_server)
    store = DynamoDBKeyValueStore(table, moto_server)
    start = day + pd.Timedelta(hours=10)
    load_state(slice_transactions, spec, store, keys, as_of=start, source="slice")
    assert read_watermark(store)["transactions_until"] < start.isoformat()
    online, _ = replay(slice_transactions, spec, start, store, hours=2, keys=keys, load_history=False)
    assert_equal_batch(online, features, at_least=15)


class KilledStore(InMemoryKeyValueStore):
    """Dies (like a killed process) on its ``die_at``-th bulk write."""

    def __init__(self, die_at: int | None = None):
        super().__init__()
        self.die_at, self.calls = die_at, 0

    def put_many(self, items, ttl_seconds=None):
        self.calls += 1
        if self.die_at is not None and self.calls >= self.die_at:
            raise KeyboardInterrupt("killed")
        super().put_many(items, ttl_seconds)


def _items(store) -> dict:
    out = {key: item.value for key, item in store.scan()}
    if WATERMARK_KEY in out:
        out[WATERMARK_KEY] = {k: v for k, v in out[WATERMARK_KEY].items() if k != "loaded_at"}
    return out


def test_killed_load_rerun_gives_the_uninterrupted_state(slice_transactions, small_features, keys, day):
    spec, _ = small_features
    whole = InMemoryKeyValueStore()
    load_state(slice_transactions, spec, whole, keys, as_of=day, source="slice")

    store = KilledStore(die_at=6)
    with pytest.raises(KeyboardInterrupt):
        load_state(slice_transactions, spec, store, keys, as_of=day, source="slice")
    assert read_watermark(store) is None and 0 < len(store) < len(whole)
    store.die_at = None
    load_state(slice_transactions, spec, store, keys, as_of=day, source="slice")
    assert _items(store) == _items(whole)
    assert read_watermark(store) is not None

    # a reload killed part-way leaves no watermark behind, not even the previous load's
    store.calls, store.die_at = 0, 3
    with pytest.raises(KeyboardInterrupt):
        load_state(slice_transactions, spec, store, keys, as_of=day + pd.Timedelta(days=1), source="slice")
    assert read_watermark(store) is None


@pytest.fixture(scope="module")
def variant_registry(champion_registry, small_features, tmp_path_factory):
    """A champion whose spec has a window the default spec lacks (terminal count over 30 minutes)."""
    from fraud.registry import ModelRegistry

    spec, _ = small_features
    source = ModelRegistry.open(champion_registry("focal_xgb"))
    bundle = source.load_champion()
    saved = tmp_path_factory.mktemp("champion-model")
    bundle_files = {"calibration.json", "thresholds.json", "feature_spec.json", "bundle.json"}
    for name in {n for n in source.manifest(source.champion())["files"] if not n.startswith("twin-")} - bundle_files:
        (saved / name).write_bytes(source.read_file(source.champion(), name))

    class SavedModel:  # a loaded model cannot save itself: its files, copied
        kind = bundle.model.kind

        def save(self, directory):
            return [Path(shutil.copy(f, directory)) for f in saved.iterdir()]

    bundle = dataclasses.replace(bundle, model=SavedModel())
    variant = dataclasses.replace(spec, features=spec.features + (Feature("terminal_count_30m", TERMINAL, "count",
                                                                          1800),))
    path = tmp_path_factory.mktemp("variant-registry")
    registry = ModelRegistry.open(path)
    version = registry.publish(dataclasses.replace(bundle, spec=variant))
    registry.promote(version, "a champion with its own feature spec")
    return path, version, variant


def test_cli_state_load_into_dynamodb(moto_server, monkeypatch, capsys, slice_dir, slice_transactions,
                                      variant_registry, keys, day):
    from batch_jobs.cli import main

    registry, version, spec = variant_registry
    table = "fraud-state-load-cli"
    DynamoDBKeyValueStore.create_table(table, moto_server)
    monkeypatch.setenv("FRAUD_AWS_ENDPOINT_URL", moto_server)
    start = day + pd.Timedelta(hours=10)
    rc = main(["--registry", str(registry), "state", "load", "--history", str(slice_dir), "--as-of",
               start.isoformat(), "--features-table", table, "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "cards:" in out and "terminals:" in out and "watermark:" in out and f"table {table}" in out
    store = DynamoDBKeyValueStore(table, moto_server)
    mark = read_watermark(store)
    assert mark["model_version"] == version and mark["source"] == str(slice_dir)
    assert pd.Timestamp(mark["transactions_until"]) < start
    # the state is the champion's spec: the API (same hash key) replays onto it as batch computes
    online, _ = replay(slice_transactions, spec, start, store, hours=1, keys=keys, load_history=False)
    assert_equal_batch(online, build_features(slice_transactions, spec), at_least=8)

    monkeypatch.delenv("FRAUD_FEATURES_TABLE", raising=False)
    assert main(["--registry", str(registry), "state", "load", "--history", str(slice_dir), "--no-progress"]) == 0
    assert "dry run" in capsys.readouterr().out

    rc = main(["--registry", str(registry), "state", "load", "--history", str(slice_dir / "missing"),
               "--features-table", table, "--no-progress"])
    assert rc == 2 and "does not exist" in capsys.readouterr().err
    rc = main(["--registry", str(registry), "state", "load", "--history", str(slice_dir), "--since", "yesterday-ish",
               "--no-progress"])
    assert rc == 2 and "not a date" in capsys.readouterr().err
