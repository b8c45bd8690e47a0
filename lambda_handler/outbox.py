"""Scheduled drain of the review outbox (an EventBridge rule invokes this every minute).

Shares the API's container, so it sends with the same queue and outbox tables.
"""

from __future__ import annotations

import json
import logging

log = logging.getLogger(__name__)


def handler(event, context):
    from .app import container

    result = container.router.drain(limit=500, budget_s=container.settings.drain_budget_s)
    log.info("outbox drain: %s", json.dumps(result))
    return result
