"""Is the served model (fraud.refit's latest refit) at least as good on the newest week as
the model of the search's newest fold, and as its twin, on data whose fraud pattern drifts?
And does the twin's calibration, mapped onto it, still fit it?

    python bench/refit.py --json bench/results/refit_drift.json                    # 180 days, drift
    python bench/refit.py --drift-day -1 --json bench/results/refit_nodrift.json   # no drift
    python bench/refit.py --customers 2000 --terminals 800 --budget 60             # quicker

The served model trains up to ``as_of`` minus the label delay, so no labelled window after it
exists at training time. The bench trains as of a week before the simulation's end and
scores the newest days of that run, ``[as_of - label delay, as_of)`` (the transfer check's
days: no model trained, calibrated or thresholded on them), with the labels that arrived
by the simulation's end: all of them. One training run gives the three models: fold 0's
(``result.searches[winner].model``), the twin (``result.twin``) and the served latest
(``result.bundle``). Counted as the team counts (cards with a fraud label known at the time
left out); AP with the paired day-bootstrap interval of ``fraud.uncertainty.day_bootstrap``
(the same resampled days for all). Average precision ranks, so calibration does not enter
it; calibration is judged apart: each model under its own calibrator and thresholds, the
expected calibration error and the precision and recall of the rows sent to review.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_json  # noqa: E402

from fraud.config import load_config  # noqa: E402
from fraud.calibration import expected_calibration_error  # noqa: E402
from fraud.evaluation import known_fraud_card  # noqa: E402
from fraud.features.batch import build_features  # noqa: E402
from fraud.features.spec import FeatureSpec  # noqa: E402
from fraud.io import load_transactions  # noqa: E402
from fraud.simulator import TransactionSimulator  # noqa: E402
from fraud.splits import make_split  # noqa: E402
from fraud.training import LabelledFeatures, train  # noqa: E402
from fraud.uncertainty import day_bootstrap  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--terminals", type=int, default=2000)
    parser.add_argument("--drift-day", type=int, default=120, help="-1: no drift")
    parser.add_argument("--budget", type=float, default=None, help="search seconds (default: the config's)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    drift = None if args.drift_day < 0 else args.drift_day
    overrides = {"search": {"time_budget_s": args.budget}} if args.budget else {}
    config = load_config(overrides={**overrides, "split": {"refit": True}, "tracking": {"enabled": False}})
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        TransactionSimulator(n_customers=args.customers, n_terminals=args.terminals, seed=config.simulation.seed,
                             label_delay_days=config.data.label_delay_days, drift_day=drift).write(
            Path(tmp) / "tx", args.days, progress=False)
        data, _ = load_transactions(Path(tmp) / "tx", config, require_label=True)
    simulated = time.perf_counter() - started
    spec = FeatureSpec.default(config.features, config.columns)
    labelled = LabelledFeatures.from_transactions(data, build_features(data, spec))
    delay = pd.Timedelta(config.data.label_delay)
    as_of = labelled.timestamp.max().ceil("D") - pd.Timedelta(days=7)   # a week of labels to come
    split = make_split(labelled.timestamp, config.split, delay, as_of)
    result = train(labelled, config, spec, split=split, progress=False)
    s = result.summary
    winner = s["winner"]["kind"]
    week = ((labelled.timestamp >= as_of - delay) & (labelled.timestamp < as_of)).to_numpy()
    known = known_fraud_card(labelled.timestamp, labelled.card_id, labelled.label, labelled.label_time)
    rows = labelled.rows(week & ~known)
    twin = result.twin or result.bundle   # the bundle is the twin when the transfer check refused the latest
    bundles = {"first_fold": None, "twin": twin, "latest": result.bundle}
    raw = {"first_fold": result.searches[winner].model.predict_proba(rows.features),
           "twin": twin.model.predict_proba(rows.features), "latest": result.bundle.model.predict_proba(rows.features)}
    versus_fold = day_bootstrap(raw, rows.label, rows.days(), baselines=("first_fold",), challengers=("latest",),
                                seed=config.search.seed)
    versus_twin = day_bootstrap(raw, rows.label, rows.days(), baselines=("twin",), challengers=("latest",),
                                seed=config.search.seed)
    for compared in (versus_fold, versus_twin):
        compared.get("difference", {}).pop("verdict", None)   # worded for focal vs baseline: the figures say it
    calibration = {}
    for name in ("twin", "latest"):   # each under the calibrator and thresholds it is served with
        probs = bundles[name].calibrator.predict(raw[name])
        looked = probs >= bundles[name].thresholds.review
        calibration[name] = {"ece": expected_calibration_error(probs, rows.label),
                             "mean_predicted": float(probs.mean()), "fraud_rate": float(rows.label.mean()),
                             "review_share": float(looked.mean()),
                             "review_precision": float(rows.label[looked].mean()) if looked.any() else None,
                             "review_recall": float(rows.label[looked].sum() / max(rows.label.sum(), 1))}
    fold = s["split"]["folds"][0]
    out = {"data": {"days": args.days, "customers": args.customers, "terminals": args.terminals,
                    "drift_day": drift, "rows": int(len(labelled.label)), "as_of": as_of.isoformat()},
           "winner": winner, "search_budget_s": config.search.time_budget_s,
           "first_fold_model": {"train": fold["train"], "label_cutoff": fold["validation"]["start"],
                                "age_days": (as_of - pd.Timestamp(fold["validation"]["start"])) / pd.Timedelta(days=1),
                                "rounds": result.searches[winner].model.n_rounds_},
           "served_model": s["served_model"],
           "newest_days": {"start": str((as_of - delay).date()), "end": str(as_of.date()),
                           "rows": int(len(rows.label)), "frauds": int(rows.label.sum()),
                           "drifted_frauds": int(np.sum((rows.pattern == "card_testing_drift") & (rows.label == 1)))
                           if rows.pattern is not None else None,
                           "latest_vs_first_fold": versus_fold, "latest_vs_twin": versus_twin,
                           "calibration": calibration},
           "seconds": {"simulate_and_load": simulated, "total": time.perf_counter() - started,
                       "train": s["seconds"]}}
    print(json.dumps(out, indent=1, default=str))
    write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
