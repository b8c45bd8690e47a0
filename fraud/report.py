"""The per-run report: a JSON summary, PNG plots and an HTML page that shows both.

    paths = write_report(directory, summary, plots)

The HTML page is self-contained apart from the PNGs beside it, so the directory can be
copied or served as it is.
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

log = logging.getLogger(__name__)


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


def _table(rows: list[dict], columns: list[str]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) < 1000 else f"{v:,.0f}"
        if isinstance(v, dict):
            return html.escape(json.dumps(v, default=str))
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{fmt(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _page(summary: dict, images: dict[str, str]) -> str:
    s = summary
    cands = [{"candidate": k, **v} for k, v in s["candidates"].items()]
    cand_cols = ["candidate", "validation_average_precision", "validation_recall_at_capacity", "test_average_precision",
                 "test_auc_roc", "test_recall_at_capacity", "rounds", "trials", "params"]
    test = s["test"]
    pol = s["policy"]
    gate = s.get("gate", {})
    parts = [
        f"<h1>Fraud model training run {html.escape(str(s.get('run_id', '')))}</h1>",
        f"<p>Data as of {html.escape(s['split']['as_of'])}; test window {html.escape(s['split']['test']['start'])} to "
        f"{html.escape(s['split']['test']['end'])}. Winner: <b>{html.escape(s['winner']['kind'])}</b> "
        f"(gamma {s['winner']['gamma']}, alpha {s['winner']['alpha']}). {html.escape(s['choice']['reason'])}.</p>",
        "<h2>Candidates side by side (chosen on validation; test only reported)</h2>", _table(cands, cand_cols),
    ]
    if gate:
        parts += ["<h2>Challenger vs champion (same test window)</h2>",
                  _table([{"model": k, **v} for k, v in gate.get("scores", {}).items()],
                         ["model", "version", "average_precision", "recall_at_capacity"]),
                  f"<p>Decision: <b>{html.escape(gate.get('decision', ''))}</b>: {html.escape(gate.get('reason', ''))}</p>"]
    parts += [
        "<h2>Test window</h2>",
        _table([{"AUC ROC": test["auc_roc"], "average precision": test["average_precision"],
                 "recall at thresholds": test["policy"]["recall"], "precision at thresholds": test["policy"]["precision"],
                 "reviews/day": test["policy"]["reviews_per_day"], "declines/day": test["policy"]["declines_per_day"],
                 f"card precision@{test['card_precision_at_k']['k']}": test["card_precision_at_k"]["mean"],
                 "cost/day": test["policy"]["cost_per_day"]}],
               ["AUC ROC", "average precision", "recall at thresholds", "precision at thresholds", "reviews/day",
                "declines/day", f"card precision@{test['card_precision_at_k']['k']}", "cost/day"]),
        "<h2>Policy (chosen on calibrated validation scores)</h2>",
        _table([{"t_review": pol["thresholds"]["review"], "t_decline": pol["thresholds"]["decline"],
                 **pol["outcome"], "constraint cost/day": pol["constraint_cost_per_day"],
                 "no-model cost/day": pol["no_model_cost_per_day"], "target recall met": pol["target_recall_met"]}],
               ["t_review", "t_decline", "reviews_per_day", "declines_per_day", "recall", "precision",
                "decline_precision", "cost_per_day", "constraint cost/day", "no-model cost/day", "target recall met"]),
        "<h2>Per class (test)</h2>",
        _table([{"class": k, **v} for k, v in test["per_class"].items()],
               ["class", "frauds", "transactions", "flagged", "recall", "share_of_flagged", "false_positive_rate"]),
        "<h2>Calibration</h2>",
        _table([{"window": w, **v} for w, v in s["calibration"].items() if isinstance(v, dict)],
               ["window", "ece_before", "ece_after", "brier_before", "brier_after"]),
        "<h2>Focal view of the test rows</h2>",
        _table([{k: v for k, v in test["focal"].items() if k != "p_t_histogram"}],
               ["gamma", "alpha", "focal_loss_p50", "focal_loss_p90", "focal_loss_p99", "hard_example_rate",
                "hard_example_rate_fraud"]),
    ]
    parts += [f"<h2>{html.escape(title)}</h2><img src='{html.escape(src)}' alt='{html.escape(title)}'>"
              for title, src in images.items()]
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;"
             "margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
             "th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>Fraud training report</title>" \
           f"<style>{style}</style></head><body>{''.join(parts)}</body></html>"


def write_report(directory: Path, summary: dict, plots: dict) -> dict[str, Path]:
    """Write report.json, the PNGs and report.html; returns the paths by name."""
    directory.mkdir(parents=True, exist_ok=True)
    figures = {
        "Precision-recall, every candidate": plot_pr_curves(plots["pr_curves"], directory / "pr_curves.png"),
        "Calibration curve": plot_calibration(plots["calibration"], directory / "calibration.png"),
        "Score distribution": plot_scores(plots["scores"], plots["thresholds"], directory / "scores.png"),
        "p_t histogram": plot_pt_histogram(summary["test"]["focal"], directory / "p_t_histogram.png"),
        "Feature importance": plot_importance(summary["feature_importance"], directory / "feature_importance.png"),
        "Training telemetry": plot_histories(plots["histories"], directory / "training.png"),
    }
    json_path = directory / "report.json"
    json_path.write_text(json.dumps(summary, indent=2, default=str))
    html_path = directory / "report.html"
    html_path.write_text(_page(summary, {title: path.name for title, path in figures.items()}))
    log.info("report written to %s", html_path)
    return {"html": html_path, "json": json_path, **{p.stem: p for p in figures.values()}}
