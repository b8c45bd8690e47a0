"""Drift of the live traffic, as the API sees it: the PSI of the champion's score and of its
important features over each window of ``window_rows`` freshly scored transactions,
against the champion's reference (``reference.json``). The API emits each window's figures
as EMF metrics (``lambda_handler.telemetry``), so a broken feature or a shift in the
traffic shows within the hour, not at the next nightly ``fraud monitor``.

Why the reference is mixed by hour: traffic has a daily cycle, and a window of a thousand
transactions covers a few hours of it. Compared with the reference of whole days, a
morning's window "drifts" by its hour alone (on simulated traffic, 1,000 rows:
``card_seconds_since_previous`` PSI 0.35 median, 0.83 at worst, with no drift at all). So
the expected shares of each bin are the reference's shares per UTC hour of the transaction,
mixed in the proportions of the hours in the window (the same traffic: 0.017 median, 0.12
at worst). An hour the reference holds few rows of is shrunk towards the reference's
overall shares (``PRIOR_ROWS``). The calendar features are not judged: the mixture gives
their hour of day by construction, and a few hours hold one weekday.

Each process judges its own traffic (a Lambda instance, a uvicorn worker), so a window is
one instance's ``window_rows`` transactions; an instance that never fills a window says
nothing, and the nightly ``fraud monitor`` (whole days of the decision log, every
instance) stays the judge that starts a retrain. numpy only: the serving image has no
pandas.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .psi import EPSILON, psi
from .reference import HOURS, important_features

CALENDAR = ("hour", "is_night", "weekday", "is_weekend")
PRIOR_ROWS = 20   # an hour with n reference rows is mixed n : 20 with the overall shares
SCORE = "score"


@dataclass(frozen=True)
class LiveWindow:
    """One window's figures: ``rows`` transactions, the score's PSI and each judged feature's."""

    rows: int
    score_psi: float
    feature_psi: dict

    @property
    def feature_psi_max_name(self) -> str | None:
        return max(self.feature_psi, key=self.feature_psi.get) if self.feature_psi else None

    @property
    def feature_psi_max(self) -> float | None:
        name = self.feature_psi_max_name
        return None if name is None else self.feature_psi[name]


class LiveDrift:
    """Counts the live rows and, once ``window_rows`` are in, returns their ``LiveWindow``
    and starts the next window. Thread-safe: concurrent requests of one process share it.

    ``feature_names``: the columns of the matrices ``add`` gets (the bundle's order);
    ``important``: the reference's top-k features by importance are judged (0: all), the
    calendar ones never. ``ValueError`` for a reference without the ``hourly`` part
    (published before it existed)."""

    def __init__(self, reference: dict, feature_names: Sequence[str], window_rows: int = 1000,
                 important: int = 10, epsilon: float = EPSILON):
        hourly = reference.get("hourly")
        if not hourly:
            raise ValueError("the reference has no hourly counts (a version published before live drift existed: "
                             "the next `fraud train` brings them)")
        if window_rows < 1:
            raise ValueError(f"window_rows must be at least 1, not {window_rows}")
        names = list(feature_names)
        self.judged = tuple(n for n in important_features(reference, important)
                            if n not in CALENDAR and n in names and n in hourly["features"])
        self._index = np.array([names.index(n) for n in self.judged], dtype=np.int64)
        columns = [(reference["features"][n], hourly["features"][n]) for n in self.judged]
        columns.append((reference["score"], hourly["score"]))   # the score last
        # every column on one array: edges padded with +inf, bins up to the widest column's
        # (unused bins stay 0): a request's rows are binned and counted in a few numpy calls
        self._bins = np.array([len(c["edges"]) + 2 for c, _ in columns], dtype=np.int64)
        width = int(self._bins.max())
        self._edges = np.full((len(columns), width - 2), np.inf)
        self._expected = np.zeros((len(columns), HOURS, width))
        for i, (column, counts) in enumerate(columns):
            self._edges[i, :len(column["edges"])] = column["edges"]
            counts = np.asarray(counts, dtype=np.float64)
            overall = np.asarray(column["shares"], dtype=np.float64)
            self._expected[i, :, :self._bins[i]] = (counts + PRIOR_ROWS * overall) / (
                counts.sum(axis=1, keepdims=True) + PRIOR_ROWS)
        self._counts = np.zeros((len(columns), HOURS, width))
        self.window_rows = int(window_rows)
        self.epsilon = epsilon
        self._lock = threading.Lock()

    @property
    def rows(self) -> int:
        """Rows in the current, unfinished window."""
        return int(self._counts[-1].sum())

    def add(self, hours, matrix, scores) -> LiveWindow | None:
        """``hours`` (UTC hour of each transaction's time, 0-23), ``matrix`` (rows x
        ``feature_names``) and ``scores`` (the champion's calibrated ones), row-aligned.
        Returns the window these rows completed, else None."""
        hours = np.asarray(hours, dtype=np.int64)
        if not hours.size:
            return None
        values = np.column_stack([np.asarray(matrix, dtype=np.float64)[:, self._index],
                                  np.asarray(scores, dtype=np.float64)])          # rows x columns
        # fraud.monitoring.psi.bin_index for every column at once: the edges below the value,
        # the missing bin last
        bins = np.where(np.isnan(values), self._bins - 1, (values[:, :, None] > self._edges).sum(axis=2))
        columns = np.broadcast_to(np.arange(values.shape[1]), bins.shape)
        with self._lock:
            np.add.at(self._counts, (columns, np.broadcast_to(hours[:, None], bins.shape), bins), 1)
            rows = self._counts[-1].sum()
            if rows < self.window_rows:
                return None
            by_hour = self._counts[-1].sum(axis=1)
            expected = np.einsum("h,chb->cb", by_hour / rows, self._expected)
            actual = self._counts.sum(axis=1) / rows
            scores = [psi(expected[i, :b], actual[i, :b], self.epsilon) for i, b in enumerate(self._bins)]
            self._counts[:] = 0
        return LiveWindow(int(rows), scores[-1], dict(zip(self.judged, scores[:-1])))
