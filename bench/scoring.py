"""Scoring API performance: in process, cold start, and over HTTP.

    python bench/scoring.py [--model-kind focal_xgb] [--only score-batch | --challenger | --live-drift]

1. In process, the app's own work for one transaction (validation, features from the
   in-memory store, model, reasons, routing), p50/p99, against the raw model predict of
   one row (``inplace_predict``, the model as served: FRAUD_MODEL_THREADS) in the same
   run. Targets: p99 <= 5 ms and <= 20x raw.
2. A batch of 1000 through the service vs raw ``inplace_predict`` on the same 1000 rows
   with all cores (the stricter baseline; the serving thread count is printed beside).
   Target: >= 0.5x the raw throughput. Beside it, the model stage alone and the reasons'
   attributions alone (every response carries reasons), as multiples of the raw time.
3. Cold start: import of ``lambda_handler.app`` with model load and SHA-256 verification,
   in fresh processes, as in the Lambda image (without scikit-learn, which serving does not
   use) and with it. Target <= 1.5 s.
4. Over HTTP: uvicorn on loopback, a bounded number of requests at a few concurrency
   levels; requests per second, p99 and errors.

5. ``--challenger`` (alone): the cost of a challenger beside the champion, the one-transaction
   latency with none, one in shadow and a 10 % canary, on the same transactions in turn.
6. ``--live-drift`` (alone): the cost of the live drift check (``fraud.monitoring.live``),
   the one-transaction latency with it off and on (windows of 1000), likewise interleaved.

A small model is trained first on simulated data (about a minute), so the bench needs
nothing but this repository.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import percentiles, write_json  # noqa: E402

from fraud.config import load_config  # noqa: E402
from fraud.features.batch import build_features  # noqa: E402
from fraud.features.spec import FeatureSpec  # noqa: E402
from fraud.monitoring.reference import REFERENCE_FILE  # noqa: E402
from fraud.registry import ModelRegistry  # noqa: E402
from fraud.simulator import TransactionSimulator  # noqa: E402
from fraud.training import LabelledFeatures, train  # noqa: E402

API_KEY = "bench-key"


def prepare(workdir: Path, kind: str):
    sim = TransactionSimulator(seed=11)
    frames = [frame for _, frame in sim.days(70, progress=False)]
    data = pd.concat(frames, ignore_index=True)
    from fraud.validation import Validator

    config = load_config(overrides={"split": {"train_days": 30, "validation_days": 7, "test_days": 7,
                                              "prequential_folds": 1},
                                    "search": {"candidates": [kind], "max_trials": 1, "time_budget_s": 60}})
    data, _ = Validator(config.columns, config.data.label_delay.total_seconds()).validate(data, 0)
    spec = FeatureSpec.default(config.features, config.columns)
    features = build_features(data, spec)
    result = train(LabelledFeatures.from_transactions(data, features), config, spec, progress=False)
    registry = ModelRegistry.open(workdir / "registry")
    registry.promote(registry.publish(result.bundle, extra={REFERENCE_FILE: result.reference}), "bench")
    return data, registry


def requests_of(frame: pd.DataFrame) -> list[dict]:
    cols = ["transaction_id", "timestamp", "card_id", "terminal_id", "amount", "currency", "channel", "country",
            "merchant_category", "card_lat", "card_lon", "terminal_lat", "terminal_lon"]
    out = []
    for rec in frame[cols].to_dict("records"):
        rec["timestamp"] = rec["timestamp"].isoformat()
        out.append({k: v for k, v in rec.items() if v is not None and v == v})
    return out


def in_process(data: pd.DataFrame, registry: ModelRegistry) -> dict:
    from lambda_handler.container import build_container
    from lambda_handler.schemas import BatchRequest, Transaction
    from lambda_handler.settings import Settings

    container = build_container(Settings(registry_uri=registry.uri, metrics="off",
                                         api_key_hashes=""))
    cut = data["timestamp"].max().normalize()
    container.online.load_history(data[data["timestamp"] < cut])
    day = data[data["timestamp"] >= cut].sort_values("timestamp")
    payloads = requests_of(day)
    single, batch_payloads = payloads[:3000], payloads[3000:4000]
    for p in single[:50]:  # warm-up (first calls build caches)
        container.scoring.score(Transaction.model_validate(p), "w")
    app_times = []
    for p in single[50:]:
        start = time.perf_counter()
        container.scoring.score(Transaction.model_validate(p), "bench")  # validation + the service
        app_times.append(time.perf_counter() - start)
    bundle = container.holder.bundle
    booster = bundle.model.estimator_.booster_ if bundle.model.kind != "logistic_xgb" else \
        bundle.model.estimator_.get_booster()
    rows = build_features(day, bundle.spec).to_numpy()[:1000]
    raw_times = []
    for i in range(len(rows)):
        row = rows[i:i + 1]
        start = time.perf_counter()
        if bundle.model.kind == "focal_lgbm":
            booster.predict(row, raw_score=True, **bundle.model.estimator_.lightgbm_predict_kwargs)
        else:
            booster.inplace_predict(row, predict_type="margin")
        raw_times.append(time.perf_counter() - start)
    app, raw = percentiles(app_times), percentiles(raw_times)

    request = BatchRequest.model_validate({"transactions": batch_payloads})
    start = time.perf_counter()
    container.scoring.score_many(request.transactions, "bench-batch")
    batch_s = time.perf_counter() - start

    def raw_batch_seconds() -> float:
        start = time.perf_counter()
        for _ in range(20):
            if bundle.model.kind == "focal_lgbm":
                booster.predict(rows, raw_score=True, **bundle.model.estimator_.lightgbm_predict_kwargs)
            else:
                booster.inplace_predict(rows, predict_type="margin")
        return (time.perf_counter() - start) / 20

    serving_threads_batch_s = raw_batch_seconds()  # the model as served (FRAUD_MODEL_THREADS)
    bundle.model.set_threads(0)
    raw_batch_s = raw_batch_seconds()  # all cores: the stricter baseline for the batch target
    bundle.model.set_threads(container.settings.model_threads)
    start = time.perf_counter()
    for _ in range(5):  # the model stage of the batch path: calibrated score, decision, reasons
        probs = bundle.predict_proba(rows)
        bundle.thresholds.decide(probs)
        bundle.reasons(rows, exact=False)
    model_stage_s = (time.perf_counter() - start) / 5
    bundle.model.set_threads(0)  # the attributions alone, on all cores like the raw baseline
    start = time.perf_counter()
    for _ in range(5):
        bundle.model.contributions(rows, exact=False)
    reasons_s = (time.perf_counter() - start) / 5
    bundle.model.set_threads(container.settings.model_threads)
    return {"model_stage_rows_per_s": len(rows) / model_stage_s,
            "model_stage_vs_raw": (len(rows) / model_stage_s) / (len(rows) / raw_batch_s),
            "attributions_seconds_vs_raw_seconds": reasons_s / raw_batch_s,
            "single": app, "raw_predict_one_row": raw,
            "ratio_p50": app["p50_ms"] / raw["p50_ms"], "ratio_p99": app["p99_ms"] / raw["p99_ms"],
            "batch_1000_rows_per_s": 1000 / batch_s, "raw_inplace_predict_rows_per_s": len(rows) / raw_batch_s,
            "raw_inplace_predict_serving_threads_rows_per_s": len(rows) / serving_threads_batch_s,
            "model_threads": container.settings.model_threads,
            "batch_vs_raw": (1000 / batch_s) / (len(rows) / raw_batch_s)}


def last_day_payloads(data: pd.DataFrame, n: int = 1500) -> tuple[pd.Timestamp, list]:
    """The first ``n`` transactions of the simulation's last day, as the API validates them."""
    from lambda_handler.schemas import Transaction

    cut = data["timestamp"].max().normalize()
    frame = data[data["timestamp"] >= cut].sort_values("timestamp")
    return cut, [Transaction.model_validate(p) for p in requests_of(frame)][:n]


def interleaved(services: dict, payloads: list, rounds: int) -> dict:
    """p50/p99 of one transaction through each service, the services taking turns on the
    same transaction (the machine's load hits them alike); each round scores fresh ids (a
    repeated id would be a replay), the first 50 of a round are a warm-up."""
    times = {label: [] for label in services}
    for r in range(rounds):
        for i, txn in enumerate(payloads):
            fresh = txn.model_copy(update={"transaction_id": f"{txn.transaction_id}-r{r}"})
            for label, scoring in services.items():
                start = time.perf_counter()
                scoring.score(fresh, "bench")
                if i >= 50:
                    times[label].append(time.perf_counter() - start)
    return {label: percentiles(t) for label, t in times.items()}


def live_drift_cost(data: pd.DataFrame, registry: ModelRegistry, rounds: int = 3) -> dict:
    """One transaction through the service with the live drift check off and on (the
    champion's reference, windows of 1000), no decision log: what the check adds."""
    from lambda_handler.container import build_container
    from lambda_handler.settings import Settings

    cut, payloads = last_day_payloads(data)
    services = {}
    for label, rows in (("off", 0), ("on", 1000)):
        container = build_container(Settings(registry_uri=registry.uri, metrics="memory", api_key_hashes="",
                                             decision_log_uri="off", live_drift_rows=rows))
        container.online.load_history(data[data["timestamp"] < cut], as_of=cut)
        services[label] = (container.scoring, container.sink)
    out = interleaved({label: scoring for label, (scoring, _) in services.items()}, payloads, rounds)
    out["windows"] = len(services["on"][1].values("LivePSIRows"))
    # the first window only: later rounds score the same payments again under fresh ids, which
    # the state counts twice (every card's velocity doubles), so their windows read as drift
    out["first_window_feature_psi_max"] = next(iter(services["on"][1].values("LiveFeaturePSIMax")), None)
    out["first_window_score_psi"] = next(iter(services["on"][1].values("LiveScorePSI")), None)
    out["extra_p50_ms"] = out["on"]["p50_ms"] - out["off"]["p50_ms"]
    out["extra_p99_ms"] = out["on"]["p99_ms"] - out["off"]["p99_ms"]
    return out


def challenger_cost(data: pd.DataFrame, registry: ModelRegistry, kind: str, workdir: Path, rounds: int = 3) -> dict:
    """One transaction through the service with no challenger, a shadow challenger (a second
    model of the same kind, another seed) and a 10 % canary: the same transactions, each
    scored by the three services in turn (the machine's load hits all three alike), p50/p99.
    Each service writes its decision log (the record carries the shadow score) under ``workdir``."""
    from lambda_handler.container import build_container
    from lambda_handler.settings import Settings

    sim_config = load_config(overrides={"split": {"train_days": 30, "validation_days": 7, "test_days": 7,
                                                  "prequential_folds": 1},
                                        "search": {"candidates": [kind], "max_trials": 1, "time_budget_s": 60,
                                                   "seed": 1}})
    from fraud.validation import Validator

    valid, _ = Validator(sim_config.columns, sim_config.data.label_delay.total_seconds()).validate(data, 0)
    spec = FeatureSpec.default(sim_config.features, sim_config.columns)
    other = train(LabelledFeatures.from_transactions(valid, build_features(valid, spec)), sim_config, spec,
                  progress=False)
    version = registry.publish(other.bundle)
    cut, payloads = last_day_payloads(data)
    services = {}
    for label, pointer in (("none", None), ("shadow", ("shadow", 0.0)), ("canary_10pct", ("canary", 0.1))):
        if pointer is None:
            registry.clear_challenger("bench")
        else:
            registry.set_challenger(version, *pointer, reason="bench")
        container = build_container(Settings(registry_uri=registry.uri, metrics="off", api_key_hashes="",
                                             decision_log_uri=str(workdir / "decisions" / label)))
        assert (container.holder.challenger is None) == (pointer is None)
        container.online.load_history(data[data["timestamp"] < cut])
        services[label] = container.scoring
    registry.clear_challenger("bench done")
    out = interleaved(services, payloads, rounds)
    from fraud.decisions import read_decisions

    logged = read_decisions(workdir / "decisions" / "shadow")
    out["shadow_log_rows_with_challenger_score"] = int((logged["shadow_model_version"] == version).sum())
    out["shadow_log_rows"] = int(len(logged))
    for label in ("shadow", "canary_10pct"):
        out[f"{label}_extra_p50_ms"] = out[label]["p50_ms"] - out["none"]["p50_ms"]
        out[f"{label}_extra_p99_ms"] = out[label]["p99_ms"] - out["none"]["p99_ms"]
    return out


def cold_start(registry: ModelRegistry, runs: int = 5) -> dict:
    code = ("import sys,time\n{block}t=time.perf_counter()\nimport lambda_handler.app as a\n"
            "print(time.perf_counter()-t, a.container.holder.version)")
    env = {**os.environ, "FRAUD_REGISTRY_URI": registry.uri, "FRAUD_METRICS": "off",
           "PYTHONPATH": str(ROOT)}
    out = {}
    for label, block in (("lambda_image_without_sklearn", "sys.modules['sklearn'] = None\n"),
                         ("with_sklearn_installed", "")):
        times = []
        for _ in range(runs):
            res = subprocess.run([sys.executable, "-c", code.format(block=block)], env=env, capture_output=True,
                                 text=True, check=True)
            times.append(float(res.stdout.split()[0]))
        out[label] = {"median_s": float(np.median(times)), "min_s": float(min(times)), "runs": times}
    return out


def over_http(data: pd.DataFrame, registry: ModelRegistry, levels=(1, 4, 16), per_level: int = 600) -> dict:
    import hashlib

    import httpx
    import uvicorn

    from lambda_handler.api import create_app
    from lambda_handler.container import build_container
    from lambda_handler.settings import Settings

    container = build_container(Settings(registry_uri=registry.uri, metrics="off",
                                         api_key_hashes=hashlib.sha256(API_KEY.encode()).hexdigest()))
    cut = data["timestamp"].max().normalize()
    container.online.load_history(data[data["timestamp"] < cut])
    payloads = requests_of(data[data["timestamp"] >= cut].sort_values("timestamp"))
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(container), host="127.0.0.1", port=port, log_level="error",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    results = {}
    offset = 0

    async def level(concurrency: int, batch: list[dict]):
        latencies, errors = [], 0
        queue = asyncio.Queue()
        for p in batch:
            queue.put_nowait(p)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10,
                                     headers={"x-api-key": API_KEY}) as client:
            async def worker():
                nonlocal errors
                while not queue.empty():
                    p = queue.get_nowait()
                    start = time.perf_counter()
                    r = await client.post("/v1/score", json=p)
                    latencies.append(time.perf_counter() - start)
                    errors += r.status_code != 200

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return latencies, errors, time.perf_counter() - start

    for c in levels:
        batch = payloads[offset:offset + per_level]
        offset += per_level
        lat, errors, wall = asyncio.run(level(c, batch))
        results[f"concurrency_{c}"] = {"requests": len(batch), "rps": len(batch) / wall, "errors": errors,
                                       **percentiles(lat)}
    server.should_exit = True
    thread.join(5)
    return results


def score_batch_file(data: pd.DataFrame, registry: ModelRegistry, workdir: Path, days: int = 7) -> dict:
    """``fraud score-batch`` on the last ``days`` days (the rest is the history its features
    read), against raw ``inplace_predict`` of the same model on the same rows' features with
    all cores: end to end (read, validate, history, features, scores, reasons, write) and the
    scoring stage alone (features from history, calibrated scores, decisions, reasons of the
    flagged rows), best of three each. Target: scoring stage >= 0.5x the raw throughput."""
    import batch_jobs.scoring as scoring
    from batch_jobs.history import lookback

    config = load_config()
    cut = data["timestamp"].max().normalize() - pd.Timedelta(days=days - 1)
    for name, part in (("history", data[data["timestamp"] < cut]), ("input", data[data["timestamp"] >= cut])):
        for day, rows in part.groupby(part["timestamp"].dt.strftime("%Y-%m-%d")):
            target = workdir / name / f"date={day}"
            target.mkdir(parents=True, exist_ok=True)
            rows.to_parquet(target / "part-0.parquet", index=False)
    bundle, version = registry.load_champion(), registry.champion()
    frame = data[data["timestamp"] >= cut].sort_values("timestamp", kind="stable").reset_index(drop=True)
    history = data[(data["timestamp"] < cut) & (data["timestamp"] >= cut - lookback(bundle.spec))]

    def best(fn, repeat=3):
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    end_to_end_s = best(lambda: scoring.score_batch(workdir / "input", workdir / "scored.parquet", config, registry,
                                                     history_source=workdir / "history", progress=False))
    features = scoring._features(frame, history, bundle, None)
    features_s = best(lambda: scoring._features(frame, history, bundle, None))
    score_s = best(lambda: scoring.score_frame(bundle, frame, features, version))
    # a floor for any engine that computes features from rows: the scored rows' own features
    # with no history read at all (wrong values, only the cost of touching each row once)
    from fraud.features.batch import build_features

    without_history_s = best(lambda: build_features(frame, bundle.spec))
    scored = scoring.score_frame(bundle, frame, features, version)
    all_reasons_s = best(lambda: bundle.reasons(features, k=scoring.REASONS), repeat=1)  # before: every row
    bundle.model.set_threads(0)
    matrix = features.to_numpy(np.float32)
    if bundle.model.kind == "focal_lgbm":
        booster = bundle.model.estimator_.booster_
        raw_s = best(lambda: booster.predict(matrix, raw_score=True, **bundle.model.estimator_.lightgbm_predict_kwargs))
    else:
        booster = bundle.model.estimator_.booster_ if bundle.model.kind != "logistic_xgb" else \
            bundle.model.estimator_.get_booster()
        raw_s = best(lambda: booster.inplace_predict(matrix, predict_type="margin"))
    n = len(frame)
    return {"rows": n, "history_rows": len(history), "flagged_rows": int((scored["decision"] != "approve").sum()),
            "end_to_end_rows_per_s": n / end_to_end_s, "scoring_stage_rows_per_s": n / (features_s + score_s),
            "features_s": features_s, "score_frame_s": score_s, "raw_inplace_predict_s": raw_s,
            "features_without_history_s": without_history_s,
            "floor_vs_raw": raw_s / (without_history_s + score_s),
            "reasons_for_every_row_s": all_reasons_s,
            "raw_inplace_predict_rows_per_s": n / raw_s,
            "scoring_stage_vs_raw": (n / (features_s + score_s)) / (n / raw_s),
            "end_to_end_vs_raw": (n / end_to_end_s) / (n / raw_s)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-kind", default="focal_xgb", choices=["focal_xgb", "focal_lgbm"])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", choices=["score-batch"], help="run only this part")
    parser.add_argument("--challenger", action="store_true",
                        help="run only the one-transaction latency without a challenger, with one in shadow and "
                             "with a 10 %% canary")
    parser.add_argument("--live-drift", action="store_true",
                        help="run only the one-transaction latency with the live drift check off and on")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data, registry = prepare(Path(tmp), args.model_kind)
        if args.live_drift:
            results = {"model_kind": args.model_kind, "live_drift": live_drift_cost(data, registry)}
            c = results["live_drift"]
            print(f"one transaction in process, live drift off: p50 {c['off']['p50_ms']:.3f} ms, p99 "
                  f"{c['off']['p99_ms']:.2f} ms; on: p50 {c['on']['p50_ms']:.3f} ms, p99 {c['on']['p99_ms']:.2f} ms "
                  f"(+{c['extra_p50_ms']:.3f} ms at p50, {c['on']['p50_ms'] / c['off']['p50_ms']:.3f}x; "
                  f"{c['off']['n']} transactions each; {c['windows']} windows, the first: score PSI "
                  f"{c['first_window_score_psi']:.3f}, largest feature PSI {c['first_window_feature_psi_max']:.3f})")
            write_json(args.json, results)
            return results
        if args.challenger:
            results = {"model_kind": args.model_kind, "challenger": challenger_cost(data, registry, args.model_kind,
                                                                                    Path(tmp))}
            c = results["challenger"]
            print("one transaction in process, " + "; ".join(
                f"{label}: p50 {c[label]['p50_ms']:.2f} ms, p99 {c[label]['p99_ms']:.2f} ms"
                for label in ("none", "shadow", "canary_10pct"))
                  + f" (shadow adds {c['shadow_extra_p50_ms']:+.2f} ms at p50, {c['shadow_extra_p99_ms']:+.2f} ms "
                    f"at p99; {c['none']['n']} transactions each)")
            write_json(args.json, results)
            return results
        results = {"model_kind": args.model_kind, "score_batch": score_batch_file(data, registry, Path(tmp))}
        if not args.only:
            results.update(in_process=in_process(data, registry), cold_start=cold_start(registry),
                           http=over_http(data, registry))
    sb = results["score_batch"]
    print(f"score-batch, {sb['rows']:,} rows ({sb['history_rows']:,} of history, {sb['flagged_rows']:,} flagged): "
          f"scoring stage {sb['scoring_stage_rows_per_s']:,.0f} rows/s (features {sb['features_s']:.3f} s + scores, "
          f"decisions, reasons {sb['score_frame_s']:.3f} s) vs raw inplace_predict "
          f"{sb['raw_inplace_predict_rows_per_s']:,.0f} rows/s: {sb['scoring_stage_vs_raw']:.2f}x (target >= 0.5x); "
          f"end to end with reading and writing {sb['end_to_end_rows_per_s']:,.0f} rows/s "
          f"({sb['end_to_end_vs_raw']:.2f}x); floor (the scored rows' features with no history "
          f"{sb['features_without_history_s']:.3f} s + scores): {sb['floor_vs_raw']:.2f}x; "
          f"reasons for every row, as before, would add "
          f"{sb['reasons_for_every_row_s']:.3f} s")
    if args.only:
        write_json(args.json, results)
        return results
    ip = results["in_process"]
    print(f"in process, one transaction: p50 {ip['single']['p50_ms']:.2f} ms, p99 {ip['single']['p99_ms']:.2f} ms; "
          f"raw predict of one row p50 {ip['raw_predict_one_row']['p50_ms']:.3f} ms, p99 "
          f"{ip['raw_predict_one_row']['p99_ms']:.3f} ms; ratio p50 {ip['ratio_p50']:.1f}x, p99 {ip['ratio_p99']:.1f}x")
    print(f"batch of 1000: {ip['batch_1000_rows_per_s']:,.0f} rows/s vs raw inplace_predict on all cores "
          f"{ip['raw_inplace_predict_rows_per_s']:,.0f} rows/s ({ip['batch_vs_raw']:.4f}x; on the serving "
          f"{ip['model_threads']} thread(s): {ip['raw_inplace_predict_serving_threads_rows_per_s']:,.0f} rows/s); "
          "model stage alone "
          f"{ip['model_stage_rows_per_s']:,.0f} rows/s ({ip['model_stage_vs_raw']:.3f}x); the reasons' "
          f"attributions alone take {ip['attributions_seconds_vs_raw_seconds']:.1f}x the raw predict's time")
    for label, cs in results["cold_start"].items():
        print(f"cold start ({label}): median {cs['median_s']:.2f} s (min {cs['min_s']:.2f} s)")
    for level, h in results["http"].items():
        print(f"HTTP {level}: {h['rps']:.0f} req/s, p50 {h['p50_ms']:.1f} ms, p99 {h['p99_ms']:.1f} ms, "
              f"{h['errors']} errors")
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
