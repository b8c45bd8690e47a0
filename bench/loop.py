"""The operating loop, end to end on simulated days (issue 16, section 7).

    python bench/loop.py [--days 64] [--start-day 36] [--drift-day 40] [--customers 1500]
                         [--json bench/results/loop.json] [--plot docs/loop.png] [--keep DIR]

Runs ``batch_jobs.loop_drill``: a champion trained as of ``start-day``, then every day replayed
through the API (decision log, feedback with realistic delays), each night the monitor, the
retrain trigger, the nightly job (a retrained model is shadowed first) and the shadow gate.
Reports the days from the drift's onset to detection, retrain, promotion and recovery, and
recall on the new fraud pattern with the first champion and after the promotion; plots the
recall per day with those moments marked.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_json  # noqa: E402

from batch_jobs.loop_drill import DrillPlan, DrillResult, run_drill  # noqa: E402
from fraud.config import load_config  # noqa: E402

QUIET = ("fraud.search", "fraud.training", "fraud.refit", "batch_jobs.nightly", "fraud.registry", "fraud.report",
         "fraud.tracking", "mlflow", "httpx", "lambda_handler", "fraud.io", "fraud.labels", "fraud.simulator",
         "fraud.features", "batch_jobs.state_catch_up", "fraud.decisions", "fraud.monitoring")


def plot(result: DrillResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    days = pd.to_datetime([d.day for d in result.days])
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    ax.plot(days, [d.recall for d in result.days], marker="o", ms=3, label="recall, all frauds")
    ax.plot(days, [d.new_pattern_recall for d in result.days], marker="s", ms=3,
            label="recall, new pattern (card_testing_drift)")
    ax.axhline(result.plan.recall_slo, color="grey", ls=":", lw=1, label="recall SLO ([monitoring])")
    onset = pd.Timestamp(result.milestones["onset"])
    marks: dict[int, list[str]] = {0: ["onset"]}
    for name in ("detection", "retrain", "promotion", "recovery"):
        n = result.milestones.get(f"days_to_{name}")
        if n is not None:
            marks.setdefault(n, []).append(name)
    for n, names in marks.items():  # one line a day, its moments named together
        ax.axvline(onset + pd.Timedelta(days=n), color="dimgrey", ls="--", lw=1)
        ax.text(onset + pd.Timedelta(days=n) + pd.Timedelta(hours=3), 0.97, " + ".join(names), rotation=90,
                va="top", ha="left", fontsize=8, color="dimgrey", transform=ax.get_xaxis_transform())
    retrains = [pd.Timestamp(d.day) for d in result.days if d.trained]  # every retrain a trigger started
    ax.plot(retrains, [0.02] * len(retrains), ls="none", marker="^", color="tab:purple", ms=6,
            label="a trigger started training")
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of the day's frauds reviewed or declined")
    ax.set_title("The operating loop on simulated days: drift, detection, retrain, shadow, promotion", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.18), ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=DrillPlan.days)
    parser.add_argument("--start-day", type=int, default=DrillPlan.start_day)
    parser.add_argument("--drift-day", type=int, default=DrillPlan.drift_day)
    parser.add_argument("--customers", type=int, default=DrillPlan.n_customers)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--keep", type=Path, help="keep the drill's data, registry, logs and runs here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    plan = DrillPlan(days=args.days, start_day=args.start_day, drift_day=args.drift_day,
                     n_customers=args.customers, n_terminals=max(200, args.customers * 2 // 5))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        result = run_drill(load_config(), plan, workdir, progress=True)
    wall = time.perf_counter() - started
    figures = {**result.to_dict(), "wall_s": wall}
    print(json.dumps(result.milestones, indent=2))
    print(f"{len(result.days)} days replayed in {wall:.0f} s")
    if args.plot:
        print("plot:", plot(result, args.plot))
    if args.json:
        write_json(args.json, figures)
    return figures


if __name__ == "__main__":
    main()
