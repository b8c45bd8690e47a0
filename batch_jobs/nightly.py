"""The nightly training job.

    1. (embedded default only) simulate the transactions if they are not there yet
    2. read and validate the transactions, quarantining bad rows
    3. build point-in-time features (single process, or Dask)
    4. search, choose, calibrate and threshold the candidates (fraud.training)
    5. compare the challenger with the champion on the same test window (the gate)
    6. publish the challenger as an immutable registry version; promote it if the gate
       passes (one atomic pointer switch)
    7. write the report (HTML, PNG, JSON)
    8. batch-score the latest day with the champion

Every step logs what it did; the paths of everything produced are returned and printed.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from fraud import metrics
from fraud.config import FraudConfig
from fraud.evaluation import known_fraud_card
from fraud.ablation import ablation
from fraud.features.available import spec_for_data
from fraud.features.batch import build_features
from fraud.hard_examples import hard_example_weights
from fraud.labels.merge import with_stored_labels
from fraud.monitoring.reference import REFERENCE_FILE
from fraud.io import load_transactions
from fraud.registry import ModelRegistry, RegistryError
from fraud.report.outcomes import window_outcomes
from fraud.simulator import TransactionSimulator
from fraud.splits import InsufficientDataError, TrainingWindow, check_classes, make_split
from fraud.tracking import track_run
from fraud.training import LabelledFeatures, TrainingResult, train

from .challenger import nightly_step, settle_new_version
from .history import latest_day, partition_path
from .scoring import score_batch

log = logging.getLogger(__name__)


@dataclass
class NightlyResult:
    run_id: str
    run_dir: Path
    version: str
    promoted: bool
    champion: str | None
    artefacts: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)


def _upload_run(run_dir: Path, uri: str, endpoint_url, artefacts: dict) -> dict:
    """Copy a finished run's files to an S3 prefix; returns the artefacts' new locations."""
    from fraud.storage.blob import open_blob_store

    store = open_blob_store(uri, endpoint_url)
    for path in sorted(run_dir.rglob("*")):
        if path.is_file():
            store.put(str(path.relative_to(run_dir)), path.read_bytes())
    log.info("run files uploaded to %s", uri)
    return {name: store.url(str(Path(p).relative_to(run_dir))) for name, p in artefacts.items()}


def ensure_default_data(path: Path, config: FraudConfig) -> bool:
    """Simulate the embedded default data into ``path`` if it holds no partitions yet."""
    if path.exists() and any(path.rglob("*.parquet")):
        return False
    sim = config.simulation
    log.info("no data at %s: simulating %d days of transactions (seed %d)", path, sim.days, sim.seed)
    TransactionSimulator(n_customers=sim.n_customers, n_terminals=sim.n_terminals, start_date=sim.start_date,
                         seed=sim.seed, label_delay_days=config.data.label_delay_days,
                         basic_columns=sim.basic_columns, drift_day=sim.drift_day).write(path, sim.days)
    return True


def verdict_without_champion(registry: ModelRegistry, champion_version: str, exc: Exception, challenger: dict) -> dict:
    """The gate's verdict when the champion cannot be judged: promote only if the champion
    itself cannot be loaded (the API cannot serve it either); if only its twin is damaged or
    missing, keep it: the API never reads twin files, so a rewritten one would otherwise wave
    every challenger through unnoticed."""
    try:
        registry.load(champion_version)
    except RegistryError:
        return {"decision": "promote", "reason": f"the champion cannot be loaded ({exc})",
                "scores": {"challenger": challenger}}
    return {"decision": "keep champion",
            "reason": f"the champion's twin cannot be loaded ({exc}): not judged, kept; promote by hand if intended",
            "scores": {"challenger": challenger}}


def gate(result: TrainingResult, champion_version: str | None, registry: ModelRegistry, transactions: pd.DataFrame,
         features: pd.DataFrame, config: FraudConfig) -> dict:
    """Is the challenger not worse than the champion on the same test window? Counted as
    a fraud team counts (``fraud.evaluation``): cards with a fraud label known at the time
    are left out of AP and recall; the money per day covers the whole window. When the
    served models are latest refits (``fraud.refit``), both sides are their twins: the
    latest ones trained on this window (the challenger's) or on part of it (yesterday's
    champion's); the twins trained on neither, and are what the served ones' calibration and
    thresholds were fitted for."""
    split = result.summary["split"]
    test_mask = ((transactions["timestamp"] >= pd.Timestamp(split["test"]["start"]))
                 & (transactions["timestamp"] < pd.Timestamp(split["test"]["end"]))).to_numpy()
    known = known_fraud_card(transactions["timestamp"], transactions["card_id"].to_numpy(),
                             transactions["label"].to_numpy(), transactions["label_time"])
    counted = ~known[test_mask]  # within the window
    labels = transactions["label"].to_numpy()[test_mask]
    days = (transactions["timestamp"][test_mask].dt.floor("D")).astype("int64").to_numpy()
    capacity = config.policy.review_capacity_per_day
    window = transactions[test_mask]

    def score(bundle, feats):
        probs = bundle.predict_proba(feats.loc[test_mask])
        return {"average_precision": metrics.ranking(probs[counted], labels[counted])["average_precision"],
                "recall_at_capacity": metrics.recall_at_capacity(probs[counted], labels[counted], days[counted],
                                                                 capacity),
                "average_precision_unfiltered": metrics.ranking(probs, labels)["average_precision"],
                # the report's money and catch per day, each model under its own thresholds
                "outcomes": window_outcomes(probs, bundle.thresholds, window, config.policy, config.data.currency)}

    challenger = {"version": "challenger", **score(result.evaluation_bundle, features)}
    if champion_version is None:
        return {"decision": "promote", "reason": "there is no champion yet", "scores": {"challenger": challenger}}
    try:
        champion_bundle = registry.load_twin(champion_version)
    except RegistryError as exc:
        return verdict_without_champion(registry, champion_version, exc, challenger)
    champ_features = features if champion_bundle.spec == result.bundle.spec else \
        build_features(transactions, champion_bundle.spec)
    champion = {"version": champion_version, **score(champion_bundle, champ_features)}
    tol_ap = config.gate.average_precision_tolerance
    tol_recall = config.gate.recall_at_capacity_tolerance
    ap_ok = challenger["average_precision"] >= champion["average_precision"] - tol_ap
    recall_ok = challenger["recall_at_capacity"] >= champion["recall_at_capacity"] - tol_recall
    decision = "promote" if ap_ok and recall_ok else "keep champion"
    reason = (f"challenger AP {challenger['average_precision']:.4f} vs champion {champion['average_precision']:.4f} "
              f"(tolerance {tol_ap}); recall at capacity {challenger['recall_at_capacity']:.3f} vs "
              f"{champion['recall_at_capacity']:.3f} (tolerance {tol_recall})")
    return {"decision": decision, "reason": reason, "scores": {"challenger": challenger, "champion": champion}}


def _in_window(transactions: pd.DataFrame, window: TrainingWindow, data) -> pd.DataFrame:
    """The rows of ``window`` (start <= time < end, and before as_of: what was known then)."""
    if window.empty:
        return transactions
    ts = transactions["timestamp"]
    keep = pd.Series(True, index=transactions.index)
    for bound, op in ((window.start, ts.ge), (window.end, ts.lt), (window.as_of, ts.lt)):
        if bound is not None:
            keep &= op(bound)
    kept = transactions.loc[keep].reset_index(drop=True)
    log.info("training window %s: %d of %d transactions", window, len(kept), len(transactions))
    if not len(kept):
        raise InsufficientDataError(f"no transactions of {data} fall in the training window {window} (the data runs "
                                    f"from {ts.min()} to {ts.max()}). Nothing was written.")
    return kept


def _prepare_and_train(config: FraudConfig, data, run_dir: Path, simulate_if_missing: bool, dask: str | None,
                       progress: bool, endpoint_url: str | None, window: TrainingWindow, labels_uri: str | None = None,
                       hard_examples_uri: str | None = None):
    """Read and check the data, then (only if it can be trained on) create the run folder,
    build the features and train. Bad or too little data raises ``InputError`` first."""
    if simulate_if_missing and not str(data).startswith("s3://"):
        ensure_default_data(Path(data), config)
    step = time.perf_counter()
    transactions, validation = load_transactions(data, config, require_label=True,
                                                 quarantine_dir=run_dir / "quarantine", endpoint_url=endpoint_url)
    log.info("[1/6] read %d valid transactions (%d set aside) in %.1fs", len(transactions), validation.rows_bad,
             time.perf_counter() - step)
    if len(transactions) == 0:
        raise InsufficientDataError(f"no valid transactions to train on in {data}: its tables have no rows"
                                    + (f" ({validation.rows_in} read, all set aside)" if validation.rows_in else "")
                                    + "; point --data at your transactions. Nothing was written.")
    transactions = with_stored_labels(transactions, labels_uri, window.as_of, endpoint_url)  # feedback, imports
    transactions = _in_window(transactions, window, data)
    weight = hard_example_weights(transactions["transaction_id"], config.training.hard_example_weight,
                                  hard_examples_uri or config.hard_examples.uri, labels_uri, window.as_of, endpoint_url)
    split = make_split(transactions["timestamp"], config.split, pd.Timedelta(config.data.label_delay), window.as_of)
    check_classes(split, transactions["timestamp"], transactions["label"].to_numpy(), transactions["label_time"])
    run_dir.mkdir(parents=True, exist_ok=True)

    step = time.perf_counter()
    spec, dropped = spec_for_data(config, transactions)  # features of absent columns left out, warned
    if dask:
        from fraud.features.distributed import build_features_dask, dask_client

        with dask_client(dask) as client:
            feats = build_features_dask(transactions, spec).loc[transactions["transaction_id"].to_numpy()]
            features = feats.reset_index(drop=True)
            from .dask_fit import DaskFitter

            log.info("[2/6] built %d features for %d rows with Dask in %.1fs", len(spec.names), len(features),
                     time.perf_counter() - step)
            step = time.perf_counter()
            result = train(LabelledFeatures.from_transactions(transactions, features, weight), config, spec, split,
                           progress=progress, fitter=DaskFitter(client))
    else:
        features = build_features(transactions, spec)
        log.info("[2/6] built %d features for %d rows in %.1fs", len(spec.names), len(features),
                 time.perf_counter() - step)
        step = time.perf_counter()
        result = train(LabelledFeatures.from_transactions(transactions, features, weight), config, spec, split,
                       progress=progress)
    log.info("[3/6] trained and compared %d candidates in %.1fs", len(result.summary["candidates"]),
             time.perf_counter() - step)
    result.summary["features"] = {"used": len(spec.names), "dropped": dropped}
    result.summary["hard_examples"] = {"weight": config.training.hard_example_weight,  # reviewed ones up-weighted
                                       "weighted_rows": 0 if weight is None else int((weight != 1).sum())}
    if config.report.ablation:
        step = time.perf_counter()
        result.summary["ablation"] = ablation(LabelledFeatures.from_transactions(transactions, features, weight),
                                              config, spec, split, result.summary["winner"])
        log.info("ablation: the winner refitted without each feature family in %.1fs", time.perf_counter() - step)
    return transactions, validation, features, spec, result


def run_nightly(config: FraudConfig, data: str | Path, registry_uri: str | None = None, runs_dir: str | Path = "runs",
                simulate_if_missing: bool = False, dask: str | None = None, score_latest: bool = True,
                progress: bool = True, endpoint_url: str | None = None, config_path: str | None = None,
                window: TrainingWindow | None = None, labels_uri: str | None = None,
                hard_examples_uri: str | None = None) -> NightlyResult:
    """``window``: train as of a past moment and/or on a date range (``fraud train --as-of
    --from --to``); then the newest day is not scored (the model is not today's).
    ``labels_uri``: the label store (``fraud.labels``) whose labels override the data's."""
    if dask:  # the rows stay on the Dask workers from reading to scoring (batch_jobs.dask_nightly)
        from .dask_nightly import run_nightly_dask

        return run_nightly_dask(config, data, registry_uri, runs_dir, simulate_if_missing, dask, score_latest,
                                progress, endpoint_url, config_path, window, labels_uri, hard_examples_uri)
    started = time.perf_counter()
    window = window or TrainingWindow()
    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    remote_runs = str(runs_dir).startswith("s3://")
    local_root = Path(tempfile.mkdtemp(prefix="fraud-run-")) if remote_runs else Path(runs_dir)
    run_dir = local_root / run_id
    registry = ModelRegistry.open(registry_uri or config.registry.uri, endpoint_url)
    log.info("nightly run %s: data %s, registry %s, report in %s", run_id, data, registry.uri, run_dir)
    # a run that fails before it publishes leaves no run folder (bad input writes nothing);
    # one that fails later keeps what it wrote beside its registry version
    ours = not run_dir.exists()
    try:
        transactions, validation, features, spec, result = _prepare_and_train(
            config, data, run_dir, simulate_if_missing, dask, progress, endpoint_url, window, labels_uri,
            hard_examples_uri)
        step = time.perf_counter()
        challenger_step = nightly_step(registry, config, labels_uri, endpoint_url)  # a shadowed challenger first
        champion_before = registry.champion()
        champion_record_before = registry.champion_record()  # when it became champion, for the report
        verdict = gate(result, champion_before, registry, transactions, features, config)
        summary = {**result.summary, "run_id": run_id, "gate": verdict,
                   "data": {"source": str(data), "rows": int(len(transactions)), "invalid_rows": validation.rows_bad,
                            "first": transactions["timestamp"].min().isoformat(),
                            "last": transactions["timestamp"].max().isoformat(), "window": str(window)}}
        version = registry.publish(result.bundle, twin=result.twin, extra={
            "metrics.json": summary,
            "config.json": json.loads(config.model_dump_json()),
            REFERENCE_FILE: result.reference,  # what fraud monitor compares the decision log with
            "training.json": {"run_id": run_id, "data": summary["data"], "split": summary["split"],
                              "library_versions": summary["library_versions"], "config_path": config_path}})
    except BaseException:
        if ours:
            shutil.rmtree(run_dir, ignore_errors=True)
        if remote_runs:
            shutil.rmtree(local_root, ignore_errors=True)
        raise
    # [challenger] shadow_first: a version that passes the gate is shadowed (batch_jobs.challenger), not promoted
    placement = settle_new_version(registry, config, version, verdict, champion_before)
    summary["challenger"] = {"judged": challenger_step, "new_version": placement}
    promoted = placement == "promote"
    log.info("[4/6] published version %s (%s) in %.1fs", version, "promoted" if promoted else "not promoted",
             time.perf_counter() - step)

    from fraud.report import write_report
    from fraud.report.facts import model_facts

    summary["registry_version"] = version
    verdict["scores"]["challenger"]["version"] = version
    summary["models"] = model_facts(registry, version, champion_record_before)
    artefacts = {f"report_{k}": v for k, v in write_report(run_dir, summary, result.plots).items()}
    log.info("[5/6] report written to %s", artefacts["report_html"])
    summary["tracking"] = track_run(config.tracking, runs_dir, run_dir, summary)

    if score_latest and window.empty and not str(data).startswith("s3://"):
        day = latest_day(data)
        if day is not None:
            step = time.perf_counter()
            out = run_dir / f"scores-{day}.parquet"
            scored = score_batch(partition_path(data, day), out, config, registry, history_source=data,
                                 progress=progress, endpoint_url=endpoint_url)
            artefacts["scores"] = out
            summary["latest_day_scores"] = scored
            log.info("[6/6] scored %s (%d transactions) in %.1fs: %s", day, scored["rows"],
                     time.perf_counter() - step, scored["decisions"])
    summary["seconds"] = time.perf_counter() - started
    (run_dir / "report.json").write_text(json.dumps(summary, indent=2, default=str))
    if remote_runs:
        artefacts = _upload_run(run_dir, f"{str(runs_dir).rstrip('/')}/{run_id}", endpoint_url, artefacts)
    return NightlyResult(run_id, run_dir, version, promoted, registry.champion(), artefacts, summary)

