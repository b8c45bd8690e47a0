"""Common point of compromise (issue 15): per terminal, the cards with a fraud known in the
window that used it in the window; per card, its terminals with a fraud known in the
window. Exact values on a hand-made stream, and batch = Dask = online (one by one, labels
interleaved as the API applies them, and from a bulk state at any cut)."""

from __future__ import annotations

import dask
import numpy as np
import pandas as pd
import pytest

from fraud.config import FeatureConfig
from fraud.features import spec as spec_module
from fraud.features.batch import build_features
from fraud.features.distributed import build_features_dask
from fraud.features.spec import FeatureSpec
from helpers.replay import replay
from helpers.frames import labelled_frame

CARDS_7D, TERMS_7D = "terminal_compromised_cards_7d", "card_compromised_terminals_7d"
CARDS_30D, TERMS_30D = "terminal_compromised_cards_30d", "card_compromised_terminals_30d"
CROSS = [CARDS_7D, TERMS_7D, CARDS_30D, TERMS_30D]


STREAM = labelled_frame([
    ("a", "2026-03-01 10:00", "c1", "m1", 10.0, 0, "2026-03-08 10:00"),
    ("b", "2026-03-02 10:00", "c1", "m2", 10.0, 1, "2026-03-04 10:00"),   # c1's fraud (at m2) known 03-04 10:00
    ("c", "2026-03-04 10:00", "c2", "m1", 10.0, 0, "2026-03-11 10:00"),   # the same second: not known yet
    ("d", "2026-03-05 10:00", "c3", "m1", 10.0, 0, "2026-03-12 10:00"),   # c1 used m1 and is compromised
    ("e", "2026-03-05 11:00", "c1", "m3", 10.0, 0, "2026-03-12 10:00"),   # c1 used m2, where a fraud is known
    ("f", "2026-03-06 09:00", "c2", "m1", 10.0, 0, "2026-03-13 10:00"),   # c1 counted once (one card)
    ("g", "2026-03-20 10:00", "c3", "m1", 10.0, 0, "2026-03-27 10:00"),   # c1's use of m1 (03-01) left 7d
    ("h", "2026-03-21 10:00", "c4", "m2", 10.0, 0, "2026-03-28 10:00"),   # c1 used m2 on 03-02: 30d only
    ("i", "2026-03-21 12:00", "c1", "m2", 10.0, 0, "2026-03-28 10:00"),   # m2's fraud known 03-04: 30d only
    ("j", "2026-04-10 10:00", "c4", "m2", 10.0, 0, "2026-04-17 10:00"),   # c1's fraud known 37 days ago
])


ON = FeatureConfig(compromise_windows=(7 * 86400, 30 * 86400))  # off by default (config.toml says why)


@pytest.fixture(scope="module")
def spec():
    return FeatureSpec.default(ON)


def test_the_counts_on_a_hand_made_stream(spec):
    f = build_features(STREAM, spec).set_index(STREAM["transaction_id"])
    assert list(f[CARDS_7D]) == [0, 0, 0, 1, 0, 1, 0, 0, 0, 0]
    assert list(f[CARDS_30D]) == [0, 0, 0, 1, 0, 1, 1, 1, 1, 0]
    assert list(f[TERMS_7D]) == [0, 0, 0, 0, 1, 0, 0, 0, 0, 0]
    assert list(f[TERMS_30D]) == [0, 0, 0, 0, 1, 0, 0, 0, 1, 0]


def _all_engines(df, spec, cuts):
    """(batch, {engine: features}) with online from an empty state and from bulk states."""
    batch = build_features(df, spec).set_index(df["transaction_id"])
    with dask.config.set(scheduler="synchronous"):
        got = {"dask": build_features_dask(df, spec, npartitions=3)}
    start = df["timestamp"].min().normalize()
    hours = (df["timestamp"].max() - start) / pd.Timedelta(hours=1) + 1
    for cut in [start, *cuts]:
        online, _ = replay(df, spec, cut, hours=hours - (cut - start) / pd.Timedelta(hours=1))
        got[f"online from {cut}"] = online.set_index(df.loc[online.index, "transaction_id"])
    return batch, got


def test_batch_dask_and_online_agree(spec):
    cuts = [pd.Timestamp(x, tz="UTC") for x in ("2026-03-04 10:00:01", "2026-03-05 10:30", "2026-03-21 11:00")]
    batch, got = _all_engines(STREAM, spec, cuts)
    for engine, values in got.items():
        rows = values.index
        assert len(rows) >= 2, engine
        np.testing.assert_array_equal(values.loc[rows, CROSS].to_numpy(), batch.loc[rows, CROSS].to_numpy(),
                                      err_msg=engine)


def test_a_card_looks_at_its_most_recent_terminals_only_in_every_engine(monkeypatch):
    """Beyond COMPROMISE_RECENT_TERMINALS distinct terminals the oldest stop counting: the
    same in batch and online (the online state reads that many terminals' items at most)."""
    monkeypatch.setattr(spec_module, "COMPROMISE_RECENT_TERMINALS", 2)
    df = labelled_frame([
        ("x", "2026-03-01 08:00", "c9", "m1", 10.0, 1, "2026-03-01 09:00"),  # m1: a fraud known 09:00
        ("a", "2026-03-01 10:00", "c1", "m1", 10.0, 0, None),
        ("b", "2026-03-01 11:00", "c1", "m1", 10.0, 0, None),   # m1 among c1's 2 latest
        ("c", "2026-03-01 12:00", "c1", "m2", 10.0, 0, None),   # latest two before it: m1
        ("d", "2026-03-01 13:00", "c1", "m3", 10.0, 0, None),   # m1 (last 11:00), m2
        ("e", "2026-03-01 14:00", "c1", "m4", 10.0, 0, None),   # m2, m3: m1 out
        ("f", "2026-03-01 15:00", "c1", "m1", 10.0, 0, None),   # m3, m4: m1 out (this use comes after)
        ("g", "2026-03-01 16:00", "c1", "m5", 10.0, 0, None),   # m4, m1: m1 back
    ])
    spec = FeatureSpec.default(ON)
    batch, got = _all_engines(df, spec, [pd.Timestamp("2026-03-01 13:30", tz="UTC")])
    card_rows = list("abcdefg")
    assert list(batch.loc[card_rows, TERMS_7D]) == [0, 1, 1, 1, 0, 0, 1]
    for engine, values in got.items():
        rows = [r for r in card_rows if r in values.index]
        assert list(values.loc[rows, TERMS_7D]) == list(batch.loc[rows, TERMS_7D]), engine


def test_windows_are_configurable_and_can_be_turned_off():
    off = FeatureSpec.default()  # the default
    assert FeatureConfig().compromise_windows == ()
    assert not [n for n in off.names if "compromised" in n]
    assert build_features(STREAM, off).shape[1] == len(off.names)
    one = FeatureSpec.default(FeatureConfig(compromise_windows=(3 * 86400,)))
    assert [n for n in one.names if "compromised" in n] == ["terminal_compromised_cards_3d",
                                                            "card_compromised_terminals_3d"]
    with pytest.raises(ValueError, match="history_window"):
        FeatureConfig(compromise_windows=(60 * 86400,))
