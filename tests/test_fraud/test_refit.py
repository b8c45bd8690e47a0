"""The served model is fresh (fraud.refit): its windows, point in time, what calibration and
the gate see, its age in the summary; and the simulator's drift scenario."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud.calibration import Calibrator
from fraud.policy import choose_thresholds
from fraud.refit import plan_refit, refit_rows
from fraud.splits import Window, make_split
from fraud.training import LabelledFeatures

DAY = pd.Timedelta(days=1)


def _window(d: dict) -> Window:
    return Window(pd.Timestamp(d["start"]), pd.Timestamp(d["end"]))


def _disjoint(a: Window, b: Window) -> bool:
    return a.end <= b.start or b.end <= a.start


def test_the_refit_window_ends_where_designed(small_transactions, small_config):
    split = make_split(small_transactions["timestamp"], small_config.split, pd.Timedelta(small_config.data.label_delay))
    plan = plan_refit(split, small_config.split)
    gap = pd.Timedelta(small_config.data.label_delay)   # gap_days unset: the label delay
    assert plan.train.end == split.test.start - gap == split.folds[0].validation.end
    assert plan.train.days == small_config.split.train_days
    assert plan.label_cutoff == split.test.start
    # the test window, split in two: calibration (half, rounded down) then judged
    assert (plan.calibration.start, plan.judged.end) == (split.test.start, split.test.end)
    assert plan.calibration.end == plan.judged.start == split.test.start + (small_config.split.test_days // 2) * DAY
    assert plan.train.end > split.folds[0].train.end   # fresher than the fold's model
    # the latest (served): train_days ending at as_of - label delay, with the labels known at as_of;
    # the newest days after it, seen by neither, for the calibration transfer
    assert plan.latest.end == split.test.end == split.as_of - pd.Timedelta(small_config.data.label_delay)
    assert plan.latest.days == small_config.split.train_days and plan.latest_cutoff == split.as_of
    assert (plan.newest.start, plan.newest.end) == (plan.latest.end, split.as_of)


def test_the_refit_trains_on_its_window_with_the_labels_known_at_its_cutoff(small_transactions, small_features,
                                                                           small_config):
    _, features = small_features
    data = LabelledFeatures.from_transactions(small_transactions, features)
    split = make_split(data.timestamp, small_config.split, pd.Timedelta(small_config.data.label_delay))
    plan = plan_refit(split, small_config.split)
    rows, y, _ = refit_rows(data, plan, small_config.search)
    assert plan.train.mask(rows.timestamp).all()
    late = (rows.label == 1) & (rows.label_time >= plan.label_cutoff).to_numpy()
    assert late.sum() > 0            # frauds reported after the cutoff exist in the window ...
    assert (y[late] == 0).all()      # ... and looked legitimate then
    assert (y[(rows.label == 1) & ~late] == 1).all() and y.sum() == int((rows.label == 1).sum() - late.sum())
    # every fraud known at the cutoff is kept by the negative sampling
    window = data.rows(plan.train.mask(data.timestamp))
    assert y.sum() == int(((window.label == 1) & (window.label_time < plan.label_cutoff).to_numpy()).sum())
    # the latest: its own window, the labels known at as_of (and none reported later)
    rows, y, _ = refit_rows(data, plan, small_config.search, latest=True)
    assert plan.latest.mask(rows.timestamp).all() and not plan.train.mask(rows.timestamp).all()
    known = (rows.label == 1) & (rows.label_time < plan.latest_cutoff).to_numpy()
    assert (y == known).all() and y.sum() > 0


def test_calibration_and_thresholds_come_from_rows_the_twin_did_not_see(small_training, small_transactions,
                                                                        small_features, small_config):
    _, features = small_features
    served = small_training.summary["served_model"]
    trained, calibrated = _window(served["twin"]["train"]), _window(served["calibrated_on"])
    assert served["refitted"] and served["latest"] and _disjoint(trained, calibrated)
    assert calibrated.start >= trained.end + pd.Timedelta(small_config.data.label_delay)
    # the twin's calibrator and the thresholds are those of exactly these rows
    data = LabelledFeatures.from_transactions(small_transactions, features)
    cal = data.rows(calibrated.mask(data.timestamp))
    twin = small_training.evaluation_bundle
    assert twin is small_training.twin and twin.model is not small_training.bundle.model
    raw = twin.model.predict_proba(cal.features)
    expected = Calibrator(small_config.search.calibration).fit(raw, cal.label)
    grid = np.linspace(0, 1, 201)
    assert np.allclose(twin.calibrator.predict(grid), expected.predict(grid))
    thresholds, _ = choose_thresholds(expected.predict(raw), cal.label, cal.amount, cal.n_days(), small_config.policy)
    assert thresholds.to_dict() == twin.thresholds.to_dict() == small_training.bundle.thresholds.to_dict()


def test_the_served_latest_is_calibrated_from_the_twin_on_the_newest_days(small_training, small_transactions,
                                                                          small_features, small_config):
    from fraud.calibration import quantile_mapped

    _, features = small_features
    served, bundle, twin = small_training.summary["served_model"], small_training.bundle, small_training.twin
    newest_window = _window(served["refit"]["train"])
    assert newest_window == _window(bundle.metadata["trained_on"])
    data = LabelledFeatures.from_transactions(small_transactions, features)
    split = make_split(data.timestamp, small_config.split, pd.Timedelta(small_config.data.label_delay))
    newest = data.rows(plan_refit(split, small_config.split).newest.mask(data.timestamp))
    assert len(newest.label) == served["transfer"]["rows"] >= small_config.monitoring.min_rows
    twin_raw, latest_raw = twin.model.predict_proba(newest.features), bundle.model.predict_proba(newest.features)
    expected = quantile_mapped(twin.calibrator, twin_raw, latest_raw)
    grid = np.linspace(0, 1, 1001)
    assert np.allclose(bundle.calibrator.predict(grid), expected.predict(grid))
    # the raw scales differ; once mapped, the two send the same share of the newest days to review
    assert not np.allclose(np.quantile(twin_raw, [0.5, 0.99]), np.quantile(latest_raw, [0.5, 0.99]), rtol=0.05)
    shares = [np.mean(c >= bundle.thresholds.review)
              for c in (twin.calibrator.predict(twin_raw), bundle.calibrator.predict(latest_raw))]
    assert shares[1] == pytest.approx(shares[0], rel=0.05)
    assert served["transfer"]["serve"] == "latest" and served["transfer"]["overlap"] >= 0.5
    # what the monitor will see: the served scores distributed as the twin's (tied) ones
    assert _score_psi(twin.calibrator.predict(twin_raw), bundle.calibrator.predict(latest_raw)) < 0.02
    assert bundle.calibrator.to_dict()["then"] == twin.calibrator.to_dict()
    # the reference the monitor and the live drift judge the served scores against: the
    # served model's own scores of the newest days (it trained on the calibration window;
    # the features stay that window's)
    from fraud.monitoring.psi import quantile_edges

    reference, served_scores = small_training.reference, bundle.predict_proba(newest.features)
    assert reference["score"]["edges"] == quantile_edges(served_scores)
    assert reference["score_window"]["rows"] == len(newest.label) == np.asarray(reference["hourly"]["score"]).sum()
    assert reference["window"] == served["calibrated_on"] and reference["rows"] != len(newest.label)


def test_the_gate_judges_the_twins_on_a_window_neither_trained_or_calibrated_on(small_training, small_transactions,
                                                                                small_features, small_config,
                                                                                champion_registry):
    from batch_jobs.nightly import gate
    from fraud import metrics
    from fraud.evaluation import known_fraud_card
    from fraud.registry import ModelRegistry

    _, features = small_features
    summary = small_training.summary
    judged = _window(summary["split"]["test"])
    assert summary["split"]["test"] == summary["split"]["refit"]["judged"]
    assert _disjoint(judged, _window(summary["served_model"]["twin"]["train"]))
    assert _disjoint(judged, _window(summary["served_model"]["calibrated_on"]))
    # the served latest trained on it: that is why the gate judges the twins
    assert not _disjoint(judged, _window(small_training.bundle.metadata["trained_on"]))
    registry = ModelRegistry.open(champion_registry("logistic_xgb"))
    champion = registry.champion()
    assert _disjoint(judged, _window(registry.load_twin(champion).metadata["twin_trained_on"]))
    # the gate scores the challenger's twin on exactly the judged window (counted rows)
    verdict = gate(small_training, champion, registry, small_transactions, features, small_config)
    ts = small_transactions["timestamp"]
    known = known_fraud_card(ts, small_transactions["card_id"].to_numpy(), small_transactions["label"].to_numpy(),
                             small_transactions["label_time"])
    rows = judged.mask(ts) & ~known
    labels = small_transactions["label"].to_numpy()[rows]
    for side, bundle in (("challenger", small_training.twin), ("champion", registry.load_twin(champion))):
        expected = metrics.ranking(bundle.predict_proba(features[rows]), labels)["average_precision"]
        assert verdict["scores"][side]["average_precision"] == pytest.approx(expected, abs=1e-12)


def _published_with_twin(tmp_path, small_training):
    """A registry holding this run's version with its twin: (registry, version, its folder)."""
    from fraud.registry import ModelRegistry

    registry = ModelRegistry.open(tmp_path / "registry")
    version = registry.publish(small_training.bundle, twin=small_training.twin)
    return registry, version, tmp_path / "registry" / "versions" / version


def test_the_registry_keeps_the_twin_and_the_gate_judges_the_champions_twin(tmp_path, small_training,
                                                                           small_transactions, small_features,
                                                                           small_config):
    from batch_jobs.nightly import gate
    from fraud.registry import RegistryError

    _, features = small_features
    registry, version, folder = _published_with_twin(tmp_path, small_training)
    registry.promote(version, "test")
    names = set(registry.manifest(version)["files"])
    assert {"twin-candidate.json", "twin-calibration.json"} <= names and all(len(registry.manifest(version)["files"][n]
                                                                             ["sha256"]) == 64 for n in names)
    rows = features.iloc[-500:]
    served, judged = registry.load(version), registry.load_twin(version)
    assert np.array_equal(served.predict_proba(rows), small_training.bundle.predict_proba(rows))
    assert np.array_equal(judged.predict_proba(rows), small_training.twin.predict_proba(rows))
    assert not np.array_equal(served.predict_proba(rows), judged.predict_proba(rows))
    # judged against itself, yesterday's champion is this run's twin: the same scores on both sides
    verdict = gate(small_training, version, registry, small_transactions, features, small_config)
    challenger, champion = verdict["scores"]["challenger"], verdict["scores"]["champion"]
    assert champion["average_precision"] == challenger["average_precision"]
    assert champion["recall_at_capacity"] == challenger["recall_at_capacity"]
    # a twin file rewritten is refused like any other ...
    (folder / "twin-calibration.json").write_text('{"method": "identity"}')
    with pytest.raises(RegistryError, match="SHA-256"):
        registry.load_twin(version)
    # ... and the served bundle (what the API loads at a cold start) never reads them
    for name in names:
        if name.startswith("twin-"):
            (folder / name).unlink()
    assert np.array_equal(registry.load(version).predict_proba(rows), small_training.bundle.predict_proba(rows))


def test_the_summary_states_the_served_models_window_and_age(small_training, small_config):
    s = small_training.summary
    served, refit = s["served_model"], s["split"]["refit"]
    assert served["train"] == refit["latest"] == small_training.bundle.metadata["trained_on"]
    assert served["twin"]["train"] == refit["train"]
    as_of, cutoff = pd.Timestamp(s["split"]["as_of"]), pd.Timestamp(served["label_cutoff"])
    assert cutoff == pd.Timestamp(refit["latest_cutoff"]) == as_of
    # the served model knows every label known at as_of: 0 days old; its twin, as_of - delay - test window
    assert served["age_days"] == 0 == small_training.bundle.metadata["age_days"]
    delay = pd.Timedelta(small_config.data.label_delay) / DAY
    assert served["twin"]["age_days"] == delay + small_config.split.test_days
    for info, model in ((served["refit"], small_training.bundle.model), (served["twin"]["refit"],
                                                                         small_training.twin.model)):
        assert info["rounds"] == round(info["fold0_rounds"] * info["rows"] / info["fold0_rows"])
        assert model.n_rounds_ == info["rounds"]
    assert s["winner"]["rounds"] == served["refit"]["rounds"]
    assert s["feature_importance"] == small_training.bundle.model.feature_importance()


def test_the_report_states_both_windows_and_the_transfer(small_training):
    from fraud.report import fmt
    from fraud.report.analyst import model_age
    from fraud.report.technical import parameters
    from fraud.report.view import RunView

    line = model_age(small_training.summary)
    served = small_training.summary["served_model"]
    latest, twin = (fmt.date_range(w["start"], w["end"]) for w in (served["train"], served["twin"]["train"]))
    assert latest != twin and f"<b>{latest}</b>" in line and f"trained on {twin}" in line
    assert "<b>0 days old</b>" in line and "newest label-complete window" in line and "mapped by quantile" in line
    table = parameters(RunView(small_training.summary))
    assert "0 days (latest refit)" in table and f"{served['twin']['age_days']:g} days" in table
    assert "serves the latest" in table


def test_without_refit_the_fold_model_is_served_and_its_age_said(small_training):
    from fraud.report.analyst import model_age

    s = small_training.summary
    fold = s["split"]["folds"][0]
    old = {**s, "served_model": {**s["served_model"], "refitted": False, "latest": False, "twin": None,
                                 "transfer": None, "train": fold["train"],
                                 "label_cutoff": fold["validation"]["start"],
                                 "age_days": (pd.Timestamp(s["split"]["as_of"])
                                              - pd.Timestamp(fold["validation"]["start"])) / DAY}}
    line = model_age(old)
    assert "1–14 Jan 2026" in line and "22 Jan 2026" in line and "<b>24 days old</b>" in line
    assert "newest fold" in line


def test_the_drift_scenario_changes_card_testing_from_drift_day_on():
    from fraud.simulator import TransactionSimulator

    kw = {"n_customers": 400, "n_terminals": 160, "seed": 3}
    plain = [f for _, f in TransactionSimulator(**kw).days(6, False)]
    drift = [f for _, f in TransactionSimulator(**kw, drift_day=3).days(6, False)]
    for before, after in zip(plain[:3], drift[:3]):   # the past is unchanged
        pd.testing.assert_frame_equal(before, after)
    old = pd.concat(drift[:3])
    assert "card_testing_drift" not in set(old["fraud_pattern"]) and "card_testing" in set(old["fraud_pattern"])
    new = pd.concat(drift[4:])   # day 3's old bursts may cash out on day 4: from day 4 only the new pattern
    assert "card_testing" not in set(new["fraud_pattern"])
    tests = new[new["fraud_pattern"] == "card_testing_drift"]
    small = tests[tests["amount"] < 200]
    assert len(small) > 0 and small["amount"].between(8, 40).all()
    assert (small["merchant_category"] == "5999").all()
    per_day_old = (old["fraud_pattern"] == "card_testing").sum() / 3
    assert len(tests) / 2 > 1.5 * per_day_old   # three times as frequent
    # legitimate spending shifts too: more online, 20 % more per purchase (the same draws otherwise)
    legit_plain, legit_drift = (pd.concat(days[4:]) for days in (plain, drift))
    legit_plain, legit_drift = (f[f["fraud_pattern"].isna() | (f["fraud_pattern"] == "")]
                                for f in (legit_plain, legit_drift))
    assert legit_drift["channel"].eq("ecom").mean() > 1.3 * legit_plain["channel"].eq("ecom").mean()
    assert 1.1 < legit_drift["amount"].median() / legit_plain["amount"].median() < 1.4


def test_refit_off_serves_the_folds_model_calibrated_on_validation(small_transactions, small_features, small_config):
    from fraud.training import train

    spec, features = small_features
    config = small_config.model_copy(update={"split": small_config.split.model_copy(update={"refit": False})})
    result = train(LabelledFeatures.from_transactions(small_transactions, features), config, spec, progress=False)
    s, fold = result.summary, result.summary["split"]["folds"][0]
    assert result.bundle.model is result.searches[s["winner"]["kind"]].model
    assert s["served_model"]["refitted"] is False and s["served_model"]["refit"] is None
    assert s["served_model"]["train"] == fold["train"] and s["served_model"]["calibrated_on"] == fold["validation"]
    assert s["served_model"]["age_days"] == (pd.Timestamp(s["split"]["as_of"])
                                             - pd.Timestamp(fold["validation"]["start"])) / DAY
    assert "refit" not in s["split"] and "validation" in s["calibration"]


def _twin_calibrated(n=20_000, seed=0):
    """Raw scores of a twin, and its isotonic calibrator fitted on labels drawn from them."""
    rng = np.random.default_rng(seed)
    raw = rng.beta(0.6, 12, n)
    labels = (rng.random(n) < np.clip(raw * 0.4, 0, 1)).astype(int)
    from fraud.policy import Thresholds

    return raw, Calibrator("isotonic").fit(raw, labels), Thresholds(review=float(np.quantile(raw * 0.4, 0.99)),
                                                                   decline=1.0)


def _score_psi(reference, scores) -> float:
    """The score PSI as fraud monitor and the live drift compute it (fraud.monitoring.psi)."""
    from fraud.monitoring.psi import bin_shares, psi, quantile_edges

    edges = quantile_edges(reference)
    return psi(bin_shares(reference, edges), bin_shares(scores, edges))


def test_a_latest_that_ranks_like_the_twin_on_another_scale_is_mapped_onto_it():
    from fraud.refit import check_transfer

    twin, calibrator, thresholds = _twin_calibrated()
    latest = twin ** 2 * 0.3      # the same ranking, another raw scale
    mapped, facts = check_transfer(twin, latest, calibrator, thresholds, min_overlap=0.5, min_rows=1000)
    assert facts["serve"] == "latest" and facts["overlap"] > 0.97 and facts["raw_psi"] > 1
    # the latest, mapped, scores each row (nearly) as the twin does, not as the twin's calibrator alone would
    # (between two of the mapping's levels a step of the isotonic twin is interpolated: close, not equal)
    mapped_gap, unmapped_gap = (np.abs(c - calibrator.predict(twin)) for c in (mapped.predict(latest),
                                                                                 calibrator.predict(latest)))
    assert mapped_gap.mean() < 0.001 and np.quantile(mapped_gap, 0.99) < 0.01
    assert unmapped_gap.mean() > 0.01 and np.quantile(unmapped_gap, 0.99) > 0.1
    # the twin's flat steps stay flat: the monitor's score PSI (deciles of the tied calibrated
    # reference) reads no drift; an interpolated composite would put rows between the steps
    assert _score_psi(calibrator.predict(twin), mapped.predict(latest)) < 0.01
    assert np.all(np.diff(mapped.predict(np.linspace(0, 1, 1001))) >= 0)   # still monotone


def test_a_latest_that_disagrees_with_the_twin_or_too_few_rows_serve_the_twin():
    from fraud.refit import check_transfer

    twin, calibrator, thresholds = _twin_calibrated()
    shuffled = np.random.default_rng(1).permutation(twin)   # same distribution, unrelated ranking
    mapped, facts = check_transfer(twin, shuffled, calibrator, thresholds, min_overlap=0.5, min_rows=1000)
    assert mapped is None and facts["serve"] == "twin" and facts["overlap"] < 0.1 and "disagree" in facts["reason"]
    mapped, facts = check_transfer(twin[:999], twin[:999], calibrator, thresholds, min_overlap=0.5, min_rows=1000)
    assert mapped is None and facts["serve"] == "twin" and "fewer than 1000" in facts["reason"]


def test_when_the_transfer_check_fails_the_twin_is_served_with_its_own_calibration(small_transactions,
                                                                                  small_features, small_config,
                                                                                  small_training):
    from fraud.training import train

    spec, features = small_features
    split = small_config.split.model_copy(update={"transfer_min_overlap": 1.0})   # never met: 83 % here
    result = train(LabelledFeatures.from_transactions(small_transactions, features),
                   small_config.model_copy(update={"split": split}), spec, progress=False)
    served = result.summary["served_model"]
    assert served["latest"] is False and served["transfer"]["serve"] == "twin" and result.twin is None
    assert served["train"] == served["twin"]["train"] == result.bundle.metadata["trained_on"]
    assert served["age_days"] == served["twin"]["age_days"] > 0
    rows = features.iloc[-500:]   # the same model and calibrator as the default run's twin
    assert np.array_equal(result.bundle.predict_proba(rows), small_training.twin.predict_proba(rows))
    assert result.summary["test"] == small_training.summary["test"]


def test_an_atom_of_the_latests_scores_maps_to_the_twins_middle_level():
    """Tree ensembles put many rows on one score: those rows hold a range of levels, and go
    to the twin's score at its middle, not at its top (which would inflate them)."""
    from fraud.calibration import quantile_mapped

    twin, calibrator, _ = _twin_calibrated()
    low, high = np.quantile(twin, [0.2, 0.8])
    latest = np.where((twin >= low) & (twin <= high), np.median(twin), twin)   # 60 % of the rows on one score
    mapped = quantile_mapped(calibrator, twin, latest).predict(np.median(twin))
    expected = calibrator.predict(np.quantile(twin, 0.5))
    assert mapped == pytest.approx(expected, abs=0.002)
    assert abs(mapped - calibrator.predict(np.quantile(twin, 0.8))) > 0.005


def test_a_damaged_twin_keeps_the_champion_and_a_broken_champion_is_replaced(tmp_path, small_training,
                                                                              small_transactions, small_features,
                                                                              small_config):
    """The API never reads twin files: a rewritten one must not wave every challenger through."""
    from batch_jobs.nightly import gate

    _, features = small_features
    registry, version, folder = _published_with_twin(tmp_path, small_training)
    (folder / "twin-calibration.json").write_text('{"method": "identity"}')
    verdict = gate(small_training, version, registry, small_transactions, features, small_config)
    assert verdict["decision"] == "keep champion" and "twin cannot be loaded" in verdict["reason"]
    assert "average_precision" in verdict["scores"]["challenger"]
    (folder / "thresholds.json").write_text("{}")   # now the champion itself cannot load: the API cannot serve it
    verdict = gate(small_training, version, registry, small_transactions, features, small_config)
    assert verdict["decision"] == "promote" and "champion cannot be loaded" in verdict["reason"]


def test_an_empty_newest_window_serves_the_twin(small_transactions, small_features, small_config):
    """No rows after the latest's window (a feed gap, or --as-of past the data): the twin
    serves, said why; LightGBM, which refuses to predict no rows, is the candidate here."""
    from fraud.training import train

    spec, features = small_features
    split = make_split(small_transactions["timestamp"], small_config.split,
                       pd.Timedelta(small_config.data.label_delay))
    keep = (small_transactions["timestamp"] < split.test.end).to_numpy()   # the newest days cut off
    config = small_config.model_copy(update={"search": small_config.search.model_copy(
        update={"candidates": ("focal_lgbm",), "max_trials": 1, "max_rounds": 30})})
    result = train(LabelledFeatures.from_transactions(small_transactions[keep].reset_index(drop=True),
                                                      features[keep].reset_index(drop=True)),
                   config, spec, split=split, progress=False)
    transfer = result.summary["served_model"]["transfer"]
    assert transfer["serve"] == "twin" and transfer["rows"] == 0 and "fewer than" in transfer["reason"]
    assert result.twin is None and result.summary["served_model"]["latest"] is False


def test_the_map_covers_scores_beyond_the_newest_days_range():
    """A live score above every newest-day score still ranks above them (and can reach a
    decline threshold) instead of tying at the map's end."""
    from fraud.calibration import quantile_mapped

    twin, _, _ = _twin_calibrated()
    rng = np.random.default_rng(5)
    calibrator = Calibrator("platt").fit(twin, (rng.random(twin.size) < twin).astype(int))   # strictly rising
    mapped = quantile_mapped(calibrator, twin, twin * 0.5)
    top = float(np.max(twin * 0.5))
    assert mapped.predict(np.array([0.99]))[0] > mapped.predict(np.array([top]))[0]
    assert mapped.predict(np.array([1.0]))[0] == pytest.approx(calibrator.predict(np.array([1.0]))[0])
