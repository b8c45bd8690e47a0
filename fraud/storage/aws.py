"""boto3 clients that honour a local endpoint (moto in tests, LocalStack by hand).

``AWS_ENDPOINT_URL`` (boto3's own variable) points every client at one endpoint; our
settings can also pass ``endpoint_url`` explicitly.
"""

from __future__ import annotations

import functools
import os


@functools.lru_cache(maxsize=None)
def client(service: str, endpoint_url: str | None = None, region: str | None = None):
    """A cached boto3 client (clients are thread-safe; creating one costs ~50 ms)."""
    import boto3
    from botocore.config import Config

    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=2, read_timeout=5)
    return boto3.session.Session().client(service, endpoint_url=endpoint_url or None,
                                          region_name=region, config=config)
