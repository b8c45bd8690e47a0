"""Our canonical transaction columns and their types.

Every input table is renamed onto these names (``ColumnMapping``) and coerced to these
types before anything else looks at it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas is imported where it is used: the scoring Lambda never needs it
    import pandas as pd

TRANSACTION_ID = "transaction_id"
TIMESTAMP = "timestamp"
CARD_ID = "card_id"
TERMINAL_ID = "terminal_id"
AMOUNT = "amount"
LABEL = "label"
LABEL_TIME = "label_time"

REQUIRED_COLUMNS = (TRANSACTION_ID, TIMESTAMP, CARD_ID, TERMINAL_ID, AMOUNT)
STRING_COLUMNS = (TRANSACTION_ID, CARD_ID, TERMINAL_ID, "currency", "channel", "country",
                  "merchant_category", "device_id", "fraud_pattern")
FLOAT_COLUMNS = (AMOUNT, "card_lat", "card_lon", "terminal_lat", "terminal_lon")
TIME_COLUMNS = (TIMESTAMP, LABEL_TIME)
LOCATION_COLUMNS = ("card_lat", "card_lon", "terminal_lat", "terminal_lon")


def epoch_seconds(ts: pd.Series) -> np.ndarray:
    """UTC datetimes -> int64 seconds since the epoch (floored)."""
    values = ts.dt.tz_convert("UTC") if ts.dt.tz is not None else ts.dt.tz_localize("UTC")
    return values.astype("datetime64[s, UTC]").astype("int64").to_numpy()


def tiebreak(transaction_ids) -> np.ndarray:
    """A stable per-transaction number that orders transactions sharing a timestamp.

    Batch, Dask and online paths all order same-second events by this, so they agree.
    """
    import pandas as pd

    return pd.util.hash_array(np.asarray(transaction_ids, dtype=object), categorize=False)
