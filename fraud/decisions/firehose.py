"""The decision log in AWS: records put to a Kinesis Data Firehose delivery stream, which
buffers them and writes newline-delimited JSON objects to S3 ``decisions/date=YYYY-MM-DD/``.

It sits on the scoring path, so each call is bounded: one attempt, connect and read
timeouts of ``timeout_s`` (a Firehose that accepts connections and never answers costs that
long, not botocore's 60 s times its retries). A request makes one ``PutRecordBatch`` (more
only beyond Firehose's 500 records or 4 MiB a call). Records Firehose refuses (a partial
failure) or never received are raised as ``DecisionLogError.records``. Plain boto3 + json:
the serving image has no pyarrow.
"""

from __future__ import annotations

from .log import DecisionLog, DecisionLogError, record_line

MAX_RECORDS = 500                 # PutRecordBatch: at most 500 records,
MAX_BATCH_BYTES = 4 * 1024 * 1024  # 4 MiB a request
MAX_RECORD_BYTES = 1000 * 1024     # and 1,000 KiB a record


class FirehoseDecisionLog(DecisionLog):
    def __init__(self, stream: str, endpoint_url: str | None = None, timeout_s: float = 0.3, firehose_client=None):
        from fraud.storage.aws import client

        if not stream:
            raise ValueError("firehose:// needs a delivery stream name")
        self.stream = stream
        self.uri = f"firehose://{stream}"
        self.firehose = firehose_client or client("firehose", endpoint_url, timeout_s=timeout_s)

    def write(self, records: list[dict]) -> None:
        items = [(record, record_line(record).encode()) for record in records]
        too_big = [r for r, data in items if len(data) > MAX_RECORD_BYTES]
        if too_big:
            raise DecisionLogError(f"{self.uri}: {len(too_big)} records over Firehose's 1,000 KiB", records)
        start = 0
        while start < len(items):
            end, size = start, 0
            while end < len(items) and end - start < MAX_RECORDS and size + len(items[end][1]) <= MAX_BATCH_BYTES:
                size += len(items[end][1])
                end += 1
            chunk = items[start:end]
            try:
                out = self.firehose.put_record_batch(DeliveryStreamName=self.stream,
                                                     Records=[{"Data": data} for _, data in chunk])
            except Exception as exc:  # noqa: BLE001 - a timeout, a refused connection, a service error: not stored
                raise DecisionLogError(f"{self.uri}: {type(exc).__name__}: {exc}",
                                       [r for r, _ in items[start:]]) from exc
            if out.get("FailedPutCount"):
                failed = [r for (r, _), answer in zip(chunk, out["RequestResponses"]) if answer.get("ErrorCode")]
                codes = sorted({a["ErrorCode"] for a in out["RequestResponses"] if a.get("ErrorCode")})
                raise DecisionLogError(f"{self.uri}: Firehose refused {len(failed)} records ({', '.join(codes)})",
                                       failed + [r for r, _ in items[end:]])
            start = end
