"""Is the refitted model (fraud.refit) at least as good on the newest week as the model of
the search's newest fold, on data whose fraud pattern drifts?

    python bench/refit.py --json bench/results/refit.json             # the default 180 days
    python bench/refit.py --customers 2000 --terminals 800 --budget 60   # smaller and quicker

One training run with ``[split] refit = true`` gives both models: the fold's is the
winner's search model (``result.searches[winner].model``), the served one is refitted on
the newest label-complete window. Both are scored on the last 7 days of the judged window
(the part of the test window neither was fitted, calibrated or thresholded on), counting
as the team counts (cards with a fraud label known at the time left out), and compared
with the day-bootstrap interval of ``fraud.uncertainty.day_bootstrap`` (paired: the same
resampled days for both). Average precision ranks, so calibration does not enter it.
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
from fraud.evaluation import known_fraud_card  # noqa: E402
from fraud.features.batch import build_features  # noqa: E402
from fraud.features.spec import FeatureSpec  # noqa: E402
from fraud.io import load_transactions  # noqa: E402
from fraud.simulator import TransactionSimulator  # noqa: E402
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
    result = train(labelled, config, spec, progress=False)
    s = result.summary
    winner = s["winner"]["kind"]
    judged_end = pd.Timestamp(s["split"]["test"]["end"])
    week = ((labelled.timestamp >= judged_end - pd.Timedelta(days=7)) & (labelled.timestamp < judged_end)).to_numpy()
    known = known_fraud_card(labelled.timestamp, labelled.card_id, labelled.label, labelled.label_time)
    rows = labelled.rows(week & ~known)
    scores = {"first_fold": result.searches[winner].model.predict_proba(rows.features),
              "refit": result.bundle.model.predict_proba(rows.features)}
    compared = day_bootstrap(scores, rows.label, rows.days(), baselines=("first_fold",), challengers=("refit",),
                             seed=config.search.seed)
    compared.get("difference", {}).pop("verdict", None)   # worded for focal vs baseline: the figures say it
    fold = s["split"]["folds"][0]
    out = {"data": {"days": args.days, "customers": args.customers, "terminals": args.terminals,
                    "drift_day": drift, "rows": int(len(labelled.label))},
           "winner": winner, "search_budget_s": config.search.time_budget_s,
           "first_fold_model": {"train": fold["train"], "label_cutoff": fold["validation"]["start"],
                                "age_days": (pd.Timestamp(s["split"]["as_of"])
                                             - pd.Timestamp(fold["validation"]["start"])) / pd.Timedelta(days=1),
                                "rounds": result.searches[winner].model.n_rounds_},
           "served_model": s["served_model"],
           "newest_week": {"start": str((judged_end - pd.Timedelta(days=7)).date()), "end": str(judged_end.date()),
                           "rows": int(len(rows.label)), "frauds": int(rows.label.sum()),
                           "drifted_frauds": int(np.sum((rows.pattern == "card_testing_drift") & (rows.label == 1)))
                           if rows.pattern is not None else None, **compared},
           "seconds": {"simulate_and_load": simulated, "total": time.perf_counter() - started,
                       "train": s["seconds"]}}
    print(json.dumps(out, indent=1, default=str))
    write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
