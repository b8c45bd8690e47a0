"""Online features: one transaction at a time against per-entity state in a key-value store.

Per card and per terminal the state holds running totals (count, sum, sum of squares of
amounts, last time) and, per bucket width, the totals as they stood before the first
transaction of each recent bucket. A window's aggregate is "totals now" minus "totals
before the window's first bucket with activity": the same numbers, added in the same
order, as ``batch.build_features``. Old buckets are pruned on every update, so the state
is bounded by the longest window.

The card's state also keeps ``seen``: terminal token -> time the card last used it (a JSON
object, in order of last use), for ``card_terminal_seen_before`` (1 when the card used
this terminal at most ``history_window`` seconds before). Every update drops the entries
older than the window and then, beyond ``MAX_SEEN_TERMINALS`` entries, the least recently
used ones, so the card's document stays under about 35 KB whatever the card does (DynamoDB
refuses items over 400 KB). The engines agree exactly for a card with fewer than
``MAX_SEEN_TERMINALS`` distinct terminals in the window; beyond that (a card-testing
burst) the oldest are forgotten and online may read 0 where batch reads 1: a deliberate
bound on the state. A state written before ``seen`` had times holds a list of tokens
without them; it is migrated on read by dropping it (the card's terminals read as unseen
until used again, at most one window; ``load_history`` rebuilds it exactly).

Common point of compromise (``compromise_windows``; definitions in ``spec``). The card's
state keeps ``F``, the latest time a fraud label of one of its transactions became known;
each terminal has a small item ``cpc#<seen token>`` with ``F``, the latest time a fraud
label at the terminal became known, and ``cards``: card token -> [last use, the card's
F] for the cards with a known fraud that used it lately (older than the longest window
plus a day dropped; at most ``MAX_COMPROMISED_CARDS``, least recently used first). So:
``terminal_compromised_cards`` counts that item's cards whose use and F fall in the window;
``card_compromised_terminals`` reads the ``cpc#`` items of the card's 100 most recent
terminals in ``seen`` (a second batched read, at most 100 keys) and counts those used in the window whose F is in it.
The items move by: a transaction of a card with a known fraud records its use at the
terminal; a fraud label (``add_label``) raises the terminal's F and, given the card
(``card_id``), the card's F and every terminal in the card's ``seen``: a fan-out of at
most ``MAX_SEEN_TERMINALS`` merges (idempotent: max of times), done before the label's
marker is written. The engines agree exactly within the caps (``seen``, and at most
``MAX_COMPROMISED_CARDS`` compromised cards per terminal in the window); a fraud label
given without its card (``card_id`` None) moves only the terminal side (warned).

A transaction reads its card's and its terminal's state in one batched read, and writes
both back in one transaction (``KeyValueStore.transact``: versioned conditional writes,
all or nothing, retried on conflict) together with a record of the features it got. So a
transaction's own update is visible to the next transaction of the same card, also under
concurrency, and applying a transaction is idempotent: a retry (the request died before
answering, or a batch failed after its features were computed) finds the record and gets
the same features back instead of counting the transaction twice (for ``APPLIED_TTL_S``).

Transactions arrive in time order per entity (as an authorisation stream does); a late one
is counted in the totals but moves no clock backwards (its time since the previous
transaction is missing), and the API refuses timestamps beyond a small clock skew into the
future, so no single transaction can prune another's history. Labels arrive through
``add_label`` at the time they become known.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Mapping

import numpy as np

from ..pseudonym import Pseudonymizer
from ..schema import AMOUNT, CARD_ID, LABEL, LABEL_TIME, TERMINAL_ID, TIMESTAMP, TRANSACTION_ID, epoch_seconds
from ..storage.kv import ConditionFailed, KeyValueStore, Write
from . import derive
from . import spec as spec_module
from .spec import (CARD, CARD_TERMINAL, CROSS_AGGREGATIONS, HISTORY_AGGREGATIONS, LABEL_AGGREGATIONS, TERMINAL,
                   TRANSACTION, WINDOW_AGGREGATIONS, FeatureSpec, bucket_seconds, n_buckets)

if TYPE_CHECKING:  # pandas is imported where it is used: scoring one transaction needs none of it
    import pandas as pd

log = logging.getLogger(__name__)
NAN = float("nan")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
APPLIED_PREFIX = "applied#"
APPLIED_TTL_S = 7 * 86400  # a retry later than this would count its transaction again
MAX_ATTEMPTS = 20
LABEL_APPLIED_PREFIX = "label-applied#"
LABEL_MARKER_TTL_S = 400 * 86400  # as long as labels are kept: a later duplicate must still find it
STATE_WATERMARK_KEY = "state-watermark"  # what transactions and labels a bulk-loaded state reflects
STATE_LIVE_KEY = "state-live"  # the newest transaction the API applied to a fresh state (its heartbeat)
MAX_SEEN_TERMINALS = 1000  # per card: about 30 bytes each in its state document
COMPROMISE_PREFIX = "cpc#"  # a terminal's common-point-of-compromise item, by its seen token
MAX_COMPROMISED_CARDS = 1000  # per terminal: about 40 bytes each


def read_watermark(store: KeyValueStore) -> dict | None:
    """The state's watermark (``STATE_WATERMARK_KEY``): written last by a bulk load; None
    while the state was never (completely) loaded."""
    item = store.get(STATE_WATERMARK_KEY)
    return None if item is None else item.value


def entity_key(keys: Pseudonymizer, kind: str, entity_id: str) -> str:
    """Store key: a keyed hash of the id, so card numbers never sit in the table in clear
    and cannot be recovered from it without the key."""
    return f"{kind}#{keys.digest(kind, entity_id)}"


def _seen_token(keys: Pseudonymizer, terminal_id: str) -> str:
    """How a card's state remembers a terminal it has used."""
    return keys.digest(TERMINAL, terminal_id, 16)


def _card_token(keys: Pseudonymizer, card_id: str) -> str:
    """How a terminal's compromise item names a card."""
    return keys.digest(CARD, card_id, 16)


def _merge_card(cards: dict, token: str, used: int, fraud_known: int) -> None:
    """Record a compromised card's use (times only move forward)."""
    old = cards.pop(token, None)
    cards[token] = [used, fraud_known] if old is None else [max(old[0], used), max(old[1], fraud_known)]


def _prune_cards(cards: dict, now: int, keep: int, cap: int = MAX_COMPROMISED_CARDS) -> dict:
    """Drop entries whose use or fraud is older than ``keep`` before ``now``, then the least
    recently used beyond ``cap``."""
    live = {k: v for k, v in cards.items() if now - v[0] <= keep and now - v[1] <= keep}
    if len(live) > cap:
        live = dict(sorted(live.items(), key=lambda kv: kv[1][0])[-cap:])
    return live


def _remember_terminal(seen: dict, token: str, t: int, now: int, window: int, cap: int) -> dict:
    """``seen`` after the card used ``token`` at ``t`` (``now``: the card's clock): entries in
    order of last use, none older than ``window`` before ``now``, at most ``cap`` of them."""
    if seen.get(token, t) <= t:  # a late transaction moves no use backwards
        seen.pop(token, None)
        seen[token] = t
    excess, drop = len(seen) - cap, []
    for k, used in seen.items():  # oldest first: stops at the first entry kept
        if len(drop) >= excess and now - used <= window:
            break
        drop.append(k)
    for k in drop:
        del seen[k]
    return seen


def to_epoch_seconds(value) -> int:
    """datetime / pandas Timestamp / ISO-8601 text / epoch number -> whole UTC seconds."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return math.floor(value)
    if isinstance(value, str):
        import pandas as pd

        value = pd.Timestamp(value)
    if isinstance(value, datetime):  # includes pandas Timestamps; naive means UTC
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        delta = value - EPOCH  # integer arithmetic: floors exactly, like the batch path
        return delta.days * 86400 + delta.seconds
    raise TypeError(f"cannot read a timestamp from {value!r}")


def _empty_state() -> dict:
    return {"n": 0, "s": 0.0, "q": 0.0, "last": None, "snaps": {}}


def _base(snaps: list, begin_bucket: int, current: list) -> list:
    """Totals before the first active bucket >= begin_bucket (or now, if none)."""
    for entry in snaps:
        if entry[0] >= begin_bucket:
            return entry
    return current


def _record_bucket(state_snaps: dict, t: int, granularities: dict[int, int], current: list) -> None:
    """Snapshot the totals at the start of t's bucket, per width; prune expired buckets."""
    for g, keep in granularities.items():
        b = t // g
        snaps = state_snaps.setdefault(str(g), [])
        if not snaps or snaps[-1][0] < b:
            snaps.append([b, *current])
        oldest = b - keep + 1
        while snaps and snaps[0][0] < oldest:
            snaps.pop(0)


class OnlineFeatures:
    """Compute features for one transaction and fold it into the state."""

    def __init__(self, spec: FeatureSpec, store: KeyValueStore, ttl_seconds: float | None = None,
                 keys: Pseudonymizer | None = None, max_seen_terminals: int = MAX_SEEN_TERMINALS):
        """``keys`` hashes card and terminal ids into state keys; without one, a random key
        for this instance (state written by it is then unreadable by any other)."""
        self.spec = spec
        self.max_seen = max_seen_terminals
        self.store = store
        self.keys = keys or Pseudonymizer.ephemeral()
        self.ttl = ttl_seconds if ttl_seconds is not None else spec.history_window + 7 * 86400
        aggs = WINDOW_AGGREGATIONS + HISTORY_AGGREGATIONS
        self._card_windows = [(f, bucket_seconds(f.window), n_buckets(f.window)) for f in spec.of(CARD)
                              if f.window and f.aggregation in aggs]
        self._cross_cards = [(f, bucket_seconds(f.window), n_buckets(f.window)) for f in spec.features
                             if f.aggregation == "compromised_cards"]
        self._cross_terms = [(f, bucket_seconds(f.window), n_buckets(f.window)) for f in spec.features
                             if f.aggregation == "compromised_terminals"]
        self._cross = bool(self._cross_cards or self._cross_terms)
        # older than this before now, a use or a fraud is in no window any more
        self._cross_keep = max((f.window for f, _, _ in self._cross_cards + self._cross_terms), default=0) + 86400
        self._term_windows = [(f, bucket_seconds(f.window), n_buckets(f.window)) for f in spec.of(TERMINAL)
                              if f.aggregation in WINDOW_AGGREGATIONS]
        self._label_windows = [(f, bucket_seconds(f.window), n_buckets(f.window)) for f in spec.of(TERMINAL)
                               if f.aggregation in LABEL_AGGREGATIONS]
        self._card_grans = spec.granularities(CARD, aggs)
        self._term_grans = spec.granularities(TERMINAL, WINDOW_AGGREGATIONS)
        self._label_grans = spec.granularities(TERMINAL, LABEL_AGGREGATIONS)
        self._card_other = [f for f in spec.of(CARD) if not f.window]
        self._pair = spec.of(CARD_TERMINAL)
        self._row = spec.of(TRANSACTION)

    # -- the transaction path ------------------------------------------------------------
    def process(self, txn: Mapping) -> dict[str, float]:
        """Features of ``txn`` (canonical keys, ``transaction_id`` included), with card and
        terminal state updated; the features it got the first time if it was applied before."""
        t = to_epoch_seconds(txn[TIMESTAMP])
        amount = float(txn[AMOUNT])
        term_hash = _seen_token(self.keys, txn[TERMINAL_ID])
        steps = []  # (state key, step: old state -> (new state or None if unchanged, features))
        card_key = entity_key(self.keys, CARD, txn[CARD_ID])
        if self._card_windows or self._card_other or self._pair or self._cross:
            steps.append((card_key, lambda old: self._card_step(old, t, amount, term_hash)))
        if self._term_windows or self._label_windows:
            steps.append((entity_key(self.keys, TERMINAL, txn[TERMINAL_ID]),
                          lambda old: self._terminal_step(old, t, amount)))
        card_fraud = {}  # the card's F as read in this attempt, for the compromise step
        if self._cross:
            card_token = _card_token(self.keys, txn[CARD_ID])
            steps.append((COMPROMISE_PREFIX + term_hash,
                          lambda old: self._compromise_step(old, t, card_token, card_fraud.get("F"))))
        applied_key = APPLIED_PREFIX + str(txn[TRANSACTION_ID])
        row_features = self._row_features(txn, t, amount)
        for _ in range(MAX_ATTEMPTS):
            found = self.store.get_many([applied_key] + [key for key, _ in steps])
            if applied_key in found:
                return _features_from_record(found[applied_key].value, self.spec.names)
            out = dict(row_features)
            if self._cross:
                card = found.get(card_key)
                card_fraud["F"] = None if card is None else card.value.get("F")
                out.update(self._exposure(None if card is None else card.value, t))
            writes = []
            for key, step in steps:
                old = found.get(key)
                state, features = step(None if old is None else old.value)
                out.update(features)
                if state is not None:
                    writes.append(Write(key, state, 0 if old is None else old.version, self.ttl))
            features = {name: out[name] for name in self.spec.names}
            writes.append(Write(applied_key, _features_record(features), 0, APPLIED_TTL_S))
            try:
                self.store.transact(writes)
                return features
            except ConditionFailed:  # another transaction of the same card or terminal won: redo
                continue
        raise ConditionFailed(f"{applied_key}: gave up after {MAX_ATTEMPTS} concurrent modifications")

    def _row_features(self, txn, t, amount) -> dict:
        out = {}
        hour, weekday, night, weekend = derive.calendar_one(t, self.spec.night_hours, self.spec.timezone)
        for f in self._row:
            agg = f.aggregation
            if agg == "amount":
                out[f.name] = amount
            elif agg == "log_amount":
                out[f.name] = math.log1p(amount)
            elif agg == "hour":
                out[f.name] = hour
            elif agg == "weekday":
                out[f.name] = weekday
            elif agg == "is_night":
                out[f.name] = night
            elif agg == "is_weekend":
                out[f.name] = weekend
            elif agg == "distance_km":
                out[f.name] = derive.haversine_km_one(txn.get("card_lat"), txn.get("card_lon"),
                                                      txn.get("terminal_lat"), txn.get("terminal_lon"))
            elif agg == "is_online":
                out[f.name] = derive.is_online_one(txn.get("channel"))
        return out

    def _window_values(self, state, windows, t, amount, out) -> None:
        n, s, q = state["n"], state["s"], state["q"]
        current = [None, n, s, q]
        for f, g, nb in windows:
            base = _base(state["snaps"].get(str(g), ()), t // g - nb + 1, current)
            agg = f.aggregation
            if agg in HISTORY_AGGREGATIONS:
                ratio, z = derive.history_ratio_z_one(amount, n - base[1], s - base[2], q - base[3])
                out[f.name] = ratio if agg == "amount_ratio" else z
            else:
                count = float(n + 1 - base[1])
                total = (s + amount) - base[2]
                out[f.name] = count if agg == "count" else total if agg == "sum" else total / count

    def _card_step(self, old, t, amount, term_hash):
        state = old or {**_empty_state(), "seen": {}}
        seen = state.get("seen")
        if not isinstance(seen, dict):  # a list from before seen had times: dropped (module docstring)
            seen = {}
        out: dict[str, float] = {}
        self._window_values(state, self._card_windows, t, amount, out)
        for f in self._card_other:  # a late (out-of-order) transaction has no known previous one: missing
            out[f.name] = float(t - state["last"]) if state["last"] is not None and t >= state["last"] else NAN
        used = seen.get(term_hash)  # pruned at the last update, not since: check the age
        for f in self._pair:
            out[f.name] = float(used is not None and t - used <= self.spec.history_window)
        self._advance(state, t, amount, self._card_grans)
        state["seen"] = _remember_terminal(seen, term_hash, t, state["last"], self.spec.history_window,
                                           self.max_seen)
        return state, out

    def _terminal_step(self, old, t, amount):
        state = old or {**_empty_state(), "ln": 0, "lf": 0, "lsnaps": {}}
        out: dict[str, float] = {}
        self._window_values(state, self._term_windows, t, amount, out)
        current = [None, state["ln"], state["lf"]]
        for f, g, nb in self._label_windows:
            base = _base(state["lsnaps"].get(str(g), ()), t // g - nb + 1, current)
            labels, frauds = float(state["ln"] - base[1]), float(state["lf"] - base[2])
            out[f.name] = labels if f.aggregation == "label_count" else derive.rate_one(frauds, labels)
        self._advance(state, t, amount, self._term_grans)
        return state, out

    def _exposure(self, card: dict | None, t: int) -> dict[str, float]:
        """card_compromised_terminals: the card's terminals in ``seen`` used in the window
        whose latest known fraud (their ``cpc#`` item's F) is in it too (a second read)."""
        seen = card.get("seen") if card else None
        seen = seen if isinstance(seen, dict) else {}
        begins = [(f, (t // g - nb + 1) * g) for f, g, nb in self._cross_terms]
        if not begins:
            return {}
        oldest = min(b for _, b in begins)
        latest = list(seen.items())[-spec_module.COMPROMISE_RECENT_TERMINALS:]  # in order of last use
        recent = {tok: used for tok, used in latest if used >= oldest}
        items = self.store.get_many([COMPROMISE_PREFIX + tok for tok in recent]) if recent else {}
        fraud = {tok: items[COMPROMISE_PREFIX + tok].value.get("F") for tok in recent if COMPROMISE_PREFIX + tok in items}
        return {f.name: float(sum(1 for tok, used in recent.items()
                                  if used >= begin and fraud.get(tok) is not None and fraud[tok] >= begin))
                for f, begin in begins}

    def _compromise_step(self, old, t, card_token, card_fraud):
        """terminal_compromised_cards from the terminal's ``cpc#`` item; records this card's
        use when it has a known fraud. Unchanged item: None (nothing written)."""
        item = old or {"cards": {}}
        cards = item["cards"]
        out = {}
        for f, g, nb in self._cross_cards:
            begin = (t // g - nb + 1) * g
            out[f.name] = float(sum(1 for used, known in cards.values() if used >= begin and known >= begin))
        if card_fraud is None and all(t - u <= self._cross_keep and t - k <= self._cross_keep
                                      for u, k in cards.values()):
            return None, out
        cards = dict(cards)
        if card_fraud is not None:
            _merge_card(cards, card_token, t, card_fraud)
        return {**item, "cards": _prune_cards(cards, t, self._cross_keep)}, out

    @staticmethod
    def _advance(state, t, amount, granularities) -> None:
        _record_bucket(state["snaps"], t, granularities, [state["n"], state["s"], state["q"]])
        state["n"] += 1
        state["s"] = state["s"] + amount
        state["q"] = state["q"] + amount * amount
        state["last"] = t if state["last"] is None else max(state["last"], t)  # never backwards

    # -- the label path ------------------------------------------------------------------
    def card_ref(self, card_id: str) -> dict:
        """What ``add_label`` needs of a card, without the card id: its state key and its
        token in the terminals' compromise items (both keyed hashes). The API stores this
        with each scored transaction, so a later ``/v1/feedback`` can tell the compromise
        features which card the fraud was on."""
        return {"key": entity_key(self.keys, CARD, card_id), "token": _card_token(self.keys, card_id)}

    def add_label(self, terminal_id: str, is_fraud: bool, known_at, label_id: str | None = None,
                  card_id: str | None = None, card_ref: dict | None = None) -> None:
        """A label became known at ``known_at`` for a transaction at ``terminal_id`` (of card
        ``card_id``, or of the card ``card_ref`` names: the compromise features need it for
        a fraud label).

        With ``label_id`` (the labelled transaction's id) the label counts once however often
        it is applied: the terminal's state and a marker are written in one transaction, so
        a request that died after the write and is retried finds the marker. The fan-out of
        a card's fraud to its terminals' compromise items is idempotent and done first."""
        cross = self._cross and bool(is_fraud)
        if not self._label_windows and not cross:
            return
        t = to_epoch_seconds(known_at)
        key = entity_key(self.keys, TERMINAL, terminal_id)
        cpc_key = COMPROMISE_PREFIX + _seen_token(self.keys, terminal_id)
        if card_ref is None and card_id is not None:
            card_ref = self.card_ref(card_id)
        card_key = card_ref["key"] if cross and card_ref else None
        if cross and card_ref is None:
            log.warning("a fraud label without its card_id: the card side of the compromise features misses it")
        marker = None if label_id is None else LABEL_APPLIED_PREFIX + str(label_id)
        wanted = ([key] if self._label_windows else []) + ([cpc_key] if cross else []) + \
            ([card_key] if card_key else []) + ([marker] if marker else [])
        for _ in range(MAX_ATTEMPTS):
            found = self.store.get_many(wanted)
            if marker in found:
                return
            writes = []
            if self._label_windows:
                old = found.get(key)
                state = (old.value if old else None) or {**_empty_state(), "ln": 0, "lf": 0, "lsnaps": {}}
                _record_bucket(state["lsnaps"], t, self._label_grans, [state["ln"], state["lf"]])
                state["ln"] += 1
                state["lf"] += int(bool(is_fraud))
                writes.append(Write(key, state, old.version if old else 0, self.ttl))
            if cross:
                writes += self._fraud_writes(found, t, cpc_key, card_key, card_ref)
            if marker is not None:
                writes.append(Write(marker, {}, 0, LABEL_MARKER_TTL_S))
            try:
                self.store.transact(writes)
                return
            except ConditionFailed:  # the terminal's state moved meanwhile: redo on fresh state
                continue
        raise ConditionFailed(f"{key}: gave up adding a label after {MAX_ATTEMPTS} concurrent modifications")

    def _fraud_writes(self, found, t, cpc_key, card_key, card_ref) -> list[Write]:
        """A fraud known at ``t``: the terminal's F; with the card, the card's F and its use
        of each terminal in ``seen`` (the other terminals' items merged now, idempotently;
        this terminal's in the returned writes, with the card's state)."""
        cpc = found.get(cpc_key)
        item = dict(cpc.value) if cpc else {"cards": {}}
        item["F"] = max(item.get("F", t), t)
        cards = dict(item["cards"])
        writes = []
        card = found.get(card_key) if card_key else None
        if card is not None:  # a card without state has no recent terminals to tell
            state = dict(card.value)
            fraud_known = max(state.get("F", t), t)
            token = card_ref["token"]
            seen = state.get("seen") if isinstance(state.get("seen"), dict) else {}
            for term, used in seen.items():
                if t - used > self._cross_keep:
                    continue
                if COMPROMISE_PREFIX + term == cpc_key:
                    _merge_card(cards, token, used, fraud_known)
                    continue

                def merge(old, used=used):
                    other = dict(old) if old else {"cards": {}}
                    merged = dict(other["cards"])
                    _merge_card(merged, token, used, fraud_known)
                    return {**other, "cards": _prune_cards(merged, t, self._cross_keep)}, None
                self.store.update(COMPROMISE_PREFIX + term, merge, ttl_seconds=self.ttl)
            state["F"] = fraud_known
            writes.append(Write(card_key, state, card.version, self.ttl))
        item["cards"] = _prune_cards(cards, t, self._cross_keep)
        writes.append(Write(cpc_key, item, cpc.version if cpc else 0, self.ttl))
        return writes

    # -- bulk build from history -----------------------------------------------------------
    def load_history(self, history: pd.DataFrame, as_of=None) -> int:
        """Write the state as it stands after ``history`` (transactions before ``as_of``,
        labels known before ``as_of``); returns the number of entities written."""
        as_of = None if as_of is None else to_epoch_seconds(as_of)
        states = history_states(history, self.spec, as_of, self.keys, self.max_seen)
        self.store.put_many(states, ttl_seconds=self.ttl)
        return len(states)


def _features_record(features: dict[str, float]) -> dict:
    """JSON has no NaN (a missing feature): stored as null."""
    return {"features": {k: (None if v != v else v) for k, v in features.items()}}


def _features_from_record(record: dict, names: list[str]) -> dict[str, float]:
    """The recorded features under ``names``; one the record lacks (a new champion with
    another feature spec arrived between the attempt and its retry) is missing (NaN)."""
    stored = record["features"]
    return {name: NAN if stored.get(name) is None else stored[name] for name in names}


def history_states(history: pd.DataFrame, spec: FeatureSpec, as_of: int | None,
                   keys: Pseudonymizer, max_seen: int = MAX_SEEN_TERMINALS) -> dict[str, dict]:
    """Per-entity state after replaying ``history``, computed in bulk (same floats as replay,
    and the same ``seen``: the card's latest use of each terminal within the window before
    its last transaction, the ``max_seen`` most recent, in order of last use)."""
    from .batch import _last_of_pair, _Prepared, _running_totals

    df = history
    if as_of is not None:
        df = df.loc[epoch_seconds(df[TIMESTAMP]) < as_of]
    prep = _Prepared(df)  # the batch engine's ordering: (entity, time, tiebreak)
    states: dict[str, dict] = {}
    aggs = WINDOW_AGGREGATIONS + HISTORY_AGGREGATIONS
    plans = [(CARD, CARD_ID, spec.granularities(CARD, aggs)),
             (TERMINAL, TERMINAL_ID, spec.granularities(TERMINAL, WINDOW_AGGREGATIONS))]
    for kind, column, grans in plans:
        _, n_entities, perm, starts = prep.entity(df, column)
        ids = df[column].to_numpy(dtype=object)[perm]
        t, amount = prep.t[perm], prep.amount[perm]
        before_s, before_q = _running_totals(starts, amount)
        terms = df[TERMINAL_ID].to_numpy(dtype=object)[perm] if kind == CARD else None
        if kind == CARD:  # rows of each card's latest use of a terminal, within the window
            term_codes, n_terms, _, _ = prep.entity(df, TERMINAL_ID)
            clock = np.repeat(t[starts[1:] - 1], np.diff(starts))  # the card's last time, per row
            recent = np.flatnonzero(_last_of_pair(starts, term_codes[perm], n_terms)
                                    & (clock - t <= spec.history_window))
            recent_bounds = np.searchsorted(recent, starts)
        for g_idx in range(n_entities):
            lo, hi = starts[g_idx], starts[g_idx + 1]
            last = hi - 1
            state = {"n": int(hi - lo), "s": float(before_s[last] + amount[last]),
                     "q": float(before_q[last] + amount[last] * amount[last]), "last": int(t[last]), "snaps": {}}
            for g, keep in grans.items():
                buckets = t[lo:hi] // g
                first = np.r_[True, buckets[1:] != buckets[:-1]]
                oldest = t[last] // g - keep + 1
                rows = np.flatnonzero(first & (buckets >= oldest)) + lo
                state["snaps"][str(g)] = [[int(t[r] // g), int(r - lo), float(before_s[r]), float(before_q[r])]
                                          for r in rows]
            if kind == CARD:
                rows = recent[recent_bounds[g_idx]:recent_bounds[g_idx + 1]][-max_seen:]
                state["seen"] = {_seen_token(keys, terms[r]): int(t[r]) for r in rows}
            else:
                state.update(ln=0, lf=0, lsnaps={})
            states[entity_key(keys, kind, ids[lo])] = state
    _add_label_states(history, spec, as_of, states, keys, usage=df)
    return states


def _add_label_states(history, spec, as_of, states, keys: Pseudonymizer, usage=None) -> None:
    """The label side of the state: terminals' label windows and, with compromise features,
    the cards' and terminals' F and the terminals' ``cpc#`` items, from the labels in
    ``history`` known before ``as_of`` and the transactions in ``usage`` (default: those
    of ``history`` before ``as_of``)."""
    import pandas as pd

    if LABEL not in history.columns or LABEL_TIME not in history.columns:
        return
    if spec.needs(*CROSS_AGGREGATIONS):
        if usage is None:
            usage = history if as_of is None else history.loc[epoch_seconds(history[TIMESTAMP]) < as_of]
        _add_compromise_states(history, usage, spec, as_of, states, keys)
    grans = spec.granularities(TERMINAL, LABEL_AGGREGATIONS)
    if not grans:
        return
    from ..schema import tiebreak

    labelled = history.loc[history[LABEL_TIME].notna()]
    lt = epoch_seconds(labelled[LABEL_TIME])
    if as_of is not None:
        labelled, lt = labelled.loc[lt < as_of], lt[lt < as_of]
    tb = tiebreak(labelled[TRANSACTION_ID].to_numpy(dtype=object))
    frame = pd.DataFrame({"term": labelled[TERMINAL_ID].to_numpy(dtype=object), "lt": lt, "tb": tb,
                          "fraud": labelled[LABEL].to_numpy().astype(np.int64)})
    frame = frame.sort_values(["term", "lt", "tb"], kind="stable")
    for term, events in frame.groupby("term", sort=False):
        key = entity_key(keys, TERMINAL, term)
        state = states.setdefault(key, {**_empty_state(), "ln": 0, "lf": 0, "lsnaps": {}})
        et, fraud = events["lt"].to_numpy(), events["fraud"].to_numpy()
        before_f = np.r_[0, np.cumsum(fraud)[:-1]]
        for g, keep in grans.items():
            buckets = et // g
            first = np.r_[True, buckets[1:] != buckets[:-1]]
            rows = np.flatnonzero(first & (buckets >= et[-1] // g - keep + 1))
            state["lsnaps"][str(g)] = [[int(buckets[r]), int(r), int(before_f[r])] for r in rows]
        state["ln"] = int(len(et))
        state["lf"] = int(fraud.sum())


def _add_compromise_states(labels, usage, spec, as_of, states, keys: Pseudonymizer) -> None:
    """Bulk form of the compromise state (module docstring): what replaying ``usage`` and
    the fraud labels of ``labels`` known before ``as_of`` leaves, as far as any later
    feature can tell (entries older than the longest window plus a day are left out, as
    replay prunes them; at most ``MAX_COMPROMISED_CARDS`` per terminal, latest uses kept)."""
    import pandas as pd

    fraud = labels.loc[(labels[LABEL] == 1).to_numpy() & labels[LABEL_TIME].notna().to_numpy()]
    lt = epoch_seconds(fraud[LABEL_TIME])
    if as_of is not None:
        fraud, lt = fraud.loc[lt < as_of], lt[lt < as_of]
    if not len(fraud):
        return
    keep = max(f.window for f in spec.features if f.aggregation in CROSS_AGGREGATIONS) + 86400
    card_f = pd.Series(lt, index=fraud[CARD_ID].to_numpy(dtype=object)).groupby(level=0).max()
    term_f = pd.Series(lt, index=fraud[TERMINAL_ID].to_numpy(dtype=object)).groupby(level=0).max()
    for card, known in card_f.items():
        state = states.get(entity_key(keys, CARD, card))
        if state is not None:  # as add_label: a card without state is not given one
            state["F"] = int(known)
    items: dict[str, dict] = {}
    for term, known in term_f.items():
        items[COMPROMISE_PREFIX + _seen_token(keys, term)] = {"cards": {}, "F": int(known)}
    used = usage.loc[usage[CARD_ID].isin(card_f.index)]
    if len(used):
        ut = epoch_seconds(used[TIMESTAMP])
        ref = int(ut.max()) if as_of is None else int(as_of)
        pairs = pd.DataFrame({"card": used[CARD_ID].to_numpy(dtype=object),
                              "term": used[TERMINAL_ID].to_numpy(dtype=object), "t": ut})
        last = pairs.groupby(["term", "card"], sort=False)["t"].max().reset_index()
        last["F"] = card_f.loc[last["card"]].to_numpy()
        last = last.loc[(ref - last["t"] <= keep) & (ref - last["F"] <= keep)]
        for term, rows in last.sort_values("t", kind="stable").groupby("term", sort=False):
            item = items.setdefault(COMPROMISE_PREFIX + _seen_token(keys, term), {"cards": {}})
            item["cards"] = {_card_token(keys, c): [int(u), int(k)] for c, u, k in
                             zip(rows["card"].to_numpy()[-MAX_COMPROMISED_CARDS:],
                                 rows["t"].to_numpy()[-MAX_COMPROMISED_CARDS:],
                                 rows["F"].to_numpy()[-MAX_COMPROMISED_CARDS:])}
    states.update(items)
