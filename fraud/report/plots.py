"""The report's figures as PNG files (matplotlib, no display): the analyst's day-by-day
money and catch, and the data scientist's curves.

Each ``plot_*`` writes one PNG and returns its path.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, PercentFormatter  # noqa: E402

from .fmt import SYMBOLS, short_date  # noqa: E402

CAUGHT, MISSED, REVIEW, DECLINE, FALSE_DECLINE = "#2e7d32", "#c62828", "#1565c0", "#6a1b9a", "#ef6c00"


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_pr_curves(curves: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for kind, curve in curves.items():
        ax.step(curve["recall"], curve["precision"], where="post", label=kind)
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall on the test window", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_calibration(curves: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (pred, obs) in curves.items():
        ax.plot(pred, obs, marker="o", label=f"{name} calibration")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    ax.set(xscale="symlog", yscale="symlog", xlabel="mean predicted probability", ylabel="observed fraud rate",
           title="Calibration (test window, bins finer at the top)")
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_scores(scores: dict, thresholds: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    bins = np.linspace(0, 1, 51)
    for name, values in scores.items():
        ax.hist(values, bins=bins, alpha=0.6, label=f"{name} ({len(values)})", density=True)
    for name, value in thresholds.items():
        if value <= 1:
            ax.axvline(value, ls="--", color="k" if name == "decline" else "gray", label=f"{name} threshold")
    ax.set(yscale="log", xlabel="calibrated probability of fraud", ylabel="density (log)",
           title="Score distribution on the test window")
    ax.legend()
    return _save(fig, path)


def plot_pt_histogram(focal: dict, path: Path) -> Path:
    hist = focal["p_t_histogram"]
    edges = np.asarray(hist["edges"])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(edges[:-1], hist["counts"], width=np.diff(edges), align="edge", edgecolor="k")
    ax.axvline(0.5, color="r", ls="--", label=f"hard examples (p_t < 0.5): {focal['hard_example_rate']:.2%}")
    ax.set(yscale="log", xlabel="p_t (probability of the true class)", ylabel="rows (log)",
           title="How easy the test rows are for the model")
    ax.legend()
    return _save(fig, path)


def plot_importance(importance: dict, path: Path, top: int = 20) -> Path:
    items = sorted(importance.items(), key=lambda kv: kv[1], reverse=True)[:top][::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.28 * len(items) + 1.2))
    ax.barh([k for k, _ in items], [v for _, v in items])
    ax.set(xlabel="share of total gain", title="Feature importance (winner)")
    return _save(fig, path)


def plot_histories(histories: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for kind, history in histories.items():
        for metric, values in history.items():
            ax.plot(np.arange(1, len(values) + 1), values, label=f"{kind} {metric}")
    ax.set(xlabel="boosting round", ylabel="validation metric", title="Training telemetry (best trial, most recent fold)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _money_axis(ax, currency: str) -> None:
    symbol = SYMBOLS.get(currency, "")
    suffix = "" if symbol else f" {currency}"
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{symbol}{v:,.0f}{suffix}"))


def _day_axis(ax, days: list[str]) -> np.ndarray:
    x = np.arange(len(days))
    step = max(1, len(days) // 11)
    ax.set_xticks(x[::step], [short_date(d) for d in days[::step]], rotation=30, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(days) - 0.4)
    return x


def plot_money_per_day(served: dict, path: Path, previous: dict | None = None) -> Path:
    """Top: each day's labelled fraud, caught and missed. Bottom: what each day cost (missed fraud
    + reviews + false declines) without a model, with the previous champion and with this
    run's model: the gaps are the savings."""
    rows, currency = served["days"], served["currency"]
    days = [r["day"] for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6.4), sharex=True)
    x = _day_axis(bottom, days)
    caught = np.array([r["caught_amount"] for r in rows])
    missed = np.array([r["missed_amount"] for r in rows])
    top.bar(x, caught, color=CAUGHT, label="fraud caught")
    top.bar(x, missed, bottom=caught, color=MISSED, label="fraud missed")
    top.set(title="Fraud per day: caught and missed amounts", ylabel="amount")
    _money_axis(top, currency)
    top.legend(loc="upper left", fontsize=8, frameon=False, ncol=2)

    bars = [("without a model", [r["no_model_cost"] for r in rows], "#9e9e9e")]
    if previous is not None and [r["day"] for r in previous["days"]] == days:
        bars.append(("with the previous champion", [r["cost"] for r in previous["days"]], "#90caf9"))
    bars.append(("with this run's model", [r["cost"] for r in rows], REVIEW))
    width = 0.8 / len(bars)
    for i, (label, values, colour) in enumerate(bars):
        bottom.bar(x + (i - (len(bars) - 1) / 2) * width, values, width=width, color=colour, label=label)
    bottom.set(title="Cost per day (missed fraud + reviews + false declines)", ylabel="cost")
    _money_axis(bottom, currency)
    bottom.legend(loc="upper left", fontsize=8, frameon=False, ncol=3)
    for ax in (top, bottom):
        ax.grid(axis="y", alpha=0.3)
        ax.set_ylim(top=ax.get_ylim()[1] * 1.25)  # room for the legend above the bars
    return _save(fig, path)


def plot_catch_per_day(served: dict, capacity: float, path: Path, previous: dict | None = None) -> Path:
    """Top: the share of each day's fraud caught. Bottom: reviews and declines per day
    against the review team's capacity."""
    rows = served["days"]
    days = [r["day"] for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.8), sharex=True)
    x = _day_axis(bottom, days)
    recall = np.array([np.nan if r["recall"] is None else r["recall"] for r in rows])
    top.plot(x, recall, color=CAUGHT, marker="o", label="this run's model")
    if previous is not None and [r["day"] for r in previous["days"]] == days:
        top.plot(x, [np.nan if r["recall"] is None else r["recall"] for r in previous["days"]], color="#777",
                 ls="--", marker=".", label="previous champion")
    top.set(title="Share of each day's fraud caught (recall)", ylim=(0, 1.05))
    top.yaxis.set_major_formatter(PercentFormatter(1.0))
    top.legend(loc="lower left", fontsize=8, frameon=False, ncol=2)
    reviews = np.array([r["reviews"] for r in rows])
    declines = np.array([r["declines"] for r in rows])
    bottom.bar(x, reviews, color=REVIEW, label="sent to review")
    bottom.bar(x, declines, bottom=reviews, color=DECLINE, label="declined")
    bottom.axhline(capacity, color="k", ls="--", lw=1, label=f"review capacity ({capacity:,.0f} a day)")
    bottom.set(title="Payments sent to review and declined per day", ylabel="payments",
               ylim=(0, max(capacity, (reviews + declines).max(initial=0)) * 1.3))
    bottom.legend(loc="upper left", fontsize=8, frameon=False, ncol=3)
    for ax in (top, bottom):
        ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)
