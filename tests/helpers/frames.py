"""Small hand-written transaction streams for feature tests."""

from __future__ import annotations

import pandas as pd

COLUMNS = ["transaction_id", "timestamp", "card_id", "terminal_id", "amount", "label", "label_time"]


def labelled_frame(rows) -> pd.DataFrame:
    """Rows of (id, time, card, terminal, amount, label, label time) as the engines take them:
    times parsed as UTC (ISO-8601 text; None: label not known)."""
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True, format="ISO8601")
    df["label_time"] = pd.to_datetime(df["label_time"], utc=True, format="ISO8601")
    return df
