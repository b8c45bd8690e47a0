"""Scoring one transaction or a batch: idempotent per transaction id.

    time within the clock skew, a scored currency    -> else 422 naming the field, nothing changed
    allow / block lists (one batched read)           -> override with its reason
    claim the transaction id (conditional write)     -> a retry replays the stored answer
    online features (state read + atomic update)     -> the same numbers as training
    calibrated probability, decision, top reasons    -> the champion model
    review decision                                  -> exactly one review message
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone

from fraud.decisions import decision_record
from fraud.features.online import OnlineFeatures
from fraud.pseudonym import Pseudonymizer
from fraud.storage.kv import ConditionFailed, KeyValueStore

from .challenger import answer_rows
from .model_holder import ModelHolder
from .review import ReviewRouter
from .schemas import Override, Reason, ScoreResponse, Transaction
from .telemetry import Telemetry

log = logging.getLogger(__name__)
TXN_PREFIX = "txn#"
RECORD_TTL_S = 90 * 86400  # chargebacks arrive for weeks; keep what feedback needs


class InProgress(Exception):
    """The same transaction id is being scored by another request right now."""


class PayloadMismatch(Exception):
    """A transaction id came back with different content."""


class RefusedField(ValueError):
    """A field of the ``index``-th transaction that no model answer should be given for
    (a 422 naming it): a timestamp beyond the clock skew (it would prune its card's and
    terminal's history as if that time had come), a currency the model does not score."""

    def __init__(self, index: int, field: str, message: str):
        super().__init__(message)
        self.index, self.field = index, field


def payload_digest(keys: Pseudonymizer, txn: Transaction) -> str:
    """Tells a retry from a reuse of the id with other content. Keyed: the payload holds the
    card id, and every other field of it is stored beside the digest."""
    return keys.digest("payload", txn.model_dump_json(), 64)


class Overrides:
    """Allow and block lists per card and terminal (ids under a keyed hash in the store)."""

    def __init__(self, store: KeyValueStore, keys: Pseudonymizer):
        self.store = store
        self.keys = keys

    def key(self, list_name: str, entity: str, entity_id: str) -> str:
        return f"{list_name}#{entity}#{self.keys.digest(entity, entity_id)}"

    def set(self, list_name: str, entity: str, entity_id: str, reason: str) -> None:
        self.store.put(self.key(list_name, entity, entity_id),
                       {"reason": reason, "added_at": datetime.now(timezone.utc).isoformat()})

    def remove(self, list_name: str, entity: str, entity_id: str) -> bool:
        key = self.key(list_name, entity, entity_id)
        existed = self.store.get(key) is not None
        self.store.delete(key)
        return existed

    _ORDER = tuple((list_name, entity) for list_name in ("block", "allow")  # a block wins over an allow
                   for entity in ("card", "terminal"))

    def check_many(self, txns: list[Transaction]) -> list[Override | None]:
        """The override of each transaction, from one batched read of the lists."""
        keys = [[self.key(list_name, entity, txn.card_id if entity == "card" else txn.terminal_id)
                 for list_name, entity in self._ORDER] for txn in txns]
        found = self.store.get_many([k for row in keys for k in row])
        out = []
        for row in keys:
            first = next((i for i, key in enumerate(row) if key in found), None)
            if first is None:
                out.append(None)
                continue
            list_name, entity = self._ORDER[first]
            out.append(Override(list=list_name, entity=entity, reason=found[row[first]].value["reason"]))
        return out


class ScoringService:
    def __init__(self, holder: ModelHolder, online: OnlineFeatures, idempotency: KeyValueStore,
                 overrides: Overrides, router: ReviewRouter, telemetry: Telemetry, keys: Pseudonymizer,
                 in_progress_timeout_s: float = 30, max_clock_skew_s: float = 300,
                 currency_rates: dict[str, float] | None = None, coverage=None, fallback: str = "off",
                 decisions=None, live_drift=None):
        """``coverage`` (a ``StateCoverage``): told what the state has applied; with
        ``fallback`` other than "off", it decides while the feature state is empty or stale
        (see ``Settings.state_fallback``). ``decisions`` (a ``DecisionRecorder``): gets one
        record per freshly scored transaction, once per request; None: no decision log.
        ``live_drift`` (a ``LiveDriftWatch``): counts each request's fresh rows; None: off."""
        self.holder = holder
        self.online = online
        self.idempotency = idempotency
        self.overrides = overrides
        self.router = router
        self.telemetry = telemetry
        self.keys = keys
        self.in_progress_timeout_s = in_progress_timeout_s
        self.max_clock_skew_s = max_clock_skew_s
        self.currency_rates = dict(currency_rates or {})  # 1 unit of the key = this many of the model's
        self.coverage = coverage
        self.fallback = fallback
        self.decisions = decisions
        self.live_drift = live_drift

    # -- idempotency ---------------------------------------------------------------------
    def _claim(self, txn: Transaction, digest: str):
        """(None, version) when this request owns the transaction, or (stored response, None)."""
        key = TXN_PREFIX + txn.transaction_id
        deadline = time.monotonic() + 2.0
        while True:
            try:  # a new transaction id (the usual case) costs one conditional write, no read
                return None, self.idempotency.put(key, {"state": "in_progress", "digest": digest,
                                                        "started": time.time()},
                                                  expected_version=0, ttl_seconds=RECORD_TTL_S)
            except ConditionFailed:
                item = self.idempotency.get(key)
            if item is None:  # deleted since (a failed attempt released it): claim again
                continue
            record = item.value
            if record.get("digest") != digest:
                raise PayloadMismatch(f"transaction_id {txn.transaction_id} was already scored with different content")
            if record["state"] == "done":
                return record["response"], None
            if time.time() - record["started"] > self.in_progress_timeout_s:  # the owner died: take over
                try:
                    return None, self.idempotency.put(key, {**record, "started": time.time()},
                                                      expected_version=item.version, ttl_seconds=RECORD_TTL_S)
                except ConditionFailed:
                    continue
            if time.monotonic() > deadline:
                raise InProgress(f"transaction {txn.transaction_id} is being scored by another request; retry")
            time.sleep(0.02)

    # -- scoring -------------------------------------------------------------------------
    def score(self, txn: Transaction, request_id: str) -> ScoreResponse:
        return self.score_many([txn], request_id)[0]

    def score_many(self, txns: list[Transaction], request_id: str) -> list[ScoreResponse]:
        """Score in order. First the fields no answer should be given for (a time beyond the
        clock skew, a currency nobody converts: ``RefusedField``); then every id is claimed
        (or its stored answer found) before any state changes, so a refused request (an id
        reused with other content, one in progress elsewhere) changes nothing; then features,
        which are sequential (each updates the state the next reads); then the model, once
        on all new rows."""
        bundle, version = self.holder.current()
        amounts = [self._checked_amount(i, txn, bundle) for i, txn in enumerate(txns)]
        results: list[ScoreResponse | None] = [None] * len(txns)
        claimed = []  # (index, txn, claim version, payload digest)
        overrides = self.overrides.check_many(txns)
        try:
            for i, txn in enumerate(txns):
                digest = payload_digest(self.keys, txn)
                stored, claim = self._claim(txn, digest)
                if stored is not None:
                    results[i] = ScoreResponse(**{**stored, "request_id": request_id, "replayed": True})
                else:
                    claimed.append((i, txn, claim, digest))
            fresh = [(i, txn, claim, digest, self.online.process({**txn.model_dump(), "amount": amounts[i]}),
                      overrides[i]) for i, txn, claim, digest in claimed]
            if fresh:
                self._model(fresh, bundle, version, request_id, results)
        except BaseException:
            for _, txn, claim, _ in claimed:  # release claims so a retry can score them
                try:
                    self.idempotency.delete(TXN_PREFIX + txn.transaction_id, expected_version=claim)
                except ConditionFailed:
                    pass
            raise
        if fresh and self.coverage is not None:
            self.coverage.applied(max(txn.timestamp for _, txn, *_ in fresh))
        self.router.maybe_drain()
        return results

    def _checked_amount(self, index: int, txn: Transaction, bundle) -> float:
        """The amount in the model's currency; refuses a time beyond the clock skew and a
        currency the model does not score and no rate converts (no currency: the model's)."""
        ahead = txn.timestamp.timestamp() - time.time()
        if ahead > self.max_clock_skew_s:
            raise RefusedField(index, "timestamp", f"{ahead:.0f} s in the future (at most "
                                                   f"{self.max_clock_skew_s:.0f} s of clock skew is accepted)")
        model_currency = bundle.metadata.get("currency")
        if txn.currency is None or model_currency is None or txn.currency == model_currency:
            return txn.amount
        if txn.currency not in self.currency_rates:
            raise RefusedField(index, "currency", f"{txn.currency} is not accepted: the model scores {model_currency} "
                                                  f"amounts, and FRAUD_CURRENCY_RATES has no rate for {txn.currency}")
        return txn.amount * self.currency_rates[txn.currency]

    def _fallback(self, p: float, bundle, state: dict) -> tuple[str, str]:
        """The decision while the feature state is empty or stale: the features then describe
        every card as new, so the model's score is not what its thresholds were chosen for."""
        self.telemetry.state_fallback(state["status"])
        why = (f"feature state is {state['status']} (history until {state['transactions_until']}): "
               f"fallback policy '{self.fallback}'")
        if self.fallback == "rules":
            return "approve", why + ": only the allow/block lists decide"
        decision = "review" if p >= bundle.thresholds.decline else "approve"
        return decision, why + ": nothing declined, scores at or above the decline threshold reviewed"

    def _model(self, fresh, bundle, version, request_id, results) -> None:
        frame = bundle.matrix_from_records([f for *_, f, _ in fresh])
        # champion and challenger (lambda_handler.challenger) on the same matrix: per row the deciding
        # model's answer, `decided_by` ("champion", or "challenger" for a canary row) and `shadow`
        # ({model_version, probability, margin, decision} of the other model, None without a
        # challenger), for the decision log; a canary row's bundle, version and p are the challenger's
        answers = answer_rows(bundle, version, self.holder.challenger_for(version), frame,
                              [txn.transaction_id for _, txn, *_ in fresh], self.keys)
        champion, champion_version = bundle, version
        state = self.coverage.current() if self.coverage is not None and self.fallback != "off" else {"status": "fresh"}
        records, scored_at = [], datetime.now(timezone.utc)  # the decision log's, written once after the loop
        for (i, txn, claim, digest, features, override), answer in zip(fresh, answers):
            p, decision, why, margin = answer.probability, answer.decision, answer.reasons, answer.margin
            bundle, version, decided_by, shadow = answer.bundle, answer.model_version, answer.decided_by, answer.shadow
            largest = bundle.metadata.get("amount_range", {}).get("max")
            currency = bundle.metadata.get("currency", "")
            decision, policy_reason = str(decision), None
            amount = features.get("amount", txn.amount)
            if largest is not None and amount > largest and decision == "approve":
                decision = "review"  # beyond what the model has seen, its score says nothing: a person decides
                policy_reason = (f"amount {amount:,.2f} {currency} is above the largest the model was trained on "
                                 f"({largest:,.2f} {currency}): sent to review")
            if state["status"] != "fresh":
                decision, policy_reason = self._fallback(float(p), bundle, state)
            if override is not None:
                decision, policy_reason = ("decline" if override.list == "block" else "approve"), None
            response = ScoreResponse(transaction_id=txn.transaction_id, probability=float(p), decision=decision,
                                     reasons=[Reason(**r) for r in why], model_version=version,
                                     request_id=request_id, override=override, policy_reason=policy_reason)
            if decision == "review":
                self.router.route({"transaction_id": txn.transaction_id, "score": float(p),
                                   "reasons": [r for r in why], "model_version": version,
                                   "amount": txn.amount, "currency": txn.currency,
                                   "timestamp": txn.timestamp.isoformat(),
                                   "card": self.keys.card_token(txn.card_id), "terminal_id": txn.terminal_id})
            stored = json.loads(response.model_dump_json(exclude={"request_id", "replayed"}))
            self.idempotency.put(TXN_PREFIX + txn.transaction_id, {
                "state": "done", "digest": digest, "response": stored, "terminal_id": txn.terminal_id,
                "card_ref": self.online.card_ref(txn.card_id),  # keyed hashes: for a fraud label's compromise features
                "probability": float(p), "decision": decision, "amount": amount,
                "timestamp": txn.timestamp.isoformat()}, expected_version=claim, ttl_seconds=RECORD_TTL_S)
            self.telemetry.decision(decision, float(p), version, bundle.metadata.get("expected_review_share"))
            log.info("scored %s card=%s p=%.4f decision=%s model=%s", txn.transaction_id,
                     self.keys.card_token(txn.card_id), p, decision, version)
            results[i] = response
            records.append(decision_record(
                transaction_id=txn.transaction_id, timestamp=txn.timestamp, scored_at=scored_at,
                card=self.keys.card_token(txn.card_id), terminal_id=txn.terminal_id, amount=amount,
                feature_names=bundle.feature_names, feature_values=[features[n] for n in bundle.feature_names],
                probability=p, margin=margin, decision=decision, override=override, policy_reason=policy_reason,
                reasons=why, model_version=version, decided_by=decided_by, shadow=shadow))
        if self.decisions is not None:
            self.decisions.write(records)  # never raises: a failure is counted and the records logged
        if self.live_drift is not None:  # every stored row, with the champion's own score (canary rows too)
            self.live_drift.observe(champion_version, champion.feature_names,
                                    [txn.timestamp.astimezone(timezone.utc).hour for _, txn, *_ in fresh], frame,
                                    [a.probability if a.decided_by == "champion" else a.shadow["probability"]
                                     for a in answers])
