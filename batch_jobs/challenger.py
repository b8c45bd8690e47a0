"""``fraud challenger``: the challenger pointer (set, clear, status), its promotion from the
shadow period (``promote``, and the nightly job's step) and the canary's rollback
(``check``), over the registry, the decision log and the label store.

The judgements are ``fraud.challenger``'s; here they are fed and acted on: a promotion
moves the champion pointer (which clears the challenger), a rollback clears the challenger
with the verdict as the recorded reason.
"""

from __future__ import annotations

import logging
import os

import pandas as pd

from fraud.challenger import CanaryVerdict, Side, Verdict, compare_on_shadow, judge_canary
from fraud.config import FraudConfig
from fraud.registry import ModelRegistry, RegistryError

log = logging.getLogger(__name__)
REFUSED = 3  # exit code: promotion refused, or canary rolled back


def decisions_uri(config: FraudConfig, given: str | None) -> str:
    return given or os.environ.get("FRAUD_DECISIONS_URI") or config.monitoring.decisions_uri


def _decisions(uri: str, since: str | None, endpoint_url: str | None) -> pd.DataFrame:
    """The decision log from the challenger's start on (fraud.decisions)."""
    from fraud.decisions import read_decisions

    start = pd.Timestamp(since).tz_convert("UTC").normalize() if since else None
    return read_decisions(uri, start=start, endpoint_url=endpoint_url)


def _labels(uri: str | None, endpoint_url: str | None) -> pd.DataFrame:
    from fraud.labels import open_label_store

    if not uri:
        return pd.DataFrame(columns=["transaction_id", "label", "source", "known_at"])
    return open_label_store(uri, endpoint_url).read()


def _required(registry: ModelRegistry) -> dict:
    record = registry.challenger()
    if record is None:
        raise RegistryError(f"no challenger in {registry.uri}; set one with `fraud challenger set VERSION`")
    return record


def set_challenger(registry: ModelRegistry, version: str, canary: float | None, reason: str) -> dict:
    """Point at ``version``: refused (nothing written) when it computes other features than
    the champion, which the API could not score it on."""
    champion = registry.champion()
    if champion is not None and registry.load(version).spec != registry.load(champion).spec:
        raise RegistryError(f"{version} computes other features than the champion {champion}: the API scores a "
                            "challenger on the champion's feature vector; train it on the same [features]")
    return registry.set_challenger(version, "canary" if canary else "shadow", canary or 0.0, reason)


def shadow_verdict(registry: ModelRegistry, config: FraudConfig, decisions: str | None, labels: str | None,
                   endpoint_url: str | None = None) -> tuple[dict, Verdict]:
    """The challenger record and ``compare_on_shadow``'s verdict, with [challenger]'s minimums."""
    record, champion = _required(registry), registry.champion()
    c = config.challenger
    # only rows whose labels are complete: a fraud the champion flagged is labelled within hours
    # (the reviewer), one it missed only by chargeback, so newer rows flatter the champion's recall
    complete_before = pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=config.monitoring.recall_lag_days)
    logged = _decisions(decisions_uri(config, decisions), record["since"], endpoint_url)
    if len(logged):
        logged = logged[pd.to_datetime(logged["scored_at"], utc=True) < complete_before]
    verdict = compare_on_shadow(
        logged, _labels(labels, endpoint_url),
        Side.of(registry.load(champion)), Side.of(registry.load(record["version"])), c.min_shadow_days,
        c.min_labels, c.min_frauds, c.average_precision_tolerance, c.recall_tolerance)
    return record, verdict


def promote_challenger(registry: ModelRegistry, config: FraudConfig, decisions: str | None, labels: str | None,
                       endpoint_url: str | None = None, reason: str | None = None) -> Verdict:
    """Promote the challenger when its shadow verdict allows it; otherwise change nothing."""
    record, verdict = shadow_verdict(registry, config, decisions, labels, endpoint_url)
    if verdict.promote:
        registry.promote(record["version"], f"{reason}: {verdict.reason}" if reason else verdict.reason)
    else:
        log.warning("challenger %s not promoted: %s", record["version"], verdict.reason)
    return verdict


def check_canary(registry: ModelRegistry, config: FraudConfig, decisions: str | None, labels: str | None,
                 endpoint_url: str | None = None) -> CanaryVerdict | None:
    """Judge a canary and roll it back (clear the challenger, the verdict recorded as the
    reason) when it is worse beyond tolerance; None when no canary is set."""
    record = registry.challenger()
    if record is None or record["mode"] != "canary":
        return None
    c = config.challenger
    verdict = judge_canary(_decisions(decisions_uri(config, decisions), record["since"], endpoint_url),
                           _labels(labels, endpoint_url), registry.champion(), record["version"],
                           c.canary_recall_tolerance, c.canary_precision_tolerance, c.canary_min_labels,
                           c.canary_min_frauds, c.canary_min_flagged)
    if verdict.rollback:
        registry.clear_challenger(verdict.reason, action="canary-rollback")
    return verdict


def nightly_step(registry: ModelRegistry, config: FraudConfig, labels: str | None,
                 endpoint_url: str | None = None) -> dict | None:
    """Before the nightly job's own gate: a canary worse than the champion beyond tolerance is
    rolled back (``check_canary``); a challenger whose shadow verdict allows it is promoted;
    one judged worse (its period and labels complete) is cleared; one still in its period stays. Never fails the run: a decision log that cannot be read leaves it waiting."""
    record = registry.challenger()
    if record is None:
        return None
    try:
        if record["mode"] == "canary":  # a worse canary is rolled back every night, automatically
            canary = check_canary(registry, config, None, labels, endpoint_url)
            if canary is not None and canary.rollback:
                log.warning("challenger %s rolled back: %s", record["version"], canary.reason)
                return {"version": record["version"], "action": "rolled back", "reason": canary.reason,
                        "verdict": canary.to_dict()}
        _, verdict = shadow_verdict(registry, config, None, labels, endpoint_url)
    except Exception as exc:  # noqa: BLE001 - the night's training goes on; the challenger waits
        log.error("challenger %s not judged: %s", record["version"], exc)
        return {"version": record["version"], "action": "wait", "reason": f"not judged: {exc}"}
    complete = verdict.shadow_days >= config.challenger.min_shadow_days and \
        verdict.counts["labelled"] >= config.challenger.min_labels and \
        verdict.counts["frauds"] >= config.challenger.min_frauds
    if verdict.promote:
        registry.promote(record["version"], f"nightly: {verdict.reason}")
        action = "promoted"
    elif complete:
        registry.clear_challenger(f"nightly: rejected on its shadow period: {verdict.reason}",
                                  action="challenger-rejected")
        action = "rejected"
    else:
        action = "wait"
    log.info("challenger %s %s: %s", record["version"], action, verdict.reason)
    return {"version": record["version"], "action": action, "reason": verdict.reason, "verdict": verdict.to_dict()}


def place_new_version(registry: ModelRegistry, config: FraudConfig, version: str, gate_passed: bool,
                      champion: str | None) -> str:
    """What the nightly job does with the version it just published and gated: "promote"
    (today's rule), "shadow" ([challenger] shadow_first: it becomes the challenger, promoted
    by a later night's ``nightly_step``), "wait" (shadow_first, another challenger is still
    in its period) or "keep" (the gate kept the champion)."""
    if not gate_passed:
        return "keep"
    if not config.challenger.shadow_first or champion is None:
        return "promote"
    if registry.challenger() is not None:
        log.info("version %s passed the gate but waits: challenger %s is in its shadow period", version,
                 registry.challenger()["version"])
        return "wait"
    registry.set_challenger(version, reason="nightly: passed the gate; shadowed before promotion")
    return "shadow"


def settle_new_version(registry: ModelRegistry, config: FraudConfig, version: str, verdict: dict,
                       champion: str | None) -> str:
    """``place_new_version`` for the nightly job's gate ``verdict``, then promote it or say
    why not; returns the placement (both nightly paths, single-process and Dask)."""
    placement = place_new_version(registry, config, version, verdict["decision"] == "promote", champion)
    if placement == "promote":
        registry.promote(version, verdict["reason"])
    elif placement == "keep":
        log.warning("gate kept the champion %s: %s", champion, verdict["reason"])
    return placement


def cmd_challenger(args, config: FraudConfig, endpoint_url: str | None) -> int:
    registry = ModelRegistry.open(args.registry or config.registry.uri, endpoint_url)
    if args.action == "set":
        if not args.version:
            raise RegistryError("challenger set needs a VERSION (`fraud registry list`)")
        r = set_challenger(registry, args.version, args.canary, args.reason or "manual")
        print(f"challenger is now {r['version']} ({r['mode']}"
              + (f", deciding {r['canary_share']:.1%} of transactions" if r["mode"] == "canary" else "")
              + f") beside champion {r['champion']}; scored since {r['since']}")
        return 0
    if args.action == "clear":
        print("challenger cleared" if registry.clear_challenger(args.reason or "manual") else "no challenger was set")
        return 0
    if args.action == "status":
        record = registry.challenger()
        if record is None:
            print(f"no challenger; champion {registry.champion()}")
            return 0
        _, verdict = shadow_verdict(registry, config, args.decisions, args.labels, endpoint_url)
        print(f"challenger {record['version']} ({record['mode']}, canary share {record['canary_share']:g}) beside "
              f"champion {registry.champion()}, since {record['since']}")
        print(f"shadow: {verdict.counts['shadow_scored']} transactions over {verdict.shadow_days:.1f} days, "
              f"{verdict.counts['labelled']} labelled ({verdict.counts['frauds']} fraud)")
        print(("promotable: " if verdict.promote else "not promotable: ") + verdict.reason)
        return 0
    if args.action == "promote":
        verdict = promote_challenger(registry, config, args.decisions, args.labels, endpoint_url, args.reason)
        if not verdict.promote:
            print(f"refused: {verdict.reason}")
            return REFUSED
        print(f"champion is now {registry.champion()}: {verdict.reason}")
        return 0
    verdict = check_canary(registry, config, args.decisions, args.labels, endpoint_url)  # check
    if verdict is None:
        print("no canary to judge (no challenger, or one in shadow mode)")
        return 0
    print(verdict.reason)
    return REFUSED if verdict.rollback else 0
