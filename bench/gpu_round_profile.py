"""Where one on-device focal boosting round spends its time on the GPU, beside a built-in
``binary:logistic`` round on the same data (a diagnostic for bench/gpu_check.sh).

    python bench/gpu_round_profile.py --json bench/results/gpu/round_profile.json

Each part of the round is bracketed by a device synchronise, so the parts add up to more
than an unsynchronised round; the point is which part grows and by how much.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_json  # noqa: E402
from objective_overhead import ALPHA, GAMMA, make_data  # noqa: E402

from objectives import FocalLoss, booster_params  # noqa: E402


def main(argv=None) -> dict:
    import cupy as cp
    import xgboost as xgb

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    def timed(fn):
        cp.cuda.Device().synchronize()
        start = time.perf_counter()
        out = fn()
        cp.cuda.Device().synchronize()
        return out, time.perf_counter() - start

    X, y = make_data(args.rows, 32, 0.008)
    Xd, yd = cp.asarray(X), cp.asarray(y)
    loss = FocalLoss(GAMMA, ALPHA)
    init = loss.init_margin(y)
    base = {"max_depth": 6, "eta": 0.1, "tree_method": "hist", "max_bin": 256,
            "min_child_weight": 0.0, "device": "cuda", "seed": 0}
    dtrain = xgb.QuantileDMatrix(Xd, label=yd, max_bin=256)

    parts = {k: [] for k in ("builtin_update", "grad_hess", "boost", "predict_tree_column_major",
                             "predict_tree_row_major", "margin_add")}
    builtin = xgb.Booster({**base, "objective": "binary:logistic"}, [dtrain])
    for i in range(args.rounds):
        parts["builtin_update"].append(timed(lambda: builtin.update(dtrain, i))[1])

    booster = xgb.Booster(booster_params(loss, init, base), [dtrain])
    Xf = cp.asfortranarray(Xd)  # what train_on_device predicts from
    margin = booster.inplace_predict(Xf, predict_type="margin")
    zero = cp.zeros_like(margin)
    worst = 0.0
    for i in range(args.rounds):
        (grad, hess), t = timed(lambda: loss.grad_hess(margin, yd))
        parts["grad_hess"].append(t)
        parts["boost"].append(timed(lambda: booster.boost(dtrain, i, grad=grad, hess=hess))[1])
        tree, t = timed(lambda: booster.inplace_predict(Xf, predict_type="margin", iteration_range=(i, i + 1),
                                                        base_margin=zero))
        parts["predict_tree_column_major"].append(t)
        rows, t = timed(lambda: booster.inplace_predict(Xd, predict_type="margin", iteration_range=(i, i + 1),
                                                        base_margin=zero))
        parts["predict_tree_row_major"].append(t)
        worst = max(worst, float(cp.abs(rows - tree).max()))
        parts["margin_add"].append(timed(lambda: margin.__iadd__(tree))[1])

    def summary(ts):
        ms = np.asarray(ts) * 1e3
        return {"mean_ms": float(ms.mean()), "first_20_ms": float(ms[:20].mean()), "last_20_ms": float(ms[-20:].mean())}

    out = {"rows": args.rows, "rounds": args.rounds, "parts": {k: summary(v) for k, v in parts.items()},
           "max_abs_diff_row_vs_column_major": worst}
    for name, s in out["parts"].items():
        print(f"{name:24s} mean {s['mean_ms']:7.3f} ms  first 20 {s['first_20_ms']:7.3f}  last 20 {s['last_20_ms']:7.3f}")
    print(f"max |row-major - column-major tree margin| {worst:.3g}")
    write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
