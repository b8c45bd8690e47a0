"""Scale-out: reading, validating and building the features of N simulated transactions,
single process against Dask with 1 and 2 workers; wall time and peak RSS per process.

    python bench/scale.py --rows 1000000 5000000 20000000 [--days 30] [--repeat 3] [--json bench/results/scale.json]

The data is simulated in shards (``TransactionSimulator(shard=k)``, one process each, one
day in memory at a time) into ``--data-dir/<rows>/``. Each measurement runs in its own
process tree: the single-process path is ``load_transactions`` + ``build_features`` (what
``fraud train`` does before training); the Dask path is ``read_transactions_dask`` +
``write_feature_table`` (what ``fraud train --dask`` does: the table goes to partitioned
Parquet, nothing comes back). A sampling thread reads every process's RSS (psutil) every
0.2 s: the driver's and each worker's peak. A run that fails (out of memory) is recorded
as such, and larger sizes are not tried for that path. ``--repeat``: the paths alternate
and the table keeps each one's fastest try (all tries are in the JSON).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
ROWS_PER_CUSTOMER_DAY = 2.08  # the simulator's rate (3.1k a day for 1,500 customers)
# a shard's population (customers, terminals a third of them, each customer's terminals within
# ~15 km) grows quadratically: 20M rows in 2 shards (160k customers, 53k terminals each) were
# killed for memory at 24 GiB building the customers' nearby terminals, so larger sets get
# more shards of the 5M set's size
ROWS_PER_SHARD = 2_500_000


def _shard(args) -> None:
    from fraud.simulator import TransactionSimulator

    out, shard, customers, days = args
    TransactionSimulator(n_customers=customers, n_terminals=max(100, customers // 3), seed=100 + shard,
                         shard=shard).write(out, days, progress=False)


def generate(out: Path, rows: int, days: int, shards: int) -> None:
    if out.exists() and any(out.rglob("*.parquet")):
        return
    customers = int(rows / (days * ROWS_PER_CUSTOMER_DAY) / shards)
    with multiprocessing.get_context("spawn").Pool(min(shards, os.cpu_count() or 1)) as pool:
        pool.map(_shard, [(out, k, customers, days) for k in range(shards)])


class PeakRSS:
    """Peak RSS of this process and of its children (the Dask workers), sampled."""

    def __init__(self):
        import psutil

        self.me = psutil.Process()
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                procs = {"driver": self.me, **{f"child-{c.pid}": c for c in self.me.children(recursive=True)}}
                for name, proc in procs.items():
                    self.peak[name] = max(self.peak.get(name, 0), proc.memory_info().rss)
            except Exception:  # a process ended between listing and reading
                pass
            time.sleep(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def measure(path: str, workers: int, write: bool = True) -> dict:
    """Runs in its own process: the features of ``path``; workers 0 = single process.
    ``write=False``: the Dask feature table is computed on the workers and counted, not
    written (the single-process path never writes its features)."""
    from fraud.config import load_config
    from fraud.features.spec import FeatureSpec

    config = load_config()
    out: dict = {"workers": workers, "written": write}
    with PeakRSS() as rss:
        started = time.perf_counter()
        if workers == 0:
            from fraud.features.batch import build_features
            from fraud.io import load_transactions

            frame, _ = load_transactions(path, config, require_label=True, quarantine_dir=tempfile.mkdtemp())
            read = time.perf_counter()
            spec = FeatureSpec.default(config.features, config.columns, config.data.timezone, set(frame.columns))
            build_features(frame, spec)
            rows = len(frame)
        else:
            from batch_jobs.dask_read import partitions_for, read_transactions_dask
            from fraud.features.dask_table import write_feature_table
            from fraud.features.distributed import dask_client

            with dask_client("local", n_workers=workers) as client:
                valid, report = read_transactions_dask(client, path, config, require_label=True,
                                                       quarantine_dir=tempfile.mkdtemp())
                rows = report.rows_ok
                valid = client.persist(valid.repartition(npartitions=partitions_for(client, rows)))
                valid.map_partitions(len).compute()
                read = time.perf_counter()
                spec = FeatureSpec.default(config.features, config.columns, config.data.timezone, set(valid.columns))
                if write:
                    target = tempfile.mkdtemp()
                    write_feature_table(valid, spec, Path(target) / "features")
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    from fraud.features.dask_table import feature_table

                    feature_table(valid, spec).map_partitions(len).sum().compute()
        done = time.perf_counter()
    out.update(rows=rows, read_s=read - started, features_s=done - read, total_s=done - started,
               features_rows_per_s_per_core=rows / (done - read) / max(workers, 1),
               peak_rss_mib={"driver": rss.peak.get("driver", 0) / 2**20,
                             "workers": sorted(v / 2**20 for k, v in rss.peak.items() if k != "driver")})
    return out


def run_one(path: Path, workers: int, timeout: float, write: bool = True) -> dict:
    cmd = [sys.executable, __file__, "--measure", str(path), "--workers", str(workers),
           *([] if write else ["--compute-only"])]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"workers": workers, "failed": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        return {"workers": workers, "failed": done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]}
    return json.loads(lines[-1])


def best_runs(tries: list[dict]) -> list[dict]:
    """Per path, the try with the shortest feature time (noise on a shared machine only
    ever adds time, as ``timeit`` reasons), or its failure."""
    best: dict[int, dict] = {}
    for run in tries:
        kept = best.get(run["workers"])
        if kept is None or ("failed" in kept and "failed" not in run) or \
                ("failed" not in run and run["features_s"] < kept["features_s"]):
            best[run["workers"]] = run
    return [best[w] for w in sorted(best)]


def plot(results: dict, path: Path) -> None:
    """Features throughput per core and peak RSS of the driver and the largest worker, by size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (speed, memory) = plt.subplots(1, 2, figsize=(10, 3.8))
    for workers, name in ((0, "single process"), (1, "Dask, 1 worker"), (2, "Dask, 2 workers")):
        done = [(e["rows_asked"], r) for e in results["sizes"] for r in e["runs"]
                if r.get("workers") == workers and "failed" not in r]
        if not done:
            continue
        rows = [r["rows"] for _, r in done]
        speed.plot(rows, [r["features_rows_per_s_per_core"] for _, r in done], "o-", label=name)
        memory.plot(rows, [r["peak_rss_mib"]["driver"] for _, r in done], "o-", label=f"{name}: driver")
        if workers:
            memory.plot(rows, [max(r["peak_rss_mib"]["workers"]) for _, r in done], "s--",
                        label=f"{name}: largest worker")
    for ax, title in ((speed, "features: rows/s per core"), (memory, "peak RSS (MiB)")):
        ax.set_xscale("log")
        ax.set_xlabel("transactions")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000, 20_000_000])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--shards", type=int, help="simulator processes' populations (default: one per "
                        f"{ROWS_PER_SHARD:,} rows, at least 2)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="0 = single process")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "fraud-scale")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per measurement")
    parser.add_argument("--repeat", type=int, default=1, help="tries per path and size, alternating "
                        "the paths; the table keeps each path's fastest")
    parser.add_argument("--json", type=Path, help="write the figures here (an existing file keeps the sizes "
                        "not measured now)")
    parser.add_argument("--plot", type=Path, help="draw the figure here (with --json: from that file alone if "
                                                   "--rows is not given on the command line)")
    parser.add_argument("--compute-only", action="store_true",
                        help="Dask: compute and count the feature table on the workers, do not write it")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plot and args.json and args.json.exists() and "--rows" not in (argv or sys.argv):
        plot(json.loads(args.json.read_text()), args.plot)
        return 0
    if args.measure:
        print(json.dumps(measure(args.measure, args.workers[0], write=not args.compute_only)), flush=True)
        return 0
    results = {"cpus": os.cpu_count(), "sizes": []}
    if args.json and args.json.exists():  # sizes measured now replace theirs; the others stay
        results["sizes"] = [e for e in json.loads(args.json.read_text())["sizes"] if e["rows_asked"] not in args.rows]
    failed: set[int] = set()
    for rows in args.rows:
        path = args.data_dir / str(rows)
        started = time.perf_counter()
        generate(path, rows, args.days, args.shards or max(2, -(-rows // ROWS_PER_SHARD)))
        entry = {"rows_asked": rows, "generate_s": time.perf_counter() - started, "repeat": args.repeat,
                 "uptime_before": os.popen("uptime").read().strip(), "tries": []}
        failing: set[int] = set()  # this size: a path that failed once is not tried again
        for attempt in range(args.repeat):  # the paths alternate, so a slow spell hits them all
            for workers in args.workers:
                if workers in failed or workers in failing:
                    if workers in failed and not attempt:
                        entry["tries"].append({"workers": workers, "failed": "skipped: a smaller size failed"})
                    continue
                run = run_one(path, workers, args.timeout, write=not args.compute_only)
                entry["tries"].append(run)
                if "failed" in run:
                    failing.add(workers)
                print(json.dumps({"rows": rows, "try": attempt, **run}), flush=True)
        entry["runs"] = best_runs(entry["tries"])
        failed |= {run["workers"] for run in entry["runs"] if "failed" in run}  # never completed this size
        entry["uptime_after"] = os.popen("uptime").read().strip()
        results["sizes"] = sorted([*results["sizes"], entry], key=lambda e: e["rows_asked"])
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2))
    if args.plot:
        plot(results, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
