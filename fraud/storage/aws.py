"""boto3 clients that honour a local endpoint (moto in tests, LocalStack by hand).

``AWS_ENDPOINT_URL`` (boto3's own variable) points every client at one endpoint; our
settings can also pass ``endpoint_url`` explicitly.
"""

from __future__ import annotations

import functools
import os


def client(service: str, endpoint_url: str | None = None, region: str | None = None,
           timeout_s: float | None = None):
    """A cached boto3 client (clients are thread-safe; creating one costs ~50 ms).

    ``endpoint_url`` defaults to boto3's own variables (``AWS_ENDPOINT_URL_<SERVICE>``, then
    ``AWS_ENDPOINT_URL``), read now, so the cache never hands out a client for an endpoint
    that has since changed. ``timeout_s``: one attempt, connect and read timeouts of that
    many seconds, for calls whose caller has its own fallback (a review message that is not
    sent in time waits in the outbox): a service that accepts connections and never answers
    then costs that long, not botocore's 60 s read timeout times its retries.
    """
    endpoint = (endpoint_url or os.environ.get(f"AWS_ENDPOINT_URL_{service.upper()}")
                or os.environ.get("AWS_ENDPOINT_URL"))
    return _client(service, endpoint, region, timeout_s)


@functools.lru_cache(maxsize=None)
def _client(service: str, endpoint_url: str | None, region: str | None, timeout_s: float | None):
    import boto3
    from botocore.config import Config

    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if timeout_s is not None:
        # total_max_attempts counts the first try; botocore's max_attempts counts retries (1 = two tries)
        config = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=timeout_s,
                        read_timeout=timeout_s)
    else:
        config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=2, read_timeout=5)
    return boto3.session.Session().client(service, endpoint_url=endpoint_url or None,
                                          region_name=region, config=config)
