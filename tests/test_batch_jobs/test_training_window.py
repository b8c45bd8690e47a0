"""Training on a team's own data: a past as-of moment and a date range, the source time
zone of naive timestamps (calendar features in local time), and folds that do not fit said
out loud."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from batch_jobs.cli import main
from fraud.config import ColumnMapping, SplitConfig, load_config
from fraud.features.batch import build_features
from fraud.features.online import OnlineFeatures
from fraud.features.spec import FeatureSpec
from fraud.splits import TrainingWindow, make_split
from fraud.storage.kv import InMemoryKeyValueStore
from fraud.validation import InputError, Validator
from helpers.configs import SMALL

PARIS = "Europe/Paris"


def test_naive_bounds_are_read_in_the_data_time_zone_and_bad_ones_refused():
    w = TrainingWindow.parse("2026-01-15", "2026-07-01T12:00", "2026-07-01T12:00:00+00:00", PARIS)
    assert w.start == pd.Timestamp("2026-01-14T23:00Z")  # midnight in Paris, winter
    assert w.end == pd.Timestamp("2026-07-01T10:00Z")    # noon in Paris, summer
    assert w.as_of == pd.Timestamp("2026-07-01T12:00Z")  # an offset is kept
    with pytest.raises(InputError, match="--from 'last spring' is not a date"):
        TrainingWindow.parse("last spring")
    with pytest.raises(InputError, match="--from 2026-02-01 is not before --to 2026-01-01"):
        TrainingWindow.parse("2026-02-01", "2026-01-01")
    with pytest.raises(InputError, match="has no time zone"):
        make_split(pd.Series(pd.date_range("2026-01-01", periods=90, freq="D", tz="UTC")), SplitConfig(),
                   pd.Timedelta(days=7), as_of=pd.Timestamp("2026-03-01"))


def test_folds_that_do_not_fit_are_named_with_the_days_needed(caplog):
    config = SplitConfig(train_days=32, validation_days=5, test_days=5, prequential_folds=4)
    ts = pd.Series(pd.date_range("2026-01-01", periods=60 * 24, freq="h", tz="UTC"))  # 60 days
    with caplog.at_level(logging.WARNING, logger="fraud.splits"):
        split = make_split(ts, config, pd.Timedelta(days=3))
    # as_of 03-02, test 02-22..02-27, gap 3 (the label delay), fold k: validation ends 02-19 - 5k days and
    # 32 training days end 3 days before it: fold 0 starts 01-10, 1: 01-05, 2: 12-31, 3: 12-26
    assert len(split.folds) == 2
    assert "2 of 4 prequential folds dropped (folds 2..3)" in split.dropped
    assert "fold 2's training window would start 2025-12-31" in split.dropped and "data starts 2026-01-01" in split.dropped
    assert "6 more days of history would keep them all" in split.dropped
    assert split.dropped in caplog.text and split.to_dict()["dropped_folds"] == split.dropped
    full = make_split(pd.Series(pd.date_range("2025-12-26", "2026-03-01 23:00", freq="h", tz="UTC")), config,
                      pd.Timedelta(days=3))
    assert len(full.folds) == 4 and full.dropped == ""


def test_naive_timestamps_are_wall_clock_times_of_the_source_time_zone():
    raw = pd.DataFrame({
        "transaction_id": [f"t{i}" for i in range(7)], "card_id": "c", "terminal_id": "m", "amount": 10.0,
        "timestamp": ["2026-01-15 10:00:00", "2026-07-15T10:00:00", "2026-07-15T10:00:00+00:00", "2026-01-15",
                      "2026-10-25 02:30:00",   # happens twice in Paris: read as the first (summer) one
                      "2026-03-29 02:30:00",   # does not exist in Paris: moved forward to 03:00
                      "2026-07-15T10:00:00Z"],
    })
    good, bad = Validator(ColumnMapping(), 7 * 86400, timezone=PARIS).validate(raw, 0)
    assert bad.empty
    assert [t.isoformat() for t in good["timestamp"]] == [
        "2026-01-15T09:00:00+00:00", "2026-07-15T08:00:00+00:00", "2026-07-15T10:00:00+00:00",
        "2026-01-14T23:00:00+00:00", "2026-10-25T00:30:00+00:00", "2026-03-29T01:00:00+00:00",
        "2026-07-15T10:00:00+00:00"]
    as_datetimes = raw.assign(timestamp=pd.to_datetime(raw["timestamp"].iloc[:2], format="ISO8601")).iloc[:2]
    good, _ = Validator(ColumnMapping(), 7 * 86400, timezone=PARIS).validate(as_datetimes, 0)
    assert [t.isoformat() for t in good["timestamp"]] == ["2026-01-15T09:00:00+00:00", "2026-07-15T08:00:00+00:00"]
    utc, _ = Validator(ColumnMapping(), 7 * 86400).validate(raw.iloc[:1], 0)
    assert utc["timestamp"].iloc[0].isoformat() == "2026-01-15T10:00:00+00:00"  # the default stays UTC
    with pytest.raises(ValueError, match="not an IANA time zone"):
        load_config(overrides={"data": {"timezone": "Paris"}})


def test_calendar_features_are_local_in_batch_and_online(small_transactions):
    spec = FeatureSpec.default(timezone=PARIS)
    assert FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec  # stored with the model
    rows = small_transactions.iloc[:400].reset_index(drop=True)
    batch = build_features(rows, spec)
    local = rows["timestamp"].dt.tz_convert(PARIS)
    assert (batch["hour"].to_numpy() == local.dt.hour.to_numpy()).all()
    assert (batch["weekday"].to_numpy() == local.dt.day_of_week.to_numpy()).all()
    assert (batch["is_weekend"].to_numpy() == (local.dt.day_of_week >= 5).to_numpy()).all()
    assert (batch["hour"].to_numpy() != rows["timestamp"].dt.hour.to_numpy()).any()
    online = OnlineFeatures(spec, InMemoryKeyValueStore())
    one = pd.DataFrame([online.process(r) for r in rows.sort_values("timestamp").to_dict("records")],
                       index=rows.sort_values("timestamp").index)
    for name in ("hour", "weekday", "is_night", "is_weekend"):
        assert np.array_equal(one[name].sort_index().to_numpy(), batch[name].to_numpy()), name


def test_dask_keeps_the_time_zone(small_transactions):
    from fraud.features.distributed import build_features_dask

    spec = FeatureSpec.default(timezone=PARIS)
    rows = small_transactions.iloc[:300].reset_index(drop=True)
    got = build_features_dask(rows, spec, npartitions=2).loc[rows["transaction_id"].to_numpy()]
    assert np.array_equal(got["hour"].to_numpy(), build_features(rows, spec)["hour"].to_numpy())


def test_fraud_train_as_of_a_past_moment_on_a_date_range(tmp_path, small_sim_dir, small_transactions):
    config = tmp_path / "small.toml"
    config.write_text(SMALL.replace("train_days = 14", "train_days = 10").replace("validation_days = 5",
                      "validation_days = 4").replace("test_days = 5", "test_days = 4"))  # 39 days with the gaps
    first = small_transactions["timestamp"].min().normalize()  # 45 days of data: use 40 of them
    start, as_of = first + pd.Timedelta(days=2), first + pd.Timedelta(days=41, hours=12)
    rc = main(["--config", str(config), "--registry", str(tmp_path / "registry"), "train", "--data",
               str(small_sim_dir), "--runs", str(tmp_path / "runs"), "--no-progress",
               "--from", str(start.date()), "--as-of", as_of.isoformat()])
    assert rc == 0
    run = next((tmp_path / "runs").iterdir())
    summary = json.loads((run / "report.json").read_text())
    assert pd.Timestamp(summary["split"]["as_of"]) == as_of
    assert pd.Timestamp(summary["split"]["test"]["end"]) == (as_of - pd.Timedelta(days=7)).floor("D")  # label delay
    assert pd.Timestamp(summary["data"]["first"]) >= start and pd.Timestamp(summary["data"]["last"]) < as_of
    assert summary["data"]["rows"] == int(((small_transactions["timestamp"] >= start)
                                           & (small_transactions["timestamp"] < as_of)).sum())
    assert not list(run.glob("scores-*.parquet"))  # a past model does not score today's data
