"""Bad input: each kind gets a clear error naming the column and rows, or is quarantined;
a fatal error writes nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud.config import load_config
from fraud.io import load_transactions
from fraud.validation import InputError


def good_rows(n=200):
    return pd.DataFrame({
        "tx": [f"t{i}" for i in range(n)],
        "when": pd.date_range("2026-02-01", periods=n, freq="7min", tz="UTC").astype(str),
        "card": [f"c{i % 17}" for i in range(n)],
        "merchant": [f"m{i % 5}" for i in range(n)],
        "value": np.round(np.linspace(1, 500, n), 2),
        "ccy": "EUR",
        "fraud": [1 if i % 50 == 0 else 0 for i in range(n)],
    })


@pytest.fixture
def config():
    return load_config(overrides={
        "columns": {"transaction_id": "tx", "timestamp": "when", "card_id": "card", "terminal_id": "merchant",
                    "amount": "value", "currency": "ccy", "channel": None, "country": None,
                    "merchant_category": None, "card_lat": None, "card_lon": None, "terminal_lat": None,
                    "terminal_lon": None, "label": "fraud", "label_time": None, "fraud_pattern": None},
        "data": {"max_bad_row_fraction": 0.05, "chunk_rows": 64},
    })


def write(tmp_path, frame, kind="csv"):
    path = tmp_path / f"input.{kind}"
    frame.to_csv(path, index=False) if kind == "csv" else frame.to_parquet(path, index=False)
    return path


def test_clean_input_reads_with_the_mapping(tmp_path, config):
    frame, report = load_transactions(write(tmp_path, good_rows(), "parquet"), config, require_label=True,
                                      quarantine_dir=tmp_path / "q")
    assert len(frame) == 200 and report.rows_bad == 0
    assert {"transaction_id", "timestamp", "card_id", "terminal_id", "amount", "label", "label_time"} <= set(frame)
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert (frame["label_time"] - frame["timestamp"] == pd.Timedelta(days=7)).all()
    assert not (tmp_path / "q").exists()


@pytest.mark.parametrize("column,value,reason", [
    ("when", "not a date", "timestamp: unparseable timestamp"),
    ("when", None, "timestamp: missing timestamp"),
    ("value", float("nan"), "amount: missing or not a number"),
    ("value", float("inf"), "amount: infinite"),
    ("value", -5.0, "amount: negative"),
    ("value", "abc", "amount: not a number"),
    ("fraud", 2, "label: label outside {0, 1}"),
    ("card", None, "card_id: missing"),
    ("ccy", "euro", "currency: not an ISO 4217 currency code"),
])
def test_row_level_problems_are_quarantined_with_their_reason(tmp_path, config, column, value, reason):
    frame = good_rows().astype({"value": object, "fraud": object})
    frame.loc[[3, 70, 150], column] = value
    data, report = load_transactions(write(tmp_path, frame), config, require_label=True,
                                     quarantine_dir=tmp_path / "q")
    assert len(data) == 197 and report.reasons[reason] == 3
    assert report.describe(reason).startswith(f"{reason}: 3 row(s): row 3 (transaction_id t3), row 70")
    quarantined = pd.read_csv(next((tmp_path / "q").glob("quarantine-*.csv")))
    assert list(quarantined["_row"]) == [3, 70, 150]
    assert set(quarantined["_reason"]) == {reason}
    # the file is shared to fix the source: the rows keep their ids, never their card numbers
    assert list(quarantined["tx"]) == ["t3", "t70", "t150"]
    expected_cards = {"<card id removed>"} if column != "card" else set()
    assert set(quarantined["card"].dropna()) == expected_cards


def test_duplicates_within_and_across_chunks(tmp_path, config):
    frame = good_rows()
    frame.loc[10, "tx"] = "t5"     # same chunk as t5 (chunks of 64 rows)
    frame.loc[190, "tx"] = "t1"    # a later chunk
    data, report = load_transactions(write(tmp_path, frame), config, quarantine_dir=tmp_path / "q")
    assert report.reasons["transaction_id: duplicate transaction_id"] == 2
    assert data["transaction_id"].is_unique and len(data) == 198
    assert "t5" in set(data["transaction_id"]) and "t1" in set(data["transaction_id"])


def test_missing_column_is_fatal_and_names_it(tmp_path, config):
    with pytest.raises(InputError, match=r"amount \(mapped from 'value'\)"):
        load_transactions(write(tmp_path, good_rows().drop(columns=["value"])), config,
                          quarantine_dir=tmp_path / "q")
    assert not (tmp_path / "q").exists()


def test_missing_label_column_is_fatal_for_training(tmp_path, config):
    with pytest.raises(InputError, match="label"):
        load_transactions(write(tmp_path, good_rows().drop(columns=["fraud"])), config, require_label=True,
                          quarantine_dir=tmp_path / "q")


def test_wrong_column_type_is_fatal(tmp_path, config):
    frame = good_rows()
    frame["value"] = True
    with pytest.raises(InputError, match="amount: column has type bool"):
        load_transactions(write(tmp_path, frame, "parquet"), config, quarantine_dir=tmp_path / "q")
    assert not (tmp_path / "q").exists()


def test_too_many_bad_rows_stops_and_writes_nothing(tmp_path, config):
    frame = good_rows().astype({"value": object})
    frame.loc[::10, "value"] = -1.0  # 10% > 5%
    with pytest.raises(InputError, match=r"10.00% of rows are invalid.*nothing was written") as err:
        load_transactions(write(tmp_path, frame), config, quarantine_dir=tmp_path / "q")
    assert "amount: negative: 20 row(s): row 0 (transaction_id t0)" in str(err.value)
    assert not (tmp_path / "q").exists()


def test_a_directory_of_partitions_and_missing_source(tmp_path, config):
    frame = good_rows()
    for i, part in enumerate((frame.iloc[:70], frame.iloc[70:140], frame.iloc[140:])):
        (tmp_path / f"date=2026-02-0{i + 1}").mkdir()
        part.to_parquet(tmp_path / f"date=2026-02-0{i + 1}" / "part-0.parquet", index=False)
    data, _ = load_transactions(tmp_path, config)
    assert list(data["transaction_id"]) == list(frame["tx"])
    with pytest.raises(InputError, match="does not exist"):
        load_transactions(tmp_path / "nope", config)


def _with_format(config, timestamp_format, label_time=None):
    return config.model_copy(update={
        "data": config.data.model_copy(update={"timestamp_format": timestamp_format}),
        "columns": config.columns.model_copy(update={"label_time": label_time})})


def _text(times, fmt):
    return pd.to_datetime(times).dt.strftime(fmt)


@pytest.mark.parametrize("fmt,example", [
    ("%d/%m/%Y %H:%M", "01/02/2026 00:00"),   # day-first: read month-first this was 2 January
    ("%-d.%-m.%Y %H:%M", "1.2.2026 00:00"),
    ("%b %-d %Y", "Feb 1 2026"),
])
def test_text_timestamps_other_than_iso_stop_the_run_naming_the_column(tmp_path, config, fmt, example):
    frame = good_rows()
    frame["when"] = _text(frame["when"], fmt)
    with pytest.raises(InputError) as err:
        load_transactions(write(tmp_path, frame), config, quarantine_dir=tmp_path / "q")
    message = str(err.value)
    assert message.startswith(f"timestamp (mapped from 'when'): '{example}' at row 0 is not an ISO-8601 timestamp")
    assert "Set [data] timestamp_format" in message and "Nothing was written" in message
    assert not (tmp_path / "q").exists()


def test_one_day_first_value_among_iso_ones_stops_the_run_at_its_row(tmp_path, config):
    frame = good_rows()
    # not dates (a lenient parser reads '12:30' as today and 't5' as year 1): bad rows, as before
    frame.loc[[3, 4, 5], "when"] = ["not a date", "12:30", "t5"]
    _, report = load_transactions(write(tmp_path, frame), config, quarantine_dir=tmp_path / "q")
    assert report.reasons == {"timestamp: unparseable timestamp": 3}
    frame.loc[130, "when"] = "02/01/2026"   # the third chunk of 64 rows
    with pytest.raises(InputError, match=r"^timestamp \(mapped from 'when'\): '02/01/2026' at row 130 "):
        load_transactions(write(tmp_path, frame), config, quarantine_dir=tmp_path / "q2")
    assert not (tmp_path / "q2").exists()


def test_label_times_other_than_iso_stop_the_run_too(tmp_path, config):
    frame = good_rows().assign(reported=lambda f: _text(f["when"], "%d/%m/%Y"))
    with pytest.raises(InputError, match=r"^label_time \(mapped from 'reported'\): '01/02/2026' at row 0 .*"
                                         r"timestamp_format"):
        load_transactions(write(tmp_path, frame), _with_format(config, "", "reported"), require_label=True,
                          quarantine_dir=tmp_path / "q")


def test_timestamp_format_reads_day_first_and_quarantines_what_does_not_match(tmp_path, config):
    frame = good_rows().assign(reported=lambda f: pd.to_datetime(f["when"]) + pd.Timedelta(days=3))
    expected = pd.to_datetime(frame["when"])
    frame["when"] = _text(frame["when"], "%d/%m/%Y %H:%M")
    frame["reported"] = _text(frame["reported"], "%d/%m/%Y %H:%M")
    frame.loc[5, "when"] = "2026-02-01 00:35"       # ISO, but not the configured format
    frame.loc[70, "reported"] = "02/01/2026"        # no time
    fmt = "%d/%m/%Y %H:%M"
    data, report = load_transactions(write(tmp_path, frame), _with_format(config, fmt, "reported"),
                                     require_label=True, quarantine_dir=tmp_path / "q")
    assert report.reasons == {f"timestamp: does not match timestamp_format '{fmt}'": 1,
                              f"label_time: does not match timestamp_format '{fmt}'": 1}
    kept = expected.drop([5, 70]).reset_index(drop=True)
    assert (data["timestamp"] == kept).all()     # 01/02/2026 is 1 February, as configured
    assert (data["label_time"] - data["timestamp"] == pd.Timedelta(days=3)).all()
    quarantined = pd.read_csv(next((tmp_path / "q").glob("quarantine-*.csv")))
    assert list(quarantined["_row"]) == [5, 70]


@pytest.mark.parametrize("timestamp_format", ["", "%d/%m/%Y %H:%M"])
def test_epoch_numbers_and_iso_text_read_as_before(tmp_path, config, timestamp_format):
    frame = good_rows()
    expected = pd.to_datetime(frame["when"])
    epoch = frame.assign(when=(expected - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1))
    data, _ = load_transactions(write(tmp_path, epoch, "parquet"), _with_format(config, timestamp_format),
                                quarantine_dir=tmp_path / "q")
    assert (data["timestamp"] == expected).all()
    if not timestamp_format:
        iso = frame.assign(when=[t.strftime(f) for t, f in zip(
            expected, ["%Y-%m-%d %H:%M:%S%z", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] * 50)])
        iso.loc[0, "when"] = "2026-02-01"
        iso.loc[1, "when"] = "2026-02-01T01:07:00+01:00"
        data, report = load_transactions(write(tmp_path, iso), config, quarantine_dir=tmp_path / "q")
        assert report.rows_bad == 0 and (data["timestamp"] == expected).all()


def test_timestamp_format_must_be_a_strptime_format():
    with pytest.raises(ValueError, match="timestamp_format 'dd/mm/yyyy' is not a strptime format"):
        load_config(overrides={"data": {"timestamp_format": "dd/mm/yyyy"}})
    assert load_config(overrides={"data": {"timestamp_format": "%d.%m.%Y %H:%M"}}).data.timestamp_format
