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

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .config import SplitConfig
from .validation import InputError

log = logging.getLogger(__name__)
WHAT_TO_DO = ("give more days of data, or shorten the windows in [split] (train_days, validation_days, "
              "test_days, prequential_folds, gap_days) or [data] label_delay_days")


class InsufficientDataError(InputError):
    """The data cannot fill the configured training windows: too few days, or a window
    without both frauds and legitimate transactions. Nothing is written."""


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
    dropped: str = ""  # why configured prequential folds were left out (too little history), or ""

    def to_dict(self) -> dict:
        return {"as_of": self.as_of.isoformat(), "test": self.test.to_dict(),
                "folds": [{"train": f.train.to_dict(), "validation": f.validation.to_dict()} for f in self.folds],
                "dropped_folds": self.dropped}


def make_split(timestamps: pd.Series, config: SplitConfig, label_delay: pd.Timedelta,
               as_of: pd.Timestamp | None = None) -> TimeSplit:
    """Windows for data spanning ``timestamps``; raises ``InsufficientDataError`` if the data
    is too short."""
    day = pd.Timedelta(days=1)
    if len(timestamps) == 0 or timestamps.isna().all():
        raise InsufficientDataError("no valid transactions to train on: no rows with a timestamp")
    first = timestamps.min()
    if as_of is not None and pd.Timestamp(as_of).tzinfo is None:
        raise InputError(f"as_of {as_of} has no time zone: give an offset (e.g. {pd.Timestamp(as_of).date()}T00:00Z)")
    as_of = pd.Timestamp(as_of) if as_of is not None else timestamps.max().ceil("D")
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
                have = (as_of - first.floor("D")) / day
                raise InsufficientDataError(
                    f"{have:.0f} days of data ({first.date()} to {timestamps.max().date()}) is too short for the "
                    f"configured windows: train {config.train_days} + validation {config.validation_days} + test "
                    f"{config.test_days} days, two gaps of {gap / day:g} days and a label delay of "
                    f"{label_delay / day:g} days need {need:.0f} days; {WHAT_TO_DO}. Nothing was written.")
            more = (first.floor("D") - train.start) / day + (config.prequential_folds - 1 - k) * config.validation_days
            dropped = (f"{config.prequential_folds - k} of {config.prequential_folds} prequential folds dropped "
                       f"(folds {k}..{config.prequential_folds - 1}): fold {k}'s training window would start "
                       f"{train.start.date()}, the data starts {first.date()}; {more:.0f} more days of history "
                       f"would keep them all, or lower [split] prequential_folds to {k}")
            log.warning("%s", dropped)
            return TimeSplit(tuple(folds), test, as_of, dropped)
        folds.append(Fold(train, validation))
    return TimeSplit(tuple(folds), test, as_of)


def check_classes(split: TimeSplit, timestamps: pd.Series, labels, label_times: pd.Series) -> None:
    """Raise ``InsufficientDataError`` unless every window training uses holds both frauds
    (label 1) and legitimate transactions (label 0): each fold's training window with the
    labels known at its cutoff, its validation window, and the test window."""
    labels = np.asarray(labels)
    frauds = int((labels == 1).sum())
    if frauds == 0 or frauds == labels.size:
        only = "0 (legitimate)" if frauds == 0 else "1 (fraud)"
        raise InsufficientDataError(
            f"every one of the {labels.size:,} transactions has label {only}: training needs both frauds (1) and "
            "legitimate transactions (0). Check that [columns] label maps your fraud flag and that frauds are 1, "
            "or give a period that contains frauds. Nothing was written.")
    windows = []
    for k, fold in enumerate(split.folds):
        fold_name = f"fold {k} " if len(split.folds) > 1 else ""
        mask = fold.train.mask(timestamps)
        known = labels_known_at(labels[mask], label_times[mask], fold.label_cutoff)
        windows.append((f"the {fold_name}training window", fold.train, known,
                        f" known by {fold.label_cutoff.date()}"))
        mask = fold.validation.mask(timestamps)
        windows.append((f"the {fold_name}validation window", fold.validation, labels[mask], ""))
    windows.append(("the test window", split.test, labels[split.test.mask(timestamps)], ""))
    for name, window, y, known in windows:
        n, pos = int(y.size), int((y == 1).sum())
        if pos == 0 or pos == n:
            what = "no transactions" if n == 0 else (f"no fraud labels{known} among its {n:,} transactions"
                                                      if pos == 0 else f"only frauds ({n:,})")
            raise InsufficientDataError(
                f"{name} ({window.start.date()} to {(window.end - pd.Timedelta(days=1)).date()}) has {what}: "
                f"every training, validation and test window needs both frauds and legitimate transactions. "
                f"Check the label column, or give more days of data and lengthen that window in [split] "
                f"(train_days, validation_days, test_days) so that it holds some frauds. Nothing was written.")


def labels_known_at(labels, label_times: pd.Series, cutoff: pd.Timestamp):
    """Labels as they were known at ``cutoff``: a fraud reported later still looked legitimate."""
    return ((np.asarray(labels) == 1) & (label_times < cutoff).to_numpy()).astype("int8")


@dataclass(frozen=True)
class TrainingWindow:
    """What a run trains on: transactions from ``start`` (inclusive) to ``end`` (exclusive),
    as they were known at ``as_of`` (later transactions are left out; the windows count
    back from it). None: unbounded / the data's end. Bounds are aware timestamps."""

    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    as_of: pd.Timestamp | None = None

    @classmethod
    def parse(cls, start=None, end=None, as_of=None, timezone: str = "UTC") -> "TrainingWindow":
        """From command-line text: a date or ISO time; one without an offset is a wall-clock
        time of ``timezone`` (the data's, ``[data] timezone``) and is converted, with a log line."""
        bounds = {}
        for name, value in (("from", start), ("to", end), ("as-of", as_of)):
            if value is None:
                bounds[name] = None
                continue
            try:
                ts = pd.Timestamp(value)
            except (ValueError, TypeError):
                raise InputError(f"--{name} {value!r} is not a date or time: give e.g. 2026-06-01 or "
                                 "2026-06-01T00:00:00+02:00") from None
            if ts.tzinfo is None:
                ts = ts.tz_localize(timezone)
                log.info("--%s %s has no offset: read in %s ([data] timezone) as %s", name, value, timezone,
                         ts.tz_convert("UTC").isoformat())
            bounds[name] = ts.tz_convert("UTC")
        window = cls(bounds["from"], bounds["to"], bounds["as-of"])
        if window.start is not None and window.end is not None and window.start >= window.end:
            raise InputError(f"--from {start} is not before --to {end}")
        return window

    @property
    def empty(self) -> bool:
        return self.start is None and self.end is None and self.as_of is None

    def __str__(self) -> str:
        parts = [f"{k} {v.isoformat()}" for k, v in (("from", self.start), ("to", self.end), ("as of", self.as_of))
                 if v is not None]
        return ", ".join(parts) or "all data"
