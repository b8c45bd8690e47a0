"""Up-weighting reviewed hard examples: off by default; the weight reaches the search's fits
and the refit; weight 1 trains the very model no queue trains, weight 5 another one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import SMALL_TRAINING
from fraud.config import load_config
from fraud.hard_examples import COLUMNS, hard_example_weights, open_hard_example_queue
from fraud.labels import open_label_store
from fraud.refit import plan_refit, refit_rows
from fraud.search import local_fit
from fraud.training import LabelledFeatures, train

ONE_TRIAL = {**SMALL_TRAINING, "search": {**SMALL_TRAINING["search"], "candidates": ["focal_xgb"], "max_trials": 1,
                                          "max_rounds": 40}}


def queued(uri, ids):
    """Queue ``ids`` as hard examples of one day (the queue's own format)."""
    rows = pd.DataFrame({"transaction_id": list(ids), "day": "2026-01-10", "kinds": [["near_threshold"]] * len(ids),
                         "reasons": "[]"})
    open_hard_example_queue(uri).append(rows.reindex(columns=COLUMNS), "2026-01-11T00:00Z")


def stored(uri, ids, known_at="2026-01-12T00:00:00Z"):
    open_label_store(uri).append([{"transaction_id": t, "label": 0, "source": "review", "known_at": known_at}
                                  for t in ids])


def test_only_reviewed_hard_examples_get_the_weight_and_only_when_it_is_not_1(tmp_path):
    queue, labels = str(tmp_path / "queue"), str(tmp_path / "labels")
    queued(queue, ["a", "b", "c"])
    stored(labels, ["a", "b", "z"])                               # c is not reviewed; z is not a hard example
    stored(labels, ["c"], known_at="2026-03-01T00:00:00Z")        # reviewed only after as_of
    ids = ["a", "b", "c", "z", "y"]
    got = hard_example_weights(ids, 5.0, queue, labels, as_of=pd.Timestamp("2026-02-01T00:00:00Z"))
    assert got.tolist() == [5.0, 5.0, 1.0, 1.0, 1.0]
    assert hard_example_weights(ids, 5.0, queue, labels).tolist() == [5.0, 5.0, 5.0, 1.0, 1.0]  # no as_of: all
    assert hard_example_weights(ids, 1.0, queue, labels) is None     # weight 1: nothing changes
    assert hard_example_weights(["y"], 5.0, queue, labels) is None   # none of them in the data
    assert load_config().training.hard_example_weight == 1.0          # off by default


def test_the_nightly_job_passes_the_weights_to_training_and_not_by_default(tmp_path, small_sim_dir,
                                                                           small_transactions, monkeypatch):
    import batch_jobs.nightly as nightly

    queue, labels = str(tmp_path / "queue"), str(tmp_path / "labels")
    hard = list(small_transactions["transaction_id"].iloc[[10, 500, 4000]])
    queued(queue, hard)
    stored(labels, hard)
    seen = []

    class Stop(Exception):
        pass

    def spy(data, *args, **kwargs):
        seen.append(data)
        raise Stop

    monkeypatch.setattr(nightly, "train", spy)
    monkeypatch.setattr(nightly, "build_features", lambda t, spec: t.iloc[:, :0])
    for weight in (None, 5.0):
        config = load_config(overrides={**SMALL_TRAINING, **({"training": {"hard_example_weight": weight}}
                                                             if weight else {})})
        with pytest.raises(Stop):
            nightly._prepare_and_train(config, small_sim_dir, tmp_path / "run", False, None, False, None,
                                       nightly.TrainingWindow(), labels, queue)
    assert seen[0].weight is None                                    # the default: no weights at all
    ids = small_transactions["transaction_id"].to_numpy()
    assert set(ids[seen[1].weight == 5.0]) == set(hard) and (seen[1].weight[~np.isin(ids, hard)] == 1).all()


@pytest.fixture(scope="module")
def fits(small_transactions, small_features):
    """Train one focal_xgb trial with no weights, all-1 weights and weight 5 on 300 frauds
    and legitimate rows of fold 0's training window; the weights each fit received."""
    spec, features = small_features
    config = load_config(overrides=ONE_TRIAL)
    rng = np.random.default_rng(3)
    first = small_transactions["timestamp"].min() + pd.Timedelta(days=3)
    window = (small_transactions["timestamp"] < first + pd.Timedelta(days=10)).to_numpy() & (
        small_transactions["timestamp"] >= first).to_numpy()
    chosen = rng.choice(np.flatnonzero(window), 300, replace=False)
    five = np.ones(len(small_transactions))
    five[chosen] = 5.0
    out = {}
    for name, weight in (("none", None), ("ones", np.ones(len(small_transactions))), ("five", five)):
        received = []

        def fitter(cand, fold, monitor=None, received=received):
            received.append(fold.w_train)
            return local_fit(cand, fold, monitor)

        data = LabelledFeatures.from_transactions(small_transactions, features, weight)
        result = train(data, config, spec, progress=False, fitter=fitter)
        # fold 0's model: its training window holds the up-weighted rows (the served latest's does not)
        out[name] = (result.searches["focal_xgb"].model.predict_proba(features.iloc[:3000]), received, data, config)
    return out


def test_weight_1_trains_the_model_no_queue_trains(fits):
    assert np.array_equal(fits["none"][0], fits["ones"][0])


def test_weight_5_reaches_the_search_fit_and_changes_the_model(fits):
    none_w, five_w = fits["none"][1][0], fits["five"][1][0]
    ratio = five_w / none_w                                          # the same sampled rows, x5 on the hard ones
    assert set(np.unique(ratio)) == {1.0, 5.0} and (ratio == 5).sum() > 50
    assert np.abs(fits["five"][0] - fits["none"][0]).max() > 1e-4


def test_weight_5_reaches_the_refit(fits):
    _, _, data, config = fits["five"]
    _, _, plain, _ = fits["none"]
    from fraud.splits import make_split

    split = make_split(data.timestamp, config.split, pd.Timedelta(config.data.label_delay))
    plan = plan_refit(split, config.split)
    rows, _, weight = refit_rows(data, plan, config.search)
    _, _, base = refit_rows(plain, plan, config.search)
    assert np.allclose(weight, base * rows.weight) and (rows.weight == 5).any()
    # the latest refit's rows carry theirs too (none of these fall in its window: all 1)
    rows, _, weight = refit_rows(data, plan, config.search, latest=True)
    _, _, base = refit_rows(plain, plan, config.search, latest=True)
    assert np.allclose(weight, base * rows.weight) and rows.weight is not None
