"""Feature-building throughput and memory, batch (single process and Dask LocalCluster),
and online update+read latency per transaction.

    python bench/features.py                  # 1M and 5M rows
    python bench/features.py --sizes 1000000  # just 1M

Targets on the 2-core machine (issue 3): batch >= 500k rows/s single process; online
p99 <= 0.5 ms with the in-memory store. Peak memory is tracemalloc's peak of the call
(numpy and pandas buffers included), i.e. what building the features adds on top of the
input table.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_json  # noqa: E402
from fraud.config import load_config  # noqa: E402
from fraud.features.batch import build_features  # noqa: E402
from fraud.features.online import OnlineFeatures  # noqa: E402
from fraud.features.spec import FeatureSpec  # noqa: E402
from fraud.simulator import TransactionSimulator  # noqa: E402
from fraud.storage.kv import InMemoryKeyValueStore  # noqa: E402
from fraud.validation import Validator  # noqa: E402


def simulated(rows: int, seed: int = 0) -> pd.DataFrame:
    """About ``rows`` simulated transactions: more customers rather than more days, so the
    windows stay realistic (about 60 days)."""
    days = 60
    customers = max(1000, int(rows / days / 2.05))
    sim = TransactionSimulator(n_customers=customers, n_terminals=max(400, int(customers / 2.5)), seed=seed)
    frames = [frame for _, frame in sim.days(days, progress=False)]
    raw = pd.concat(frames, ignore_index=True).iloc[:rows]
    config = load_config()
    frame, _ = Validator(config.columns, config.data.label_delay.total_seconds()).validate(raw, 0)
    return frame


def measure_batch(frame: pd.DataFrame, spec: FeatureSpec, repeats: int = 2) -> dict:
    """Best of ``repeats`` untraced runs for speed; one more run under tracemalloc for memory
    (tracing slows allocation-heavy code several-fold, so it never overlaps the timing)."""
    build_features(frame.iloc[:5000], spec)  # JIT/cache warm-up
    seconds = min(_timed(lambda: build_features(frame, spec)) for _ in range(repeats))
    tracemalloc.start()
    build_features(frame, spec)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"seconds": seconds, "rows_per_s": len(frame) / seconds, "peak_mib": peak / 2**20}


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure_dask(frame: pd.DataFrame, spec: FeatureSpec, workers: int) -> dict:
    from fraud.features.distributed import build_features_dask, dask_client

    with dask_client("local", n_workers=workers) as client:
        build_features_dask(frame.iloc[:20000], spec, npartitions=workers)  # warm the workers
        start = time.perf_counter()
        build_features_dask(frame, spec, npartitions=max(workers * 2, 4))
        seconds = time.perf_counter() - start

        def peak_rss():
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        worker_peaks = client.run(peak_rss)
    return {"seconds": seconds, "rows_per_s": len(frame) / seconds, "workers": workers,
            "worker_peak_rss_mib": max(worker_peaks.values())}


def measure_online(frame: pd.DataFrame, spec: FeatureSpec, n: int = 20000) -> dict:
    t = frame["timestamp"]
    cut = t.min() + (t.max() - t.min()) * 0.8
    engine = OnlineFeatures(spec, InMemoryKeyValueStore())
    engine.load_history(frame, as_of=cut)
    replay = frame.loc[t >= cut].sort_values("timestamp").head(n).to_dict("records")
    latencies = np.empty(len(replay))
    for i, txn in enumerate(replay):
        start = time.perf_counter()
        engine.process(txn)
        latencies[i] = time.perf_counter() - start
    ms = latencies * 1e3
    return {"transactions": len(replay), "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean())}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    config = load_config()
    spec = FeatureSpec.default(config.features, config.columns)
    results = {"features": len(spec.names), "sizes": {}}
    for rows in args.sizes:
        frame = simulated(rows)
        entry = {"batch": measure_batch(frame, spec)}
        print(f"{len(frame):>9,d} rows  batch single process: {entry['batch']['rows_per_s']:>10,.0f} rows/s "
              f"({entry['batch']['seconds']:.2f} s, peak {entry['batch']['peak_mib']:.0f} MiB)", flush=True)
        if not args.skip_dask:
            entry["dask"] = measure_dask(frame, spec, args.workers)
            print(f"{len(frame):>9,d} rows  batch Dask LocalCluster ({args.workers} workers): "
                  f"{entry['dask']['rows_per_s']:>10,.0f} rows/s ({entry['dask']['seconds']:.2f} s, "
                  f"worker peak RSS {entry['dask']['worker_peak_rss_mib']:.0f} MiB)", flush=True)
        if rows == args.sizes[0]:
            results["online"] = measure_online(frame, spec)
            o = results["online"]
            print(f"online update+read, in-memory store, {o['transactions']} transactions: "
                  f"p50 {o['p50_ms']:.3f} ms, p99 {o['p99_ms']:.3f} ms", flush=True)
        results["sizes"][len(frame)] = entry
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
