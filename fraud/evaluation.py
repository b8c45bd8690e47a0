"""Which transactions count when a model is evaluated: the way a fraud team counts.

Once a card has a fraud label known, the team blocks it: its later transactions never
reach the model in production, and catching them again is not the model's work. Counting
them flatters a model (they are easy: the card already behaved badly) and rewards features
that merely recognise known-bad cards. So validation and test figures, model selection and
the promotion gate use the transactions of cards with no fraud label known at that moment
("filtered"); the unfiltered figures are reported beside them.

Point in time: a fraud label counts from its ``label_time`` (when it became known), so a
card's frauds before their labels arrived are still the model's to catch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def known_fraud_card(timestamp: pd.Series, card_id, label, label_time: pd.Series) -> np.ndarray:
    """True for rows whose card had a fraud label known at or before the row's time.

    ``timestamp``, ``card_id``, ``label`` and ``label_time`` describe all the transactions
    that can carry such labels (the whole history, not only the evaluated window)."""
    label = np.asarray(label)
    label_time = pd.Series(pd.to_datetime(label_time, utc=True)).reset_index(drop=True)
    cards = pd.Series(np.asarray(card_id, dtype=object))
    fraud = (label == 1) & label_time.notna().to_numpy()
    if not fraud.any():
        return np.zeros(len(cards), dtype=bool)
    first_known = label_time[fraud].groupby(cards[fraud].to_numpy()).min()
    known_at = cards.map(first_known)
    ts = pd.Series(pd.to_datetime(timestamp, utc=True)).reset_index(drop=True)
    return (known_at.notna() & (ts >= known_at)).to_numpy()
