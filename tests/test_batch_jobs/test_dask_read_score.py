"""The Dask reader validates like the serial one, prunes days, and score-batch --dask
scores like the single-process score-batch (issue 17)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from fraud.simulator import TransactionSimulator


@pytest.fixture(scope="module")
def client():
    from fraud.features.distributed import dask_client

    with dask_client("local", n_workers=2) as c:
        yield c


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    """Six days; day 3 has a negative amount and an id already used on day 1."""
    path = tmp_path_factory.mktemp("dirty") / "transactions"
    TransactionSimulator(n_customers=200, n_terminals=80, seed=5).write(path, 6, progress=False)
    files = sorted(path.rglob("*.parquet"))
    first, third = pd.read_parquet(files[0]), pd.read_parquet(files[2])
    third.loc[3, "amount"] = -1.0
    third.loc[5, "transaction_id"] = first.loc[7, "transaction_id"]
    third.to_parquet(files[2], index=False)
    return path


def _lenient(config):
    return config.model_copy(update={"data": config.data.model_copy(update={"max_bad_row_fraction": 0.5})})


def test_dask_reader_validates_and_quarantines_like_load_transactions(tmp_path, client, dirty, default_config):
    from batch_jobs.dask_read import read_transactions_dask
    from fraud.io import load_transactions

    config = _lenient(default_config)
    serial, serial_report = load_transactions(dirty, config, require_label=True, quarantine_dir=tmp_path / "q1")
    valid, report = read_transactions_dask(client, str(dirty), config, require_label=True,
                                           quarantine_dir=tmp_path / "q2")
    pd.testing.assert_frame_equal(valid.compute().reset_index(drop=True), serial)
    assert report.summary() == serial_report.summary()
    assert dict(report.reasons) == {"amount: negative": 1, "transaction_id: duplicate transaction_id": 1}
    quarantined = pd.concat(pd.read_csv(p) for p in sorted((tmp_path / "q2").rglob("*.csv")))
    expected = pd.read_csv(serial_report.quarantine_path)
    assert quarantined["_row"].tolist() == expected["_row"].tolist()
    assert quarantined["_reason"].tolist() == expected["_reason"].tolist()
    assert not quarantined["card_id"].isin(serial["card_id"]).any()  # no card numbers in the quarantine


def test_dask_reader_stops_over_the_bad_row_limit_and_writes_nothing(tmp_path, client, dirty, default_config):
    from batch_jobs.dask_read import read_transactions_dask
    from fraud.validation import InputError

    strict = default_config.model_copy(update={"data": default_config.data.model_copy(
        update={"max_bad_row_fraction": 1e-5})})
    with pytest.raises(InputError, match="invalid"):
        read_transactions_dask(client, str(dirty), strict, require_label=True, quarantine_dir=tmp_path / "q")
    assert not (tmp_path / "q").exists()


def test_dask_reader_prunes_days_outside_the_range(client, dirty, default_config):
    from batch_jobs.dask_read import read_raw

    raw = read_raw(str(dirty), ["transaction_id", "timestamp"], pd.Timestamp("2026-01-02", tz="UTC"),
                   pd.Timestamp("2026-01-04", tz="UTC"))
    days = pd.to_datetime(raw["timestamp"].compute(), utc=True).dt.strftime("%Y-%m-%d")
    assert sorted(days.unique()) == ["2026-01-02", "2026-01-03"]


def test_score_batch_dask_equals_the_single_process_scores(tmp_path, client, small_sim_dir, small_config):
    """A champion trained in process scores the last day both ways: same rows, scores,
    decisions and reasons; the Dask output is partitioned Parquet written by the workers."""
    from batch_jobs.dask_score import score_batch_dask
    from batch_jobs.nightly import run_nightly
    from batch_jobs.scoring import score_batch
    from fraud.registry import ModelRegistry

    cheap = small_config.model_copy(update={"search": small_config.search.model_copy(
        update={"candidates": ("focal_xgb",), "max_trials": 1, "max_rounds": 30}),
                                          "tracking": small_config.tracking.model_copy(update={"enabled": False})})
    run_nightly(cheap, small_sim_dir, registry_uri=tmp_path / "reg", runs_dir=tmp_path / "runs", score_latest=False,
                progress=False, labels_uri=None)
    registry = ModelRegistry.open(tmp_path / "reg")
    day = sorted(small_sim_dir.iterdir())[-1]
    score_batch(day, tmp_path / "one.parquet", cheap, registry, history_source=small_sim_dir, progress=False)
    counts = score_batch_dask(client, str(day), tmp_path / "many", cheap, registry, history_source=str(small_sim_dir))
    one = pd.read_parquet(tmp_path / "one.parquet").sort_values("transaction_id").reset_index(drop=True)
    many = pd.read_parquet(tmp_path / "many").sort_values("transaction_id").reset_index(drop=True)
    assert len(list((tmp_path / "many").rglob("*.parquet"))) >= 1 and len(many) == len(one) > 0
    np.testing.assert_allclose(many["score"], one["score"], rtol=0, atol=1e-12)
    assert (many["decision"].astype(str) == one["decision"].astype(str)).all()
    assert (many["reasons"].astype(str) == one["reasons"].astype(str)).all()
    assert (many["card_token"].astype(str) == one["card_token"].astype(str)).all()
    assert counts["decisions"] == one["decision"].value_counts().reindex(
        ["approve", "review", "decline"], fill_value=0).to_dict()
    shutil.rmtree(tmp_path / "many")


def test_dask_reader_reads_s3_partitions_like_the_local_ones(tmp_path, moto_server, default_config):
    """s3:// through pyarrow's S3 filesystem (moto's server): the same valid rows as the
    local copy (workers started with the S3 credentials in their environment)."""
    from batch_jobs.dask_read import read_transactions_dask
    from fraud.features.distributed import dask_client
    from fraud.storage.aws import client as aws_client

    local = tmp_path / "transactions"
    TransactionSimulator(n_customers=50, n_terminals=20, seed=9).write(local, 4, progress=False)
    s3 = aws_client("s3", moto_server)
    s3.create_bucket(Bucket="dask-input")
    for path in sorted(local.rglob("*.parquet")):
        s3.put_object(Bucket="dask-input", Key=f"transactions/{path.relative_to(local)}", Body=path.read_bytes())
    start = pd.Timestamp("2026-01-02", tz="UTC")
    with dask_client("local", n_workers=1) as c:
        remote, report = read_transactions_dask(c, "s3://dask-input/transactions", default_config, start=start,
                                                endpoint_url=moto_server)
        remote = remote.compute().reset_index(drop=True)
        nearby, _ = read_transactions_dask(c, str(local), default_config, start=start)
        pd.testing.assert_frame_equal(remote, nearby.compute().reset_index(drop=True))
    assert report.rows_in == len(remote) > 0 and remote["timestamp"].min() >= start
