"""Hard examples: near the review threshold, low p_t, and labels that contradict the
decision are queued with their reasons, at most ``per_day`` a scored day, the most
uncertain first, each transaction once across runs (the CLI on a real registry)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fraud.hard_examples import open_hard_example_queue, reviewed_ids, select_hard_examples

AS_OF = pd.Timestamp("2026-07-02T00:00:00Z")
T = 0.3


def log(rows, day="2026-07-01", version="v1"):
    """A decision-log frame (``read_decisions``' columns) of (id, p, decision) rows; margin = logit(p)."""
    ids, p, decision = zip(*rows)
    p = np.asarray(p, dtype=float)
    scored = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(np.arange(len(p)) * 60, unit="s")
    return pd.DataFrame({"transaction_id": list(ids), "timestamp": scored, "scored_at": scored, "card": "tok",
                         "terminal_id": "m", "amount": 12.5, "probability": p, "margin": np.log(p / (1 - p)),
                         "decision": list(decision), "override": None, "policy_reason": None,
                         "reasons": json.dumps([{"feature": "amount", "contribution": 0.4}]),
                         "model_version": version, "decided_by": "champion", "shadow_model_version": None,
                         "shadow_probability": np.nan, "shadow_margin": np.nan, "shadow_decision": None,
                         "feature.amount": 12.5})


def labels(*pairs, known_at="2026-07-01T12:00:00Z"):
    return pd.DataFrame({"transaction_id": [t for t, _ in pairs], "label": [y for _, y in pairs],
                         "source": "review", "known_at": pd.Timestamp(known_at)})


def select(decisions, lab=None, per_day=100, **kw):
    return select_hard_examples(decisions, lab, {"v1": T}, threshold_margin=0.05, hard_p_t=0.5, per_day=per_day,
                                as_of=AS_OF, **kw)


def kinds(out):
    return {r["transaction_id"]: r["kinds"] for r in out.to_dict("records")}


def test_near_the_threshold_only_within_the_margin():
    out = select(log([("a", 0.26, "approve"), ("b", 0.33, "review"), ("c", 0.2, "approve"), ("d", 0.6, "review")]))
    assert kinds(out) == {"b": ["near_threshold"], "a": ["near_threshold"]}
    assert list(out["transaction_id"]) == ["b", "a"]        # |0.33 - 0.3| < |0.26 - 0.3|: b first
    assert out["reasons"].iloc[0] == json.dumps([{"feature": "amount", "contribution": 0.4}])


def test_disagreements_and_low_p_t_are_included_agreements_are_not():
    d = log([("missed", 0.01, "approve"), ("false_decline", 0.97, "decline"), ("caught", 0.97, "decline"),
             ("unsure", 0.6, "review"), ("fine", 0.01, "approve")])
    out = select(d, labels(("missed", 1), ("false_decline", 0), ("caught", 1), ("unsure", 0), ("fine", 0)))
    assert kinds(out) == {"missed": ["low_p_t", "fraud_approved"], "false_decline": ["low_p_t", "legit_declined"],
                          "unsure": ["low_p_t"]}
    got = out.set_index("transaction_id")
    assert got.loc["missed", "p_t"] == pytest.approx(0.01) and got.loc["missed", "label"] == 1
    assert got.loc["missed", "hardness"] == pytest.approx(0.99)  # a confident miss: as hard as it gets


def test_a_label_known_after_as_of_does_not_count():
    out = select(log([("missed", 0.01, "approve")]), labels(("missed", 1), known_at="2026-07-02T00:00:00Z"))
    assert out.empty


def test_a_version_without_a_known_threshold_is_judged_by_its_labels_only():
    out = select(log([("a", 0.3, "review"), ("b", 0.01, "approve")], version="v9"), labels(("b", 1)))
    assert kinds(out) == {"b": ["low_p_t", "fraud_approved"]}


def test_capped_per_day_the_most_uncertain_first():
    one = log([(f"x{i}", T + 0.004 * (i - 5), "approve") for i in range(11)])           # x5 on the threshold
    two = log([(f"y{i}", T + 0.01 * i, "review") for i in range(5)], day="2026-07-02")
    out = select(pd.concat([one, two], ignore_index=True), per_day=3)
    assert out.groupby("day").size().to_dict() == {"2026-07-01": 3, "2026-07-02": 3}
    assert list(out["transaction_id"]) == ["x5", "x4", "x6", "y0", "y1", "y2"]
    assert list(select(one, per_day=3, room={"2026-07-01": 1})["transaction_id"]) == ["x5"]


def test_queued_ids_are_left_out():
    out = select(log([("a", 0.3, "review"), ("b", 0.31, "review")]), queued={"a"})
    assert list(out["transaction_id"]) == ["b"]


@pytest.fixture(params=["local", "s3"])
def queue_uri(request, tmp_path, aws_env):
    if request.param == "local":
        yield str(tmp_path / "queue")
        return
    import boto3
    from moto import mock_aws

    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="data")
        yield "s3://data/hard-examples"


def test_the_queue_keeps_each_transaction_once_with_its_reasons(queue_uri):
    queue = open_hard_example_queue(queue_uri)
    out = select(log([("missed", 0.01, "approve"), ("b", 0.31, "review")]), labels(("missed", 1)))
    assert queue.append(out, AS_OF) == 2
    queue.append(out, AS_OF)   # a retried append
    queue.append(out.iloc[:1], AS_OF + pd.Timedelta(hours=1))   # two runs at once: another file, the same id
    assert len(queue.read("2026-07-01")) == 2
    got = {r["transaction_id"]: r for r in queue.read("2026-07-01")}
    assert set(got) == {"missed", "b"} and queue.ids() == {"missed", "b"} and queue.read("2026-07-02") == []
    assert got["missed"]["reasons"] == [{"feature": "amount", "contribution": 0.4}]
    assert (got["missed"]["label"], got["b"]["label"], got["b"]["kinds"]) == (1, None, ["near_threshold"])
    assert reviewed_ids(queue_uri, labels(("missed", 1), ("zzz", 0))) == {"missed"}
    assert reviewed_ids(queue_uri, labels(("b", 0)), as_of="2026-07-01T00:00:00Z") == set()


def write_log(root, frame):
    """``log()``'s rows as the API's local decision log writes them."""
    from fraud.decisions import open_decision_log

    records = [{**{k: v for k, v in r.items() if not k.startswith(("feature.", "shadow_"))},
                "timestamp": r["timestamp"].isoformat(), "scored_at": r["scored_at"].isoformat(),
                "reasons": json.loads(r["reasons"]), "features": {"amount": 12.5}, "shadow": None}
               for r in frame.to_dict("records")]
    decisions = open_decision_log(str(root))
    decisions.write(records)
    decisions.close()


def test_the_cli_queues_a_day_once_and_fills_only_what_the_cap_left(tmp_path, champion_registry, capsys):
    from batch_jobs.cli import main
    from fraud.labels import open_label_store
    from fraud.registry import ModelRegistry

    registry = champion_registry("logistic_xgb")
    version = ModelRegistry.open(registry).champion()
    t = ModelRegistry.open(registry).load(version).thresholds.review
    frame = log([(f"n{i}", t + 0.001 * (i + 1), "review") for i in range(4)] + [("missed", 0.001, "approve")],
                version=version)
    write_log(tmp_path / "decisions", frame)
    config = tmp_path / "c.toml"
    config.write_text("[hard_examples]\nper_day = 3\n")
    argv = ["--config", str(config), "--registry", str(registry), "hard-examples", "--day", "2026-07-01",
            "--decisions", str(tmp_path / "decisions"), "--labels", str(tmp_path / "labels"),
            "--queue", str(tmp_path / "queue")]
    assert main(argv) == 0
    assert "queued 3 hard examples (3 near_threshold) of 5 scored" in capsys.readouterr().out
    queue = open_hard_example_queue(str(tmp_path / "queue"))
    assert queue.ids() == {"n0", "n1", "n2"}
    assert main(argv) == 0 and "queued 0" in capsys.readouterr().out    # a re-run: nothing twice
    open_label_store(str(tmp_path / "labels")).append(labels(("missed", 1), known_at="2026-07-01T20:00:00Z"))
    config.write_text("[hard_examples]\nper_day = 4\n")
    assert main(argv) == 0 and "queued 1 hard examples (1 fraud_approved, 1 low_p_t)" in capsys.readouterr().out
    assert queue.ids() == {"n0", "n1", "n2", "missed"}     # the one room left: the hardest, the missed fraud
    config.write_text("[hard_examples]\nper_day = 10\n")
    assert main(argv) == 0 and "queued 1 hard examples (1 near_threshold)" in capsys.readouterr().out
    assert len(queue.read("2026-07-01")) == 5 and queue.ids() == {"n0", "n1", "n2", "n3", "missed"}


def test_without_a_day_the_cli_queues_yesterday_utc(tmp_path, champion_registry, capsys):
    """The scheduled task passes no --day: at 03:00 UTC it queues the day that just ended in
    UTC, not today's first hours, nor the machine's local yesterday (here UTC-7: 06-30)."""
    from datetime import date, datetime
    from zoneinfo import ZoneInfo

    import time_machine

    from batch_jobs.cli import main
    from fraud.registry import ModelRegistry

    registry = champion_registry("logistic_xgb")
    version = ModelRegistry.open(registry).champion()
    t = ModelRegistry.open(registry).load(version).thresholds.review
    write_log(tmp_path / "decisions", pd.concat([log([(f"{d}-0", t + 0.001, "review")], day=d, version=version)
                                                 for d in ("2026-06-30", "2026-07-01", "2026-07-02")],
                                                ignore_index=True))  # 07-02's row: 00:00 UTC, before the run
    # 03:00 UTC, and the machine's clock in Los Angeles (20:00 on 07-01 there: its yesterday is 06-30)
    at = datetime(2026, 7, 1, 20, 0, tzinfo=ZoneInfo("America/Los_Angeles"))
    with time_machine.travel(at, tick=False):
        assert date.today() == date(2026, 7, 1)
        assert main(["--registry", str(registry), "hard-examples", "--decisions", str(tmp_path / "decisions"),
                     "--labels", "", "--queue", str(tmp_path / "queue")]) == 0
    assert capsys.readouterr().out.startswith("2026-07-01: queued 1 hard examples (1 near_threshold) of 1 scored")
    assert open_hard_example_queue(str(tmp_path / "queue")).ids() == {"2026-07-01-0"}
