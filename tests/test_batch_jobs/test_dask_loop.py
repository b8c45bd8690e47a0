"""The nightly job on Dask joins the operating loop as the single-process one does: the
challenger step runs before the gate, a version that passes is placed by [challenger]
shadow_first, and reviewed hard examples are up-weighted in the training rows on the workers."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from fraud.hard_examples import COLUMNS, hard_example_weights, open_hard_example_queue
from fraud.labels import open_label_store
from fraud.schema import LABEL, LABEL_TIME, TRANSACTION_ID

CUTOFF = pd.Timestamp("2026-02-01T00:00:00Z")


def _partition(n=4000, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < 0.05).astype(np.int8)
    return pd.DataFrame({TRANSACTION_ID: [f"T{i:06d}" for i in range(n)], "f": rng.random(n), LABEL: label,
                         LABEL_TIME: pd.Timestamp("2026-01-20T00:00:00Z")})


def test_training_rows_multiply_the_hard_examples_weight_into_the_sampling_weight():
    from batch_jobs.dask_train import W, _training_rows

    part = _partition()
    hard_ids = part[TRANSACTION_ID].iloc[::7].to_numpy(dtype=object)
    plain = _training_rows(part, ["f"], CUTOFF, 0.25, 3)
    weighted = _training_rows(part, ["f"], CUTOFF, 0.25, 3, (hard_ids, 5.0))
    assert len(plain) == len(weighted) and set(plain[W]) == {1.0, 4.0}     # frauds 1, kept legitimate 1 / 0.25
    ids = part.set_index("f").loc[weighted["f"], TRANSACTION_ID].to_numpy()   # "f" is unique: the rows' ids
    hard = np.isin(ids, hard_ids)
    assert hard.sum() > 50
    np.testing.assert_allclose(weighted[W].to_numpy(), plain[W].to_numpy() * np.where(hard, 5.0, 1.0))
    # without down-sampling (rate 1) the weights still reach the rows
    np.testing.assert_allclose(_training_rows(part, ["f"], CUTOFF, 1.0, 3, (hard_ids, 5.0))[W].to_numpy(),
                               np.where(np.isin(part[TRANSACTION_ID], hard_ids), 5.0, 1.0))


@pytest.fixture(scope="module")
def dask_night(tmp_path_factory, champion_registry, small_sim_dir, small_transactions, small_config,
               small_training):
    """One Dask night on the small simulation: a champion and a shadowed challenger in the
    registry, [challenger] shadow_first, weight 5 on reviewed hard examples; the gate's
    verdict forced to 'promote' so the placement is what is judged."""
    import batch_jobs.dask_nightly as dask_nightly
    import batch_jobs.dask_train as dask_train
    from batch_jobs.nightly import run_nightly
    from fraud.registry import ModelRegistry

    root = tmp_path_factory.mktemp("dask-loop")
    shutil.copytree(champion_registry("focal_xgb"), root / "registry")
    registry = ModelRegistry.open(root / "registry")
    champion = registry.champion()
    shadowed = registry.publish(small_training.bundle, twin=small_training.twin)
    registry.set_challenger(shadowed, reason="shadowed for the test")
    queue, labels = str(root / "queue"), str(root / "labels")
    hard = list(small_transactions.loc[small_transactions["label"] == 0, TRANSACTION_ID].iloc[:2000:10])
    open_hard_example_queue(queue).append(pd.DataFrame({
        TRANSACTION_ID: hard, "day": "2026-01-10", "kinds": [["near_threshold"]] * len(hard),
        "reasons": "[]"}).reindex(columns=COLUMNS), "2026-01-11T00:00Z")
    open_label_store(labels).append([{"transaction_id": t, "label": 0, "source": "review",
                                      "known_at": "2026-01-12T00:00:00Z"} for t in hard])
    config = small_config.model_copy(update={
        "search": small_config.search.model_copy(update={"candidates": ("focal_xgb",), "max_trials": 1,
                                                         "max_rounds": 30}),
        "tracking": small_config.tracking.model_copy(update={"enabled": False}),
        "challenger": small_config.challenger.model_copy(update={"shadow_first": True}),
        "training": small_config.training.model_copy(update={"hard_example_weight": 5.0}),
        "monitoring": small_config.monitoring.model_copy(update={"decisions_uri": str(root / "decisions")})})
    seen, real_folds, real_gate = {}, dask_train.make_folds, dask_nightly.gate_dask

    def folds(*args, **kwargs):
        seen["hard"] = args[7] if len(args) > 7 else kwargs.get("hard")
        return real_folds(*args, **kwargs)

    def gate(*args, **kwargs):
        return {**real_gate(*args, **kwargs), "decision": "promote", "reason": "forced by the test"}

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dask_train, "make_folds", folds)
        patch.setattr(dask_nightly, "gate_dask", gate)
        result = run_nightly(config, small_sim_dir, registry_uri=root / "registry", runs_dir=root / "runs",
                             score_latest=False, progress=False, dask="local", labels_uri=labels,
                             hard_examples_uri=queue)
    return result, registry, champion, shadowed, seen, hard, queue, labels


def test_the_dask_night_judges_the_challenger_first_and_shadows_rather_than_promotes(dask_night):
    result, registry, champion, shadowed, *_ = dask_night
    judged = result.summary["challenger"]["judged"]
    assert judged["version"] == shadowed and judged["action"] == "wait"   # no shadow rows yet: it waits
    # passed the gate, but shadow_first and a challenger in its period: the new version waits
    assert result.summary["challenger"]["new_version"] == "wait" and not result.promoted
    assert registry.champion() == champion and registry.challenger()["version"] == shadowed
    assert result.version in registry.versions()


def test_the_dask_night_up_weights_the_same_reviewed_rows_as_the_single_process_one(dask_night, small_transactions):
    result, *_, seen, hard, queue, labels = dask_night
    local = hard_example_weights(small_transactions[TRANSACTION_ID], 5.0, queue, labels)
    assert result.summary["hard_examples"] == {"weight": 5.0, "weighted_rows": int((local == 5).sum())}
    assert int((local == 5).sum()) == len(hard)
    ids, weight = seen["hard"]
    assert weight == 5.0 and set(ids) == set(hard)


def test_the_dask_gate_judges_the_champions_twin(dask_night, small_transactions):
    """The champion served a latest refit, trained on part of this window: its twin is judged."""
    from fraud import metrics
    from fraud.evaluation import known_fraud_card
    from fraud.features.batch import build_features

    result, registry, champion, *_ = dask_night
    split = result.summary["split"]["test"]
    tx = small_transactions
    ts = tx["timestamp"]
    rows = ((ts >= pd.Timestamp(split["start"])) & (ts < pd.Timestamp(split["end"]))).to_numpy() & ~known_fraud_card(
        ts, tx["card_id"].to_numpy(), tx["label"].to_numpy(), tx["label_time"])
    twin, served = registry.load_twin(champion), registry.load(champion)
    features = build_features(tx, twin.spec)[rows]
    labels = tx["label"].to_numpy()[rows]
    ap = {name: metrics.ranking(b.predict_proba(features), labels)["average_precision"]
          for name, b in (("twin", twin), ("served", served))}
    assert ap["served"] > ap["twin"] + 0.1     # the served latest trained on these days: in-sample
    # the twin's (to the tied scores' order: the Dask rows come in another order), not the served's
    assert result.summary["gate"]["scores"]["champion"]["average_precision"] == pytest.approx(ap["twin"], abs=0.005)
