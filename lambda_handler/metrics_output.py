"""Where the API's EMF metric lines go: stdout on Lambda, a file when serving locally.

On Lambda, CloudWatch Logs reads EMF from stdout: that is how the lines become metrics. A
local ``fraud serve`` has no such reader, and the JSON lines would bury the server's log, so
there they are appended to ``.fraud/metrics-emf.jsonl`` (``FRAUD_METRICS_PATH`` moves it;
``-`` keeps them on stdout).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from .settings import Settings

log = logging.getLogger(__name__)
LAMBDA_ENV = "AWS_LAMBDA_FUNCTION_NAME"  # set by the Lambda runtime
LOCAL_PATH = Path(".fraud") / "metrics-emf.jsonl"


def emf_path(settings: Settings, environ=os.environ) -> Path | None:
    """The file for EMF lines, or None for stdout."""
    if settings.metrics_path == "-":
        return None
    if settings.metrics_path:
        return Path(settings.metrics_path)
    if settings.backend == "aws" or environ.get(LAMBDA_ENV):
        return None
    return LOCAL_PATH


def emf_stream(settings: Settings):
    path = emf_path(settings)
    if path is None:
        return sys.stdout
    path.parent.mkdir(parents=True, exist_ok=True)
    log.warning("EMF metric lines go to %s (FRAUD_METRICS_PATH; '-' for stdout)", path)
    return open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - open for the process's life
