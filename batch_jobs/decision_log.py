"""``fraud decisions compact``: the local decision log's closed days from JSON Lines into one
Parquet file each (``fraud.decisions.reader.compact_decisions``). In AWS Firehose writes
the log to S3 and there is nothing to compact."""

from __future__ import annotations

import os

DEFAULT_ROOT = ".fraud/decisions"


def default_root() -> str:
    """$FRAUD_DECISION_LOG_URI when it is a directory (the API's setting), else .fraud/decisions."""
    uri = os.environ.get("FRAUD_DECISION_LOG_URI") or DEFAULT_ROOT
    return DEFAULT_ROOT if "://" in uri or uri.strip() == "off" else uri


def cmd_decisions(args) -> int:
    from fraud.decisions import compact_decisions

    days = compact_decisions(args.root)
    print(f"{args.root}: compacted {len(days)} day(s) to Parquet" + (f": {', '.join(days)}" if days else
                                                                       " (none closed for an hour with JSON Lines)"))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("decisions", help="the local decision log: compact each day that ended over an hour ago "
                                         "from JSON Lines into one Parquet file")
    p.add_argument("action", choices=["compact"])
    p.add_argument("--root", default=default_root(),
                   help=f"the log's directory (default $FRAUD_DECISION_LOG_URI, else {DEFAULT_ROOT})")
    p.set_defaults(func=cmd_decisions)
