"""The report's features section: the features left out for want of a column, and what
each feature family contributes (the ablation table, ``fraud.ablation``)."""

from __future__ import annotations

from . import fmt
from .fmt import esc, table
from .glossary import term


def _dropped(features: dict) -> str:
    dropped = features.get("dropped") or {}
    if not dropped:
        return (f"<p class='features-dropped'>{fmt.count(features.get('used'))} features; none left out: the data "
                "has every column they read.</p>")
    listed = "; ".join(f"<code>{esc(name)}</code> (no {esc(', '.join(cols))})" for name, cols in dropped.items())
    return (f"<p class='features-dropped'>{fmt.count(features.get('used'))} features. Left out for want of a column "
            f"(not mapped in <code>[columns]</code>, or absent or empty in the data): {listed}.</p>")


def _ablation(ablation: dict) -> str:
    rows = [[esc(r["family"]), fmt.count(r["features"]), fmt.ratio(r["average_precision"], 4),
             fmt.DASH if r["family"] == "all features" else f"{r['difference']:+.4f}"] for r in ablation["rows"]]
    return (f"<h4>What each feature family contributes</h4><p>The winner's configuration "
            f"(<code>{esc(ablation['kind'])}</code>, its hyper-parameters, no search) fitted again on the latest fold "
            f"without each family, scored on the {fmt.count(ablation['test_rows'])} counted test payments "
            f"({fmt.count(ablation['seconds'])} s in all). A negative difference: the family helps.</p>"
            + table(["Left out", "Features", f"Test {term('ap', 'AP')}", "Difference"], rows, "ablation"))


def features_section(s: dict) -> str:
    """Empty for a summary without feature facts (a run from before they were recorded)."""
    features, ablation = s.get("features"), s.get("ablation")
    if not features and not ablation:
        return ""
    return ("<h3>Features</h3>" + (_dropped(features) if features else "")
            + (_ablation(ablation) if ablation else ""))
