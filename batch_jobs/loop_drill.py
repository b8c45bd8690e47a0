"""A drill of the operating loop on simulated days (issue 16, section 7).

A champion is trained as of ``start_day``; then every day after it is replayed through the
scoring API (its FastAPI app, in this process) with the server's clock set to the simulated
time:

- the day's transactions go to ``POST /v1/score/batch`` in time order; the decision log fills;
- labels come back through ``POST /v1/feedback`` with realistic delays: a reviewer's verdict a
  few hours after a transaction was routed to review, a chargeback at the fraud's simulated
  label time (a fraud's ``label_time`` in the data: hours to days later);
- each night (at midnight) the monitor judges the champion's health from the decision log and the
  labels (``fraud.monitoring.check_health``), the retrain trigger decides and records
  (``batch_jobs.retrain.act``); a fired trigger runs the nightly job as of that moment, which
  publishes the new model as the shadow challenger (``[challenger] shadow_first``); the API
  picks it up and scores every transaction with it in shadow; once the shadow period and
  its labels suffice, the shadow gate (``fraud.challenger``) promotes or drops it.

The simulator's drift scenario (``drift_day``) changes a fraud pattern (card testing moves to
8-40 amounts at online marketplaces, three times as often: ``card_testing_drift``) and
legitimate spending. ``DrillResult`` has per day: recall on all frauds and on the new pattern
(from the simulated truth, by the decision the API gave), the health verdict, the trigger's
decision, the champion and the challenger; and the days from onset to detection, retrain,
promotion and recovery.

The clock is moved with ``time-machine`` (a test/bench dependency): the API reads the time
where it always does (``datetime.now``, ``time.time``), so no code path is special-cased.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import math
import os
import shutil
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from fraud.config import FraudConfig
from fraud.features.spec import FeatureSpec
from fraud.io import load_transactions
from fraud.progress import progress_bar
from fraud.registry import ModelRegistry
from fraud.simulator import TransactionSimulator
from fraud.splits import TrainingWindow

log = logging.getLogger(__name__)
DAY = pd.Timedelta(days=1)
NEW_PATTERN = "card_testing_drift"
API_FIELDS = ("card_id", "terminal_id", "amount", "currency", "channel", "country", "merchant_category",
              "device_id", "card_lat", "card_lon", "terminal_lat", "terminal_lon")


@dataclass(frozen=True)
class DrillPlan:
    """What is simulated and when. Days count from the simulation's first day."""
    days: int = 64
    start_day: int = 36          # the first champion is trained as of this day; replay starts here
    drift_day: int = 40
    n_customers: int = 1500
    n_terminals: int = 600
    seed: int = 11
    label_delay_days: float = 2.0  # the simulated chargeback window (and [data] label_delay_days)
    review_delay_hours: tuple[float, float] = (1.0, 6.0)  # a reviewer's verdict after the review
    max_batch: int = 500
    recall_slo: float = 0.40     # [monitoring] recall_slo: below the first champion's usual recall (0.42-0.69)


@dataclass
class DrillDay:
    day: str
    scored: int
    frauds: int
    caught: int
    new_pattern_frauds: int
    new_pattern_caught: int
    reviews: int
    feedback_sent: int
    health: str | None = None
    health_reasons: list[str] = field(default_factory=list)
    trigger: str | None = None
    trained: str | None = None       # the version a fired trigger published
    shadow_verdict: str | None = None
    champion: str | None = None      # the champion that scored this day (and the challenger beside it)
    challenger: str | None = None
    shadow_scored: int = 0

    @property
    def recall(self) -> float | None:
        return self.caught / self.frauds if self.frauds else None

    @property
    def new_pattern_recall(self) -> float | None:
        return self.new_pattern_caught / self.new_pattern_frauds if self.new_pattern_frauds else None


@dataclass
class DrillResult:
    plan: DrillPlan
    days: list[DrillDay]
    first_champion: str
    milestones: dict

    def to_dict(self) -> dict:
        return {"plan": asdict(self.plan), "first_champion": self.first_champion, "milestones": self.milestones,
                "days": [{**asdict(d), "recall": d.recall, "new_pattern_recall": d.new_pattern_recall}
                         for d in self.days]}


def api_transaction(rec: dict) -> dict:
    """A transaction row as the JSON a client sends: ISO time with its offset, no missing fields."""
    body = {"transaction_id": rec["transaction_id"], "timestamp": pd.Timestamp(rec["timestamp"]).isoformat()}
    for name in API_FIELDS:
        value = rec.get(name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        body[name] = value.item() if hasattr(value, "item") else value
    return body


class _Api:
    """The scoring API over its ASGI app (``TestClient``), with one API key."""

    def __init__(self, workdir: Path, registry_uri: str, config_path: Path, plan: DrillPlan, recheck_s: float):
        from fastapi.testclient import TestClient

        from lambda_handler.api import create_app
        from lambda_handler.container import build_container
        from lambda_handler.settings import Settings

        key = "drill-api-key-0123456789abcdef"
        self.settings = Settings(backend="local", registry_uri=registry_uri, config_path=str(config_path),
                                 api_key_hashes=hashlib.sha256(key.encode()).hexdigest(), metrics="memory", max_batch=plan.max_batch,
                                 max_body_bytes=5_000_000, labels_uri=str(workdir / "labels"),
                                 decision_log_uri=str(workdir / "decisions"), secrets_dir=str(workdir / "secrets"),
                                 champion_recheck_s=recheck_s, max_clock_skew_s=300)
        self.container = build_container(self.settings)
        self.client = TestClient(create_app(self.container))
        self.headers = {"x-api-key": key}

    def score(self, records: list[dict]) -> list[dict]:
        r = self.client.post("/v1/score/batch", json={"transactions": [api_transaction(x) for x in records]},
                             headers=self.headers)
        if r.status_code != 200:
            raise RuntimeError(f"POST /v1/score/batch answered {r.status_code}: {r.text[:500]}")
        return r.json()["results"]

    def feedback(self, transaction_id: str, fraud: bool, source: str, when: pd.Timestamp) -> None:
        r = self.client.post("/v1/feedback", headers=self.headers, json={
            "transaction_id": transaction_id, "label": "fraud" if fraud else "legitimate", "source": source,
            "time": when.isoformat()})
        if r.status_code != 200:
            raise RuntimeError(f"POST /v1/feedback answered {r.status_code}: {r.text[:500]}")


def drill_config(base: FraudConfig, plan: DrillPlan, workdir: Path) -> FraudConfig:
    """``base`` with what the drill fixes: windows scaled to its days and label delay, the
    decision log in ``workdir``, verdicts on a few days of a small population, a retrain at
    most every other day, a small search bound by trials, and a retrained model shadowed for
    two days before it may serve."""
    def section(name, **values):
        return getattr(base, name).model_copy(update=values)

    return base.model_copy(update={
        "data": section("data", label_delay_days=plan.label_delay_days),
        "split": section("split", train_days=21, validation_days=3, test_days=4, gap_days=1, prequential_folds=1),
        "monitoring": section("monitoring", decisions_uri=str(workdir / "decisions"), min_rows=1000, min_labels=20,
                              recall_window_days=3, recall_lag_days=math.ceil(plan.label_delay_days),
                              recall_slo=plan.recall_slo),
        "retrain": section("retrain", cooldown_hours=47, min_new_labels=50),
        # trials bind, not the clock: the same drill trains the same models on a busy machine
        "search": section("search", candidates=("focal_xgb", "logistic_xgb"), max_trials=4,
                          min_trials_per_candidate=2, time_budget_s=3600, max_rounds=200),
        "challenger": section("challenger", shadow_first=True, min_shadow_days=1.9, min_labels=60, min_frauds=10),
    })


def simulate(plan: DrillPlan, directory: Path, progress: bool) -> pd.DataFrame:
    sim = TransactionSimulator(n_customers=plan.n_customers, n_terminals=plan.n_terminals, seed=plan.seed,
                               label_delay_days=plan.label_delay_days, drift_day=plan.drift_day,
                               chargeback_cap_days=plan.label_delay_days)  # every label complete in the window
    sim.write(directory, plan.days, progress=progress)
    return sim


def _review_delay(transaction_id: str, plan: DrillPlan) -> pd.Timedelta:
    """A reviewer's delay for this transaction (seeded by its id: the same on every run)."""
    seed = int(hashlib.sha256(transaction_id.encode()).hexdigest()[:8], 16)
    return pd.Timedelta(hours=float(np.random.default_rng(seed).uniform(*plan.review_delay_hours)))


def run_drill(base: FraudConfig, plan: DrillPlan, workdir: Path, progress: bool = True) -> DrillResult:
    """Run the drill in ``workdir`` (data, registry, decision log, labels, trigger log, runs)."""
    workdir.mkdir(parents=True, exist_ok=True)
    # the nightly job signs the registry's manifests with the key the API verifies them with
    previous_secrets = os.environ.get("FRAUD_SECRETS_DIR")
    os.environ["FRAUD_SECRETS_DIR"] = str(workdir / "secrets")
    try:
        return _run(base, plan, workdir, progress)
    finally:
        if previous_secrets is None:
            os.environ.pop("FRAUD_SECRETS_DIR", None)
        else:
            os.environ["FRAUD_SECRETS_DIR"] = previous_secrets


def _run(base: FraudConfig, plan: DrillPlan, workdir: Path, progress: bool) -> DrillResult:
    import time_machine

    from batch_jobs.nightly import run_nightly
    from batch_jobs.retrain import act
    from batch_jobs.state_catch_up import catch_up_state
    from batch_jobs.state_load import load_state
    from fraud.monitoring.sources import check_health

    config = drill_config(base, plan, workdir)
    config_path = workdir / "drill.toml"
    _write_config(config, config_path)
    data = workdir / "transactions"
    if data.exists():
        shutil.rmtree(data)
    simulate(plan, data, progress)
    truth, _ = load_transactions(data, config, require_label=True)
    truth = truth.sort_values(["timestamp", "transaction_id"]).reset_index(drop=True)
    t0 = truth["timestamp"].min().normalize()
    start = t0 + plan.start_day * DAY
    registry_uri = str(workdir / "registry")
    registry = ModelRegistry.open(registry_uri)
    triggers_uri, labels_uri = str(workdir / "triggers"), str(workdir / "labels")

    with time_machine.travel(start.to_pydatetime(), tick=False) as clock:
        first = run_nightly(config, data, registry_uri=registry_uri, runs_dir=workdir / "runs", score_latest=False,
                            progress=False, window=TrainingWindow(as_of=start), labels_uri=labels_uri)
        log.info("drill: first champion %s trained as of %s", first.version, start)
        api = _Api(workdir, registry_uri, config_path, plan, recheck_s=0)
        spec = api.container.online.spec
        load_state(truth[truth["timestamp"] < start], spec, api.container.stores["features"],
                   api.container.online.keys, as_of=start)
        scored: dict[str, str] = {}
        pending: list = []
        days = []
        for d in progress_bar(range(plan.start_day, plan.days), desc="drill days", enabled=progress):
            day_start, day_end = t0 + d * DAY, t0 + (d + 1) * DAY
            rows = truth[(truth["timestamp"] >= day_start) & (truth["timestamp"] < day_end)]
            serving, shadowing = registry.champion(), registry.challenger()  # the models that score this day
            record = _replay_day(api, clock, rows, pending, scored, day_start, day_end, plan)
            record.champion, record.challenger = serving, shadowing["version"] if shadowing else None
            _advance(clock, day_end)  # the nightly jobs at midnight: the clock never goes back
            # the lake's labels the API was not told (legitimate ones confirmed when the chargeback
            # window closes) reach the online state as `fraud state catch-up` brings them, nightly
            catch_up_state(truth, spec, api.container.stores["features"], api.container.online.keys,
                           as_of=pd.Timestamp.now(tz="UTC"))
            _nightly(record, config, config_path, registry, registry_uri, workdir, data, labels_uri, triggers_uri,
                     clock, check_health, act, run_nightly)
            days.append(record)
            log.info("drill %s: %d scored, recall %s, new pattern %s, health %s, trigger %s, champion %s, "
                     "challenger %s", record.day, record.scored, _pct(record.recall),
                     _pct(record.new_pattern_recall), record.health, record.trigger, record.champion,
                     record.challenger)
    return DrillResult(plan, days, first.version, milestones(days, plan, t0, first.version))


def _advance(clock, when) -> None:
    """Move the simulated clock to ``when``, or leave it where it is if that is later."""
    clock.move_to(max(pd.Timestamp(when), pd.Timestamp.now(tz="UTC")).to_pydatetime())


def _replay_day(api: _Api, clock, rows: pd.DataFrame, pending: list, scored: dict, day_start, day_end,
                plan: DrillPlan) -> DrillDay:
    """The day's transactions, in time order in chunks of at most a quarter of an hour (and
    ``max_batch``), and after each chunk the labels that came back by its end: a chargeback
    at a scored fraud's simulated label time, a reviewer's verdict a few hours after a
    review (``pending``: a heap of (time, transaction id, fraud?, source))."""
    records = rows.to_dict("records")
    answers, feedback, shadow = {}, 0, 0
    step = pd.Timedelta(minutes=15)
    at, i = day_start, 0
    while at < day_end:
        nxt = at + step
        j = i
        while j < len(records) and records[j]["timestamp"] < nxt:
            j += 1
        for lo in range(i, j, plan.max_batch):
            part = records[lo:min(j, lo + plan.max_batch)]
            _advance(clock, part[-1]["timestamp"])
            for rec, answer in zip(part, api.score(part)):
                answers[rec["transaction_id"]] = answer
                scored[rec["transaction_id"]] = answer["decision"]
                if answer["decision"] == "review":
                    heapq.heappush(pending, (rec["timestamp"] + _review_delay(rec["transaction_id"], plan),
                                             rec["transaction_id"], bool(rec["label"]), "reviewer"))
                if rec["label"] == 1 and pd.notna(rec["label_time"]):
                    heapq.heappush(pending, (rec["label_time"], rec["transaction_id"], True, "chargeback"))
        i = j
        while pending and pending[0][0] < nxt:
            when, txn_id, fraud, source = heapq.heappop(pending)
            _advance(clock, when)
            api.feedback(txn_id, fraud, source, pd.Timestamp(when))
            feedback += 1
        at = nxt
    flagged = np.array([answers[r["transaction_id"]]["decision"] in ("review", "decline") for r in records], bool)
    fraud = rows["label"].to_numpy() == 1
    new = fraud & (rows["fraud_pattern"].to_numpy(object) == NEW_PATTERN)
    decisions = [answers[r["transaction_id"]]["decision"] for r in records]
    return DrillDay(day=str(day_start.date()), scored=len(records), frauds=int(fraud.sum()),
                    caught=int((fraud & flagged).sum()), new_pattern_frauds=int(new.sum()),
                    new_pattern_caught=int((new & flagged).sum()), reviews=decisions.count("review"),
                    feedback_sent=feedback)


def _nightly(record: DrillDay, config, config_path, registry, registry_uri, workdir, data, labels_uri, triggers_uri,
             clock, check_health, act, run_nightly) -> None:
    """Midnight: health, the trigger (training as of now when it fires), the shadow gate."""
    now = pd.Timestamp.now(tz="UTC")
    health, _ = check_health(registry, config.monitoring, labels_uri, str(workdir / "decisions"), as_of=now)
    record.health, record.health_reasons = health.status, list(health.problems)
    log.info("drill health %s: %s", now.date(), " | ".join(health.lines()))

    def train_now(argv):
        result = run_nightly(config, data, registry_uri=registry_uri, runs_dir=workdir / "runs",
                             score_latest=False, progress=False, window=TrainingWindow(as_of=now),
                             labels_uri=labels_uri)
        record.trained = f"{result.version} ({result.summary.get('challenger', {}).get('new_version', 'promote')})"
        return 0

    acted = act(health, config, triggers_uri=triggers_uri, labels_uri=labels_uri, train_argv=[], now=now,
                starter=train_now)
    record.trigger = acted.decision.outcome
    record.shadow_verdict = _shadow_step(registry, config, workdir, labels_uri, now, record.trained)


def _shadow_step(registry, config, workdir, labels_uri, now, trained) -> str | None:
    """The shadow gate on the challenger (``batch_jobs.challenger.nightly_step``: promote,
    wait or reject) on a night without training; a training run judged it already."""
    from batch_jobs.challenger import nightly_step

    if trained is not None:
        return None
    step = nightly_step(registry, config, labels_uri)
    return None if step is None else f"{step['action']}: {step['reason']}"


def _write_config(config: FraudConfig, path: Path) -> None:
    """The drill's config as TOML (the API and the nightly job read the same file)."""
    import tomli_w

    path.write_text(tomli_w.dumps(config.model_dump(mode="json", exclude_none=True)))


def _pct(x) -> str:
    return "-" if x is None else f"{x:.0%}"


def milestones(days: list[DrillDay], plan: DrillPlan, t0: pd.Timestamp, first_champion: str) -> dict:
    """Days from the drift's onset to the first unhealthy verdict (the night after the day
    judged), the first retrain, the first day a retrained champion served, and recovery (the
    new pattern's recall back at the old patterns' recall before the onset on each of three
    days in a row served by a retrained champion). A day counts for the champion that scored it."""
    onset = (t0 + plan.drift_day * DAY).date()
    after = [d for d in days if pd.Timestamp(d.day).date() >= onset]
    before = [d for d in days if pd.Timestamp(d.day).date() < onset]
    base_f, base_c = sum(d.frauds for d in before), sum(d.caught for d in before)
    baseline = base_c / base_f if base_f else None

    def first(pred):
        hit = next((d for d in after if pred(d)), None)
        return None if hit is None else (pd.Timestamp(hit.day).date() - onset).days

    promoted = first(lambda d: d.champion not in (None, first_champion))
    recovered = None
    if baseline is not None:
        for i in range(len(after) - 2):
            window = after[i:i + 3]
            if all(d.new_pattern_recall is not None and d.new_pattern_recall >= baseline
                   and d.champion not in (None, first_champion) for d in window):
                recovered = (pd.Timestamp(window[0].day).date() - onset).days
                break

    def recall(rows):
        f = sum(d.new_pattern_frauds for d in rows)
        return sum(d.new_pattern_caught for d in rows) / f if f else None

    pre_promotion = [d for d in after if d.champion == first_champion]
    post_promotion = [d for d in after if d.champion not in (None, first_champion)]
    return {"onset": str(onset), "baseline_recall_before_onset": baseline,
            "days_to_detection": first(lambda d: d.health not in (None, "OK", "NOT_ENOUGH_DATA")),
            "days_to_retrain": first(lambda d: d.trained is not None),
            "days_to_promotion": promoted, "days_to_recovery": recovered,
            "new_pattern_recall_first_champion": recall(pre_promotion),
            "new_pattern_recall_after_promotion": recall(post_promotion)}
