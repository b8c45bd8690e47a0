"""The Dask feature table as written to partitioned Parquet and read back: every input row
exactly once, its features the single-process engine's, its carried columns its own, under
the ``date=`` of its UTC day, and a window read back by pruning holds exactly its rows."""

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from fraud.features.batch import build_features
from fraud.features.dask_table import read_feature_table, write_feature_table
from fraud.features.spec import FeatureSpec


@pytest.fixture(scope="module")
def spec(default_config):
    return FeatureSpec.default(default_config.features, default_config.columns)


def test_the_feature_table_holds_every_row_once_with_the_single_process_features(small_transactions, spec,
                                                                                  tmp_path):
    subset = small_transactions.iloc[:30000].reset_index(drop=True)
    expected = build_features(subset, spec).set_index(subset["transaction_id"])
    with dask.config.set(scheduler="synchronous"):
        path = write_feature_table(dd.from_pandas(subset, npartitions=3), spec, tmp_path / "features")
        table = read_feature_table(path).compute()
    files = sorted(p.relative_to(path).as_posix() for p in (tmp_path / "features").rglob("*.parquet"))
    assert len({f.split("/")[0] for f in files}) == subset["timestamp"].dt.floor("D").nunique()
    assert table["transaction_id"].is_unique and len(table) == len(subset)  # none lost, none twice
    table = table.set_index("transaction_id").loc[expected.index]
    np.testing.assert_array_equal(table[spec.names].to_numpy(), expected.to_numpy())
    rows = subset.set_index("transaction_id").loc[expected.index]
    for column in ("timestamp", "card_id", "terminal_id", "amount", "label", "label_time", "fraud_pattern"):
        pd.testing.assert_series_equal(table[column], rows[column], check_dtype=False, check_names=False,
                                       check_categorical=False)
    assert (table["date"].astype(str) == rows["timestamp"].dt.tz_convert("UTC").dt.strftime("%Y-%m-%d")).all()

    start = subset["timestamp"].min().floor("D") + pd.Timedelta(days=1, hours=7)
    end = start + pd.Timedelta(days=2, hours=3)
    with dask.config.set(scheduler="synchronous"):
        window = read_feature_table(path, start, end).compute()
    inside = subset[(subset["timestamp"] >= start) & (subset["timestamp"] < end)]
    assert 0 < len(window) < len(subset)
    assert sorted(window["transaction_id"]) == sorted(inside["transaction_id"])


def test_a_small_table_is_written_whole(small_transactions, spec, tmp_path):
    """Partitions of a few dozen rows (a day's catch-up, a small merchant) are written like
    large ones: every row, with its features."""
    subset = small_transactions.iloc[:120].reset_index(drop=True)
    with dask.config.set(scheduler="synchronous"):
        path = write_feature_table(dd.from_pandas(subset, npartitions=4), spec, tmp_path / "features")
        table = read_feature_table(path).compute()
    assert sorted(table["transaction_id"]) == sorted(subset["transaction_id"])
    expected = build_features(subset, spec).set_index(subset["transaction_id"])
    np.testing.assert_array_equal(table.set_index("transaction_id").loc[expected.index, spec.names].to_numpy(),
                                  expected.to_numpy())


def test_the_feature_passes_shuffle_by_tasks_whoever_computes_them(small_transactions, spec):
    """The shuffle is named on each pass, not set around one caller's compute: the lazy table
    `fraud score-batch --dask` computes later used p2p (2.3x slower features on 1M rows)."""
    from dask.distributed import Client, get_task_stream

    from fraud.features.dask_table import feature_table

    rows = small_transactions.iloc[:5000]
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as client:
        table = feature_table(dd.from_pandas(rows, npartitions=3), spec)  # built here, computed below
        with get_task_stream(client) as stream:
            assert int(table.map_partitions(len).sum().compute()) == len(rows)
    names = {str(task["key"][0] if isinstance(task["key"], tuple) else task["key"]) for task in stream.data}
    assert any("taskshuffle" in name for name in names)
    assert not any("p2p" in name or "shuffle-transfer" in name for name in names)
