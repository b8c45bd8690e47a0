"""The API's live drift check (``fraud.monitoring.live``) against the serving champion.

The champion's reference (``reference.json``, verified against the signed manifest like
every registry file) is read when a champion is first seen: at the cold start, and on the
first request after a promotion, so each champion is judged against its own reference and
a window never mixes two champions' scores. Nothing here may fail scoring: a champion
without a reference (published before references had hourly counts) or a registry that
cannot be read leaves the check off for that champion (logged once; a failed read is
retried after ``RETRY_S``).
"""

from __future__ import annotations

import logging
import time

from fraud.monitoring.live import LiveDrift, LiveWindow
from fraud.monitoring.reference import REFERENCE_FILE
from fraud.registry import ModelRegistry

from .telemetry import Telemetry

log = logging.getLogger(__name__)
RETRY_S = 300.0


class LiveDriftWatch:
    def __init__(self, registry: ModelRegistry, telemetry: Telemetry, window_rows: int, important: int):
        self.registry = registry
        self.telemetry = telemetry
        self.window_rows = window_rows
        self.important = important
        self._version: str | None = None
        self._drift: LiveDrift | None = None
        self._retry_at = 0.0

    def _for(self, version: str, feature_names) -> LiveDrift | None:
        if version == self._version and (self._drift is not None or time.monotonic() < self._retry_at):
            return self._drift
        self._version, self._drift, self._retry_at = version, None, float("inf")
        try:
            reference = self.registry.read_json(version, REFERENCE_FILE)
            self._drift = LiveDrift(reference, feature_names, self.window_rows, self.important)
            log.info("live drift of champion %s: windows of %d transactions, judged %s", version,
                     self.window_rows, ", ".join(self._drift.judged))
        except ValueError as exc:  # no hourly counts in its reference: off for this champion
            log.warning("live drift off for champion %s: %s", version, exc)
        except Exception as exc:  # noqa: BLE001 - a missing file or a registry outage never fails scoring
            self._retry_at = time.monotonic() + RETRY_S
            log.warning("live drift off for champion %s for now (retried in %.0f s): %s", version, RETRY_S, exc)
        return self._drift

    def prepare(self, version: str, feature_names) -> None:
        """Read ``version``'s reference now (the cold start), not on its first request."""
        self._for(version, feature_names)

    def observe(self, version: str, feature_names, hours, matrix, scores) -> LiveWindow | None:
        """Count a request's freshly scored rows (the champion's scores); a completed window
        goes out as metrics and one log line naming the most drifted feature."""
        try:
            drift = self._for(version, feature_names)
            window = drift.add(hours, matrix, scores) if drift is not None else None
        except Exception as exc:  # noqa: BLE001 - the check is never worth a failed answer
            log.error("live drift check failed (scoring goes on): %s", exc)
            return None
        if window is not None:
            self.telemetry.live_drift(window)
            log.info("live drift of champion %s over %d transactions: score PSI %.3f, largest feature PSI %s (%s)",
                     version, window.rows, window.score_psi,
                     "n/a" if window.feature_psi_max is None else f"{window.feature_psi_max:.3f}",
                     window.feature_psi_max_name)
        return window
