"""The one verdict of ``fraud monitor``: ``evaluate_health(...) -> Health``.

Stable interface (``fraud.monitoring.triggers`` and the CLI call it): pure, DataFrames in,
a frozen ``Health`` out; nothing is read or written here (``sources.check_health`` reads
the stores first).

Status, worst first:

    RECALL_BELOW_SLO  the policy's recall of labelled frauds over the recall window is below
                      the SLO (only with at least ``min_labels`` labelled frauds)
    DRIFT             on the evaluated day the score's PSI, or an important feature's, is above
                      ``psi_threshold`` (only with at least ``min_rows`` scored rows); the
                      calendar features (one weekday per day) are shown, never judged
    NOT_ENOUGH_DATA   neither check had enough data for a verdict
    OK                otherwise
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, timedelta

import pandas as pd

from fraud.config import MonitoringConfig

from .drift import daily_drift, scored_day
from .outcomes import labelled, labels_known, policy_outcomes, recall_by_day
from .reference import important_features

OK, DRIFT, RECALL_BELOW_SLO, NOT_ENOUGH_DATA = "OK", "DRIFT", "RECALL_BELOW_SLO", "NOT_ENOUGH_DATA"
LABEL_COLUMNS = ["transaction_id", "label", "source", "known_at"]


@dataclass(frozen=True)
class Health:
    """The health of the champion on ``day`` (a UTC day), as known at ``as_of``.

    ``problems``: every failing check (``status`` is the worst); ``drift_verdict`` /
    ``recall_verdict``: whether that check had enough data. PSI figures are of ``day``;
    recall, precision, hard examples and focal losses of the rows scored in the recall
    window (``recall_window``) with labels known before ``as_of``. ``daily``: one dict per
    day of the log (rows, score_psi, feature_psi_max, review_share, labelled_frauds,
    recall, enough_rows); ``feature_psi``: feature -> {day: PSI}."""

    status: str
    problems: tuple[str, ...]
    day: date
    as_of: pd.Timestamp
    champion: str | None
    scored_rows: int
    labelled_rows: int
    labelled_frauds: int
    drift_verdict: bool
    recall_verdict: bool
    score_psi: float | None
    feature_psi_max: float | None
    feature_psi_max_name: str | None
    drifted_features: tuple[str, ...]
    important_features: tuple[str, ...]
    review_share: float | None
    expected_review_share: float | None
    recall: float | None
    precision: float | None
    per_class: dict
    hard_example_rate: float | None
    focal: dict                       # {"production": {...}, "reference": {...}}
    recall_window: tuple[date, date]
    thresholds: dict                  # psi_threshold, recall_slo, min_rows, min_labels, hard_p_t
    score_histogram: dict             # {"edges", "reference", "now"} shares on the API's score buckets
    daily: tuple[dict, ...] = ()
    feature_psi: dict = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.status in (OK, NOT_ENOUGH_DATA)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(as_of=self.as_of.isoformat(), day=self.day.isoformat(), healthy=self.healthy,
                   recall_window=[d.isoformat() for d in self.recall_window],
                   daily=[{**d, "day": d["day"].isoformat()} for d in self.daily],
                   feature_psi={f: {d.isoformat(): v for d, v in by_day.items()}
                                for f, by_day in self.feature_psi.items()})
        return out

    def lines(self) -> list[str]:
        """The health in a few plain lines, numbers included."""
        def num(v, fmt=".3f"):
            return "n/a" if v is None else format(v, fmt)

        t = self.thresholds
        drift = (f"score PSI {num(self.score_psi)}, max important-feature PSI {num(self.feature_psi_max)}"
                 f"{f' ({self.feature_psi_max_name})' if self.feature_psi_max_name else ''} (threshold "
                 f"{t['psi_threshold']}) on {self.scored_rows:,} rows" if self.drift_verdict else
                 f"not enough data: {self.scored_rows:,} scored rows (minimum {t['min_rows']:,})")
        recall = (f"recall {num(self.recall)} (SLO {t['recall_slo']}), precision {num(self.precision)} on "
                  f"{self.labelled_frauds} labelled frauds, {self.labelled_rows:,} labelled rows" if self.recall_verdict
                  else f"not enough labels: {self.labelled_frauds} labelled frauds (minimum {t['min_labels']})")
        focal = self.focal
        return [f"status: {self.status}" + (f" ({', '.join(self.problems)})" if len(self.problems) > 1 else ""),
                f"champion {self.champion} on {self.day} (as of {self.as_of:%Y-%m-%d %H:%M} UTC)",
                f"drift:  {drift}" + (f"; drifted: {', '.join(self.drifted_features)}" if self.drifted_features else ""),
                f"recall: {recall} (scored {self.recall_window[0]}..{self.recall_window[1]})",
                f"review share {num(self.review_share)} (expected {num(self.expected_review_share)}); "
                f"hard-example rate {num(self.hard_example_rate)}; focal loss p50/p90/p99 "
                f"{'/'.join(num(focal['production'].get(k), '.4f') for k in ('p50', 'p90', 'p99'))} vs reference "
                f"{'/'.join(num(focal['reference'].get(k), '.4f') for k in ('p50', 'p90', 'p99'))}"]


def utc_time(value=None) -> pd.Timestamp:
    """``value`` (a time, ISO text; without an offset: UTC) as a UTC Timestamp; None: now."""
    if value is None:
        return pd.Timestamp.now(tz="UTC")
    when = pd.Timestamp(value)
    return when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")


def _window(decisions: pd.DataFrame, days: pd.Series, first: date, last: date) -> pd.DataFrame:
    return decisions[((days >= first) & (days <= last)).to_numpy()]


def evaluate_health(decisions: pd.DataFrame, labels: pd.DataFrame | None, reference: dict,
                    config: MonitoringConfig, as_of=None, day: date | None = None, champion: str | None = None,
                    expected_review_share: float | None = None) -> Health:
    """The champion's health on ``day`` (default: the UTC day before ``as_of``; ``as_of``
    default now).

    ``decisions``: the decision log (``fraud.decisions.read_decisions``' columns); rows
    scored at or after ``as_of`` are ignored. ``labels``: the label store's frame
    (transaction_id, label, known_at; None = no labels); only labels known before ``as_of``
    count. ``reference``: the champion's ``reference.json``; ``champion``: its version (the
    score's PSI counts that model's rows only; None = every row)."""
    as_of = utc_time(as_of)
    day = day or (as_of.floor("D") - pd.Timedelta(days=1)).date()
    if not decisions.empty:
        decisions = decisions[pd.to_datetime(decisions["scored_at"], utc=True) < as_of]
    days = scored_day(decisions) if not decisions.empty else pd.Series(dtype=object)
    shown = _window(decisions, days, day - timedelta(days=config.days - 1), day) if len(days) else decisions
    per_day = daily_drift(shown, reference, champion, config.psi_epsilon)
    important = [f for f in important_features(reference, config.important_features)
                 if f not in config.calendar_features]

    today = per_day.get(day)
    rows = today["rows"] if today else 0
    drift_verdict = rows >= config.min_rows
    feature_psi = today["feature_psi"] if today else {}
    ranked = sorted(((feature_psi[f], f) for f in important if f in feature_psi), reverse=True)
    psi_max, psi_max_name = ranked[0] if ranked else (None, None)
    score_psi = today["score_psi"] if today else None
    drifted = tuple(f for v, f in ranked if v > config.psi_threshold) if drift_verdict else ()
    score_drift = drift_verdict and score_psi is not None and score_psi > config.psi_threshold

    last = day - timedelta(days=config.recall_lag_days)  # label-complete days only (MonitoringConfig)
    first = last - timedelta(days=config.recall_window_days - 1)
    known = labels_known(labels if labels is not None else pd.DataFrame(columns=LABEL_COLUMNS), as_of)
    window_rows = labelled(_window(decisions, days, first, last), known) if len(days) else \
        pd.DataFrame(columns=["transaction_id", "label", "decision", "margin", "scored_at"])
    ref_focal = reference["focal"]
    outcome = policy_outcomes(window_rows, ref_focal["gamma"], ref_focal["alpha"], config.hard_p_t)
    recall = outcome["per_class"]["fraud"]["recall"]
    recall_verdict = outcome["frauds"] >= config.min_labels
    problems = tuple(p for p, failing in ((RECALL_BELOW_SLO, recall_verdict and recall < config.recall_slo),
                                          (DRIFT, bool(drifted) or score_drift)) if failing)
    status = problems[0] if problems else (OK if drift_verdict or recall_verdict else NOT_ENOUGH_DATA)

    shown_labelled = labelled(shown, known) if len(shown) else window_rows.iloc[:0]
    by_day_recall = recall_by_day(shown_labelled, scored_day(shown_labelled)) if len(shown_labelled) else {}
    daily = tuple({"day": d, "rows": v["rows"], "enough_rows": v["rows"] >= config.min_rows,
                   "score_psi": v["score_psi"],
                   "feature_psi_max": max((v["feature_psi"][f] for f in important if f in v["feature_psi"]),
                                          default=None),
                   "review_share": v["review_share"], "labelled_frauds": by_day_recall.get(d, (0, None))[0],
                   "recall": by_day_recall.get(d, (0, None))[1]} for d, v in per_day.items())
    return Health(
        status=status, problems=problems, day=day, as_of=as_of, champion=champion, scored_rows=rows,
        labelled_rows=outcome["labelled"], labelled_frauds=outcome["frauds"], drift_verdict=drift_verdict,
        recall_verdict=recall_verdict, score_psi=score_psi, feature_psi_max=psi_max, feature_psi_max_name=psi_max_name,
        drifted_features=drifted, important_features=tuple(important),
        review_share=today["review_share"] if today else None, expected_review_share=expected_review_share,
        recall=recall, precision=outcome["per_class"]["fraud"]["precision"], per_class=outcome["per_class"],
        hard_example_rate=outcome["focal"]["hard_example_rate"],
        focal={"production": outcome["focal"], "reference": {k: ref_focal.get(k) for k in (
            "gamma", "alpha", "loss_source", "rows", "p50", "p90", "p99", "hard_example_rate")}},
        recall_window=(first, last),
        thresholds={"psi_threshold": config.psi_threshold, "recall_slo": config.recall_slo,
                    "min_rows": config.min_rows, "min_labels": config.min_labels, "hard_p_t": config.hard_p_t},
        score_histogram={"edges": reference["score"]["histogram"]["edges"],
                         "reference": reference["score"]["histogram"]["shares"],
                         "now": today["score_histogram"] if today else None},
        daily=daily,
        feature_psi={f: {d: v["feature_psi"].get(f) for d, v in per_day.items()} for f in reference["features"]})
