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

import math

import numba
import numpy as np
import pandas as pd

from ..schema import AMOUNT, CARD_ID, LABEL, LABEL_TIME, TERMINAL_ID, TIMESTAMP, TRANSACTION_ID, epoch_seconds, tiebreak
from . import derive
from . import spec as spec_module
from .spec import (CARD, CARD_TERMINAL, CROSS_AGGREGATIONS, HISTORY_AGGREGATIONS, LABEL_AGGREGATIONS, TERMINAL,
                   TRANSACTION, WINDOW_AGGREGATIONS, FeatureSpec, bucket_seconds, n_buckets)

_JIT = dict(nogil=True, cache=True, error_model="numpy")  # x/0 gives inf/nan, as numpy does


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
def _label_columns(perm, row_starts, t, ev_starts, ev_t, ev_fraud, bucket, nbuckets, out_count, out_rate):
    """Per row: labels known strictly before t within the aligned window, and the share of
    them that are fraud (NaN without labels), written straight to the output rows."""
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
            labels = float(j_end - j_begin)  # begin <= t, so j_begin <= j_end
            r = perm[i]
            if out_count.shape[0]:
                out_count[r] = labels
            if out_rate.shape[0]:
                out_rate[r] = (f_end - f_begin) / labels if labels > 0 else np.nan


@numba.njit(**_JIT)
def _order_by_code(codes, order, n_groups):
    """Stable counting sort of ``order`` by ``codes[order]``: rows grouped by entity, in
    event order within each entity. Returns (rows, group starts)."""
    starts = np.zeros(n_groups + 1, dtype=np.int64)
    for i in range(order.shape[0]):
        starts[codes[order[i]] + 1] += 1
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


def _break_ties(perm: np.ndarray, codes: np.ndarray, t: np.ndarray, ids: pd.Series) -> np.ndarray:
    """Within runs of the same entity and second, order rows by ``tiebreak(transaction_id)``.

    Only such runs need the tiebreak (features of one entity never depend on how other
    entities' same-second rows are ordered), and they are rare, so only their ids are
    read and hashed (making Python strings of every id was 5 % of the Dask passes).
    """
    c, ts = codes[perm], t[perm]
    tied = np.flatnonzero((c[1:] == c[:-1]) & (ts[1:] == ts[:-1]))
    if tied.size:
        mark = np.zeros(perm.size, dtype=bool)
        mark[tied] = True
        mark[tied + 1] = True
        pos = np.flatnonzero(mark)
        sub = perm[pos]
        tb = tiebreak(ids.take(sub).to_numpy(dtype=object))
        perm = perm.copy()
        perm[pos] = sub[np.lexsort((tb, t[sub], codes[sub]))]
    return perm


class _Prepared:
    """Arrays shared by all entity computations: time order, seconds, amounts."""

    def __init__(self, df: pd.DataFrame):
        self.n = len(df)
        self.t = epoch_seconds(df[TIMESTAMP])
        self.ids = df[TRANSACTION_ID]  # read only for tied rows (_break_ties)
        self.amount = df[AMOUNT].to_numpy(dtype=np.float64)
        self.order = np.argsort(self.t, kind="stable")  # linear for input already in time order
        self._entities: dict[str, tuple] = {}
        self.uniques: dict[str, pd.Index] = {}

    def entity(self, df: pd.DataFrame, column: str):
        """(codes, number of entities, rows sorted by (entity, time, tiebreak), start of each
        entity's run) for an entity column; computed once and shared by all its features."""
        if column not in self._entities:
            codes, uniques = pd.factorize(df[column], sort=False)
            self.uniques[column] = uniques
            codes = codes.astype(np.int64)
            perm, starts = _order_by_code(codes, self.order, len(uniques))
            self._entities[column] = (codes, len(uniques), _break_ties(perm, codes, self.t, self.ids), starts)
        return self._entities[column]

    def sorted_t(self, df: pd.DataFrame, column: str) -> np.ndarray:
        """Seconds in the entity's sorted order (``entity``'s rows); computed once."""
        key = ("t", column)
        if key not in self._entities:
            self._entities[key] = self.t[self.entity(df, column)[2]]
        return self._entities[key]


@numba.njit(inline="always", nogil=True, error_model="numpy")
def _window_start(t, j, i, bucket, nbuckets):
    """First row at or after ``j`` inside the bucket-aligned window ending at row ``i``
    (windows only move forward within a group, so callers sweep ``j`` along)."""
    begin = (t[i] // bucket - nbuckets + 1) * bucket
    while t[j] < begin:
        j += 1
    return j


@numba.njit(**_JIT)
def _window_columns(perm, starts, t, amount, before_s, bucket, nbuckets, out_count, out_sum, out_mean):
    """count / sum / mean of one window (current row included), written straight to the
    output rows (``perm`` maps sorted position -> row); an output of length 0 is skipped.
    The float operations are the online path's: (running sum + amount) - sum before window."""
    for g in range(starts.shape[0] - 1):
        j = starts[g]
        for i in range(starts[g], starts[g + 1]):
            j = _window_start(t, j, i, bucket, nbuckets)
            count = float(i + 1 - j)
            total = (before_s[i] + amount[i]) - before_s[j]
            r = perm[i]
            if out_count.shape[0]:
                out_count[r] = count
            if out_sum.shape[0]:
                out_sum[r] = total
            if out_mean.shape[0]:
                out_mean[r] = total / count


@numba.njit(**_JIT)
def _history_columns(perm, starts, t, amount, before_s, before_q, bucket, nbuckets, prior, mean_floor,
                     out_ratio, out_z):
    """The card's amount relative to its own history in the window (current row excluded)."""
    for g in range(starts.shape[0] - 1):
        j = starts[g]
        for i in range(starts[g], starts[g + 1]):
            j = _window_start(t, j, i, bucket, nbuckets)
            r = perm[i]
            n = float(i - j)
            if n == 0:
                ratio = np.nan
                z = np.nan
            else:
                mean = (before_s[i] - before_s[j]) / n
                var = max((before_q[i] - before_q[j]) / n - mean * mean, 0.0)
                ratio = amount[i] / max(mean, mean_floor)
                z = (amount[i] - mean) / math.sqrt(var + prior)
            if out_ratio.shape[0]:
                out_ratio[r] = ratio
            if out_z.shape[0]:
                out_z[r] = z


@numba.njit(**_JIT)
def _seen_before_column(perm, starts, t, other, n_other, window, out):
    """1 where the entity met this ``other`` (e.g. the card this terminal) on an earlier row
    at most ``window`` seconds before this one (``t`` in sorted order).

    Rows are in (entity, time, tiebreak) order, so the last row of the group that met ``o``
    is the pair's previous transaction: ``mark[o]`` holds that group and ``last[o]`` its
    time. O(n), with tables the size of the other entity's vocabulary instead of a hash map
    per group (and no sort by pair)."""
    mark = np.full(n_other, -1, dtype=np.int64)
    last = np.empty(n_other, dtype=np.int64)
    for g in range(starts.shape[0] - 1):
        for i in range(starts[g], starts[g + 1]):
            o = other[i]
            out[perm[i]] = 1.0 if mark[o] == g and t[i] - last[o] <= window else 0.0
            mark[o] = g
            last[o] = t[i]


@numba.njit(**_JIT)
def _last_of_pair(starts, other, n_other):
    """True on each group's last row with a given ``other`` (the card's latest transaction at
    each terminal): the online state's ``seen`` mapping, built in bulk."""
    mark = np.full(n_other, -1, dtype=np.int64)
    last = np.zeros(other.shape[0], dtype=np.bool_)
    for g in range(starts.shape[0] - 1):
        for i in range(starts[g + 1] - 1, starts[g] - 1, -1):
            o = other[i]
            if mark[o] != g:
                last[i] = True
                mark[o] = g
    return last


@numba.njit(**_JIT)
def _gap_column(perm, starts, t, out):
    """Seconds since the entity's previous row (NaN for its first)."""
    for g in range(starts.shape[0] - 1):
        for i in range(starts[g], starts[g + 1]):
            out[perm[i]] = np.nan if i == starts[g] else float(t[i] - t[i - 1])


@numba.njit(inline="always", nogil=True)
def _bit_add(tree, i, v):
    i += 1
    while i < tree.shape[0]:
        tree[i] += v
        i += i & -i


@numba.njit(inline="always", nogil=True)
def _bit_prefix(tree, i):
    """Sum of positions < i."""
    s = 0
    while i > 0:
        s += tree[i]
        i -= i & -i
    return s


@numba.njit(**_JIT)
def _cross_column(perm, starts, other, t, ev_starts, ev_t, bucket, nbuckets, recent, out):
    """Per row: how many distinct ``other`` entities this entity met on an earlier row inside
    the aligned window, among the ``recent`` it met most recently (0: no limit), whose latest
    label event known before t (``ev_t`` sorted per other, CSR by ``ev_starts``) lies in the
    window too. Only others with events are listed (per group, swept of entries that left
    the window: windows only move forward); with a limit, a Fenwick tree over positions
    marks each other's latest row, so "how many others were met since" is a prefix sum."""
    n = t.shape[0]
    n_other = ev_starts.shape[0] - 1
    mark = np.full(n_other, -1, dtype=np.int64)
    slot = np.zeros(n_other, dtype=np.int64)
    members = np.empty(n, dtype=np.int64)
    used = np.empty(n, dtype=np.int64)
    met = np.full(n_other, -1, dtype=np.int64)  # group that last met it (limit only)
    lastpos = np.zeros(n_other, dtype=np.int64)
    tree = np.zeros(n + 1 if recent > 0 else 1, dtype=np.int64)
    for g in range(starts.shape[0] - 1):
        k = 0
        for i in range(starts[g], starts[g + 1]):
            begin = (t[i] // bucket - nbuckets + 1) * bucket
            count = 0
            s = 0
            while s < k:
                o = members[s]
                if used[s] < begin:  # left the window for good: swap the last entry in
                    mark[o] = -1
                    k -= 1
                    members[s] = members[k]
                    used[s] = used[k]
                    slot[members[s]] = s
                    continue
                lo, hi = ev_starts[o], ev_starts[o + 1]
                j = lo + np.searchsorted(ev_t[lo:hi], t[i])  # events known strictly before t
                if j > lo and ev_t[j - 1] >= begin:
                    if recent <= 0 or _bit_prefix(tree, i) - _bit_prefix(tree, lastpos[o] + 1) < recent:
                        count += 1
                s += 1
            out[perm[i]] = float(count)
            o = other[i]
            if recent > 0:
                if met[o] == g:
                    _bit_add(tree, lastpos[o], -1)
                met[o] = g
                lastpos[o] = i
                _bit_add(tree, i, 1)
            if ev_starts[o + 1] > ev_starts[o]:
                if mark[o] != g:
                    mark[o] = g
                    slot[o] = k
                    members[k] = o
                    k += 1
                used[slot[o]] = t[i]


class CrossContext:
    """Fraud label times the compromise features read across entities: per card and per
    terminal, the times at which a fraud label of one of its transactions became known.

    Built from the table itself (``from_frame``); the Dask engine builds it once from the
    whole table and hands it to every partition, so a partition holding some cards still
    sees every terminal's frauds (and vice versa)."""

    def __init__(self, card_ids, card_times, terminal_ids, terminal_times):
        self.card = (np.asarray(card_ids, dtype=object), np.asarray(card_times, dtype=np.int64))
        self.terminal = (np.asarray(terminal_ids, dtype=object), np.asarray(terminal_times, dtype=np.int64))

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> "CrossContext":
        if LABEL not in df.columns or LABEL_TIME not in df.columns:
            empty = np.empty(0, dtype=object)
            return cls(empty, np.empty(0, np.int64), empty, np.empty(0, np.int64))
        fraud = df.loc[(df[LABEL] == 1).to_numpy() & df[LABEL_TIME].notna().to_numpy()]
        lt = epoch_seconds(fraud[LABEL_TIME])
        return cls(fraud[CARD_ID].to_numpy(dtype=object), lt, fraud[TERMINAL_ID].to_numpy(dtype=object), lt)

    def events(self, which: str, uniques) -> tuple[np.ndarray, np.ndarray]:
        """(starts, sorted times) per code of ``uniques`` (the entity's factorised ids)."""
        ids, times = self.card if which == CARD else self.terminal
        codes = pd.Index(uniques).get_indexer(ids) if len(ids) else np.empty(0, np.int64)
        keep = codes >= 0
        codes, times = codes[keep].astype(np.int64), times[keep]
        order = np.lexsort((times, codes))
        starts = np.zeros(len(uniques) + 1, dtype=np.int64)
        np.cumsum(np.bincount(codes, minlength=len(uniques)), out=starts[1:])
        return starts, times[order]


def _cross_features(prep: _Prepared, df: pd.DataFrame, spec: FeatureSpec, out: dict,
                    context: CrossContext | None) -> None:
    """terminal_compromised_cards (group terminal, other card) and
    card_compromised_terminals (group card, other terminal): one kernel, both ways."""
    feats = [f for f in spec.features if f.aggregation in CROSS_AGGREGATIONS]
    if not feats:
        return
    context = context or CrossContext.from_frame(df)
    for f in feats:
        group, other = (TERMINAL_ID, CARD_ID) if f.aggregation == "compromised_cards" else (CARD_ID, TERMINAL_ID)
        _, _, perm, starts = prep.entity(df, group)
        other_codes, _, _, _ = prep.entity(df, other)
        ev_starts, ev_t = context.events(CARD if other == CARD_ID else TERMINAL, prep.uniques[other])
        recent = spec_module.COMPROMISE_RECENT_TERMINALS if group == CARD_ID else 0
        _cross_column(perm, starts, other_codes[perm], prep.sorted_t(df, group), ev_starts, ev_t,
                      bucket_seconds(f.window), n_buckets(f.window), recent, out[f.name])


_NO_COLUMN = np.empty(0)  # the kernels skip an output of length 0


def _output_column(out: dict, feats, aggregation: str, window) -> np.ndarray:
    """The output column of the feature with this aggregation and window, or an empty one
    when the spec does not ask for it."""
    name = next((f.name for f in feats if f.aggregation == aggregation and f.window == window), None)
    return _NO_COLUMN if name is None else out[name]


def _entity_features(prep: _Prepared, df: pd.DataFrame, spec: FeatureSpec, entity: str,
                     column: str, out: dict) -> None:
    feats = spec.of(entity)
    if not feats:
        return
    codes, n_groups, perm, starts = prep.entity(df, column)
    t = prep.sorted_t(df, column)
    amount = prep.amount[perm]
    before_s, before_q = _running_totals(starts, amount)

    def column_of(aggregation, window):
        return _output_column(out, feats, aggregation, window)

    for w in spec.windows(entity, WINDOW_AGGREGATIONS):
        _window_columns(perm, starts, t, amount, before_s, bucket_seconds(w), n_buckets(w),
                        column_of("count", w), column_of("sum", w), column_of("mean", w))
    for w in spec.windows(entity, HISTORY_AGGREGATIONS):
        _history_columns(perm, starts, t, amount, before_s, before_q, bucket_seconds(w), n_buckets(w),
                         derive.ZSCORE_VARIANCE_PRIOR, derive.HISTORY_MEAN_FLOOR, column_of("amount_ratio", w),
                         column_of("amount_zscore", w))
    for f in feats:
        if f.aggregation == "seconds_since_previous":
            _gap_column(perm, starts, t, out[f.name])
    label_feats = [f for f in feats if f.aggregation in LABEL_AGGREGATIONS]
    if label_feats:
        _label_features(prep, df, codes, n_groups, perm, starts, t, label_feats, out)


def _label_features(prep, df, codes, n_groups, perm, starts, t, feats, out) -> None:
    if LABEL in df.columns and LABEL_TIME in df.columns:
        lt = epoch_seconds(df[LABEL_TIME])
        ev_rows = np.flatnonzero(~df[LABEL_TIME].isna().to_numpy())
        # counts of labels known before a time do not depend on how same-second labels are
        # ordered: label-time order, then a stable counting sort by entity
        by_time = ev_rows[np.argsort(lt[ev_rows], kind="stable")]
        ev_order, ev_starts = _order_by_code(codes, by_time, n_groups)
        ev_t = lt[ev_order]
        ev_fraud = df[LABEL].to_numpy()[ev_order].astype(np.float64)
    else:
        ev_t = np.empty(0, np.int64)
        ev_fraud = np.empty(0)
        ev_starts = np.zeros(n_groups + 1, dtype=np.int64)
    for w in sorted({f.window for f in feats}):
        _label_columns(perm, starts, t, ev_starts, ev_t, ev_fraud, bucket_seconds(w), n_buckets(w),
                       _output_column(out, feats, "label_count", w), _output_column(out, feats, "fraud_rate", w))


def _pair_features(prep: _Prepared, df: pd.DataFrame, spec: FeatureSpec, out: dict) -> None:
    for f in spec.of(CARD_TERMINAL):
        _, _, perm, starts = prep.entity(df, CARD_ID)  # event order within each card
        term_codes, n_terms, _, _ = prep.entity(df, TERMINAL_ID)
        _seen_before_column(perm, starts, prep.sorted_t(df, CARD_ID), term_codes[perm], n_terms,
                            spec.history_window, out[f.name])


def _row_features(prep: _Prepared, df: pd.DataFrame, spec: FeatureSpec, out: dict) -> None:
    feats = spec.of(TRANSACTION)
    hour, weekday, night, weekend = derive.calendar(prep.t, spec.night_hours, spec.timezone)
    for f in feats:
        agg = f.aggregation
        if agg == "amount":
            out[f.name][:] = prep.amount
        elif agg == "log_amount":
            np.log1p(prep.amount, out=out[f.name])
        elif agg in ("hour", "weekday", "is_night", "is_weekend"):
            out[f.name][:] = {"hour": hour, "weekday": weekday, "is_night": night, "is_weekend": weekend}[agg]
        elif agg == "distance_km":
            cols = spec_module.NEEDS_COLUMNS[agg]
            if all(c in df.columns for c in cols):
                out[f.name][:] = derive.haversine_km(*(df[c].to_numpy(dtype=np.float64) for c in cols))
            else:
                out[f.name][:] = np.nan
        elif agg == "is_online":
            (channel,) = spec_module.NEEDS_COLUMNS[agg]
            out[f.name][:] = derive.is_online(df[channel]) if channel in df.columns else 0.0


def build_features(df: pd.DataFrame, spec: FeatureSpec | None = None,
                   context: CrossContext | None = None) -> pd.DataFrame:
    """Point-in-time features for every row of ``df`` (same order), one column per feature.
    ``context``: the fraud label times of a larger table ``df`` is part of (Dask); default:
    those of ``df``."""
    spec = spec or FeatureSpec.default()
    block = np.empty((len(df), len(spec.names)), order="F")  # one column per feature, filled in place
    out = {name: block[:, i] for i, name in enumerate(spec.names)}
    if len(df):
        prep = _Prepared(df)
        _row_features(prep, df, spec, out)
        _entity_features(prep, df, spec, CARD, CARD_ID, out)
        _entity_features(prep, df, spec, TERMINAL, TERMINAL_ID, out)
        _pair_features(prep, df, spec, out)
        _cross_features(prep, df, spec, out, context)
    return pd.DataFrame(block, index=df.index, columns=spec.names, copy=False)
