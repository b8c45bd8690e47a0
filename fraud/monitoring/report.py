"""The health as a page: ``health.json``, ``health.html`` and three PNG plots (PSI per
feature over days, the score histogram now vs the reference, recall over time against the
SLO). ``write_health_report(directory, health)`` returns the paths."""

from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .health import Health  # noqa: E402

SHOWN_FEATURES = 8  # lines in the PSI plot: the important features with the highest PSI


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_psi(health: Health, path: Path) -> Path:
    days = [d["day"] for d in health.daily]
    fig, ax = plt.subplots(figsize=(8, 4))
    latest = {f: health.feature_psi.get(f, {}).get(health.day) or 0.0 for f in health.important_features}
    for name in sorted(latest, key=lambda f: -latest[f])[:SHOWN_FEATURES]:
        ax.plot(days, [health.feature_psi[name].get(d) for d in days], marker=".", lw=1, label=name)
    ax.plot(days, [d["score_psi"] for d in health.daily], "k-", marker="o", lw=2, label="score")
    small = [d["day"] for d in health.daily if not d["enough_rows"]]
    for day in small:
        ax.axvspan(day, day, color="#bbb", lw=6, alpha=0.4)
    ax.axhline(health.thresholds["psi_threshold"], color="#c62828", ls="--", label="threshold")
    ax.set(title="PSI against the reference per day (grey: too few rows for a verdict)", ylabel="PSI")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _save(fig, path)


def plot_score_histogram(health: Health, path: Path) -> Path:
    hist = health.score_histogram
    labels = [f"{a:g}-{b:g}" for a, b in zip(hist["edges"][:-1], hist["edges"][1:])]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(x - 0.2, hist["reference"], 0.4, label="reference (window calibration was fitted on)", color="#90a4ae")
    if hist["now"] is not None:
        ax.bar(x + 0.2, hist["now"], 0.4, label=f"{health.day}", color="#1565c0")
    ax.set_xticks(x, labels, rotation=30, fontsize=8)
    ax.set(yscale="log", ylabel="share of transactions", xlabel="calibrated score",
           title="Score histogram now vs the reference")
    ax.legend()
    return _save(fig, path)


def plot_recall(health: Health, path: Path) -> Path:
    days = [d["day"] for d in health.daily]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(days, [d["recall"] for d in health.daily], marker="o", color="#2e7d32",
            label="recall of labelled frauds (by day scored)")
    ax.axhline(health.thresholds["recall_slo"], color="#c62828", ls="--", label="SLO")
    ax.set(ylim=(0, 1.05), ylabel="recall", title="Policy recall over time (labels known so far)")
    twin = ax.twinx()
    twin.bar(days, [d["labelled_frauds"] for d in health.daily], alpha=0.2, color="#555", label="labelled frauds")
    twin.set_ylabel("labelled frauds")
    ax.legend(loc="lower left", fontsize=8)
    fig.autofmt_xdate()
    return _save(fig, path)


def _page(health: Health, images: dict[str, str]) -> str:
    rows = "".join(f"<tr><td>{html.escape(f)}</td><td>{(health.feature_psi[f].get(health.day) or 0):.4f}</td></tr>"
                   for f in health.important_features if f in health.feature_psi)
    lines = "".join(f"<li>{html.escape(line)}</li>" for line in health.lines())
    figures = "".join(f'<h2>{html.escape(title)}</h2><img src="{src}" alt="{html.escape(title)}">'
                      for title, src in images.items())
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Model health {health.day}</title>"
            "<style>body{font-family:system-ui,sans-serif;max-width:960px;margin:auto;padding:1em}"
            "td{padding:2px 10px;border-bottom:1px solid #ddd}img{max-width:100%}</style></head><body>"
            f"<h1>Model health: {html.escape(health.status)}</h1><ul>{lines}</ul>{figures}"
            f"<h2>Important features on {health.day}</h2><table><tr><th>feature</th><th>PSI</th></tr>{rows}"
            "</table></body></html>")


def write_health_report(directory: Path, health: Health) -> dict[str, Path]:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"psi": plot_psi(health, directory / "psi_by_day.png"),
             "score_histogram": plot_score_histogram(health, directory / "score_histogram.png"),
             "recall": plot_recall(health, directory / "recall.png")}
    titles = {"psi": "PSI per feature over days", "score_histogram": "Score histogram now vs reference",
              "recall": "Recall over time against the SLO"}
    (directory / "health.json").write_text(json.dumps(health.to_dict(), indent=2, default=str))
    (directory / "health.html").write_text(_page(health, {titles[k]: p.name for k, p in paths.items()}))
    return {**paths, "json": directory / "health.json", "html": directory / "health.html"}
