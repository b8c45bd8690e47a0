"""The nightly job at full size: 180 simulated days (about 1.8M transactions), default
config, on this machine. Wall time and peak memory of the whole job, and the quality of
the chosen model next to the logistic baseline on the test window.

    python bench/nightly.py [--data data/transactions] [--json bench/results/nightly_cpu.json]

Target (issue 4): <= 10 minutes on the 2-core machine.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_json  # noqa: E402

from batch_jobs.nightly import ensure_default_data, run_nightly  # noqa: E402
from fraud.config import load_config  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="an existing simulated data directory (default: simulate into a temp dir)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", type=Path, help="keep the registry, runs (report) and data in this directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    config = load_config()
    with tempfile.TemporaryDirectory() as tmp:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            tmp = str(args.keep)
        data = Path(args.data) if args.data else Path(tmp) / "transactions"
        simulate_start = time.perf_counter()
        ensure_default_data(data, config)
        simulate_s = time.perf_counter() - simulate_start
        start = time.perf_counter()
        result = run_nightly(config, data, registry_uri=str(Path(tmp) / "registry"), runs_dir=Path(tmp) / "runs",
                             progress=False)
        wall = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    s = result.summary
    figures = {
        "rows": s["data"]["rows"], "simulate_s": simulate_s, "job_wall_s": wall, "peak_rss_mib": peak_mib,
        "winner": s["winner"], "choice": s["choice"]["reason"],
        "candidates_test": {k: {"test_average_precision": v["test_average_precision"], "test_auc_roc": v["test_auc_roc"],
                                "test_recall_at_capacity": v["test_recall_at_capacity"],
                                "validation_average_precision": v["validation_average_precision"]}
                            for k, v in s["candidates"].items()},
        "winner_test": {"auc_roc": s["test"]["auc_roc"], "average_precision": s["test"]["average_precision"],
                        "policy": s["test"]["policy"], "card_precision_at_k": s["test"]["card_precision_at_k"]["mean"],
                        "hard_example_rate": s["test"]["focal"]["hard_example_rate"]},
        "calibration_test": s["calibration"]["test"], "thresholds": s["policy"]["thresholds"],
        "comparison": s.get("comparison"), "search": s.get("search"), "evaluation": s.get("evaluation"),
        "test_unfiltered_average_precision": s.get("test_unfiltered", {}).get("average_precision"),
        "report": str(result.run_dir / "report.html") if args.keep else None,
    }
    print(f"\n{figures['rows']:,} transactions; job {wall:.0f} s (simulation {simulate_s:.0f} s before it); "
          f"peak RSS {peak_mib:,.0f} MiB")
    print(f"winner {s['winner']['kind']} (gamma {s['winner']['gamma']}, alpha {s['winner']['alpha']})")
    for kind, c in figures["candidates_test"].items():
        print(f"  {kind:24s} test AP {c['test_average_precision']:.4f}  AUC {c['test_auc_roc']:.4f}  "
              f"recall@capacity {c['test_recall_at_capacity']:.3f}")
    for kind, ci in (s.get("comparison") or {}).get("models", {}).items():
        print(f"  {kind:24s} test AP 95% interval over days {ci['low']:.4f} .. {ci['high']:.4f}")
    if (s.get("comparison") or {}).get("difference"):
        print("  " + s["comparison"]["difference"]["verdict"])
    write_json(args.json, figures)
    return figures


if __name__ == "__main__":
    main()
