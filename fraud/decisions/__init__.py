"""The decision log: one record per transaction the API scored (not for a replayed answer),
written on the scoring path and read back by monitoring and training.

``record``: building a record; ``log``: the
``DecisionLog`` port and ``open_decision_log(uri)``; ``local``: JSON Lines per day,
compacted to Parquet; ``firehose``: Kinesis Data Firehose to S3; ``reader``:
``read_decisions`` for both layouts (pandas: imported only when called, the serving image
has none).
"""

from .log import DecisionLog, DecisionLogError, open_decision_log
from .record import FIELDS, decision_record


def read_decisions(uri, start=None, end=None, endpoint_url=None):
    """See ``fraud.decisions.reader.read_decisions``."""
    from .reader import read_decisions as read

    return read(uri, start, end, endpoint_url)


def compact_decisions(root, now=None):
    """See ``fraud.decisions.reader.compact_decisions``."""
    from .reader import compact_decisions as compact

    return compact(root, now)


__all__ = ["FIELDS", "DecisionLog", "DecisionLogError", "compact_decisions",
           "decision_record", "open_decision_log", "read_decisions"]
