"""The API's side of the decision log (``fraud.decisions``): write the records of a request
once, and never let the log fail scoring.

The answer is already decided and stored when the records are written; failing the request
would only make the client retry into a replay, which logs nothing. So a failure (an error,
or a Firehose that does not answer within its timeout) is counted (``DecisionLogFailures``,
one per record lost; an alarm watches it) and every lost record is logged as one line of
JSON after ``decision not logged:``, card as its keyed token, from which it can be re-sent.
"""

from __future__ import annotations

import json
import logging

from fraud.decisions import DecisionLog, DecisionLogError

from .telemetry import Telemetry

log = logging.getLogger(__name__)
LOST_PREFIX = "decision not logged: "


class DecisionRecorder:
    def __init__(self, decision_log: DecisionLog, telemetry: Telemetry):
        self.log = decision_log
        self.telemetry = telemetry

    def write(self, records: list[dict]) -> None:
        if not records:
            return
        try:
            self.log.write(records)
        except Exception as exc:  # noqa: BLE001 - whatever failed, scoring goes on
            lost = exc.records if isinstance(exc, DecisionLogError) else records
            self.telemetry.decision_log_failed(len(lost))
            log.error("decision log %s failed (%s: %s); %d of %d records lost, logged below", self.log.uri,
                      type(exc).__name__, exc, len(lost), len(records))
            for record in lost:
                log.error("%s%s", LOST_PREFIX, json.dumps(record, separators=(",", ":"), default=str))
