"""Shared test fixtures."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

os.environ.setdefault("MPLBACKEND", "Agg")
# local secrets (the card-hash key, API-key digests) of every test process: never the checkout's .fraud/
os.environ.setdefault("FRAUD_SECRETS_DIR", tempfile.mkdtemp(prefix="fraud-secrets-"))
# the label store feedback writes to (fraud.labels): never the checkout's .fraud/labels
os.environ.setdefault("FRAUD_LABELS_URI", tempfile.mkdtemp(prefix="fraud-labels-"))
# the decision log every scored transaction goes to (fraud.decisions): never the checkout's .fraud/decisions
os.environ.setdefault("FRAUD_DECISION_LOG_URI", tempfile.mkdtemp(prefix="fraud-decisions-"))


@pytest.fixture(scope="session")
def small_sim_dir(tmp_path_factory):
    """45 days of simulated transactions (about 3k a day), written as daily partitions."""
    from fraud.simulator import TransactionSimulator

    path = tmp_path_factory.mktemp("sim") / "transactions"
    TransactionSimulator(n_customers=1500, n_terminals=600, seed=7).write(path, 45, progress=False)
    return path


@pytest.fixture(scope="session")
def default_config():
    from fraud.config import load_config

    return load_config()


@pytest.fixture(scope="session")
def small_transactions(small_sim_dir, default_config):
    from fraud.io import load_transactions

    frame, _ = load_transactions(small_sim_dir, default_config, require_label=True)
    return frame


SMALL_TRAINING = {
    "split": {"train_days": 14, "validation_days": 5, "test_days": 5, "prequential_folds": 1},
    # four trials bind, not the time (a time budget cuts fits short by the machine's load):
    # one trial per candidate, at the library defaults
    "search": {"time_budget_s": 600, "max_trials": 4, "max_rounds": 120, "early_stopping_rounds": 15,
               "max_depth": [4], "learning_rate": [0.2], "n_jobs": 2},
    "policy": {"review_capacity_per_day": 20},
}


@pytest.fixture(scope="session")
def small_config():
    """Windows and search sized for the 45-day small simulation."""
    from fraud.config import load_config

    return load_config(overrides=SMALL_TRAINING)


@pytest.fixture(scope="session")
def small_features(small_transactions, small_config):
    from fraud.features.batch import build_features
    from fraud.features.spec import FeatureSpec

    spec = FeatureSpec.default(small_config.features, small_config.columns)
    return spec, build_features(small_transactions, spec)


@pytest.fixture(scope="session")
def small_training(small_transactions, small_features, small_config):
    from fraud.training import LabelledFeatures, train

    spec, features = small_features
    return train(LabelledFeatures.from_transactions(small_transactions, features), small_config, spec, progress=False)


@pytest.fixture(scope="session")
def aws_env():
    mp = pytest.MonkeyPatch()
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}.items():
        mp.setenv(name, value)
    yield
    mp.undo()


@pytest.fixture(scope="session")
def moto_server(aws_env):
    """moto in server mode: real HTTP, real boto3 calls."""
    from moto.server import ThreadedMotoServer

    from helpers.api import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session")
def champion_registry(tmp_path_factory, small_transactions, small_features):
    """``champion_registry(kind)``: a local registry whose champion is a ``kind`` model
    (focal_xgb, focal_lgbm, logistic_xgb, ...) trained on the small simulation with one
    search trial; built once per kind and session."""
    from fraud.config import load_config
    from fraud.registry import ModelRegistry
    from fraud.training import LabelledFeatures, train

    spec, features = small_features
    built = {}

    def make(kind: str) -> Path:
        if kind not in built:
            search = {**SMALL_TRAINING["search"], "candidates": [kind], "max_trials": 1, "max_rounds": 60}
            config = load_config(overrides={**SMALL_TRAINING, "search": search})
            result = train(LabelledFeatures.from_transactions(small_transactions, features), config, spec,
                           progress=False)
            assert result.bundle.model.kind == kind
            path = tmp_path_factory.mktemp(f"champion-{kind}")
            registry = ModelRegistry.open(path)
            registry.promote(registry.publish(result.bundle, twin=result.twin), f"{kind} champion for tests")
            built[kind] = path
        return built[kind]

    return make
