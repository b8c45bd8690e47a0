"""The per-run report: a JSON summary, PNG figures and an HTML page that shows both,
written for the fraud analyst who decides with it.

    paths = write_report(directory, summary, plots)

``summary`` is the nightly job's summary: the training summary (``fraud.training``) plus
``gate`` (each compared model's test-window money and catch, ``outcomes.window_outcomes``)
and ``models`` (versions and dates, ``facts.model_facts``). The HTML page is
self-contained apart from the PNGs beside it, so the directory can be copied or served as
it is.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["write_report"]


def _figures(directory: Path, summary: dict, plots: dict) -> dict[str, Path]:
    from . import plots as p  # matplotlib only when a report is written

    scores = (summary.get("gate") or {}).get("scores") or {}
    ours = (scores.get("challenger") or {}).get("outcomes")
    theirs = (scores.get("champion") or {}).get("outcomes")
    figures = {}
    if ours:
        capacity = summary["policy"]["constraints"]["review_capacity_per_day"]
        figures["money_per_day"] = p.plot_money_per_day(ours, directory / "money_per_day.png", theirs)
        figures["catch_per_day"] = p.plot_catch_per_day(ours, capacity, directory / "catch_per_day.png", theirs)
    figures.update({
        "pr_curves": p.plot_pr_curves(plots["pr_curves"], directory / "pr_curves.png"),
        "calibration": p.plot_calibration(plots["calibration"], directory / "calibration.png"),
        "scores": p.plot_scores(plots["scores"], plots["thresholds"], directory / "scores.png"),
        "p_t_histogram": p.plot_pt_histogram(summary["test"]["focal"], directory / "p_t_histogram.png"),
        "feature_importance": p.plot_importance(summary["feature_importance"], directory / "feature_importance.png"),
        "training": p.plot_histories(plots["histories"], directory / "training.png"),
    })
    return figures


def write_report(directory: Path, summary: dict, plots: dict) -> dict[str, Path]:
    """Write report.json, the PNGs and report.html; returns the paths by name."""
    from .page import page

    directory.mkdir(parents=True, exist_ok=True)
    figures = _figures(directory, summary, plots)
    json_path = directory / "report.json"
    json_path.write_text(json.dumps(summary, indent=2, default=str))
    html_path = directory / "report.html"
    html_path.write_text(page(summary, {key: path.name for key, path in figures.items()}), encoding="utf-8")
    log.info("report written to %s", html_path)
    return {"html": html_path, "json": json_path, **{path.stem: path for path in figures.values()}}
