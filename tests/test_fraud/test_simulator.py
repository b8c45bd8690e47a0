"""The embedded default data: realistic fraud rate, every pattern present, reproducible."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from fraud.simulator import TransactionSimulator

PATTERNS = ("compromised_terminal", "account_takeover", "card_testing", "night_burst", "label_noise")


@pytest.fixture(scope="module")
def days():
    sim = TransactionSimulator(seed=3)
    return pd.concat([frame for _, frame in sim.days(40, progress=False)], ignore_index=True)


def test_volume_and_fraud_rate(days):
    per_day = days.groupby(days["timestamp"].dt.date).size()
    assert 8_000 < per_day.mean() < 12_000
    assert 0.003 <= days["label"].mean() <= 0.01


def test_every_pattern_in_range(days):
    counts = days["fraud_pattern"].value_counts()
    for pattern in PATTERNS:
        assert counts.get(pattern, 0) > 20, pattern
    share = counts.drop("", errors="ignore") / len(days)
    assert (share < 0.004).all()


def test_pattern_shapes(days):
    testing = days[days["fraud_pattern"] == "card_testing"]
    assert (testing["amount"] <= 3).mean() > 0.6 and testing["amount"].max() >= 200
    night = days[days["fraud_pattern"] == "night_burst"]
    assert (night["timestamp"].dt.hour < 6).mean() > 0.9
    assert (days.loc[days["label"] == 1, "label_time"] > days.loc[days["label"] == 1, "timestamp"]).all()
    legit = days[(days["label"] == 0)]
    assert ((legit["label_time"] - legit["timestamp"]) == pd.Timedelta(days=7)).all()


def test_same_seed_same_data_other_seed_other_data():
    def digest(seed):
        frames = [f for _, f in TransactionSimulator(n_customers=300, n_terminals=100, seed=seed).days(5, False)]
        return hashlib.sha256(pd.util.hash_pandas_object(pd.concat(frames), index=False).values).hexdigest()

    assert digest(11) == digest(11)
    assert digest(11) != digest(12)


def test_write_partitions(tmp_path):
    files = TransactionSimulator(n_customers=200, n_terminals=80, seed=1).write(tmp_path, 3, progress=False)
    assert [f.parent.name for f in files] == ["date=2026-01-01", "date=2026-01-02", "date=2026-01-03"]
    assert not list(tmp_path.rglob("*.tmp"))


def test_chargebacks_come_back_within_the_cap():
    """A fraud's label delay is lognormal (median 4 days) up to ``chargeback_cap_days`` (60);
    the loop drill caps it at its label window so that window's labels are complete."""
    kw = {"n_customers": 400, "n_terminals": 160, "seed": 5}
    delays = {cap: pd.concat([f for _, f in TransactionSimulator(**kw, chargeback_cap_days=cap).days(12, False)])
              for cap in (60.0, 2.0)}
    for cap, frame in delays.items():
        fraud = frame[frame["label"] == 1]
        delay = (fraud["label_time"] - fraud["timestamp"]) / pd.Timedelta(days=1)
        assert len(fraud) > 50 and delay.max() <= cap
        if cap == 60.0:
            assert (delay > 2.0).mean() > 0.5  # uncapped, most chargebacks take longer than 2 days
