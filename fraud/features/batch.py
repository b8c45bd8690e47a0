"""Batch feature computation: vectorised over a DataFrame of transactions.

For each entity (card, terminal) the rows are sorted by (entity, time, tiebreak) and
running totals of count, amount and amount^2 are taken *before* each row, in that order.
A window's aggregate is "running total now" minus "running total before the first row in
the window"; the first row is found with a two-pointer sweep (windows only move
forward). The online path keeps exactly these running totals and, per bucket, the total
before the bucket's first row, so both paths perform the same float additions.

    features = build_features(transactions, FeatureSpec.default())

``transactions`` has our canonical columns (see ``fraud.io``); labels and label times are
optional (without them the label-based features are NaN / 0). The result has one row per
input row, in the input's order, one column per feature.
"""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd

from ..schema import AMOUNT, CARD_ID, LABEL, LABEL_TIME, TERMINAL_ID, TIMESTAMP, TRANSACTION_ID, epoch_seconds, tiebreak
from . import derive
from .spec import (CARD, CARD_TERMINAL, HISTORY_AGGREGATIONS, LABEL_AGGREGATIONS, TERMINAL, TRANSACTION,
                   WINDOW_AGGREGATIONS, FeatureSpec, bucket_seconds, n_buckets)

_JIT = dict(nogil=True, cache=True)


@numba.njit(**_JIT)
def _running_totals(starts, amount):
    """Per group (rows starts[g]:starts[g+1]): sum and sum of squares *before* each row."""
    n = amount.shape[0]
    before_s = np.empty(n)
    before_q = np.empty(n)
    for g in range(starts.shape[0] - 1):
        s = 0.0
        q = 0.0
        for i in range(starts[g], starts[g + 1]):
            before_s[i] = s
            before_q[i] = q
            a = amount[i]
            s = s + a
            q = q + a * a
    return before_s, before_q


@numba.njit(**_JIT)
def _window_first(starts, t, bucket, nbuckets):
    """Index of the first row of each row's window (same group, t >= aligned window start)."""
    n = t.shape[0]
    first = np.empty(n, dtype=np.int64)
    for g in range(starts.shape[0] - 1):
        j = starts[g]
        for i in range(starts[g], starts[g + 1]):
            begin = (t[i] // bucket - nbuckets + 1) * bucket
            while t[j] < begin:
                j += 1
            first[i] = j
    return first


@numba.njit(**_JIT)
def _label_counts(row_starts, t, ev_starts, ev_t, ev_fraud, bucket, nbuckets):
    """For each row: labels and frauds known strictly before t within the aligned window."""
    n = t.shape[0]
    labels = np.zeros(n)
    frauds = np.zeros(n)
    for g in range(row_starts.shape[0] - 1):
        lo = ev_starts[g]
        hi = ev_starts[g + 1]
        j_begin = lo
        j_end = lo
        f_begin = 0.0
        f_end = 0.0
        for i in range(row_starts[g], row_starts[g + 1]):
            begin = (t[i] // bucket - nbuckets + 1) * bucket
            while j_end < hi and ev_t[j_end] < t[i]:
                f_end += ev_fraud[j_end]
                j_end += 1
            while j_begin < hi and ev_t[j_begin] < begin:
                f_begin += ev_fraud[j_begin]
                j_begin += 1
            labels[i] = j_end - j_begin  # begin <= t, so j_begin <= j_end
            frauds[i] = f_end - f_begin
    return labels, frauds


@numba.njit(**_JIT)
def _order_by_code(codes, order, n_groups):
    """Stable counting sort of ``order`` by ``codes[order]``: rows grouped by entity, in
    event order within each entity. Returns (rows, group starts)."""
    starts = np.zeros(n_groups + 1, dtype=np.int64)
    for i in range(codes.shape[0]):
        starts[codes[i] + 1] += 1
    for g in range(n_groups):
        starts[g + 1] += starts[g]
    fill = starts[:-1].copy()
    rows = np.empty(order.shape[0], dtype=np.int64)
    for i in range(order.shape[0]):
        r = order[i]
        c = codes[r]
        rows[fill[c]] = r
        fill[c] += 1
    return rows, starts


def _event_order(t: np.ndarray, tb: np.ndarray) -> np.ndarray:
    """Indices sorted by (t, tb). Input is usually already in time order, which the stable
    sort handles in linear time; only runs of equal seconds need the tiebreak."""
    order = np.argsort(t, kind="stable")
    ts = t[order]
    tied = np.flatnonzero(ts[1:] == ts[:-1])
    if tied.size:
        mark = np.zeros(order.size, dtype=bool)
        mark[tied] = True
        mark[tied + 1] = True
        rows = np.flatnonzero(mark)
        sub = order[rows]
        order[rows] = sub[np.lexsort((tb[sub], t[sub]))]
    return order


def _group_starts(sorted_codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Boundaries of each code's run in an array sorted by code (empty runs allowed)."""
    return np.searchsorted(sorted_codes, np.arange(n_groups + 1), side="left").astype(np.int64)


class _Prepared:
    """Arrays shared by all entity computations: event order, seconds, amounts."""

    def __init__(self, df: pd.DataFrame):
        self.n = len(df)
        self.t = epoch_seconds(df[TIMESTAMP])
        self.tb = tiebreak(df[TRANSACTION_ID].to_numpy(dtype=object))
        self.amount = df[AMOUNT].to_numpy(dtype=np.float64)
        self.order = _event_order(self.t, self.tb)  # global event order

    def entity_order(self, codes: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
        """(row indices sorted by (entity code, time, tiebreak), start of each entity's run)."""
        return _order_by_code(np.asarray(codes, dtype=np.int64), self.order, n_groups)


def _entity_features(prep: _Prepared, df: pd.DataFrame, spec: FeatureSpec, entity: str,
                     column: str, out: dict) -> None:
    feats = spec.of(entity)
    if not feats:
        return
    codes, uniques = pd.factorize(df[column], sort=False)
    perm, starts = prep.entity_order(codes, len(uniques))
    t = prep.t[perm]
    amount = prep.amount[perm]
    before_s, before_q = _running_totals(starts, amount)
    group_first = np.repeat(starts[:-1], np.diff(starts))
    before_n = np.arange(prep.n, dtype=np.int64) - group_first

    def scatter(name, values):
        out[name][perm] = values

    firsts = {}
    for w in spec.windows(entity, WINDOW_AGGREGATIONS + HISTORY_AGGREGATIONS):
        firsts[w] = _window_first(starts, t, bucket_seconds(w), n_buckets(w))
    for f in feats:
        if f.aggregation in WINDOW_AGGREGATIONS:
            first = firsts[f.window]
            count = (before_n + 1 - before_n[first]).astype(np.float64)
            total = (before_s + amount) - before_s[first]
            value = {"count": count, "sum": total, "mean": total / count}[f.aggregation]
            scatter(f.name, value)
        elif f.aggregation in HISTORY_AGGREGATIONS:
            first = firsts[f.window]
            ratio, z = derive.history_ratio_z(amount, before_n - before_n[first],
                                              before_s - before_s[first], before_q - before_q[first])
            scatter(f.name, ratio if f.aggregation == "amount_ratio" else z)
        elif f.aggregation == "seconds_since_previous":
            gap = np.r_[np.nan, (t[1:] - t[:-1]).astype(np.float64)]
            scatter(f.name, np.where(before_n > 0, gap, np.nan))
    label_feats = [f for f in feats if f.aggregation in LABEL_AGGREGATIONS]
    if label_feats:
        _label_features(prep, df, codes, len(uniques), perm, starts, t, label_feats, scatter)


def _label_features(prep, df, codes, n_groups, perm, starts, t, feats, scatter) -> None:
    if LABEL in df.columns and LABEL_TIME in df.columns:
        lt = epoch_seconds(df[LABEL_TIME])
        has = ~df[LABEL_TIME].isna().to_numpy()
        ev_rows = np.flatnonzero(has)
        # counts of labels known before a time do not depend on how same-second labels are ordered
        ev_order = ev_rows[np.lexsort((lt[ev_rows], codes[ev_rows]))]
        ev_codes, ev_t = codes[ev_order], lt[ev_order]
        ev_fraud = df[LABEL].to_numpy()[ev_order].astype(np.float64)
    else:
        ev_codes = np.empty(0, np.int64)
        ev_t = np.empty(0, np.int64)
        ev_fraud = np.empty(0)
    ev_starts = _group_starts(ev_codes, n_groups)
    for w in sorted({f.window for f in feats}):
        labels, frauds = _label_counts(starts, t, ev_starts, ev_t, ev_fraud, bucket_seconds(w), n_buckets(w))
        for f in feats:
            if f.window == w:
                scatter(f.name, labels if f.aggregation == "label_count" else derive.rate(frauds, labels))


def _pair_features(prep: _Prepared, df: pd.DataFrame, spec: FeatureSpec, out: dict) -> None:
    for f in spec.of(CARD_TERMINAL):
        card_codes, _ = pd.factorize(df[CARD_ID], sort=False)
        term_codes, terms = pd.factorize(df[TERMINAL_ID], sort=False)
        pair_codes, pairs = pd.factorize(card_codes.astype(np.int64) * (len(terms) + 1) + term_codes)
        perm, _ = prep.entity_order(pair_codes, len(pairs))
        pair = pair_codes
        out[f.name][perm] = np.r_[False, pair[perm][1:] == pair[perm][:-1]]


def _row_features(prep: _Prepared, df: pd.DataFrame, spec: FeatureSpec, out: dict) -> None:
    feats = spec.of(TRANSACTION)
    hour, weekday, night, weekend = derive.calendar(prep.t, spec.night_hours)
    for f in feats:
        agg = f.aggregation
        if agg == "amount":
            out[f.name][:] = prep.amount
        elif agg == "log_amount":
            np.log1p(prep.amount, out=out[f.name])
        elif agg in ("hour", "weekday", "is_night", "is_weekend"):
            out[f.name][:] = {"hour": hour, "weekday": weekday, "is_night": night, "is_weekend": weekend}[agg]
        elif agg == "distance_km":
            cols = ("card_lat", "card_lon", "terminal_lat", "terminal_lon")
            if all(c in df.columns for c in cols):
                out[f.name][:] = derive.haversine_km(*(df[c].to_numpy(dtype=np.float64) for c in cols))
            else:
                out[f.name][:] = np.nan
        elif agg == "is_online":
            out[f.name][:] = derive.is_online(df["channel"]) if "channel" in df.columns else 0.0


def build_features(df: pd.DataFrame, spec: FeatureSpec | None = None) -> pd.DataFrame:
    """Point-in-time features for every row of ``df`` (same order), one column per feature."""
    spec = spec or FeatureSpec.default()
    block = np.empty((len(df), len(spec.names)), order="F")  # one column per feature, filled in place
    out = {name: block[:, i] for i, name in enumerate(spec.names)}
    if len(df):
        prep = _Prepared(df)
        _row_features(prep, df, spec, out)
        _entity_features(prep, df, spec, CARD, CARD_ID, out)
        _entity_features(prep, df, spec, TERMINAL, TERMINAL_ID, out)
        _pair_features(prep, df, spec, out)
    return pd.DataFrame(block, index=df.index, columns=spec.names, copy=False)
