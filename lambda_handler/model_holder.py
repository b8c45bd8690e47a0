"""The serving model: loaded (and verified) once at import, swapped when the champion
pointer moves.

Mangum runs the ASGI lifespan on every invocation, so nothing here waits for a startup
event. The pointer is re-read at most every ``recheck_s`` seconds, so a promotion reaches
warm functions within minutes without a redeploy; a version that fails verification is
refused and the current model keeps serving.
"""

from __future__ import annotations

import logging
import threading
import time

from fraud.bundle import ModelBundle
from fraud.registry import ModelRegistry, RegistryError

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
            self._lock.release()
