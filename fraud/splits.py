"""Time-ordered evaluation windows: never a random split.

Counted back from the newest label-complete moment (the data's end minus the label
delay), with a gap equal to the label delay between training and validation and between
validation and test: a model trained up to T only has the labels known at T, and is used
after T.

    | train | gap | validation | gap | test | (label delay) | end of data

Prequential folds repeat the train/gap/validation block shifted back by one validation
length per fold, for hyper-parameter search on several periods.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .config import SplitConfig


@dataclass(frozen=True)
class Window:
    start: pd.Timestamp
    end: pd.Timestamp  # exclusive

    def mask(self, timestamps: pd.Series):
        return ((timestamps >= self.start) & (timestamps < self.end)).to_numpy()

    @property
    def days(self) -> float:
        return (self.end - self.start) / pd.Timedelta(days=1)

    def to_dict(self) -> dict:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


@dataclass(frozen=True)
class Fold:
    train: Window
    validation: Window

    @property
    def label_cutoff(self) -> pd.Timestamp:
        """Training may use only labels known when validation starts."""
        return self.validation.start


@dataclass(frozen=True)
class TimeSplit:
    folds: tuple[Fold, ...]   # folds[0] is the most recent, the one the model is trained on
    test: Window
    as_of: pd.Timestamp

    def to_dict(self) -> dict:
        return {"as_of": self.as_of.isoformat(), "test": self.test.to_dict(),
                "folds": [{"train": f.train.to_dict(), "validation": f.validation.to_dict()} for f in self.folds]}


def make_split(timestamps: pd.Series, config: SplitConfig, label_delay: pd.Timedelta,
               as_of: pd.Timestamp | None = None) -> TimeSplit:
    """Windows for data spanning ``timestamps``; raises if the data is too short."""
    day = pd.Timedelta(days=1)
    first = timestamps.min()
    as_of = as_of or timestamps.max().ceil("D")
    gap = pd.Timedelta(days=config.gap_days) if config.gap_days is not None else label_delay
    test_end = (as_of - label_delay).floor("D")
    test = Window(test_end - config.test_days * day, test_end)
    folds = []
    for k in range(config.prequential_folds):
        val_end = test.start - gap - k * config.validation_days * day
        validation = Window(val_end - config.validation_days * day, val_end)
        train_end = validation.start - gap
        train = Window(train_end - config.train_days * day, train_end)
        if train.start < first.floor("D"):
            if k == 0:
                need = (as_of - train.start) / day
                have = (as_of - first) / day
                raise ValueError(f"{have:.0f} days of data is too short for the configured windows "
                                 f"(train {config.train_days} + validation {config.validation_days} + test "
                                 f"{config.test_days} + gaps and label delay = {need:.0f} days)")
            break
        folds.append(Fold(train, validation))
    return TimeSplit(tuple(folds), test, as_of)


def labels_known_at(labels, label_times: pd.Series, cutoff: pd.Timestamp):
    """Labels as they were known at ``cutoff``: a fraud reported later still looked legitimate."""
    return ((np.asarray(labels) == 1) & (label_times < cutoff).to_numpy()).astype("int8")
