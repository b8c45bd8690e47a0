"""Train the nightly job's focal XGBoost on the CPU and on the GPU with the same data,
windows and hyper-parameters, and compare the test figures (they should agree within
noise) and the training time.

    python bench/device_compare.py --days 120 --json bench/results/device_compare.json

Needs a CUDA GPU for the second run; part of bench/gpu_check.sh.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_json  # noqa: E402

from fraud.config import load_config  # noqa: E402
from fraud.features.batch import build_features  # noqa: E402
from fraud.features.spec import FeatureSpec  # noqa: E402
from fraud.io import load_transactions  # noqa: E402
from fraud.simulator import TransactionSimulator  # noqa: E402
from fraud.training import LabelledFeatures, train  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        TransactionSimulator(seed=42).write(Path(tmp) / "tx", args.days, progress=False)
        base = load_config(overrides={"split": {"train_days": 60, "validation_days": 14, "test_days": 14,
                                                "prequential_folds": 1},
                                      "search": {"candidates": ["focal_xgb"], "max_trials": 1}})
        data, _ = load_transactions(Path(tmp) / "tx", base, require_label=True)
    spec = FeatureSpec.default(base.features, base.columns)
    features = build_features(data, spec)
    labelled = LabelledFeatures.from_transactions(data, features)
    out = {}
    for device in ("cpu", "cuda"):
        config = base.model_copy(update={"search": base.search.model_copy(update={"device": device})})
        start = time.perf_counter()
        result = train(labelled, config, spec, progress=False)
        s = result.summary
        out[device] = {"seconds": time.perf_counter() - start, "test_average_precision": s["test"]["average_precision"],
                       "test_auc_roc": s["test"]["auc_roc"], "recall_at_thresholds": s["test"]["policy"]["recall"],
                       "rounds": s["winner"]["rounds"]}
        print(device, json.dumps(out[device]))
    out["ap_difference"] = out["cuda"]["test_average_precision"] - out["cpu"]["test_average_precision"]
    write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
