"""How much does the focal objective cost over each library's built-in logistic loss?

Same data, same tree parameters, same rounds for every case; each case is timed
``--repeats`` times, interleaved. Two ratios against the built-in loss of the same
library: of the fastest runs ("ratio"), and the median over repeats of each focal run
divided by the built-in run of the same repeat ("paired": drifts of a noisy machine
cancel). Mean leaves per tree is printed beside each time so a cheaper objective
cannot hide behind smaller trees.

    python bench/objective_overhead.py                   # CPU: 500k x 32, 200 rounds
    python bench/objective_overhead.py --device cuda     # GPU: 4M x 32 (adds CuPy cases)

Targets (issue 2): CPU focal XGBoost / built-in <= 1.15, focal LightGBM / built-in <= 1.05,
focal XGBoost / CatBoost Focal <= 0.45; GPU on-device focal / built-in <= 1.3.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_json  # noqa: E402

from objectives import FocalLoss, LightGBMObjective, XGBoostObjective, booster_params  # noqa: E402

GAMMA, ALPHA = 2.0, 0.25


def make_data(n_rows: int, n_features: int, positive_rate: float, seed: int = 0):
    """Imbalanced binary data with a nonlinear signal; intercept tuned to the positive rate."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, n_features), dtype=np.float32)
    signal = 1.2 * X[:, 0] + 0.8 * X[:, 1] * X[:, 2] + 0.6 * np.abs(X[:, 3]) + 0.4 * X[:, 4]
    lo, hi = -20.0, 20.0
    for _ in range(60):  # bisection on the intercept for the wanted rate
        mid = (lo + hi) / 2
        rate = np.mean(1 / (1 + np.exp(-(signal - mid))))
        lo, hi = (mid, hi) if rate > positive_rate else (lo, mid)
    y = (rng.random(n_rows) < 1 / (1 + np.exp(-(signal - lo)))).astype(np.float32)
    return X, y


def numpy_focal(gamma: float, alpha: float):
    """The plain numpy-expression objective a blog recipe would write (for reference)."""

    def obj(predt, dtrain):
        y = dtrain.get_label()
        p = 1.0 / (1.0 + np.exp(-predt.astype(np.float64)))
        s = 2 * y - 1
        pt = np.where(y == 1, p, 1 - p)
        u = 1 - pt
        at = np.where(y == 1, alpha, 1 - alpha)
        log_pt = np.log(np.clip(pt, 1e-300, None))
        g = at * s * u**gamma * (gamma * pt * log_pt + pt - 1)
        h = at * pt * u**gamma * ((2 * gamma + 1) * u + gamma * (u - gamma * pt) * log_pt)
        return g, np.maximum(h, 1e-16)

    return obj


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def xgb_leaves(booster) -> float:
    df = booster.trees_to_dataframe()
    return float((df["Feature"] == "Leaf").sum() / df["Tree"].nunique())


def cpu_cases(X, y, rounds, depth, threads):
    import lightgbm as lgb
    import xgboost as xgb

    loss = FocalLoss(GAMMA, ALPHA)
    init = loss.init_margin(y)
    base = {"max_depth": depth, "eta": 0.1, "tree_method": "hist", "max_bin": 256,
            "min_child_weight": 0.0, "nthread": threads, "seed": 0}
    dtrain = xgb.DMatrix(X, label=y, nthread=threads)
    focal_obj = XGBoostObjective(loss)
    focal_obj(np.zeros(16, np.float32), xgb.DMatrix(X[:16], label=y[:16]))  # JIT warm-up

    lgb_base = {"max_depth": depth, "num_leaves": 2**depth - 1, "learning_rate": 0.1,
                "max_bin": 255, "min_sum_hessian_in_leaf": 0.0, "num_threads": threads,
                "verbose": -1, "seed": 0, "metric": "None"}
    lgb_train = lgb.Dataset(X, label=y, free_raw_data=False).construct()
    lgb_train_init = lgb.Dataset(X, label=y, init_score=np.full(len(y), init),
                                 free_raw_data=False).construct()

    cases = {
        "xgb_logistic": lambda: xgb.train({**base, "objective": "binary:logistic"}, dtrain, rounds),
        "xgb_focal": lambda: xgb.train(booster_params(loss, init, base), dtrain, rounds, obj=focal_obj),
        "xgb_focal_numpy_expr": lambda: xgb.train(booster_params(loss, init, base), dtrain, rounds,
                                                  obj=numpy_focal(GAMMA, ALPHA)),
        "lgb_logistic": lambda: lgb.train({**lgb_base, "objective": "binary"}, lgb_train, rounds),
        "lgb_focal": lambda: lgb.train({**lgb_base, "objective": LightGBMObjective(loss)},
                                       lgb_train_init, rounds),
    }
    try:
        import catboost

        pool = catboost.Pool(X, label=y)
        cb = {"depth": depth, "iterations": rounds, "learning_rate": 0.1, "thread_count": threads,
              "border_count": 254, "verbose": False, "random_seed": 0, "allow_writing_files": False}
        cases["catboost_logloss"] = lambda: catboost.CatBoost({**cb, "loss_function": "Logloss"}).fit(pool)
        cases["catboost_focal"] = lambda: catboost.CatBoost(
            {**cb, "loss_function": f"Focal:focal_alpha={ALPHA};focal_gamma={GAMMA}"}).fit(pool)
    except ImportError:
        print("catboost not installed: skipping the CatBoost comparison")
    return cases


def leaves_of(name, model) -> float | None:
    if name.startswith("xgb"):
        return xgb_leaves(model)
    if name.startswith("lgb"):
        dump = model.dump_model()["tree_info"]
        return float(np.mean([t["num_leaves"] for t in dump]))
    return None


def gpu_cases(X, y, rounds, depth):
    import cupy as cp
    import xgboost as xgb

    from objectives import train_on_device

    loss = FocalLoss(GAMMA, ALPHA)
    init = loss.init_margin(y)
    base = {"max_depth": depth, "eta": 0.1, "tree_method": "hist", "max_bin": 256,
            "min_child_weight": 0.0, "device": "cuda", "seed": 0}
    Xd, yd = cp.asarray(X), cp.asarray(y)
    dtrain = xgb.QuantileDMatrix(Xd, label=yd, max_bin=256)

    class CupyFedByHost:
        """CuPy grad/hess, but fed by XGBoost's host copy of the predictions."""

        def __call__(self, predt, dmat):
            return loss.grad_hess(cp.asarray(predt), yd)

    def synced(fn):
        def run():
            out = fn()
            cp.cuda.Device().synchronize()
            return out
        return run

    return {
        "xgb_logistic": synced(lambda: xgb.train({**base, "objective": "binary:logistic"}, dtrain, rounds)),
        "xgb_focal_numpy": synced(lambda: xgb.train(booster_params(loss, init, base), dtrain, rounds,
                                                    obj=XGBoostObjective(loss))),
        "xgb_focal_cupy_host_preds": synced(lambda: xgb.train(booster_params(loss, init, base), dtrain,
                                                              rounds, obj=CupyFedByHost())),
        "xgb_focal_on_device": synced(lambda: train_on_device(base, Xd, yd, loss, rounds,
                                                              init_margin=init)[0]),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--positive-rate", type=float, default=0.008)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--skip", nargs="*", default=[], help="case names to leave out")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    rows = args.rows or (4_000_000 if args.device == "cuda" else 500_000)
    X, y = make_data(rows, args.features, args.positive_rate)
    print(f"{rows} rows x {args.features} features, {y.mean():.4%} positives, {args.rounds} rounds, "
          f"depth {args.depth}, device {args.device}, {args.threads} threads")
    cases = gpu_cases(X, y, args.rounds, args.depth) if args.device == "cuda" else \
        cpu_cases(X, y, args.rounds, args.depth, args.threads)
    cases = {k: v for k, v in cases.items() if k not in args.skip}
    times = {name: [] for name in cases}
    leaves = {}
    for rep in range(args.repeats):
        for name, fn in cases.items():
            if name.endswith("numpy_expr") and rep > 0:
                continue  # the slow reference needs one run only
            seconds, model = timed(fn)
            times[name].append(seconds)
            leaves[name] = leaves_of(name, model)
            print(f"  run {rep + 1}: {name:28s} {seconds:8.2f} s", flush=True)
    best = {name: min(ts) for name, ts in times.items()}
    ratios = {}
    for name, seconds in best.items():
        lib = name.split("_")[0]
        ref = best.get(f"{lib}_logistic") or best.get(f"{lib}_logloss")
        ratios[name] = seconds / ref if ref else None
    # paired ratios: each focal run over the built-in run of the same repeat, so slow drifts of
    # a noisy machine cancel; the median of those is the headline figure
    paired = {}
    for name in times:
        lib = name.split("_")[0]
        ref = f"{lib}_logistic" if f"{lib}_logistic" in times else f"{lib}_logloss"
        if name != ref and ref in times and len(times[name]) == len(times[ref]):
            paired[name] = float(np.median(np.asarray(times[name]) / np.asarray(times[ref])))
    if "xgb_focal" in best and "catboost_focal" in best:
        ratios["xgb_focal_vs_catboost_focal"] = best["xgb_focal"] / best["catboost_focal"]
    if "xgb_focal_on_device" in best:
        ratios["xgb_focal_on_device_vs_builtin"] = best["xgb_focal_on_device"] / best["xgb_logistic"]
    print(f"\n{'case':30s} {'best s':>8s} {'ratio':>7s} {'paired':>7s} {'leaves/tree':>12s}")
    for name, seconds in best.items():
        lv = leaves.get(name)
        print(f"{name:30s} {seconds:8.2f} {ratios[name] or float('nan'):7.2f} {paired.get(name, float('nan')):7.2f} "
              f"{lv if lv is not None else float('nan'):12.1f}")
    for key in ("xgb_focal_vs_catboost_focal", "xgb_focal_on_device_vs_builtin"):
        if key in ratios:
            print(f"{key:30s} {ratios[key]:16.2f}")
    result = {"machine": platform.node(), "processor": platform.processor() or platform.machine(),
              "cpu_count": os.cpu_count(), "device": args.device, "rows": rows,
              "features": args.features, "rounds": args.rounds, "depth": args.depth,
              "positive_rate": float(y.mean()), "best_seconds": best, "ratios": ratios,
              "median_paired_ratios": paired, "all_seconds": times,
              "leaves_per_tree": leaves}
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
