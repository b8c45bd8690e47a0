"""Acting on retrain triggers (``fraud.monitoring.triggers``).

Two ways a retrain is asked for, one log:

- ``fraud monitor --act`` (locally): ``act`` judges the health, records the decision in the
  trigger log and, when it fires, runs ``fraud train --trigger decision:<id>`` with the same
  config, registry, data, labels and runs as the monitor.
- ``fraud train --trigger WHY`` (in AWS the EventBridge rule on the recall/PSI alarms sets
  ``$FRAUD_TRAINING_TRIGGER=alarm:<alarm name>``, the nightly schedule ``schedule``):
  ``admit_training_start`` applies the cooldown and the minimum of new labels at the start
  of the job, records the decision, and a suppressed start exits 0 without training.

Training runs as a subprocess of the monitor, not in its process: it is the very entry point
the alarm and the schedule start (the same ``--trigger`` path, the same exit codes); the
training's memory, OpenMP/numba threads and logging set-up stay out of the monitor; and a
training crash is an exit code the monitor reports, not a monitor crash. It costs one Python
start (about 2 s) next to a training run of minutes.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone

from fraud.monitoring.triggers import (RetrainPolicy, TriggerDecision, conditions, decide, lost_claim,
                                       open_trigger_log)
from fraud.validation import InputError

log = logging.getLogger(__name__)

TRIGGER_ENV = "FRAUD_TRAINING_TRIGGER"          # why this training run was started
TRIGGER_DETAIL_ENV = "FRAUD_TRAINING_TRIGGER_DETAIL"  # the alarm's state reason, recorded with the decision


def new_labels_since(labels_uri: str | None, since: datetime | None, endpoint_url: str | None = None) -> int:
    """Labels in the label store known at or after ``since`` (all of them: None)."""
    if not labels_uri:
        return 0
    from fraud.labels import open_label_store

    known = open_label_store(labels_uri, endpoint_url).read()["known_at"]
    return int(len(known) if since is None else (known >= since).sum())


def _now(now) -> datetime:
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc)


def _at(decision: TriggerDecision | None) -> datetime | None:
    return datetime.fromisoformat(decision.at).astimezone(timezone.utc) if decision else None


def _judge(trigger_log, last: TriggerDecision | None, reasons, figures: dict, source: str, config,
           labels_uri: str | None, now: datetime, endpoint_url: str | None) -> TriggerDecision:
    """Decide, claim the start when it fires (not the schedule's: never held back), record."""
    decision = decide(reasons, figures, source, _at(last), new_labels_since(labels_uri, _at(last), endpoint_url),
                      RetrainPolicy.from_config(config), now)
    if decision.fired and "schedule" not in decision.reasons and not trigger_log.claim(last, decision):
        decision = lost_claim(decision)
    trigger_log.append(decision)
    return decision


@dataclass
class Acted:
    decision: TriggerDecision
    exit_code: int | None   # training's, when it was started


def start_training(argv: list[str]) -> int:
    """``fraud train ARGV`` in a child process (module docstring: why not in this one)."""
    command = [sys.executable, "-m", "batch_jobs.cli", "train", *argv]
    log.info("starting training: %s", " ".join(command))
    return subprocess.run(command, check=False).returncode


def act(health, config, *, triggers_uri: str, labels_uri: str | None, train_argv: list[str], now=None,
        endpoint_url: str | None = None, starter=start_training) -> Acted:
    """Judge ``health`` (``fraud.monitoring``), record the decision, start training when it fires."""
    now = _now(now)
    trigger_log = open_trigger_log(triggers_uri, endpoint_url)
    last = trigger_log.last_fired()
    reasons, figures = conditions(health, RetrainPolicy.from_config(config), _at(last), now)
    decision = _judge(trigger_log, last, reasons, figures, "monitor", config, labels_uri, now, endpoint_url)
    log.info("retrain trigger: %s (%s)", decision.outcome, decision.message)
    if not decision.fired:
        return Acted(decision, None)
    return Acted(decision, starter([*train_argv, "--trigger", f"decision:{decision.id}"]))


def _alarm_reason(name: str) -> str:
    lowered = name.lower()
    return "recall" if "recall" in lowered else "psi" if ("psi" in lowered or "drift" in lowered) else "alarm"


def admit_training_start(trigger: str | None, config, *, triggers_uri: str, labels_uri: str | None, now=None,
                         endpoint_url: str | None = None, detail: str | None = None) -> TriggerDecision | None:
    """``fraud train``'s first step. None: not started by a trigger (or admitted already by
    ``fraud monitor --act``), train. Otherwise the recorded decision: train if it fired."""
    if not trigger or trigger.startswith("decision:"):
        return None
    if trigger == "schedule":
        reasons, source = ["schedule"], "schedule"
    elif trigger.startswith("alarm:") and trigger[len("alarm:"):]:
        reasons, source = [_alarm_reason(trigger[len("alarm:"):])], trigger
    else:
        raise InputError(f"--trigger {trigger!r}: give schedule, alarm:<alarm name> or decision:<id>")
    trigger_log = open_trigger_log(triggers_uri, endpoint_url)
    decision = _judge(trigger_log, trigger_log.last_fired(), reasons, {"alarm_reason": detail} if detail else {},
                      source, config, labels_uri, _now(now), endpoint_url)
    log.info("training started by %s: %s (%s)", trigger, decision.outcome, decision.message)
    return decision


def train_argv(config_path: str | None, registry: str | None, labels: str | None, triggers: str) -> list[str]:
    """The options a trigger-started ``fraud train`` shares with the monitor that started it."""
    argv = ["--no-progress", "--labels", labels or "", "--triggers", triggers]
    return argv + (["--config", str(config_path)] if config_path else []) + (
        ["--registry", str(registry)] if registry else [])


def act_from_cli(args, config, health, now=None) -> Acted:
    """``fraud monitor --act``: ``act`` with the monitor's own options."""
    return act(health, config, triggers_uri=args.triggers, labels_uri=args.labels,
               train_argv=train_argv(args.config, args.registry, args.labels, args.triggers), now=now,
               endpoint_url=os.environ.get("FRAUD_AWS_ENDPOINT_URL"), starter=start_training)
