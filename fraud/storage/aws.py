"""boto3 clients that honour a local endpoint (moto in tests, LocalStack by hand).

``AWS_ENDPOINT_URL`` (boto3's own variable) points every client at one endpoint; our
settings can also pass ``endpoint_url`` explicitly.
"""

from __future__ import annotations

import functools
import os


def client(service: str, endpoint_url: str | None = None, region: str | None = None, fail_fast: bool = False):
    """A cached boto3 client (clients are thread-safe; creating one costs ~50 ms).

    ``endpoint_url`` defaults to boto3's own variables (``AWS_ENDPOINT_URL_<SERVICE>``, then
    ``AWS_ENDPOINT_URL``), read now, so the cache never hands out a client for an endpoint
    that has since changed. ``fail_fast``: one attempt, short timeouts, for calls on the
    request path whose caller has its own fallback (the review queue falls back to the outbox).
    """
    endpoint = (endpoint_url or os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}")
                or os.environ.get("AWS_ENDPOINT_URL"))
    return _client(service, endpoint, region, fail_fast)


@functools.lru_cache(maxsize=None)
def _client(service: str, endpoint_url: str | None, region: str | None, fail_fast: bool):
    import boto3
    from botocore.config import Config

    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if fail_fast:
        config = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=0.5, read_timeout=1.5)
    else:
        config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=2, read_timeout=5)
    return boto3.session.Session().client(service, endpoint_url=endpoint_url or None,
                                          region_name=region, config=config)
