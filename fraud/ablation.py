"""What each feature family contributes: the winner's configuration retrained without it.

For every family in the spec (row calendar, card velocity, card history, terminal, terminal
labels, compromise, ...; ``Feature.family``) the winner's kind and hyper-parameters are fitted
again, without a search, on the most recent fold with that family's columns left out, and
scored on the test window as the gate counts (cards with a fraud label already known left
out). The same is done with every feature, so each row compares like with like: one fit
each, the same rows, the same negative sample, the same early stopping on validation.

    table = ablation(data, config, spec, split, winner)   # winner: summary["winner"]
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np

from . import evaluation, metrics
from .config import FraudConfig
from .features.spec import FeatureSpec
from .models import Candidate, HyperParams
from .splits import TimeSplit, labels_known_at
from .training import LabelledFeatures

log = logging.getLogger(__name__)
ALL = "all features"


def families(spec: FeatureSpec) -> dict[str, list[str]]:
    """family -> its feature names, in the spec's order."""
    out: dict[str, list[str]] = {}
    for f in spec.features:
        out.setdefault(f.family, []).append(f.name)
    return out


def _fit_and_score(columns: list[str], train, y, weight, val, test, kind: str, params: dict,
                   config: FraudConfig) -> float:
    cfg = config.search
    known = {f.name for f in dataclasses.fields(HyperParams)} - {"extra"}
    hp = HyperParams(**{"n_estimators": cfg.max_rounds, **{k: v for k, v in params.items() if k in known}})
    model = Candidate(kind, hp, early_stopping_rounds=cfg.early_stopping_rounds, n_jobs=cfg.n_jobs, seed=cfg.seed,
                      device=cfg.device)
    model.fit(train.features[columns], y, weight, val.features[columns], val.label)
    return metrics.ranking(model.predict_proba(test.features[columns]), test.label)["average_precision"]


def ablation(data: LabelledFeatures, config: FraudConfig, spec: FeatureSpec, split: TimeSplit, winner: dict) -> dict:
    """Test AP with every feature and without each family (one fit each, no search);
    ``seconds`` is what it cost."""
    started = time.perf_counter()
    cfg = config.search
    counted = ~evaluation.known_fraud_card(data.timestamp, data.card_id, data.label, data.label_time)
    fold = split.folds[0]
    train = data.rows(fold.train.mask(data.timestamp))
    known = labels_known_at(train.label, train.label_time, fold.label_cutoff)
    rate = cfg.negative_sample_rate
    keep = (known == 1) | (np.random.default_rng(cfg.seed).random(len(known)) < rate)
    train, y = train.rows(keep), known[keep]
    weight = np.where(y == 1, 1.0, 1.0 / rate) if rate < 1 else None
    val = data.rows(fold.validation.mask(data.timestamp) & counted)
    test = data.rows(split.test.mask(data.timestamp) & counted)
    groups = families(spec)
    rows = []
    base = _fit_and_score(spec.names, train, y, weight, val, test, winner["kind"], winner["params"], config)
    rows.append({"family": ALL, "features": len(spec.names), "average_precision": base, "difference": 0.0})
    for family, names in groups.items():
        rest = [n for n in spec.names if n not in names]
        if not rest:
            continue
        ap = _fit_and_score(rest, train, y, weight, val, test, winner["kind"], winner["params"], config)
        rows.append({"family": family, "features": len(names), "average_precision": ap, "difference": ap - base})
        log.info("ablation: without %s (%d features) test AP %.4f (%+.4f)", family, len(names), ap, ap - base)
    return {"kind": winner["kind"], "rows": rows, "test_rows": int(len(test.label)),
            "seconds": time.perf_counter() - started}
