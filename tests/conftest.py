"""Shared test fixtures."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("MPLBACKEND", "Agg")


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
