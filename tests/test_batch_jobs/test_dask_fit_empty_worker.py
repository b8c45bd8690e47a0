"""xgboost.dask on a cluster where a worker holds none of a fold's partitions: that worker
builds an empty DMatrix from the DaskDMatrix's arguments alone; without feature names given
there, the first evaluation fails ("data did not contain feature names"), a failure that
came and went with where Dask placed the partitions; and that worker's share of the
average-precision metric (XGBoost averages a custom metric over the workers) is NaN."""

from __future__ import annotations

import numpy as np
import pandas as pd


def test_a_focal_fit_succeeds_when_a_worker_holds_no_partition():
    from dask.distributed import Client, LocalCluster

    from batch_jobs.dask_fit import DaskFitter
    from fraud.models import Candidate, HyperParams
    from fraud.search import FoldData

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(3000, 4)), columns=["a", "b", "c", "d"])
    y = (X["a"] + rng.normal(scale=0.5, size=len(X)) > 1.8).astype(np.int8).to_numpy()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        import dask.dataframe as dd

        first, second = sorted(client.scheduler_info()["workers"])
        # training rows on both workers, the validation rows (one partition) on the first only:
        # the second worker's eval DMatrix is empty
        train = dd.from_pandas(X.iloc[:2000].assign(_y=y[:2000]), npartitions=2)
        train = dd.concat([client.persist(train.partitions[0], workers=[first]),
                           client.persist(train.partitions[1], workers=[second])])
        val = client.persist(dd.from_pandas(X.iloc[2000:].assign(_y=y[2000:]), npartitions=1), workers=[first])
        fold = FoldData(train[list(X.columns)], train["_y"].to_dask_array(lengths=True), None,
                        val[list(X.columns)], y[2000:])
        fold.y_val_dask = val["_y"]
        assert set(client.who_has(val).values()) == {(first,)} or all(
            w == (first,) for w in client.who_has(val).values())
        fitted = DaskFitter(client)(Candidate("focal_xgb", HyperParams(n_estimators=20, gamma=2.0, alpha=0.25),
                                              early_stopping_rounds=5), fold)
        probs = fitted.predict_proba(X.iloc[2000:])
    assert probs.shape == (1000,) and np.corrcoef(probs, X["a"].iloc[2000:])[0, 1] > 0.5
    # early stopping still compared the rounds (the empty worker's NaN AP would end it at round 0)
    assert fitted.n_rounds_ > 5
