"""The serving models: the champion and, when the registry names one, a challenger, loaded
(and verified) once at import, swapped when a pointer moves.

Mangum runs the ASGI lifespan on every invocation, so nothing here waits for a startup
event. The pointers are re-read at most every ``recheck_s`` seconds, so a promotion reaches
warm functions within minutes without a redeploy; a champion that fails verification is
refused and the current model keeps serving. A challenger that fails to load (a bad
signature, a missing file) or cannot be scored on the champion's features is logged and
ignored: the champion serves alone, scoring never fails for it.
"""

from __future__ import annotations

import logging
import threading
import time

from fraud.bundle import ModelBundle
from fraud.registry import ModelRegistry, RegistryError

from .challenger import Challenger

log = logging.getLogger(__name__)


class ModelHolder:
    def __init__(self, registry: ModelRegistry, recheck_s: float = 300, model_threads: int = 1):
        self.registry = registry
        self.recheck_s = recheck_s
        self.model_threads = model_threads
        self._lock = threading.Lock()
        version = registry.champion()
        if version is None:
            raise RegistryError(f"no champion model in {registry.uri}: train and promote one first (`fraud train`)")
        self.bundle = self._load(version)
        self.version = version
        self.manifest = registry.manifest(version)
        self.challenger: Challenger | None = None
        self._challenger_record: dict | None = None
        self._pointer_error: str | None = None
        self._refresh_challenger()
        self._checked = time.monotonic()
        log.info("serving model %s from %s", version, registry.uri)

    def _load(self, version: str) -> ModelBundle:
        bundle = self.registry.load(version)
        bundle.model.set_threads(self.model_threads)
        return bundle

    def current(self) -> tuple[ModelBundle, str]:
        if self.recheck_s >= 0 and time.monotonic() - self._checked >= self.recheck_s:
            self._refresh()
        return self.bundle, self.version

    def challenger_for(self, version: str) -> Challenger | None:
        """The challenger, if it was checked against champion ``version`` (what ``current``
        returned): a request never pairs a champion with a challenger checked for another."""
        challenger = self.challenger
        return challenger if challenger is not None and challenger.champion_version == version else None

    def _refresh(self) -> None:
        if not self._lock.acquire(blocking=False):
            return  # another request is already checking
        try:
            self._checked = time.monotonic()
            version = self.registry.champion()
            if version and version != self.version:
                bundle = self._load(version)
                self.bundle, self.version, self.manifest = bundle, version, self.registry.manifest(version)
                log.info("champion changed: now serving %s", version)
        except Exception as exc:  # noqa: BLE001 - keep serving the current model
            log.error("could not refresh the champion (still serving %s): %s", self.version, exc)
        finally:
            self._refresh_challenger()
            self._lock.release()

    def _refresh_challenger(self) -> None:
        """Follow the challenger pointer; any failure leaves no challenger, never an error."""
        try:
            record = self.registry.challenger()
        except Exception as exc:  # noqa: BLE001 - the pointer cannot be read now: keep what we have
            if str(exc) != self._pointer_error:  # once per distinct failure, not every recheck
                log.error("could not read the challenger pointer (keeping %s): %s",
                          self.challenger.version if self.challenger else "none", exc)
            self._pointer_error = str(exc)
            return
        self._pointer_error = None
        current = self.challenger
        if record is None or record["version"] == self.version:
            if current is not None:
                log.info("challenger %s is no longer scored", current.version)
            self.challenger, self._challenger_record = None, record
            return
        if (current is not None and record == self._challenger_record
                and current.champion_version == self.version):
            return  # nothing changed
        try:
            bundle = current.bundle if current is not None and current.version == record["version"] \
                else self._load(record["version"])
            if bundle.spec != self.bundle.spec:
                raise RegistryError("its features differ from the champion's (the online state computes the "
                                    "champion's only)")
            if bundle.metadata.get("currency") != self.bundle.metadata.get("currency"):
                raise RegistryError(f"it scores {bundle.metadata.get('currency')} amounts, the champion "
                                    f"{self.bundle.metadata.get('currency')}")
            self.challenger = Challenger(bundle, record["version"], record["mode"],
                                         float(record.get("canary_share", 0.0)), self.version)
            self._challenger_record = record
            log.info("challenger %s loaded beside champion %s (%s, canary share %.3f)", record["version"],
                     self.version, record["mode"], self.challenger.canary_share)
        except Exception as exc:  # noqa: BLE001 - a broken challenger is ignored, the champion serves alone
            log.error("challenger %s ignored: %s", record.get("version"), exc)
            self.challenger, self._challenger_record = None, record
