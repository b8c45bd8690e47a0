"""Acting on retrain triggers: ``fraud monitor --act`` starts a real ``fraud train`` exactly
once per fired trigger; ``fraud train --trigger`` (the AWS alarm's and schedule's way in)
holds back within the cooldown or without new labels, records every decision, and exits 0
without training when held back."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

import batch_jobs.nightly as nightly
import batch_jobs.retrain as retrain
from batch_jobs.cli import main
from fraud.config import load_config
from fraud.labels import open_label_store
from fraud.monitoring.triggers import decide, open_trigger_log, RetrainPolicy
from fraud.registry import ModelRegistry
from helpers.configs import SMALL

NOW = datetime.now(timezone.utc).replace(microsecond=0)
RETRAIN = "[retrain]\ncooldown_hours = 12\nmin_new_labels = 2\n"


def sick(recall=0.4):
    """A health whose recall is below the SLO (``fraud.monitoring.health.Health``'s attributes)."""
    return SimpleNamespace(day=date(2026, 6, 30), recall=recall, recall_verdict=True, drift_verdict=True,
                           drifted_features=(), feature_psi={},
                           thresholds={"recall_slo": 0.7, "psi_threshold": 0.2}, scored_rows=3000,
                           labelled_rows=400, labelled_frauds=40, healthy=False,
                           lines=lambda: ["status: RECALL_BELOW_SLO"])


def add_labels(store_uri, ids, known_at):
    open_label_store(store_uri).append([{"transaction_id": t, "label": 1, "source": "chargeback",
                                         "known_at": known_at} for t in ids])


def test_monitor_act_starts_one_real_training_per_fired_trigger(tmp_path, small_sim_dir, monkeypatch):
    config_file = tmp_path / "small.toml"
    config_file.write_text(SMALL + RETRAIN + "[tracking]\nenabled = false\n")
    config = load_config(config_file)
    monkeypatch.setenv("FRAUD_DATA_URI", str(small_sim_dir))
    monkeypatch.setenv("FRAUD_RUNS_URI", str(tmp_path / "runs"))
    labels, triggers, registry = str(tmp_path / "labels"), str(tmp_path / "triggers"), tmp_path / "registry"
    add_labels(labels, ["x1", "x2"], NOW - timedelta(days=1))
    started = []

    def starter(argv):
        started.append(argv)
        return retrain.start_training(argv)

    argv = retrain.train_argv(config_file, registry, labels, triggers)

    def act(at):
        return retrain.act(sick(), config, triggers_uri=triggers, labels_uri=labels, train_argv=argv, now=at,
                           starter=starter)

    first = act(NOW)
    assert (first.decision.outcome, first.exit_code) == ("fired", 0)
    assert len(started) == 1 and started[0][-2:] == ["--trigger", f"decision:{first.decision.id}"]
    assert len(ModelRegistry.open(registry).versions()) == 1          # it really trained
    assert act(NOW + timedelta(hours=1)).decision.suppressed_by == "cooldown"
    assert act(NOW + timedelta(hours=13)).decision.suppressed_by == "min_labels"   # no label since the start
    add_labels(labels, ["x3", "x4"], NOW + timedelta(hours=2))
    again = act(NOW + timedelta(hours=14))
    assert (again.decision.outcome, again.exit_code) == ("fired", 0)
    assert len(started) == 2 and len(ModelRegistry.open(registry).versions()) == 2
    assert [d.outcome for d in open_trigger_log(triggers).read()] == ["fired", "suppressed", "suppressed", "fired"]


class Trained(Exception):
    pass


@pytest.fixture
def train_calls(monkeypatch):
    calls = []

    def run_nightly(*args, **kwargs):
        calls.append(kwargs)
        raise Trained  # main answers 1; nothing after the start matters here

    monkeypatch.setattr(nightly, "run_nightly", run_nightly)
    return calls


def train(tmp_path, trigger, *extra):
    return main(["train", "--trigger", trigger, "--triggers", str(tmp_path / "triggers"), "--labels",
                 str(tmp_path / "labels"), "--registry", str(tmp_path / "registry"), *extra])


def started_hours_ago(tmp_path, hours):
    open_trigger_log(str(tmp_path / "triggers")).append(
        decide(["schedule"], {}, "schedule", None, 0, RetrainPolicy(), NOW - timedelta(hours=hours)))


def test_an_alarm_within_the_cooldown_exits_0_without_training_and_is_recorded(tmp_path, train_calls, capsys):
    started_hours_ago(tmp_path, 3)
    add_labels(str(tmp_path / "labels"), [f"t{i}" for i in range(100)], NOW - timedelta(hours=1))
    assert train(tmp_path, "alarm:fraud-dev-PolicyRecallBelowSLO") == 0
    # NOW is the module's import time: in a long test run the clock has moved on since
    assert train_calls == [] and re.search(r"not training: a retrain started 3\.\d h ago", capsys.readouterr().out)
    last = open_trigger_log(str(tmp_path / "triggers")).read()[-1]
    assert (last.source, last.reasons, last.suppressed_by) == (
        "alarm:fraud-dev-PolicyRecallBelowSLO", ("recall",), "cooldown")


def test_an_alarm_without_enough_new_labels_exits_0_without_training(tmp_path, train_calls):
    started_hours_ago(tmp_path, 30)
    add_labels(str(tmp_path / "labels"), ["old"], NOW - timedelta(hours=40))   # before the last start
    add_labels(str(tmp_path / "labels"), [f"t{i}" for i in range(49)], NOW - timedelta(hours=1))
    assert train(tmp_path, "alarm:fraud-dev-FeaturePsiAboveThreshold") == 0 and train_calls == []
    last = open_trigger_log(str(tmp_path / "triggers")).read()[-1]
    assert (last.reasons, last.suppressed_by, last.figures["new_labels"]) == (("psi",), "min_labels", 49)


def test_an_alarm_out_of_cooldown_with_new_labels_trains_once(tmp_path, train_calls, monkeypatch):
    monkeypatch.setenv(retrain.TRIGGER_DETAIL_ENV, "Threshold Crossed: 1 datapoint [0.55] < 0.7")
    started_hours_ago(tmp_path, 30)
    add_labels(str(tmp_path / "labels"), [f"t{i}" for i in range(50)], NOW - timedelta(hours=1))
    assert train(tmp_path, "alarm:fraud-dev-PolicyRecallBelowSLO") == 1 and len(train_calls) == 1
    last = open_trigger_log(str(tmp_path / "triggers")).read()[-1]
    assert last.fired and last.figures["alarm_reason"].startswith("Threshold Crossed")


def test_the_schedule_trains_within_the_cooldown_and_is_recorded_as_a_start(tmp_path, train_calls):
    started_hours_ago(tmp_path, 1)
    log = open_trigger_log(str(tmp_path / "triggers"))
    assert log.claim(log.last_fired(), log.last_fired())   # an alarm's task claimed the next start: no matter
    assert train(tmp_path, "schedule") == 1 and len(train_calls) == 1
    log = open_trigger_log(str(tmp_path / "triggers"))
    assert [d.outcome for d in log.read()] == ["fired", "fired"]
    assert log.last_start() > NOW - timedelta(minutes=5)


def test_a_start_admitted_by_the_monitor_is_not_judged_again(tmp_path, train_calls):
    started_hours_ago(tmp_path, 0)
    assert train(tmp_path, "decision:abc") == 1 and len(train_calls) == 1
    assert len(open_trigger_log(str(tmp_path / "triggers")).read()) == 1   # nothing more recorded


def test_an_unknown_trigger_is_a_usage_error(tmp_path, train_calls, capsys):
    assert train(tmp_path, "because") == 2 and train_calls == []
    assert "--trigger 'because'" in capsys.readouterr().err


def test_monitor_act_passes_its_options_to_the_training_it_starts(tmp_path, monkeypatch, capsys):
    import batch_jobs.monitor as monitor

    monkeypatch.setattr(monitor, "run_monitor", lambda *a, **k: (sick(), {"html": "h.html"}))
    add_labels(str(tmp_path / "labels"), [f"t{i}" for i in range(60)], NOW - timedelta(hours=1))
    started = []
    monkeypatch.setattr(retrain, "start_training", lambda argv: started.append(argv) or 0)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[tracking]\nenabled = false\n")
    argv = ["--config", str(cfg), "--registry", str(tmp_path / "reg"), "monitor", "--act", "--out",
            str(tmp_path / "m"), "--labels", str(tmp_path / "labels"), "--triggers", str(tmp_path / "triggers")]
    assert main(argv) == 3   # the health's exit code: unhealthy
    assert "retrain: fired" in capsys.readouterr().out and len(started) == 1
    got = started[0]
    assert got[got.index("--config") + 1] == str(cfg) and got[got.index("--registry") + 1] == str(tmp_path / "reg")
    assert got[got.index("--labels") + 1] == str(tmp_path / "labels") and got[-2] == "--trigger"
    assert main(argv) == 3 and len(started) == 1   # within the cooldown: recorded, not started
    assert main(argv[:5] + argv[6:]) == 3 and len(open_trigger_log(str(tmp_path / "triggers")).read()) == 2  # no --act


def test_of_two_alarms_firing_together_one_trains(tmp_path, train_calls):
    """Both tasks read the same last start; the one that claims the start after it second is
    held back (recorded as the cooldown's), even before the first has recorded its decision."""
    started_hours_ago(tmp_path, 30)
    add_labels(str(tmp_path / "labels"), [f"t{i}" for i in range(50)], NOW - timedelta(hours=1))
    log = open_trigger_log(str(tmp_path / "triggers"))
    other = decide(["psi"], {}, "alarm:fraud-dev-FeaturePSIAboveThreshold", log.last_start(), 50, RetrainPolicy(), NOW)
    assert log.claim(log.last_fired(), other)            # the PSI alarm's task got there first
    assert train(tmp_path, "alarm:fraud-dev-MonitoredRecallBelowSLO") == 0 and train_calls == []
    last = log.read()[-1]
    assert (last.reasons, last.suppressed_by) == (("recall",), "cooldown") and "concurrent" in last.message


def test_monitor_act_exits_1_when_the_training_it_started_failed(tmp_path, monkeypatch, capsys):
    import batch_jobs.monitor as monitor

    monkeypatch.setattr(monitor, "run_monitor", lambda *a, **k: (sick(), {"html": "h.html"}))
    add_labels(str(tmp_path / "labels"), [f"t{i}" for i in range(60)], NOW - timedelta(hours=1))
    monkeypatch.setattr(retrain, "start_training", lambda argv: 1)
    assert main(["monitor", "--act", "--out", str(tmp_path / "m"), "--labels", str(tmp_path / "labels"),
                 "--triggers", str(tmp_path / "triggers")]) == 1
    assert "retrain: fired" in capsys.readouterr().out
