"""Whether the online feature state covers the traffic: the watermark that `fraud state load`
(or the local warm-up) writes says up to when the state reflects history.

A store without a watermark is empty: every card looks new and every terminal has no fraud
history, while the model learnt from months of history, so its scores are not what the
thresholds were chosen for. A watermark older than ``max_age_s`` is stale. Either way the
scoring service follows the configured fallback policy (``lambda_handler.scoring``) and
says so in each answer, and health reports the coverage. Re-read every ``recheck_s``, so a
load while the service runs is picked up.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

from fraud.features.online import read_watermark
from fraud.storage.kv import KeyValueStore


class StateCoverage:
    def __init__(self, store: KeyValueStore, max_age_s: float, recheck_s: float = 300):
        self.store = store
        self.max_age_s = max_age_s
        self.recheck_s = recheck_s
        self._lock = threading.Lock()
        self._checked = -1e18
        self._coverage: dict = {}

    def current(self) -> dict:
        """{"status": "fresh" | "stale" | "empty", "transactions_until": ISO or None, "age_hours": float or None}"""
        with self._lock:
            if time.monotonic() - self._checked >= self.recheck_s:
                self._coverage = self._read()
                self._checked = time.monotonic()
            return self._coverage

    def _read(self) -> dict:
        watermark = read_watermark(self.store)
        until = None if watermark is None else watermark.get("transactions_until")
        if until is None:
            return {"status": "empty", "transactions_until": None, "age_hours": None}
        age_s = time.time() - datetime.fromisoformat(until).timestamp()
        return {"status": "fresh" if age_s <= self.max_age_s else "stale", "transactions_until": until,
                "age_hours": round(age_s / 3600, 1)}
