"""``fraud challenger``: set / clear / status, promotion from the decision log and the label
store (refused before the minimum shadow period and labels, allowed after), the canary's
rollback recorded in the registry's events, and the nightly job's challenger step."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest

from batch_jobs.challenger import nightly_step, place_new_version
from batch_jobs.cli import main
from fraud.config import load_config
from fraud.decisions import decision_record
from fraud.decisions.local import LocalDecisionLog
from fraud.labels import open_label_store
from fraud.registry import ModelRegistry

START = pd.Timestamp("2026-06-01", tz="UTC")


@pytest.fixture
def env(tmp_path, small_training, monkeypatch):
    """A registry (champion + another version), an empty decision log and label store, and a
    clock at START (the challenger's shadow period starts then)."""
    ticks = iter(range(10**6))  # a second further on each call: events keep their order
    monkeypatch.setattr("fraud.registry._now", lambda: (START + pd.Timedelta(seconds=next(ticks))).to_pydatetime())
    reg = ModelRegistry.open(tmp_path / "registry")
    champion = reg.publish(small_training.bundle)
    reg.promote(champion, "first")
    other = reg.publish(small_training.bundle)
    monkeypatch.setenv("FRAUD_DECISIONS_URI", str(tmp_path / "decisions"))
    monkeypatch.setenv("FRAUD_LABELS_URI", str(tmp_path / "labels"))
    return reg, champion, other, tmp_path


def cli(env, *args) -> int:
    return main(["--registry", str(env[0].store.root), "challenger", *args])


def write_log(env, days: float, n: int, challenger_noise: float, canary_catch: float | None = None,
              labelled: float = 1.0, seed: int = 0) -> None:
    """The decision log and label store replaced by: n transactions scored over ``days`` from
    START, 10 % fraud, both scores logged. With ``canary_catch``: every other one decided by
    the challenger, which flags a fraud with that share (the champion: 0.8)."""
    reg, champion, other, tmp = env
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(int)
    champ = np.clip(y * 0.6 + 0.2 + rng.normal(0, 0.35, n), 0, 1)
    chall = np.clip(y * 0.6 + 0.2 + rng.normal(0, challenger_noise, n), 0, 1)
    records, labels = [], []
    for i in range(n):
        at = (START + pd.Timedelta(seconds=round(days * 86400 * i / (n - 1)))).to_pydatetime()
        canary = canary_catch is not None and i % 2 == 0
        if canary_catch is not None:
            catch = canary_catch if canary else 0.8
            flagged = (i * 7919) % 1000 < 1000 * (catch if y[i] else 0.02)  # evenly spread, no sampling noise
            decision = "review" if flagged else "approve"
        else:
            decision = "review" if champ[i] >= 0.5 else "approve"
        mine, theirs = (chall[i], champ[i]) if canary else (champ[i], chall[i])
        records.append(decision_record(
            transaction_id=f"T{i}", timestamp=at, scored_at=at, card="card_x", terminal_id="t", amount=10.0,
            feature_names=["amount"], feature_values=[10.0], probability=mine, margin=0.0, decision=decision,
            model_version=other if canary else champion, decided_by="challenger" if canary else "champion",
            shadow={"model_version": champion if canary else other, "probability": theirs, "margin": 0.0,
                    "decision": "approve"}))
        if i < n * labelled:
            labels.append({"transaction_id": f"T{i}", "label": int(y[i]), "source": "feedback",
                           "known_at": pd.Timestamp(at) + pd.Timedelta(days=2)})
    for store in ("decisions", "labels"):  # each call replaces what the log and the store hold
        shutil.rmtree(tmp / store, ignore_errors=True)
    log = LocalDecisionLog(tmp / "decisions", fsync=False)
    log.write(records)
    log.close()
    if labels:
        open_label_store(str(tmp / "labels")).append(pd.DataFrame(labels))


def test_set_status_and_clear(env, capsys):
    reg, champion, other, _ = env
    assert cli(env, "set", other, "--reason", "try it") == 0
    assert reg.challenger()["mode"] == "shadow" and f"challenger is now {other} (shadow)" in capsys.readouterr().out
    assert cli(env, "set", other, "--canary", "0.1") == 0
    assert reg.challenger()["canary_share"] == 0.1 and "deciding 10.0%" in capsys.readouterr().out
    assert cli(env, "status") == 0
    out = capsys.readouterr().out
    assert f"challenger {other} (canary" in out and "0 transactions" in out and "not promotable" in out
    assert cli(env, "clear", "--reason", "done") == 0 and reg.challenger() is None
    assert reg.events()[-1]["action"] == "challenger-clear" and reg.events()[-1]["reason"] == "done"
    assert cli(env, "set", other, "--canary", "1.5") == 2 and reg.challenger() is None


def test_a_version_on_other_features_is_refused(env, small_training, capsys):
    reg, _, _, _ = env
    spec = dataclasses.replace(small_training.bundle.spec, night_hours=(1, 5))
    odd = reg.publish(dataclasses.replace(small_training.bundle, spec=spec))
    assert cli(env, "set", odd) == 2
    assert "other features than the champion" in capsys.readouterr().err and reg.challenger() is None


def test_promotion_is_refused_before_the_period_and_labels_and_allowed_after(env, capsys):
    reg, champion, other, _ = env
    reg.set_challenger(other, reason="shadow it")
    write_log(env, days=3, n=1200, challenger_noise=0.1, labelled=0.0)
    assert cli(env, "promote") == 3
    assert "refused: the challenger has been scored in shadow for 3.0 days; promotion needs 7" in \
        capsys.readouterr().out
    assert reg.champion() == champion and reg.challenger()["version"] == other
    write_log(env, days=10, n=1200, challenger_noise=0.1, labelled=0.1)
    assert cli(env, "promote") == 3 and "120 labels" in capsys.readouterr().out
    write_log(env, days=10, n=1200, challenger_noise=0.1, labelled=0.5)
    assert cli(env, "promote", "--reason", "ready") == 0
    assert reg.champion() == other and reg.challenger() is None
    promotion = [e for e in reg.events() if e["action"] == "promote"][-1]
    assert promotion["version"] == other and promotion["reason"].startswith("ready: the challenger is not worse")


def test_a_worse_canary_is_rolled_back_and_recorded_one_within_tolerance_kept(env, capsys):
    reg, champion, other, _ = env
    reg.set_challenger(other, "canary", 0.5, reason="half")
    write_log(env, days=5, n=4000, challenger_noise=0.1, canary_catch=0.78)
    assert cli(env, "check") == 0 and "kept" in capsys.readouterr().out
    assert reg.challenger()["version"] == other
    write_log(env, days=5, n=4000, challenger_noise=0.1, canary_catch=0.4, seed=1)
    assert cli(env, "check") == 3
    assert "rolled back: recall below the champion's" in capsys.readouterr().out
    assert reg.challenger() is None and reg.champion() == champion
    event = reg.events()[-1]
    assert event["action"] == "canary-rollback" and event["previous"] == other and "recall below" in event["reason"]
    assert cli(env, "check") == 0 and "no canary" in capsys.readouterr().out


def test_the_nightly_step_promotes_rejects_or_waits(env):
    reg, champion, other, tmp = env
    config = load_config()
    labels = str(tmp / "labels")
    assert nightly_step(reg, config, labels) is None  # no challenger: nothing to do
    reg.set_challenger(other)
    write_log(env, days=3, n=1200, challenger_noise=0.1)
    assert nightly_step(reg, config, labels)["action"] == "wait" and reg.challenger()["version"] == other
    write_log(env, days=10, n=1200, challenger_noise=0.9)  # complete, and worse
    step = nightly_step(reg, config, labels)
    assert step["action"] == "rejected" and reg.challenger() is None and reg.champion() == champion
    assert reg.events()[-1]["action"] == "challenger-rejected"
    reg.set_challenger(other)
    write_log(env, days=10, n=1200, challenger_noise=0.1)
    assert nightly_step(reg, config, labels)["action"] == "promoted" and reg.champion() == other


def test_shadow_first_shadows_a_new_version_instead_of_promoting_it(env, small_training):
    reg, champion, other, _ = env
    first = load_config(overrides={"challenger": {"shadow_first": True}})
    assert place_new_version(reg, load_config(), other, True, champion) == "promote"  # the default: as before
    assert place_new_version(reg, first, other, False, champion) == "keep"
    assert place_new_version(reg, first, other, True, None) == "promote"  # no champion yet
    assert place_new_version(reg, first, other, True, champion) == "shadow"
    assert reg.challenger()["version"] == other and reg.champion() == champion
    third = reg.publish(small_training.bundle)
    assert place_new_version(reg, first, third, True, champion) == "wait"
    assert reg.challenger()["version"] == other  # the one in its period keeps it


def test_the_shadow_verdict_waits_for_label_complete_rows(env):
    """Rows scored within [monitoring] recall_lag_days of now are not judged (their missed frauds
    have not come back yet): 10 days logged, judged 1 day after the last, count as 4 with a lag of 7."""
    import time_machine

    reg, champion, other, tmp = env
    reg.set_challenger(other)
    write_log(env, days=10, n=1200, challenger_noise=0.1)
    with time_machine.travel((START + pd.Timedelta(days=11)).to_pydatetime(), tick=False):
        step = nightly_step(reg, load_config(), str(tmp / "labels"))
    assert step["action"] == "wait" and "for 4.0 days" in step["reason"]
    assert reg.champion() == champion and reg.challenger()["version"] == other


def test_the_nightly_step_rolls_a_worse_canary_back(env):
    """Nobody has to run `fraud challenger check`: the nightly job's first step does it."""
    reg, champion, other, tmp = env
    reg.set_challenger(other, "canary", 0.5, reason="half")
    write_log(env, days=5, n=4000, challenger_noise=0.1, canary_catch=0.4, seed=1)
    step = nightly_step(reg, load_config(), str(tmp / "labels"))
    assert step["action"] == "rolled back" and "recall below the champion's" in step["reason"]
    assert reg.challenger() is None and reg.champion() == champion
    assert reg.events()[-1]["action"] == "canary-rollback"
