"""Issue 17's proof: with ``--dask`` the data never passes through the driver.

The driver runs in a subprocess whose data segment is capped (``RLIMIT_DATA``, set after
its imports: ``tests/helpers/capped_driver.py``) below what the single-process job adds
to hold the data set; the workers of a LocalCluster started here run in their own,
uncapped processes. Under the same cap the Dask job trains, publishes, reports and
scores the latest day, and the single-process job (which, like the ``--dask`` path
before issue 17, loads every transaction into the driver) dies of MemoryError.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
DRIVER = ROOT / "tests" / "helpers" / "capped_driver.py"
# measured on 235k rows: the single-process job's driver grows by ~450 MiB, the Dask
# driver's by ~190 MiB whatever the size (client threads' stacks, report figures)
CAP_MIB = 300
CONFIG = """
[split]
train_days = 14
validation_days = 5
test_days = 5
prequential_folds = 1
[search]
time_budget_s = 600
max_trials = 1
max_rounds = 40
early_stopping_rounds = 10
max_depth = [4]
learning_rate = [0.3]
n_jobs = 1
candidates = ["focal_xgb"]
[policy]
review_capacity_per_day = 20
[tracking]
enabled = false
"""


@pytest.fixture(scope="module")
def bigger_data(tmp_path_factory):
    from fraud.simulator import TransactionSimulator

    path = tmp_path_factory.mktemp("capped") / "transactions"
    TransactionSimulator(n_customers=2500, n_terminals=900, seed=11).write(path, 45, progress=False)
    return path


def _run(tmp_path: Path, data: Path, *extra: str) -> subprocess.CompletedProcess:
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    args = [sys.executable, str(DRIVER), str(CAP_MIB), "--config", str(config), "--registry", str(tmp_path / "reg"),
            "train", "--data", str(data), "--runs", str(tmp_path / "runs"), "--labels", "", "--no-progress", *extra]
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)


@pytest.mark.slow
def test_dask_trains_and_scores_with_the_driver_capped_below_the_data(tmp_path, bigger_data):
    from distributed import LocalCluster

    rows = sum(len(pd.read_parquet(p, columns=["amount"])) for p in bigger_data.rglob("*.parquet"))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        done = _run(tmp_path / "dask", bigger_data, "--dask", cluster.scheduler_address)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = (tmp_path / "dask" / "runs").iterdir()
    assert (run / "report.html").is_file() and (tmp_path / "dask" / "reg" / "champion.json").is_file()
    # the version fraud monitor can judge: reference.json in the manifest, every feature's deciles
    version = json.loads((tmp_path / "dask" / "reg" / "champion.json").read_text())["version"]
    folder = tmp_path / "dask" / "reg" / "versions" / version
    assert "reference.json" in json.loads((folder / "manifest.json").read_text())["files"]
    reference = json.loads((folder / "reference.json").read_text())
    spec = json.loads((folder / "feature_spec.json").read_text())
    assert set(reference["features"]) == {f["name"] for f in spec["features"]}
    assert 1000 < reference["rows"] <= 200_000 and reference["frauds"] > 0 and reference["score"]["histogram"]
    last_day = sorted(bigger_data.iterdir())[-1].name.removeprefix("date=")
    scores = pd.read_parquet(run / f"scores-{last_day}")
    assert len(scores) == len(pd.read_parquet(bigger_data / f"date={last_day}")) > 0
    assert scores["score"].between(0, 1).all() and set(scores["decision"]) <= {"approve", "review", "decline"}
    assert f"{rows:,} transactions" in done.stdout  # the whole data set was trained on

    alone = _run(tmp_path / "single", bigger_data)
    # out of memory: a MemoryError, or a thread whose stack the cap refused (libgomp's message)
    assert alone.returncode != 0, alone.stdout[-2000:]
    assert "MemoryError" in alone.stderr or "Resource temporarily unavailable" in alone.stderr, alone.stderr[-2000:]
    print(done.stdout.splitlines()[-1], alone.stdout.splitlines()[-1])  # the driver's growth, for the record
