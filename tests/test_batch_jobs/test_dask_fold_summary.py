"""What the Dask training path keeps of a fold's rows in the driver is enough: the class
totals give the fit the same numbers as every row, and the down-sampling does not depend
on how the rows are partitioned; a fold's rows are down-sampled and weighted back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from batch_jobs.dask_fit import class_totals
from fraud.features.dask_table import row_uniform
from fraud.models import HyperParams, focal_hessian_scale
from fraud.search import FoldData
from objectives.class_balanced import class_balanced_alpha
from objectives.sklearn import make_loss


@pytest.mark.parametrize("weighted", [False, True])
def test_class_totals_give_the_fit_the_same_numbers_as_all_rows(weighted):
    rng = np.random.default_rng(3)
    y = (rng.random(5000) < 0.03).astype(np.int8)
    w = np.where(y == 1, 1.0, 1 / 0.2) if weighted else None
    y2, w2 = class_totals(FoldData(None, y, w, None, None))
    loss = make_loss(2, 2.0, 0.25, "floor", 1e-16)
    assert loss.init_margin(y2, w2) == pytest.approx(loss.init_margin(y, w), rel=1e-12)
    params = HyperParams(gamma=2.0, alpha=0.25)
    assert focal_hessian_scale(params, y2, w2) == pytest.approx(focal_hessian_scale(params, y, w), rel=1e-9)
    assert class_balanced_alpha(y2, 0.999, w2) == pytest.approx(class_balanced_alpha(y, 0.999, w), rel=1e-12)


def test_down_sampling_draws_do_not_depend_on_the_partitioning():
    ids = pd.Series([f"T{i:08d}" for i in range(20000)], dtype="string")
    whole = row_uniform(ids, seed=7)
    parts = np.concatenate([row_uniform(ids.iloc[i:i + 3000], seed=7) for i in range(0, len(ids), 3000)])
    np.testing.assert_array_equal(whole, parts)
    shuffled = ids.sample(frac=1.0, random_state=1)
    np.testing.assert_array_equal(row_uniform(shuffled, seed=7), whole[shuffled.index.to_numpy()])
    assert 0 <= whole.min() and whole.max() < 1 and abs((whole < 0.2).mean() - 0.2) < 0.01  # uniform
    assert not np.array_equal(row_uniform(ids, seed=8), whole)  # the seed matters


def test_stored_labels_merge_per_partition_like_the_serial_merge(tmp_path, small_transactions):
    """The nightly job on Dask merges the label store into every partition: the same labels
    and label times as ``with_stored_labels`` on the whole frame."""
    import dask

    import dask.dataframe as dd

    from batch_jobs.dask_nightly import _with_labels
    from fraud.labels.merge import with_stored_labels
    from fraud.labels.store import open_label_store

    rows = small_transactions.iloc[:3000].reset_index(drop=True)
    legit, fraud = rows[rows["label"] == 0].iloc[[5, 2500]], rows[rows["label"] == 1].iloc[:1]
    store = open_label_store(str(tmp_path / "labels"))
    store.append([{"transaction_id": legit.iloc[0]["transaction_id"], "label": 1, "source": "reviewer",
                   "known_at": "2026-01-20T10:00:00+00:00"},
                  {"transaction_id": legit.iloc[1]["transaction_id"], "label": 1, "source": "bank",
                   "known_at": "2026-01-25T10:00:00+00:00"},
                  {"transaction_id": fraud.iloc[0]["transaction_id"], "label": 0, "source": "reviewer",
                   "known_at": "2026-02-20T10:00:00+00:00"}])
    serial = with_stored_labels(rows, str(tmp_path / "labels"))
    with dask.config.set(scheduler="sync"):
        merged = _with_labels(dd.from_pandas(rows, npartitions=3), str(tmp_path / "labels"), None, None).compute()
    pd.testing.assert_frame_equal(merged.reset_index(drop=True), serial.reset_index(drop=True))
    assert (merged["label"] != rows["label"]).sum() == 3  # the store did change something


def test_dask_folds_down_sample_negatives_and_weigh_them_back(tmp_path, small_transactions, default_config):
    """With negative_sample_rate < 1 a Dask fold keeps every fraud known at its cut-off and the
    negatives whose id draws below the rate, weighted 1 / rate (as the local folds weigh
    them), and its class totals are those weights' sums; at rate 1 it carries no weights."""
    import dask
    import dask.dataframe as dd
    from dask.distributed import Client

    from batch_jobs.dask_train import first_known, fraud_rows, make_folds
    from fraud.config import SplitConfig
    from fraud.features.dask_table import read_feature_table, write_feature_table
    from fraud.features.spec import FeatureSpec
    from fraud.splits import make_split

    spec = FeatureSpec.default(default_config.features, default_config.columns)
    rows = dd.from_pandas(small_transactions, npartitions=2)
    with dask.config.set(scheduler="synchronous"):
        path = write_feature_table(rows, spec, tmp_path / "features")
        known = first_known(fraud_rows(rows))
    split = make_split(small_transactions["timestamp"], SplitConfig(train_days=9, validation_days=5, test_days=5,
                                                                    prequential_folds=2),
                       pd.Timedelta(default_config.data.label_delay))
    assert len(split.folds) == 2
    rate, seed = 0.25, 11
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
        folds = make_folds(client, path, split, list(spec.names), rate, seed, known)
        whole = make_folds(client, path, split, list(spec.names), 1.0, seed, known)
        for fold, window, unweighted in zip(folds, split.folds, whole, strict=True):
            y, w = fold.y_train.compute().to_numpy(), fold.w_train.compute().to_numpy()
            table = read_feature_table(path, window.train.start, window.train.end).compute()
            frauds = ((table["label"] == 1) & (table["label_time"] < window.label_cutoff)).to_numpy()
            kept = frauds | (row_uniform(table["transaction_id"], seed) < rate)
            assert len(y) == fold.n_train == kept.sum() and y.sum() == frauds.sum() > 0
            assert set(w[y == 1]) == {1.0} and set(w[y == 0]) == {1 / rate}
            assert fold.totals == pytest.approx(((1 / rate) * (len(y) - y.sum()), float(y.sum())))
            assert 0.2 < (len(y) - y.sum()) / (~frauds).sum() < 0.3  # about a quarter of the negatives
            assert unweighted.w_train is None and unweighted.n_train == len(table)
