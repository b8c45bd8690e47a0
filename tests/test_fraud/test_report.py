"""The run report as a fraud analyst reads it: the decision and policy in words, money that
adds up, catch per day and per fraud pattern, champion against challenger by version id,
readable tables, a glossary; and the page checked in a real browser.

The nightly job runs for real from the gate on (gate, publish, promote, report), on the
session's small training result: no model is trained here.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from fraud.policy import Thresholds
from fraud.registry import ModelRegistry
from fraud.report import fmt
from fraud.report.glossary import GLOSSARY
from fraud.report.page import page


class _Night(SimpleNamespace):
    def __repr__(self):  # failures print this instead of the whole transactions frame
        return f"<night run {self.result.run_id}>"


@pytest.fixture(scope="module")
def night(tmp_path_factory, small_training, small_transactions, small_features, small_config):
    """A registry whose champion is yesterday's model (the same model with a stricter review
    threshold and no declines), then tonight's run on the small training result."""
    from batch_jobs import nightly

    root = tmp_path_factory.mktemp("report")
    registry = ModelRegistry.open(root / "registry")
    t = small_training.bundle.thresholds
    stricter = Thresholds(review=min(4 * t.review, 0.9), decline=2.0)
    yesterday = dataclasses.replace(small_training.bundle, thresholds=stricter)
    with pytest.MonkeyPatch.context() as clock:  # published and promoted on an earlier day than tonight's run
        clock.setattr("fraud.registry._now", lambda: datetime(2026, 2, 20, 6, 30, tzinfo=timezone.utc))
        previous = registry.publish(yesterday, twin=dataclasses.replace(small_training.twin, thresholds=stricter))
        registry.promote(previous, "yesterday's champion")
    previous_record = registry.champion_record()
    spec, features = small_features

    def prepared(config, data, run_dir, *_):
        run_dir.mkdir(parents=True)
        return small_transactions, SimpleNamespace(rows_bad=0), features, spec, small_training

    patch = pytest.MonkeyPatch()
    patch.setattr(nightly, "_prepare_and_train", prepared)
    try:
        result = nightly.run_nightly(small_config, "simulated", registry_uri=str(root / "registry"),
                                     runs_dir=root / "runs", score_latest=False, progress=False)
    finally:
        patch.undo()
    html = (result.run_dir / "report.html").read_text()
    return _Night(result=result, registry=registry, previous=previous, previous_record=previous_record,
                           html=html, summary=result.summary, training=small_training, config=small_config,
                           transactions=small_transactions)


class _Tables(HTMLParser):
    """Each <table>'s class -> rows of (row class, [cell texts]); and the text of each id'd element."""

    def __init__(self):
        super().__init__()
        self.tables, self._table, self._row, self._cell = {}, None, None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(a.get("class") or "", [])
        elif tag == "tr" and self._table is not None:
            self._row = (a.get("class") or "", [])
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row[1].append(re.sub(r"\s+", " ", "".join(self._cell)).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def tables(html: str) -> dict:
    parser = _Tables()
    parser.feed(html)
    return parser.tables


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)).strip()


def section(html: str, element_id: str) -> str:
    """The HTML from the element with ``element_id`` to the next <h2> (or the end)."""
    start = html.index(f"id='{element_id}'")
    end = html.find("<h2", start + 1)
    return html[start:end if end > 0 else None]


def _workload(night) -> dict:
    """fraud.policy's outcome of the thresholds on every test-window transaction (what the
    review team sees), as training reported it."""
    summary = night.training.summary
    return summary.get("test_unfiltered", summary["test"])["policy"]


def test_the_page_opens_with_the_served_version_since_when_and_the_policy_in_a_sentence(night):
    served = night.registry.champion_record()
    assert served["version"] == night.result.version  # tonight's model was promoted
    decision = text(section(night.html, "decision"))
    assert f"Served: this run's model {served['version']}" in decision
    assert f"since {fmt.when(served['at'])}" in decision
    assert f"it replaced {night.previous}" in decision
    m = re.search(r"A score of ([\d.]+) or more goes to review, ([\d.]+) or more is declined: about ([\d.,]+) "
                  r"reviews and ([\d.,]+) declines a day\.", decision)
    assert m, decision
    bundle = night.registry.load_champion()  # what the API serves
    assert float(m[1]) == pytest.approx(bundle.thresholds.review, rel=5e-4)
    assert float(m[2]) == pytest.approx(bundle.thresholds.decline, rel=5e-4)
    # volumes as fraud.policy measured them on the test window when training chose the thresholds
    policy = _workload(night)
    assert float(m[3]) == pytest.approx(policy["reviews_per_day"], abs=0.5)
    assert float(m[4]) == pytest.approx(policy["declines_per_day"], abs=0.5)
    assert decision.index("Served:") < decision.index("A score of")


def test_the_served_models_training_window_and_age_are_stated_for_analyst_and_data_scientist(night):
    served = night.training.summary["served_model"]
    window = fmt.date_range(served["train"]["start"], served["train"]["end"])   # the refit's, not fold 1's
    assert window != fmt.date_range(*night.summary["split"]["folds"][0]["train"].values())
    decision = text(section(night.html, "decision"))
    assert (f"This run's model learned from the transactions of {window} with the fraud labels known by "
            f"{fmt.date(served['label_cutoff'])}: {served['age_days']:g} days old on "
            f"{fmt.date(night.summary['split']['as_of'])} (refitted on the newest label-complete window") in decision
    twin = fmt.date_range(served["twin"]["train"]["start"], served["twin"]["train"]["end"])
    assert f"The test figures are those of its twin, the same recipe trained on {twin}" in decision
    params = text(section(night.html, "parameters"))
    assert f"Served model: training window / labels known by{window} / {fmt.date(served['label_cutoff'])}" in params
    assert f"Served model: age at as_of{served['age_days']:g} days (latest refit)" in params
    assert f"Twin (test figures, gate): training window / age{twin} / {served['twin']['age_days']:g} days" in params


def _test_window(night) -> pd.DataFrame:
    split = night.summary["split"]["test"]
    tx = night.transactions
    return tx[(tx["timestamp"] >= pd.Timestamp(split["start"])) & (tx["timestamp"] < pd.Timestamp(split["end"]))]


def test_money_adds_up_to_the_fraud_of_the_test_window_and_matches_the_policy_cost(night):
    window = _test_window(night)
    fraud_amount = float(window.loc[window["label"] == 1, "amount"].sum())
    scores = night.summary["gate"]["scores"]
    ours, theirs = scores["challenger"]["outcomes"], scores["champion"]["outcomes"]
    for outcomes in (ours, theirs):
        total = outcomes["total"]
        assert total["caught_amount"] + total["missed_amount"] == pytest.approx(fraud_amount)
        assert total["caught_amount"] > 0 and total["missed_amount"] > 0
        assert sum(d["caught_amount"] for d in outcomes["days"]) == pytest.approx(total["caught_amount"])
        assert total["frauds"] == int(window["label"].sum()) and total["transactions"] == len(window)
        assert total["cost"] == pytest.approx(total["review_cost"] + total["false_decline_cost"] + total["missed_cost"])
    # the same cost as fraud.policy's own computation for the thresholds chosen in training
    policy = _workload(night)
    assert ours["total"]["cost_per_day"] == pytest.approx(policy["cost_per_day"])
    assert ours["total"]["recall"] == pytest.approx(policy["recall"])
    assert ours["total"]["days"] == len(window["timestamp"].dt.floor("D").unique())
    # the page shows these figures, and the savings against the champion as the cost difference
    money = {row[0]: row[1:] for _, row in tables(night.html)["money"]}
    assert money["Labelled fraud in the window"][0] == fmt.money(fraud_amount, "EUR")
    assert money["Fraud caught"][0] == fmt.money(ours["total"]["caught_amount"], "EUR")
    assert money["Fraud missed"][0] == fmt.money(ours["total"]["missed_amount"], "EUR")
    assert money["Fraud caught"][1] == fmt.money(theirs["total"]["caught_amount"], "EUR")
    assert money["Fraud missed"][2] == fmt.money(fraud_amount, "EUR")  # no model: all of it
    assert money["Savings against no model"][0] == fmt.money(ours["total"]["savings"], "EUR")
    diff = theirs["total"]["cost"] - ours["total"]["cost"]
    assert diff != 0
    words = "saved" if diff > 0 else "cost"
    assert f"{words} {fmt.money(abs(diff), 'EUR')}" in text(section(night.html, "money"))
    assert {"money_per_day.png", "catch_per_day.png"} <= {p.name for p in night.result.run_dir.iterdir()}


def test_champion_and_challenger_are_named_by_version_with_dates(night):
    header, *rows = tables(night.html)["models"]
    assert header[1][1:] == [night.result.version, night.previous]
    assert "challenger" not in header[1]
    facts = {row[0]: row[1:] for _, row in rows}
    assert facts["Champion since"] == [fmt.when(night.registry.champion_record()["at"]), "20 Feb 2026, 06:30 UTC"]
    published = night.registry.manifest(night.previous)["created_at"]
    assert facts["Published"][1] == fmt.when(published)
    assert facts["Trained on data up to"][0] == fmt.date(night.summary["split"]["as_of"])
    assert facts["Review threshold"] == [fmt.threshold(night.result.summary["gate"]["scores"][r]["outcomes"]
                                                       ["thresholds"]["review"]) for r in ("challenger", "champion")]
    assert night.summary["gate"]["scores"]["challenger"]["version"] == night.result.version  # report.json too


def test_label_noise_is_listed_apart_not_as_a_fraud_pattern(night):
    patterns = night.summary["gate"]["scores"]["challenger"]["outcomes"]["patterns"]
    assert "label_noise" in patterns  # the small simulation has some in its test window
    rows = tables(night.html)["patterns"][1:]
    kinds = [(cls, cells[0]) for cls, cells in rows]
    fraud_rows = [name for cls, name in kinds if cls == ""]
    assert fraud_rows and not any("label" in name.lower() for name in fraud_rows)
    assert "Account takeover" in fraud_rows
    apart = [name for cls, name in kinds if cls == "apart"]
    assert len(apart) == 1 and "not a fraud pattern" in apart[0]
    total = [cells for cls, cells in rows if cls == "total"][0]
    assert total[1] == fmt.count(night.summary["gate"]["scores"]["challenger"]["outcomes"]["total"]["frauds"])
    missed = [cells[5] for cls, cells in rows if cls == ""]
    assert missed == sorted(missed, key=lambda m: -float(re.sub(r"[^\d.]", "", m)))  # largest missed amount first


def test_target_recall_is_mentioned_only_when_a_target_is_set(night):
    assert night.summary["policy"]["target_recall"] is None
    assert "target recall" not in night.html.lower()
    summary = copy.deepcopy(night.summary)
    summary["policy"].update(target_recall=0.9, target_recall_met=False)
    decision = text(section(page(summary, {}), "decision"))
    assert "Target recall 90% (this run's thresholds): not met" in decision
    summary["policy"]["target_recall_met"] = True
    assert "Target recall 90% (this run's thresholds): met" in text(section(page(summary, {}), "decision"))


def test_a_kept_champion_is_what_the_page_says_is_served(night):
    summary = copy.deepcopy(night.summary)
    champion = summary["gate"]["scores"]["champion"]
    summary["gate"]["decision"] = "keep champion"
    summary["models"]["served"] = {"version": night.previous, "since": night.previous_record["at"]}
    decision = text(section(page(summary, {}), "decision"))
    assert f"Served: {night.previous}, champion since {fmt.when(night.previous_record['at'])}" in decision
    assert f"This run's model {night.result.version} was published but not promoted" in decision
    review = fmt.threshold(champion["outcomes"]["thresholds"]["review"])
    assert f"A score of {review} or more goes to review; nothing is declined automatically" in decision


def test_first_night_has_no_champion_column_and_says_so(night):
    summary = copy.deepcopy(night.summary)
    del summary["gate"]["scores"]["champion"]
    summary["models"]["champion"] = None
    html = page(summary, {})
    assert "it is the first champion" in text(section(html, "decision"))
    assert tables(html)["models"][0][1][1:] == [night.result.version]
    assert "no previous champion to compare with" in text(section(html, "money"))


def test_tables_are_written_for_reading_and_every_metric_is_in_the_glossary(night):
    html = night.html
    for name, rows in tables(html).items():
        assert not any("_" in header for header in rows[0][1]), (name, rows[0])  # human headers, not keys
        for _, cells in rows:
            for cell in cells:
                assert not re.search(r"\.0*[1-9]\d{4,}", cell), (name, cell)  # at most 4 significant digits
                assert not re.search(r"\d{4}-\d\d-\d\d", cell), (name, cell)  # dates as dates
    links = set(re.findall(r"href='#g-([\w-]+)'", html))
    assert links <= set(GLOSSARY), links - set(GLOSSARY)
    for key in ("ap", "card-precision", "p-t", "recall-at-capacity", "calibration", "counted"):
        assert key in links
        assert html.count(f"id='g-{key}'") == 1
    # the winner's figures as the gate counts them, and on every payment where training reports both
    header, *rows = tables(html)["metrics"]
    views = [night.summary["test"]] + ([night.summary["test_unfiltered"]] if "test_unfiltered" in night.summary else [])
    assert len(header[1]) == 1 + len(views)
    assert rows[0][1][1:] == [fmt.ratio(v["average_precision"]) for v in views]
    # the long hyper-parameters are folded away
    params = section(html, "parameters")
    assert "<details>" in params and "max_depth" in params
    assert "id='drift'" in html and "Not monitored yet" in text(section(html, "drift"))
    assert "Candidates side by side" in html and "Challenger vs champion" in html


def test_daily_figures_are_grouped_by_calendar_day_in_utc():
    from fraud.config import PolicyConfig
    from fraud.report.outcomes import window_outcomes

    ts = pd.to_datetime(["2026-03-01 23:30", "2026-03-02 00:30", "2026-03-02 10:00", "2026-03-03 12:00"], utc=True)
    window = pd.DataFrame({"timestamp": ts, "label": [1, 1, 0, 0], "amount": [10.0, 20.0, 30.0, 40.0],
                           "fraud_pattern": ["card_testing", "label_noise", "", ""]})
    scores = np.array([0.9, 0.1, 0.5, 0.95])
    policy = PolicyConfig(review_cost=2.0, false_decline_cost=7.0)
    out = window_outcomes(scores, Thresholds(review=0.4, decline=0.8), window, policy, "EUR")
    days = {d["day"]: d for d in out["days"]}
    assert list(days) == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert days["2026-03-01"]["caught_amount"] == 10.0 and days["2026-03-02"]["missed_amount"] == 20.0
    assert days["2026-03-03"]["false_declines"] == 1 and days["2026-03-03"]["recall"] is None
    total = out["total"]
    assert total["review_cost"] == 2.0 and total["false_decline_cost"] == 7.0 and total["missed_cost"] == 20.0
    assert total["savings"] == pytest.approx(30.0 - (2.0 + 7.0 + 20.0))
    assert out["patterns"]["label_noise"]["missed_amount"] == 20.0


# -- in a real browser -----------------------------------------------------------------------

CHROMIUM = Path(os.environ.get("FRAUD_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
OVERFLOW = """() => {
  document.querySelectorAll('details').forEach(d => d.open = true);
  const width = window.innerWidth;
  const wide = [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > width + 0.5)
    .map(e => e.tagName + (e.className ? '.' + e.className : '') + ' ' + Math.round(e.getBoundingClientRect().right));
  return {scrollWidth: document.documentElement.scrollWidth, width, wide};
}"""


@pytest.fixture(scope="session")
def chromium():
    """Playwright driving the system's Chromium (CI installs Debian's); skipped locally without
    it, a failure where FRAUD_REQUIRE_BROWSER=1 (CI). Checked before the report is built."""
    required = os.environ.get("FRAUD_REQUIRE_BROWSER") == "1"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if required:
            pytest.fail("FRAUD_REQUIRE_BROWSER=1 but the playwright package is not installed (pip install -e .[dev])")
        pytest.skip("the playwright package is not installed")
    if not CHROMIUM.exists():
        if required:
            pytest.fail(f"FRAUD_REQUIRE_BROWSER=1 but there is no Chromium at {CHROMIUM} (apt-get install chromium)")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set FRAUD_CHROMIUM)")
    return sync_playwright


@pytest.mark.timeout(120)
def test_report_fits_the_page_and_every_image_loads_in_chromium(chromium, night, tmp_path):
    sync_playwright = chromium
    url = (night.result.run_dir / "report.html").as_uri()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for width in (1280, 800):
                tab = browser.new_page(viewport={"width": width, "height": 900})
                tab.goto(url, wait_until="load")
                images = tab.evaluate("() => [...document.images].map(i => [i.getAttribute('src'), i.complete, "
                                      "i.naturalWidth])")
                assert len(images) == 8
                assert all(done and natural > 0 for _, done, natural in images), images
                fit = tab.evaluate(OVERFLOW)
                assert fit["scrollWidth"] <= fit["width"] and not fit["wide"], (width, fit)
                tab.screenshot(path=str(tmp_path / f"report-{width}.png"), full_page=True)
                tab.close()
        finally:
            browser.close()
    assert (tmp_path / "report-800.png").stat().st_size > 10_000


def test_candidates_carry_day_bootstrap_intervals_and_the_focal_verdict_in_words(night):
    comparison = night.summary["comparison"]
    page = text(night.html)
    assert comparison["difference"]["verdict"] in page  # focal vs the tuned logistic baseline, said
    rows = {cells[0]: cells for _, cells in tables(night.html)["candidates"]}
    for kind, ci in comparison["models"].items():
        row = next(cells for name, cells in rows.items() if kind in name)
        assert f"({ci['low']:.3f}\u2013{ci['high']:.3f})" in row[3], (kind, row)


def test_the_run_and_every_search_trial_are_tracked_in_mlflow(night):
    from mlflow import MlflowClient

    tracked = night.summary["tracking"]
    assert tracked["uri"] == f"sqlite:///{night.result.run_dir.parent.parent / 'mlflow.db'}"  # beside runs/
    client = MlflowClient(tracking_uri=tracked["uri"])
    run = client.get_run(tracked["run_id"])
    s = night.summary
    assert run.info.run_name == s["run_id"] and run.data.params["winner"] == s["winner"]["kind"]
    assert run.data.metrics["test_average_precision"] == pytest.approx(s["test"]["average_precision"])
    assert run.data.tags["registry_version"] == s["registry_version"] and run.data.tags["gate"] == s["gate"]["decision"]
    trials = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert len(trials) == len(s["trials"]) > 0
    by_name = {t.info.run_name: t for t in trials}
    first = by_name[f"{s['trials'][0]['kind']} trial 0"]
    assert first.data.metrics["validation_average_precision"] == pytest.approx(s["trials"][0]["validation_ap"])
    assert first.data.params["candidate"] == s["trials"][0]["kind"]
    artefacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.html", "pr_curves.png"} <= artefacts
