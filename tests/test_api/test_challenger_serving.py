"""A challenger beside the champion in the API: in shadow it never changes an answer and
its score is its own predict of the same row; in canary a fixed share of transaction ids,
the same on every retry, is decided by it; a broken challenger never fails scoring."""

from __future__ import annotations

import shutil
from datetime import timezone

import numpy as np
import pandas as pd
import pytest

from fraud.pseudonym import Pseudonymizer
from fraud.registry import ModelRegistry
from lambda_handler.challenger import Challenger, answer_rows, canary_draw, decided_by_challenger
from lambda_handler.container import build_container
from lambda_handler.schemas import Transaction


@pytest.fixture(scope="module")
def other_model(champion_registry):
    """A second model on the same features (another kind): scores differ from the champion's."""
    return ModelRegistry.open(champion_registry("logistic_xgb")).load_champion()


@pytest.fixture(scope="module")
def pair_dir(tmp_path_factory, small_training, champion_registry):
    """A registry with the champion and a published (not yet pointed at) challenger version."""
    path = tmp_path_factory.mktemp("pair")
    registry = ModelRegistry.open(path)
    registry.promote(registry.publish(small_training.bundle), "champion")
    source = ModelRegistry.open(champion_registry("logistic_xgb"))
    version = source.champion()
    shutil.copytree(source.store.root / "versions" / version, path / "versions" / version)
    return path, version


@pytest.fixture
def pair(tmp_path, pair_dir):
    """A fresh copy of it per test (tests move pointers and break files)."""
    path, version = pair_dir
    shutil.copytree(path, tmp_path / "registry")
    return ModelRegistry.open(tmp_path / "registry"), version


@pytest.fixture(scope="module")
def payloads(small_transactions):
    """The first 120 transactions of the small simulation's day 36, and the 7 days before it."""
    cut = small_transactions["timestamp"].min().normalize() + pd.Timedelta(days=35)
    history = small_transactions[(small_transactions["timestamp"] < cut)
                                 & (small_transactions["timestamp"] >= cut - pd.Timedelta(days=7))]
    day = small_transactions[small_transactions["timestamp"] >= cut].sort_values("timestamp").head(120)
    cols = ["transaction_id", "timestamp", "card_id", "terminal_id", "amount", "currency", "channel", "country",
            "merchant_category", "card_lat", "card_lon", "terminal_lat", "terminal_lon"]
    out = []
    for rec in day[cols].to_dict("records"):
        rec["timestamp"] = rec["timestamp"].isoformat()
        out.append(Transaction.model_validate({k: v for k, v in rec.items() if v is not None and v == v}))
    return history, out


def service(local_settings, registry, history, recheck_s=300):
    container = build_container(local_settings.model_copy(update={"registry_uri": str(registry.store.root),
                                                                 "champion_recheck_s": recheck_s}))
    container.online.load_history(history)
    return container


def score_all(container, txns, batch=4):
    out = []
    for start in range(0, len(txns), batch):
        out += container.scoring.score_many(txns[start:start + batch], "req")
    return [r.model_dump() for r in out]


@pytest.fixture
def spy(monkeypatch):
    """Every row answer the scoring service used."""
    seen = []

    def recording(*args, **kwargs):
        answers = answer_rows(*args, **kwargs)
        seen.extend(answers)
        return answers

    monkeypatch.setattr("lambda_handler.scoring.answer_rows", recording)
    return seen


def test_shadow_never_changes_the_answer(local_settings, pair, payloads, spy):
    registry, challenger = pair
    history, txns = payloads
    alone = score_all(service(local_settings, registry, history), txns)
    registry.set_challenger(challenger, reason="test")
    container = service(local_settings, registry, history)
    assert container.holder.challenger.version == challenger
    shadowed = score_all(container, txns)
    assert shadowed == alone  # bit for bit: every probability, decision, reason and version
    assert {r["decision"] for r in alone} >= {"approve", "review"}  # the rows exercise the thresholds
    shadow_rows = spy[len(txns):]
    assert len(shadow_rows) == len(txns)
    assert all(a.decided_by == "champion" and a.shadow["model_version"] == challenger for a in shadow_rows)
    assert [a.probability for a in shadow_rows] == [r["probability"] for r in alone]
    assert any(abs(a.shadow["probability"] - a.probability) > 1e-6 for a in shadow_rows)  # another model


def test_the_shadow_score_is_the_challengers_own_predict_of_the_row(small_training, other_model, small_features):
    _, features = small_features
    champion = small_training.bundle
    frame = features[champion.feature_names].to_numpy(dtype=np.float64)[:300]
    keys = Pseudonymizer.ephemeral()
    answers = answer_rows(champion, "champ", Challenger(other_model, "chall", "shadow", 0.0, "champ"), frame,
                          [f"id-{i}" for i in range(len(frame))], keys)
    for i, answer in enumerate(answers):
        row = frame[i:i + 1]
        assert answer.shadow["probability"] == pytest.approx(other_model.predict_proba(row)[0], rel=1e-12, abs=1e-15)
        assert answer.shadow["margin"] == pytest.approx(other_model.model.margin(row)[0], rel=1e-6, abs=1e-9)
        assert answer.shadow["decision"] == other_model.thresholds.decide_one(answer.shadow["probability"])
        assert answer.probability == pytest.approx(champion.predict_proba(row)[0], rel=1e-12, abs=1e-15)
        assert answer.decision == champion.thresholds.decide_one(answer.probability)


def test_the_canary_share_is_fixed_per_transaction_id_and_close_to_the_configured_share():
    keys = Pseudonymizer(b"k" * 32)
    canary = Challenger(None, "chall", "canary", 0.2, "champ")
    ids = [f"T{i:07d}" for i in range(20_000)]
    first = [decided_by_challenger(canary, keys, t) for t in ids]
    assert first == [decided_by_challenger(canary, Pseudonymizer(b"k" * 32), t) for t in ids]  # any instance
    assert np.mean(first) == pytest.approx(0.2, abs=0.01)  # 20,000 draws: sd 0.003
    other_key = [decided_by_challenger(canary, Pseudonymizer(b"x" * 32), t) for t in ids]
    assert first != other_key  # keyed: the ids alone do not say which model decides
    assert not any(decided_by_challenger(Challenger(None, "c", "shadow", 0.0, "champ"), keys, t) for t in ids)
    assert all(0 <= canary_draw(keys, t) < 1 for t in ids[:100])


def test_canary_rows_are_decided_by_the_challenger_and_a_retry_replays_its_answer(local_settings, pair,
                                                                                  payloads, spy):
    registry, challenger = pair
    history, txns = payloads
    champion = registry.champion()
    registry.set_challenger(challenger, "canary", 0.5, reason="half")
    container = service(local_settings, registry, history)
    responses = score_all(container, txns)
    keys = container.scoring.keys
    by_id = {a_txn.transaction_id: a for a_txn, a in zip(txns, spy)}
    canary_ids = {t.transaction_id for t in txns if canary_draw(keys, t.transaction_id) < 0.5}
    assert 30 < len(canary_ids) < 90
    for r in responses:
        answer = by_id[r["transaction_id"]]
        if r["transaction_id"] in canary_ids:
            assert r["model_version"] == challenger and answer.decided_by == "challenger"
            assert answer.shadow["model_version"] == champion  # the champion's score rides along
            assert r["probability"] == answer.probability != answer.shadow["probability"]
        else:
            assert r["model_version"] == champion and answer.decided_by == "champion"
            assert answer.shadow["model_version"] == challenger
    retried = container.scoring.score_many(txns[:8], "retry")
    for again, first in zip(retried, responses[:8]):
        assert again.replayed and {**again.model_dump(), "replayed": False, "request_id": "req"} == first
    # a failed attempt releases its claim; the id scored afresh goes to the same model
    some = next(t for t in txns if t.transaction_id in canary_ids)
    container.stores["idempotency"].delete("txn#" + some.transaction_id)
    assert container.scoring.score(some, "again").model_version == challenger


def _tamper(registry, version):
    (registry.store.root / "versions" / version / "thresholds.json").write_text('{"review": 0, "decline": 0}')


def _remove_file(registry, version):
    (registry.store.root / "versions" / version / "calibration.json").unlink()


def _resign(registry, version):
    import json

    path = registry.store.root / "versions" / version / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["signature"] = "0" * 64
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("breakage", [_tamper, _remove_file, _resign])
def test_a_broken_challenger_is_ignored_and_scoring_goes_on(local_settings, pair, payloads, breakage, caplog):
    registry, challenger = pair
    history, txns = payloads
    alone = score_all(service(local_settings, registry, history), txns[:12])
    registry.set_challenger(challenger, "canary", 1.0, reason="all of it")
    breakage(registry, challenger)
    container = service(local_settings, registry, history)
    assert container.holder.challenger is None
    assert f"challenger {challenger} ignored" in caplog.text
    assert score_all(container, txns[:12]) == alone  # the champion alone, every row


def test_a_challenger_failing_at_request_time_never_fails_scoring(local_settings, pair, payloads, spy,
                                                                  monkeypatch):
    registry, challenger = pair
    history, txns = payloads
    alone = score_all(service(local_settings, registry, history), txns[:12])
    registry.set_challenger(challenger, "canary", 1.0, reason="all of it")
    container = service(local_settings, registry, history)

    def broken(_):
        raise RuntimeError("model file went away")

    monkeypatch.setattr(container.holder.challenger.bundle.model, "margin", broken)
    assert score_all(container, txns[:12]) == alone
    assert all(a.decided_by == "champion" and a.shadow is None for a in spy[12:])


def test_the_pointer_is_followed_on_the_recheck(local_settings, pair, payloads):
    registry, challenger = pair
    history, txns = payloads
    container = service(local_settings, registry, history, recheck_s=0)
    assert container.holder.challenger is None
    registry.set_challenger(challenger, "canary", 1.0, reason="now")
    assert container.scoring.score(txns[0], "r").model_version == challenger
    registry.set_challenger(challenger, "shadow", reason="back to shadow")  # same version, another mode
    assert container.scoring.score(txns[2], "r").model_version == registry.champion()
    assert container.holder.challenger.mode == "shadow"
    registry.clear_challenger("enough")
    assert container.scoring.score(txns[1], "r").model_version == registry.champion()
    assert container.holder.challenger is None


def test_a_challenger_on_other_features_is_ignored(local_settings, pair, payloads, small_training, caplog):
    import dataclasses

    registry, _ = pair
    history, txns = payloads
    spec = dataclasses.replace(small_training.bundle.spec, night_hours=(1, 5))  # the online state computes others
    version = registry.publish(dataclasses.replace(small_training.bundle, spec=spec))
    registry.set_challenger(version, "canary", 1.0, reason="other features")
    container = service(local_settings, registry, history)
    assert container.holder.challenger is None and "features differ" in caplog.text
    assert container.scoring.score(txns[0], "r").model_version == registry.champion()


def test_an_unreadable_pointer_keeps_the_challenger_and_is_logged_once(local_settings, pair, payloads, monkeypatch,
                                                                        caplog):
    registry, challenger = pair
    history, txns = payloads
    registry.set_challenger(challenger, "canary", 1.0, reason="all")
    container = service(local_settings, registry, history, recheck_s=0)

    def denied():
        raise PermissionError("AccessDenied")

    monkeypatch.setattr(container.holder.registry, "challenger", denied)
    for i in range(3):
        assert container.scoring.score(txns[i], "r").model_version == challenger
    assert caplog.text.count("could not read the challenger pointer") == 1


def test_the_decision_log_carries_both_scores_for_the_verdicts(local_settings, pair, payloads, tmp_path, spy):
    """API -> decision log -> read_decisions -> the pairs the promotion verdict compares: each
    model's own probability, whichever decided (canary rows flip which is on top)."""
    from fraud.challenger import shadow_pairs
    from fraud.decisions import read_decisions

    registry, challenger = pair
    history, txns = payloads
    champion = registry.champion()
    registry.set_challenger(challenger, "canary", 0.5, reason="half")
    container = service(local_settings.model_copy(update={"decision_log_uri": str(tmp_path / "decisions")}),
                        registry, history)
    score_all(container, txns[:40])
    logged = read_decisions(tmp_path / "decisions").set_index("transaction_id")
    assert len(logged) == 40
    for txn, answer in zip(txns[:40], spy):
        row = logged.loc[txn.transaction_id]
        assert (row["decided_by"], row["model_version"]) == (answer.decided_by, answer.model_version)
        assert row["shadow_model_version"] == (challenger if answer.decided_by == "champion" else champion)
        assert row["shadow_probability"] == pytest.approx(answer.shadow["probability"], rel=1e-12)
    assert set(logged["decided_by"]) == {"champion", "challenger"}
    pairs = shadow_pairs(logged.reset_index(), champion, challenger).set_index("transaction_id")
    for txn, answer in zip(txns[:40], spy):
        sides = {answer.decided_by: answer.probability,
                 "challenger" if answer.decided_by == "champion" else "champion": answer.shadow["probability"]}
        assert pairs.loc[txn.transaction_id, "champion"] == pytest.approx(sides["champion"], rel=1e-12)
        assert pairs.loc[txn.transaction_id, "challenger"] == pytest.approx(sides["challenger"], rel=1e-12)


def test_live_drift_counts_the_champions_own_score_on_canary_rows(local_settings, pair, payloads, spy):
    """The live drift check judges the champion against its reference: a row the canary
    decided still gives the champion's score (its shadow), with the row's features."""
    registry, challenger = pair
    history, txns = payloads
    registry.set_challenger(challenger, "canary", 0.5, reason="half")
    container = service(local_settings, registry, history)
    seen = []

    class Recorder:
        def observe(self, version, feature_names, hours, matrix, scores):
            seen.append((version, list(feature_names), list(hours), np.array(matrix), list(scores)))

    container.scoring.live_drift = Recorder()
    score_all(container, txns)
    champion = container.holder.bundle
    assert {v for v, *_ in seen} == {registry.champion()} and all(n == champion.feature_names for _, n, *_ in seen)
    scores = [s for *_, s in seen for s in s]
    assert len(scores) == len(txns) == len(spy)
    canary = [a.decided_by == "challenger" for a in spy]
    assert 0 < sum(canary) < len(canary)
    assert scores == [a.shadow["probability"] if c else a.probability for a, c in zip(spy, canary)]
    np.testing.assert_allclose(scores, champion.predict_proba(np.vstack([m for *_, m, _ in seen])), rtol=1e-12)
    assert [h for _, _, hours, *_ in seen for h in hours] == [t.timestamp.astimezone(timezone.utc).hour for t in txns]
