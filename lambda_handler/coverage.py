"""Whether the online feature state covers the traffic.

Two items in the features table say up to when the state reflects the transactions:
the watermark that `fraud state load` and `fraud state catch-up` write (history from the
data lake), and the API's own heartbeat (``STATE_LIVE_KEY``: the newest transaction it
applied, written at most once per ``heartbeat_s``). The heartbeat only extends a state that
is fresh when it is written: an API that was down for days, or a table never loaded, does
not become fresh by scoring again; a load or a catch-up of the missed days does that.

A store without a watermark is empty: every card looks new and every terminal has no fraud
history, while the model learnt from months of history, so its scores are not what the
thresholds were chosen for. Coverage older than ``max_age_s`` is stale. Either way the
scoring service follows the configured fallback policy (``lambda_handler.scoring``) and
says so in each answer, and health reports the coverage. Re-read every ``recheck_s``, so a
load while the service runs is picked up.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone

from fraud.features.online import STATE_LIVE_KEY, STATE_WATERMARK_KEY
from fraud.storage.kv import KeyValueStore

log = logging.getLogger(__name__)


class StateCoverage:
    def __init__(self, store: KeyValueStore, max_age_s: float, recheck_s: float = 300, heartbeat_s: float = 60):
        self.store = store
        self.max_age_s = max_age_s
        self.recheck_s = recheck_s
        self.heartbeat_s = heartbeat_s
        self._lock = threading.Lock()
        self._checked = -1e18
        self._beat = -1e18
        self._coverage: dict = {}

    def current(self) -> dict:
        """{"status": "fresh" | "stale" | "empty", "transactions_until": ISO or None, "age_hours": float or None}"""
        with self._lock:
            if time.monotonic() - self._checked >= self.recheck_s:
                self._coverage = self._read()
                self._checked = time.monotonic()
            return self._coverage

    def applied(self, newest: datetime) -> None:
        """The API applied transactions up to ``newest`` to the state: extend a fresh state's
        coverage (one write per ``heartbeat_s`` at most; a failed write only logs, scoring
        goes on and the next one retries)."""
        if time.monotonic() - self._beat < self.heartbeat_s:
            return
        try:
            if self.current()["status"] != "fresh":
                return
            self._beat = time.monotonic()
            until = min(newest, datetime.now(timezone.utc)).isoformat()  # never beyond the present
            self.store.put(STATE_LIVE_KEY, {"applied_until": until})
        except Exception:  # noqa: BLE001 - coverage bookkeeping must not fail an answer already given
            log.warning("could not read or write the feature state's coverage", exc_info=True)

    def _read(self) -> dict:
        found = self.store.get_many([STATE_WATERMARK_KEY, STATE_LIVE_KEY])
        watermark = found.get(STATE_WATERMARK_KEY)
        until = None if watermark is None else watermark.value.get("transactions_until")
        if until is None:  # never (completely) loaded: a heartbeat alone does not make a state
            return {"status": "empty", "transactions_until": None, "age_hours": None}
        live = found.get(STATE_LIVE_KEY)
        if live is not None and live.value.get("applied_until"):
            until = max(until, live.value["applied_until"], key=lambda s: datetime.fromisoformat(s))
        age_s = time.time() - datetime.fromisoformat(until).timestamp()
        return {"status": "fresh" if age_s <= self.max_age_s else "stale", "transactions_until": until,
                "age_hours": round(age_s / 3600, 1)}
