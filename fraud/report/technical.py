"""The data scientist's sections of the report, after the analyst's: the candidates, the
winner's quality on the test window, calibration, the focal view and the curves; and the
run's parameters, folded away.
"""

from __future__ import annotations

import json

from . import fmt
from .analyst import image
from .features import features_section
from .fmt import esc, table
from .glossary import term
from .view import RunView, kind_name

FIGURES = (("pr_curves", "Precision-recall, every candidate"), ("calibration", "Calibration curve"),
           ("scores", "Score distribution"), ("p_t_histogram", "p_t histogram"),
           ("feature_importance", "Feature importance"), ("training", "Training telemetry"))
CALIBRATION = {"platt": "Platt scaling", "isotonic": "isotonic regression"}


def compact(params) -> str:
    """Hyper-parameters as one line of JSON, floats to four significant digits."""
    if not isinstance(params, dict):
        return json.dumps(params, default=str)
    return json.dumps({k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in params.items()}, default=str)


# what the focal view's (gamma, alpha) are for the focal variants (fraud.models.Candidate.focal)
FOCAL_LABELS = {"cb_focal_xgb": "gamma, alpha (class-balanced: from beta and the training counts)",
                "focal_xgb_gamma_schedule": "gamma (the schedule's, at the last round kept), alpha"}


def _candidates(s: dict) -> str:
    rows, params = [], []
    for kind, c in s["candidates"].items():
        rows.append([f"{kind_name(kind)} <code>{esc(kind)}</code>", fmt.ratio(c["validation_average_precision"]),
                     fmt.pct(c["validation_recall_at_capacity"], 1), fmt.ratio(c["test_average_precision"]),
                     fmt.ratio(c["test_auc_roc"]), fmt.pct(c["test_recall_at_capacity"], 1), fmt.count(c["rounds"]),
                     fmt.count(c["trials"])])
        params.append(f"<dt><code>{esc(kind)}</code></dt><dd><code>{esc(compact(c['params']))}</code></dd>")
    within = term("recall-at-capacity", "recall within capacity")
    header = ["Candidate", f"Validation {term('ap', 'AP')}", f"Validation {within}", f"Test {term('ap', 'AP')}",
              f"Test {term('auc', 'AUC ROC')}", f"Test {within}", "Boosting rounds", "Search trials"]
    comparison = s.get("comparison") or {}
    intervals = comparison.get("models", {})
    if intervals:  # in the test AP's cell: a column of its own would widen the table past the page
        header[3] += f" ({comparison['level']:.0%} interval over days)"
        for row, kind in zip(rows, s["candidates"]):
            ci = intervals.get(kind)
            if ci:
                row[3] += f" <span class='interval'>({fmt.ratio(ci['low'])}&ndash;{fmt.ratio(ci['high'])})</span>"
    verdict = (f"<p class='verdict'><strong>Focal loss against the tuned logistic baseline:</strong> "
               f"{esc(comparison['difference']['verdict'])} (bootstrap over the {comparison['days']} test days, "
               f"{comparison['resamples']} resamples, each candidate on the same days).</p>"
               if comparison.get("difference") else "")
    return ("<h3>Candidates side by side (chosen on validation; test only reported)</h3>"
            + table(header, rows, "candidates") + verdict
            + f"<details><summary>Each candidate's best hyper-parameters</summary><dl class='params'>{''.join(params)}"
              "</dl></details>")


def _winner_metrics(s: dict) -> str:
    """The winner's test figures as the gate counts them and, where training reports them, on
    every payment of the window beside them."""
    views = [s["test"]] + ([s["test_unfiltered"]] if s.get("test_unfiltered") else [])
    k = s["test"]["card_precision_at_k"]["k"]
    rows = [[term("ap", "Average precision"), *(fmt.ratio(v["average_precision"]) for v in views)],
            [term("auc", "AUC ROC"), *(fmt.ratio(v["auc_roc"]) for v in views)],
            [term("card-precision", f"Card precision@{k}"), *(fmt.pct(v["card_precision_at_k"]["mean"], 1)
                                                               for v in views)],
            [term("recall", "Recall at the thresholds"), *(fmt.pct(v["policy"]["recall"], 1) for v in views)],
            [term("precision", "Precision at the thresholds"), *(fmt.pct(v["policy"]["precision"], 1) for v in views)],
            [term("decline-precision"), *(fmt.pct(v["policy"]["decline_precision"], 1) for v in views)]]
    if len(views) == 1:
        return table(["Metric", "Value"], rows, "metrics")
    left_out = (s.get("evaluation") or {}).get("test_rows_left_out")
    note = (f"<p>{fmt.count(left_out)} test payments of cards already known as fraud are left out of the first "
            "column.</p>" if left_out is not None else "")
    return table(["Metric", f"{term('counted', 'Counted')} (as the gate)", "All payments"], rows, "metrics") + note


def quality(r: RunView, images: dict) -> str:
    s = r.s
    test = s["test"]
    calibration = [[w.capitalize(), *(fmt.ratio(v[k], 4) for k in ("ece_before", "ece_after", "brier_before",
                                                                       "brier_after"))]
                   for w, v in s["calibration"].items() if isinstance(v, dict)]
    focal = test["focal"]
    alpha = "none" if focal["alpha"] is None else f"{focal['alpha']:g}"
    label = FOCAL_LABELS.get(s["winner"]["kind"], "gamma, alpha")
    focal_rows = [[label, f"{focal['gamma']:g}, {alpha}"],
                  ["Focal loss per row: median / 90th / 99th percentile",
                   " / ".join(f"{focal[k]:.2g}" for k in ("focal_loss_p50", "focal_loss_p90", "focal_loss_p99"))],
                  [f"Hard examples ({term('p-t', 'p_t')} &lt; 0.5), all rows", fmt.pct(focal["hard_example_rate"], 2)],
                  ["Hard examples among frauds", fmt.pct(focal["hard_example_rate_fraud"], 1)]]
    method = CALIBRATION.get(s["calibration"].get("method"), s["calibration"].get("method", ""))
    parts = ["<h2 id='quality'>Model quality, for the data scientist</h2>",
             f"<p>Winner: {kind_name(s['winner']['kind'])} <code>{esc(s['winner']['kind'])}</code>. "
             f"{esc(s['choice']['reason'])}.</p>", _candidates(s),
             "<h3>The winner on the test window</h3>", _winner_metrics(s), features_section(s),
             f"<h3>{term('calibration', 'Calibration')} ({esc(method)})</h3>",
             table(["Window", "ECE before", "ECE after", "Brier before", "Brier after"], calibration, "calibration"),
             f"<h3>Focal view of the test rows ({term('p-t', 'p_t')})</h3>",
             table(["Figure", "Value"], focal_rows, "focal")]
    parts += [f"<h3>{esc(title)}</h3>{image(images[key], title)}" for key, title in FIGURES if key in images]
    return "".join(parts)


def parameters(r: RunView) -> str:
    s, pol = r.s, r.s["policy"]["constraints"]
    data, split = s.get("data") or {}, s["split"]
    items = [("Data", esc(data.get("source", fmt.DASH)))]
    if data:
        items += [("Rows read / set aside", f"{fmt.count(data.get('rows'))} / {fmt.count(data.get('invalid_rows'))}"),
                  ("Data from / to", f"{fmt.when(data.get('first'))} / {fmt.when(data.get('last'))}")]
    items.append(("Test window", esc(r.window)))
    for i, fold in enumerate(split["folds"]):
        train, validation = (fmt.date_range(fold[w]["start"], fold[w]["end"]) for w in ("train", "validation"))
        items.append((f"Fold {i + 1}: training / validation", esc(f"{train} / {validation}")))
    served = s.get("served_model")
    if served:
        items += [("Served model: training window / labels known by",
                   esc(f"{fmt.date_range(served['train']['start'], served['train']['end'])} / "
                       f"{fmt.date(served['label_cutoff'])}")),
                  ("Served model: age at as_of", f"{served['age_days']:g} days"
                   + (" (latest refit)" if served.get("latest") else " (refitted)" if served.get("refitted")
                      else " (fold 1's model)")),
                  ("Served model: calibration and thresholds on",
                   esc(fmt.date_range(served["calibrated_on"]["start"], served["calibrated_on"]["end"])
                       + (" (the twin's scores, cross-fitted)" if served.get("latest") else "")))]
        twin, transfer = served.get("twin"), served.get("transfer")
        if twin:
            items.append(("Twin (test figures, gate): training window / age",
                          esc(f"{fmt.date_range(twin['train']['start'], twin['train']['end'])} / "
                              f"{twin['age_days']:g} days")))
        if transfer:
            overlap = "n/a" if transfer.get("overlap") is None else f"{transfer['overlap']:.0%}"
            items.append(("Calibration transfer on the newest days",
                          esc(f"{transfer['rows']} rows; of the twin's review rows the latest's share "
                              f"{overlap} (at least {transfer['min_overlap']:.0%}): serves the {transfer['serve']}")))
    items += [("Review capacity a day", fmt.count(pol["review_capacity_per_day"])),
              ("Review cost", r.money(pol["review_cost"], True)),
              ("False-decline cost", r.money(pol["false_decline_cost"], True)),
              ("Fraud-loss multiplier", f"{pol['fraud_loss_multiplier']:g}"),
              ("Decline precision floor", fmt.pct(pol["decline_precision_floor"]))]
    if s["policy"].get("target_recall") is not None:
        items.append(("Target recall", fmt.pct(s["policy"]["target_recall"])))
    items += [("Winner's hyper-parameters", f"<code>{esc(compact(s['winner']['params']))}</code>"),
              ("Boosting rounds", fmt.count(s["winner"]["rounds"])),
              ("Libraries", esc(", ".join(f"{k} {v}" for k, v in (s.get("library_versions") or {}).items())))]
    body = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items)
    return ("<h2 id='parameters'>Run parameters</h2><details><summary>Data, windows, policy settings and "
            f"hyper-parameters</summary><dl class='params'>{body}</dl></details>")
