"""Where decision records go: the ``DecisionLog`` port, and ``open_decision_log(uri)``.

    a directory (default .fraud/decisions)   LocalDecisionLog: JSON Lines per day, compacted to Parquet
    firehose://<delivery stream name>         FirehoseDecisionLog: PutRecordBatch, S3 decisions/date=.../
    "" or "off"                               no log

Importable without pandas or pyarrow: the serving image has neither.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod


class DecisionLogError(RuntimeError):
    """Records that were not written (all of a call's, or the ones a partial failure lost),
    for the caller to count and log so they can be re-sent."""

    def __init__(self, message: str, records: list[dict]):
        super().__init__(message)
        self.records = records


class DecisionLog(ABC):
    uri: str

    @abstractmethod
    def write(self, records: list[dict]) -> None:
        """Store the records durably before returning; raise (``DecisionLogError`` naming
        the records lost where known) when any was not stored."""


def record_line(record: dict) -> str:
    """One record as a line of JSON (strict: no NaN, which JSON does not have)."""
    return json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"


def open_decision_log(uri: str | None, endpoint_url: str | None = None, timeout_s: float = 0.3) -> DecisionLog | None:
    """``firehose://name``, a local directory, or None for "" / "off". ``timeout_s``: the
    longest one Firehose call may take (it is on the scoring path)."""
    if uri is None or uri.strip() in ("", "off"):
        return None
    if uri.startswith("firehose://"):
        from .firehose import FirehoseDecisionLog

        return FirehoseDecisionLog(uri[len("firehose://"):], endpoint_url=endpoint_url, timeout_s=timeout_s)
    if "://" in uri:
        raise ValueError(f"decision log {uri!r}: expected firehose://<stream>, a directory, or 'off' (S3 is "
                         "written by Firehose; read it with read_decisions)")
    from .local import LocalDecisionLog

    return LocalDecisionLog(uri)
