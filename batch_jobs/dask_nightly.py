"""The nightly job on Dask (``fraud train --dask local|tcp://host:8786``): the same steps
as ``batch_jobs.nightly`` with the rows on the workers from end to end.

    read + validate per partition (dask_read) -> feature table as partitioned Parquet in
    the run folder (fraud.features.dask_table) -> search, choose, calibrate, threshold
    (dask_train) -> gate on the test window's scores -> publish, promote, report ->
    score the latest day into partitioned Parquet (dask_score)

The driver holds the models, counts, the fraud rows' times (to know which cards are
blocked) and one small row of scores per validation/test transaction. The run folder
(feature table, quarantine, scores) must be on storage the workers can write: any path
on a LocalCluster; a shared filesystem on a real cluster.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from fraud import metrics
from fraud.config import FraudConfig
from fraud.features.available import spec_for_data
from fraud.features.dask_table import read_feature_table, write_feature_table
from fraud.features.distributed import dask_client
from fraud.hard_examples import weighted_hard_examples
from fraud.monitoring.reference import REFERENCE_FILE
from fraud.registry import ModelRegistry, RegistryError
from fraud.report.outcomes import window_outcomes
from fraud.schema import AMOUNT, LABEL, TIMESTAMP, TRANSACTION_ID
from fraud.splits import InsufficientDataError, TrainingWindow, make_split
from fraud.tracking import track_run

from .challenger import nightly_step, settle_new_version
from .dask_read import partitions_for, read_transactions_dask
from .dask_train import _counted, check_windows, first_known, fraud_rows, train_dask
from .history import latest_day, partition_path
from .nightly import verdict_without_champion

log = logging.getLogger(__name__)


def _window_filter(ddf, window: TrainingWindow):
    ts = ddf[TIMESTAMP]
    for bound, op in ((window.start, ts.ge), (window.end, ts.lt), (window.as_of, ts.lt)):
        if bound is not None:
            ddf = ddf[op(bound)]
    return ddf


def _with_labels(ddf, labels_uri, as_of, endpoint_url):
    """Stored labels (feedback, imports) merged per partition: the store is read once."""
    if not labels_uri:
        return ddf
    from fraud.labels.merge import merge_labels
    from fraud.labels.store import open_label_store

    stored = open_label_store(labels_uri, endpoint_url).read(as_of)
    if not len(stored):
        return ddf
    return ddf.map_partitions(lambda part, s: merge_labels(part, s)[0], stored, meta=ddf._meta)


def _test_probs(part: pd.DataFrame, bundles: dict, known: dict) -> pd.DataFrame:
    out = pd.DataFrame({TRANSACTION_ID: part[TRANSACTION_ID].to_numpy(), TIMESTAMP: part[TIMESTAMP].to_numpy(), LABEL: part[LABEL].to_numpy(np.int8),
                        AMOUNT: part[AMOUNT].to_numpy(np.float64), "counted": _counted(part, known).to_numpy()})
    if "fraud_pattern" in part.columns:
        out["fraud_pattern"] = part["fraud_pattern"].astype(object).to_numpy()
    for name, bundle in bundles.items():
        out[name] = bundle.predict_proba(part[list(bundle.spec.names)]) if len(part) else np.zeros(0)
    return out


def gate_dask(client, result, champion_version, registry, table_path, valid, known, config, run_dir) -> dict:
    """``batch_jobs.nightly.gate`` from the test window's scores computed on the workers."""
    split = result.summary["split"]
    start, end = pd.Timestamp(split["test"]["start"]), pd.Timestamp(split["test"]["end"])
    bundles = {"challenger": result.bundle}
    champion_bundle, unjudged = None, None
    if champion_version is not None:
        try:
            champion_bundle = registry.load_twin(champion_version)   # its twin, if any (batch_jobs.nightly.gate)
        except RegistryError as exc:   # promote only when the champion itself cannot load
            unjudged = verdict_without_champion(registry, champion_version, exc, {})
    table = table_path
    if champion_bundle is not None:
        bundles["champion"] = champion_bundle
        if champion_bundle.spec != result.bundle.spec:  # its own features, on the workers
            table = write_feature_table(valid, champion_bundle.spec, run_dir / "features-champion")
    rows = read_feature_table(table_path, start, end)
    frame = rows.map_partitions(_test_probs, {"challenger": result.bundle}, known,
                                meta=_test_probs(rows._meta, {"challenger": result.bundle}, known)).compute()
    if champion_bundle is not None:  # its scores joined by id (another table is in another row order)
        other = read_feature_table(table, start, end)
        theirs = other.map_partitions(_test_probs, {"champion": champion_bundle}, known,
                                      meta=_test_probs(other._meta, {"champion": champion_bundle}, known)).compute()
        frame = frame.merge(theirs[[TRANSACTION_ID, "champion"]], on=TRANSACTION_ID, how="left")
    counted = frame["counted"].to_numpy()
    labels = frame[LABEL].to_numpy()
    days = frame[TIMESTAMP].dt.floor("D").astype("int64").to_numpy()
    capacity = config.policy.review_capacity_per_day

    def score(name, bundle):
        probs = frame[name].to_numpy(np.float64)
        return {"average_precision": metrics.ranking(probs[counted], labels[counted])["average_precision"],
                "recall_at_capacity": metrics.recall_at_capacity(probs[counted], labels[counted], days[counted],
                                                                 capacity),
                "average_precision_unfiltered": metrics.ranking(probs, labels)["average_precision"],
                "outcomes": window_outcomes(probs, bundle.thresholds, frame, config.policy, config.data.currency)}

    challenger = {"version": "challenger", **score("challenger", result.bundle)}
    if unjudged is not None:
        return {**unjudged, "scores": {"challenger": challenger}}
    if champion_version is None:
        return {"decision": "promote", "reason": "there is no champion yet", "scores": {"challenger": challenger}}
    champion = {"version": champion_version, **score("champion", champion_bundle)}
    tol_ap, tol_recall = config.gate.average_precision_tolerance, config.gate.recall_at_capacity_tolerance
    ap_ok = challenger["average_precision"] >= champion["average_precision"] - tol_ap
    recall_ok = challenger["recall_at_capacity"] >= champion["recall_at_capacity"] - tol_recall
    reason = (f"challenger AP {challenger['average_precision']:.4f} vs champion {champion['average_precision']:.4f} "
              f"(tolerance {tol_ap}); recall at capacity {challenger['recall_at_capacity']:.3f} vs "
              f"{champion['recall_at_capacity']:.3f} (tolerance {tol_recall})")
    return {"decision": "promote" if ap_ok and recall_ok else "keep champion", "reason": reason,
            "scores": {"challenger": challenger, "champion": champion}}


def _hard_examples(valid, config, hard_examples_uri, labels_uri, as_of, endpoint_url):
    """The reviewed hard examples training up-weights (``fraud.hard_examples``): (ids,
    weight) for the workers, or None, and how many rows of the data they are."""
    weight = config.training.hard_example_weight
    ids = weighted_hard_examples(weight, hard_examples_uri or config.hard_examples.uri, labels_uri, as_of,
                                 endpoint_url)
    rows = int(valid[TRANSACTION_ID].astype(str).isin(sorted(ids)).sum().compute()) if ids else 0
    if rows:
        log.info("hard examples: %d reviewed ones in the data weighted %g", rows, weight)
    return ((np.array(sorted(ids), dtype=object), weight) if rows else None), rows


def _prepare_and_train(client, config, data, run_dir, endpoint_url, window, labels_uri, progress,
                       hard_examples_uri=None):
    import dask

    step = time.perf_counter()
    valid, validation = read_transactions_dask(client, data, config, require_label=True, start=window.start,
                                               end=window.end, quarantine_dir=run_dir / "quarantine",
                                               endpoint_url=endpoint_url)
    log.info("[1/6] read %d valid transactions (%d set aside) on Dask in %.1fs", validation.rows_ok,
             validation.rows_bad, time.perf_counter() - step)
    if validation.rows_ok == 0:
        raise InsufficientDataError(f"no valid transactions to train on in {data}. Nothing was written.")
    valid = _window_filter(_with_labels(valid, labels_uri, window.as_of, endpoint_url), window)
    valid = client.persist(valid)
    first, last, rows, amax, a999, present = dask.compute(
        valid[TIMESTAMP].min(), valid[TIMESTAMP].max(), valid.map_partitions(len).sum(), valid[AMOUNT].max(),
        valid[AMOUNT].quantile(0.999), valid.map_partitions(lambda p: p.notna().any().to_frame().T).any())
    if not rows:
        raise InsufficientDataError(f"no transactions of {data} fall in the training window {window}. "
                                    "Nothing was written.")
    valid = client.persist(valid.repartition(npartitions=partitions_for(client, rows)))
    split = make_split(pd.Series([first, last]), config.split, pd.Timedelta(config.data.label_delay), window.as_of)
    frauds = fraud_rows(valid)
    day_counts = valid[TIMESTAMP].dt.floor("D").value_counts().compute()
    check_windows(split, frauds, day_counts)
    run_dir.mkdir(parents=True, exist_ok=True)
    spec, dropped = spec_for_data(config, pd.DataFrame({c: [1 if ok else None] for c, ok in present.items()}))
    step = time.perf_counter()
    table_path = write_feature_table(valid, spec, run_dir / "features")
    log.info("[2/6] built %d features for %d rows on Dask into %s in %.1fs", len(spec.names), rows, table_path,
             time.perf_counter() - step)
    step = time.perf_counter()
    known = first_known(frauds)
    hard, weighted_rows = _hard_examples(valid, config, hard_examples_uri, labels_uri, window.as_of, endpoint_url)
    result = train_dask(client, table_path, config, spec, split, known,
                        {"max": float(amax), "p99_9": float(a999)}, progress, hard)
    log.info("[3/6] trained and compared %d candidates on Dask in %.1fs", len(result.summary["candidates"]),
             time.perf_counter() - step)
    result.summary["features"] = {"used": len(spec.names), "dropped": dropped}
    result.summary["hard_examples"] = {"weight": config.training.hard_example_weight, "weighted_rows": weighted_rows}
    data_info = {"source": str(data), "rows": int(rows), "invalid_rows": validation.rows_bad,
                 "first": first.isoformat(), "last": last.isoformat(), "window": str(window), "engine": "dask"}
    return valid, table_path, known, result, data_info


def run_nightly_dask(config: FraudConfig, data, registry_uri=None, runs_dir="runs", simulate_if_missing=False,
                     dask="local", score_latest=True, progress=True, endpoint_url=None, config_path=None,
                     window: TrainingWindow | None = None, labels_uri=None, hard_examples_uri=None):
    """``batch_jobs.nightly.run_nightly`` with ``dask`` set; returns its ``NightlyResult``."""
    from fraud.report import write_report
    from fraud.report.facts import model_facts

    from .dask_score import score_batch_dask
    from .nightly import NightlyResult, _upload_run, ensure_default_data

    started = time.perf_counter()
    window = window or TrainingWindow()
    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    remote_runs = str(runs_dir).startswith("s3://")
    local_root = Path(tempfile.mkdtemp(prefix="fraud-run-")) if remote_runs else Path(runs_dir)
    run_dir = (local_root / run_id).absolute()
    registry = ModelRegistry.open(registry_uri or config.registry.uri, endpoint_url)
    if simulate_if_missing and not str(data).startswith("s3://"):
        ensure_default_data(Path(data), config)
    log.info("nightly run %s on Dask (%s): data %s, registry %s, report in %s", run_id, dask, data, registry.uri,
             run_dir)
    ours = not run_dir.exists()
    with dask_client(dask) as client:
        try:
            valid, table_path, known, result, data_info = _prepare_and_train(
                client, config, data, run_dir, endpoint_url, window, labels_uri, progress, hard_examples_uri)
            step = time.perf_counter()
            challenger_step = nightly_step(registry, config, labels_uri, endpoint_url)  # a shadowed challenger first
            champion_before = registry.champion()
            champion_record_before = registry.champion_record()
            verdict = gate_dask(client, result, champion_before, registry, table_path, valid, known, config, run_dir)
            summary = {**result.summary, "run_id": run_id, "gate": verdict, "data": data_info}
            version = registry.publish(result.bundle, extra={
                "metrics.json": summary, "config.json": json.loads(config.model_dump_json()),
                "training.json": {"run_id": run_id, "data": data_info, "split": summary["split"],
                                  "library_versions": summary["library_versions"], "config_path": config_path},
                REFERENCE_FILE: result.reference})  # what fraud monitor compares the decision log with
        except BaseException:
            if ours:
                shutil.rmtree(run_dir, ignore_errors=True)
            if remote_runs:
                shutil.rmtree(local_root, ignore_errors=True)
            raise
        # [challenger] shadow_first: a version that passes the gate is shadowed, not promoted
        placement = settle_new_version(registry, config, version, verdict, champion_before)
        summary["challenger"] = {"judged": challenger_step, "new_version": placement}
        promoted = placement == "promote"
        log.info("[4/6] published version %s (%s) in %.1fs", version, "promoted" if promoted else "not promoted",
                 time.perf_counter() - step)
        summary["registry_version"] = version
        verdict["scores"]["challenger"]["version"] = version
        summary["models"] = model_facts(registry, version, champion_record_before)
        artefacts = {f"report_{k}": v for k, v in write_report(run_dir, summary, result.plots).items()}
        artefacts["features"] = table_path
        log.info("[5/6] report written to %s", artefacts["report_html"])
        summary["tracking"] = track_run(config.tracking, runs_dir, run_dir, summary)
        if score_latest and window.empty and not str(data).startswith("s3://"):
            day = latest_day(data)
            if day is not None:
                step = time.perf_counter()
                out = run_dir / f"scores-{day}"
                scored = score_batch_dask(client, partition_path(data, day), out, config, registry,
                                          history_source=data, endpoint_url=endpoint_url)
                artefacts["scores"] = out
                summary["latest_day_scores"] = scored
                log.info("[6/6] scored %s (%d transactions) on Dask in %.1fs: %s", day, scored["rows"],
                         time.perf_counter() - step, scored["decisions"])
    summary["seconds"] = time.perf_counter() - started
    (run_dir / "report.json").write_text(json.dumps(summary, indent=2, default=str))
    if remote_runs:
        artefacts = _upload_run(run_dir, f"{str(runs_dir).rstrip('/')}/{run_id}", endpoint_url, artefacts)
    return NightlyResult(run_id, run_dir, version, promoted, registry.champion(), artefacts, summary)
