"""Experiment tracking: every nightly run and every search trial in MLflow.

The registry keeps what is served; MLflow keeps how each night got there, so a data
scientist can compare nights (did gamma drift? did the focal family keep its edge?) in
`mlflow ui`. One parent run per nightly run (the winner's parameters, the test figures,
the gate's decision, the report and its figures as artefacts), one nested run per search
trial (its candidate, parameters, validation AP, rounds and seconds). Tracking is
bookkeeping: a store that cannot be written is logged and the night goes on.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from .config import TrackingConfig

log = logging.getLogger(__name__)
ARTEFACT_SUFFIXES = (".html", ".json", ".png")


def tracking_uri(config: TrackingConfig, runs_dir) -> str | None:
    """Where runs are tracked: the configured URI, else SQLite beside a local runs folder
    (``mlflow.db`` in its parent: for the default ``runs`` that is MLflow's own default,
    ``./mlflow.db``, so a bare ``mlflow ui`` finds it; inside ``runs`` it would be taken for
    a run); None when tracking is off or the runs go to S3 with no URI configured."""
    if not config.enabled:
        return None
    if config.uri:
        return config.uri
    if str(runs_dir).startswith("s3://"):
        return None
    return f"sqlite:///{(Path(runs_dir).resolve().parent / 'mlflow.db')}"


def _flat(prefix: str, params: dict) -> dict:
    return {f"{prefix}{k}": v for k, v in (params or {}).items()}


def _finite(metrics: dict) -> dict:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def track_run(config: TrackingConfig, runs_dir, run_dir: Path, summary: dict) -> dict:
    """Log the run and its trials; returns where (``{"uri", "experiment", "run_id"}``),
    ``{"error": ...}`` if the store failed, or ``{}`` when tracking is off."""
    uri = tracking_uri(config, runs_dir)
    if uri is None:
        return {}
    try:
        import mlflow
    except ImportError:
        log.info("experiment tracking is on but MLflow is not installed (pip install 'focal-fraud[tracking]'): "
                 "this run is in the registry and its report only")
        return {"off": "mlflow is not installed"}
    try:

        mlflow.set_tracking_uri(uri)
        artefacts = (Path(runs_dir).resolve().parent / "mlartifacts").as_uri() if not config.uri else None
        experiment = mlflow.get_experiment_by_name(config.experiment)
        experiment_id = experiment.experiment_id if experiment else mlflow.create_experiment(
            config.experiment, artifact_location=artefacts)
        winner = summary["winner"]
        with mlflow.start_run(experiment_id=experiment_id, run_name=summary.get("run_id")) as parent:
            mlflow.log_params({"winner": winner["kind"], "gamma": winner["gamma"], "alpha": winner["alpha"],
                               "as_of": summary["split"]["as_of"], **_flat("winner.", winner["params"])})
            test = summary["test"]
            mlflow.log_metrics(_finite({
                "test_average_precision": test["average_precision"], "test_auc_roc": test["auc_roc"],
                "test_recall_at_thresholds": test["policy"]["recall"],
                "test_reviews_per_day": test["policy"]["reviews_per_day"],
                "test_average_precision_unfiltered": summary.get("test_unfiltered", {}).get("average_precision"),
                **{f"test_average_precision.{k}": c["test_average_precision"]
                   for k, c in summary["candidates"].items()},
                **{f"validation_average_precision.{k}": c["validation_average_precision"]
                   for k, c in summary["candidates"].items()}}))
            mlflow.set_tags({"gate": summary.get("gate", {}).get("decision", ""),
                             "registry_version": summary.get("registry_version", ""),
                             "focal_vs_baseline": summary.get("comparison", {}).get("difference", {}).get("verdict", "")})
            for i, trial in enumerate(summary.get("trials", [])):
                with mlflow.start_run(experiment_id=experiment_id, run_name=f"{trial['kind']} trial {i}", nested=True):
                    mlflow.log_params({"candidate": trial["kind"], **_flat("", trial["params"])})
                    mlflow.log_metrics(_finite({"validation_average_precision": trial["validation_ap"],
                                                "rounds": trial.get("rounds"), "seconds": trial.get("seconds")}))
            for path in sorted(run_dir.iterdir()):
                if path.suffix in ARTEFACT_SUFFIXES and path.is_file():
                    mlflow.log_artifact(str(path))
        log.info("tracked in MLflow %s, experiment %s, run %s", uri, config.experiment, parent.info.run_id)
        return {"uri": uri, "experiment": config.experiment, "run_id": parent.info.run_id}
    except Exception as exc:  # noqa: BLE001 - bookkeeping must not fail a night that trained and published
        log.warning("experiment tracking failed (%s): the run is in the registry and its report, not in MLflow",
                    exc, exc_info=True)
        return {"error": f"{type(exc).__name__}: {exc}"}
