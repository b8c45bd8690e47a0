"""The simulator's shards: independent populations written side by side into the same days."""

from __future__ import annotations

import pandas as pd

from fraud.simulator import TransactionSimulator


def test_shards_write_beside_each_other_with_disjoint_ids(tmp_path):
    for shard in (0, 1):
        TransactionSimulator(n_customers=60, n_terminals=20, seed=shard, shard=shard).write(tmp_path, 3, progress=False)
    day = tmp_path / "date=2026-01-02"
    parts = {p.name: pd.read_parquet(p) for p in sorted(day.glob("*.parquet"))}
    assert set(parts) == {"part-0.parquet", "part-1.parquet"}
    for column in ("transaction_id", "card_id", "terminal_id"):
        assert not set(parts["part-0.parquet"][column]) & set(parts["part-1.parquet"][column]), column
    both = pd.concat(parts.values())
    assert both["transaction_id"].is_unique


def test_no_shard_keeps_the_ids_and_file_name(tmp_path):
    TransactionSimulator(n_customers=60, n_terminals=20, seed=1).write(tmp_path, 1, progress=False)
    (path,) = tmp_path.rglob("*.parquet")
    frame = pd.read_parquet(path)
    assert path.name == "part-0.parquet"
    assert frame["transaction_id"].str.fullmatch(r"T\d{10}").all() and frame["card_id"].str.fullmatch(r"C\d{6}").all()
