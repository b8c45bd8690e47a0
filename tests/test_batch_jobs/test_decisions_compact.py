"""`fraud decisions compact`: the local decision log's closed days become one Parquet file
each, read back the same; the day still open is left to its writers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd

from batch_jobs.cli import main
from fraud.decisions import decision_record, open_decision_log, read_decisions


def _record(tid: str, scored_at: datetime) -> dict:
    return decision_record(transaction_id=tid, timestamp=scored_at, scored_at=scored_at, card="card_00",
                           terminal_id="T", amount=1.0, feature_names=["f"], feature_values=[2.0], probability=0.1,
                           margin=-2.0, decision="approve", model_version="v1")


def test_compact_closed_days_and_leave_today(tmp_path, capsys, monkeypatch):
    root = tmp_path / "decisions"
    now = datetime.now(timezone.utc)
    log = open_decision_log(str(root))
    log.write([_record("old-1", now - timedelta(days=2)), _record("old-2", now - timedelta(days=2))])
    log.write([_record("today", now)])
    before = read_decisions(root)
    assert main(["decisions", "compact", "--root", str(root)]) == 0
    old_day = f"{(now - timedelta(days=2)).date()}"
    assert capsys.readouterr().out.strip() == f"{root}: compacted 1 day(s) to Parquet: {old_day}"
    assert [p.name[:5] for p in (root / f"date={old_day}").iterdir()] == ["part-"]
    assert [p.name[:4] for p in (root / f"date={now.date()}").iterdir()] == ["wal-"]
    pd.testing.assert_frame_equal(read_decisions(root), before)
    assert main(["decisions", "compact", "--root", str(root)]) == 0
    assert "compacted 0 day(s)" in capsys.readouterr().out
    monkeypatch.setenv("FRAUD_DECISION_LOG_URI", "firehose://stream")  # the API's AWS setting is no directory
    from batch_jobs.decision_log import default_root

    assert default_root() == ".fraud/decisions"
    monkeypatch.setenv("FRAUD_DECISION_LOG_URI", str(root))
    assert default_root() == str(root)
