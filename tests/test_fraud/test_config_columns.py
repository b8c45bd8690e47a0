"""A user's [columns] replaces the default mapping (issue 15): optional columns the table
lacks are never assumed, and the spec drops the features of columns the data lacks."""

from __future__ import annotations

import logging

import pandas as pd

from fraud.config import load_config
from fraud.features.available import spec_for_data


def test_a_columns_section_replaces_the_default_mapping(tmp_path):
    mine = tmp_path / "mine.toml"
    mine.write_text('[columns]\namount = "amount_eur"\nlabel_time = "reported_at"\n')
    columns = load_config(mine).columns
    assert columns.present() == {"transaction_id": "transaction_id", "timestamp": "timestamp", "card_id": "card_id",
                                 "terminal_id": "terminal_id", "amount": "amount_eur", "label": "label",
                                 "label_time": "reported_at"}
    default = load_config().columns  # no [columns]: the packaged mapping, every optional column
    assert default.channel == "channel" and default.has_locations and default.fraud_pattern == "fraud_pattern"
    other = tmp_path / "other.toml"
    other.write_text('[policy]\nreview_cost = 2.0\n')
    assert load_config(other).columns == default


def test_a_mapped_column_absent_or_empty_in_the_data_drops_its_features(caplog, default_config):
    frame = pd.DataFrame({"transaction_id": ["a"], "timestamp": [pd.Timestamp("2026-01-01", tz="UTC")],
                          "card_id": ["c"], "terminal_id": ["m"], "amount": [1.0], "label": [0],
                          "label_time": [pd.Timestamp("2026-01-08", tz="UTC")], "channel": [None],
                          "card_lat": [48.0], "card_lon": [2.0], "terminal_lat": [48.1]})
    with caplog.at_level(logging.WARNING):
        spec, dropped = spec_for_data(default_config, frame)
    assert dropped == {"is_online": ["channel"], "distance_from_home_km": ["terminal_lon"]}
    assert "is_online" not in spec.names and "distance_from_home_km" not in spec.names
    assert "is_online (needs channel)" in caplog.text and "distance_from_home_km (needs terminal_lon)" in caplog.text
    full = frame.assign(channel=["pos"], terminal_lon=[2.1])
    spec, dropped = spec_for_data(default_config, full)
    assert dropped == {} and {"is_online", "distance_from_home_km"} <= set(spec.names)
    with_compromise = default_config.model_copy(update={"features": default_config.features.model_copy(
        update={"compromise_windows": (7 * 86400, 30 * 86400)})})
    unlabelled, dropped = spec_for_data(with_compromise, full.drop(columns=["label"]))
    assert not [n for n in unlabelled.names if "fraud_rate" in n or "compromised" in n]
    assert dropped["terminal_compromised_cards_7d"] == ["label"]
