"""The run configuration: one TOML file, validated by pydantic, with defaults for the
embedded simulated data.

Sections: ``[columns]`` maps a user's column names onto ours; ``[data]`` sets the label
delay and how much bad input is tolerated; ``[features]`` the windows; ``[split]``,
``[search]``, ``[policy]``, ``[gate]`` drive the nightly job; ``[registry]`` says where
models live; ``[simulation]`` sizes the embedded default data.
"""

from __future__ import annotations

import tomllib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_CONFIG_PATH = Path(__file__).with_name("defaults") / "config.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnMapping(_Section):
    """Our column name -> the name in the user's table. Optional columns may be None."""

    transaction_id: str = "transaction_id"
    timestamp: str = "timestamp"
    card_id: str = "card_id"
    terminal_id: str = "terminal_id"
    amount: str = "amount"
    currency: str | None = None
    channel: str | None = None
    country: str | None = None
    merchant_category: str | None = None
    device_id: str | None = None
    card_lat: str | None = None
    card_lon: str | None = None
    terminal_lat: str | None = None
    terminal_lon: str | None = None
    label: str | None = "label"
    label_time: str | None = None
    fraud_pattern: str | None = None  # kind of fraud, for per-class metrics in the report

    REQUIRED: ClassVar[tuple[str, ...]] = ("transaction_id", "timestamp", "card_id", "terminal_id", "amount")

    def present(self) -> dict[str, str]:
        """Our name -> source name, for the columns that are mapped."""
        return {ours: theirs for ours, theirs in self.model_dump().items() if theirs}

    @property
    def has_locations(self) -> bool:
        return all((self.card_lat, self.card_lon, self.terminal_lat, self.terminal_lon))


class DataConfig(_Section):
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")  # the amounts' currency: the model scores in it
    label_delay_days: float = Field(7.0, ge=0)
    max_bad_row_fraction: float = Field(0.01, ge=0, le=1)
    chunk_rows: int = Field(250_000, gt=0)
    quarantine_dir: str = "quarantine"
    # strptime format of timestamps given as text, e.g. "%d/%m/%Y %H:%M"; "" = ISO-8601 only
    timestamp_format: str = ""
    # IANA time zone of timestamps written without an offset (and of the calendar features:
    # hour, night and weekend are the business's local ones), e.g. "Europe/Paris"
    timezone: str = "UTC"

    @property
    def label_delay(self) -> timedelta:
        return timedelta(days=self.label_delay_days)

    @field_validator("timezone")
    @classmethod
    def _iana_zone(cls, v):
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {v!r} is not an IANA time zone name such as 'UTC' or 'Europe/Paris'") from None
        return v

    @field_validator("timestamp_format")
    @classmethod
    def _strptime_format(cls, v):
        if v:
            sample = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
            try:
                if "%" not in v:
                    raise ValueError(v)
                datetime.strptime(sample.strftime(v), v)
            except ValueError:
                raise ValueError(f"timestamp_format {v!r} is not a strptime format such as "
                                 "'%d/%m/%Y %H:%M' (leave it empty for ISO-8601)") from None
        return v


class FeatureConfig(_Section):
    """Windows in seconds. Each window is aligned to buckets (see fraud.features.spec)."""

    card_windows: tuple[int, ...] = (3600, 86400, 7 * 86400, 30 * 86400)
    terminal_windows: tuple[int, ...] = (86400, 7 * 86400, 30 * 86400)
    label_windows: tuple[int, ...] = (7 * 86400, 30 * 86400)
    # common point of compromise (fraud.features.spec): [] turns these features off; each
    # window at most history_window (the online state finds a card's terminals in ``seen``)
    compromise_windows: tuple[int, ...] = ()  # off by default: fraud/defaults/config.toml says why
    history_window: int = 30 * 86400
    night_hours: tuple[int, int] = (0, 6)

    @field_validator("card_windows", "terminal_windows", "label_windows")
    @classmethod
    def _positive(cls, v):
        if not v or any(w <= 0 for w in v):
            raise ValueError("windows must be positive numbers of seconds")
        return tuple(sorted(set(v)))

    @field_validator("compromise_windows")
    @classmethod
    def _positive_or_none(cls, v):
        if any(w <= 0 for w in v):
            raise ValueError("windows must be positive numbers of seconds")
        return tuple(sorted(set(v)))

    @model_validator(mode="after")
    def _within_history(self):
        if self.compromise_windows and max(self.compromise_windows) > self.history_window:
            raise ValueError(f"compromise_windows must be at most history_window ({self.history_window} s): "
                             "the online state finds a card's terminals among those it used within it")
        return self


class SplitConfig(_Section):
    """Time-ordered evaluation windows, in days, counted back from the newest label-complete day."""

    train_days: int = Field(90, gt=0)
    validation_days: int = Field(21, gt=0)
    test_days: int = Field(21, gt=0)
    gap_days: float | None = None  # default: the label delay
    prequential_folds: int = Field(2, ge=1)
    # refit the winner past validation (fraud.refit), the twin: calibration and thresholds
    # then come from its scores on the first calibration_days of the test window (default:
    # half of it), the test figures and the gate from the rest
    refit: bool = True
    calibration_days: int | None = Field(None, gt=0)
    # with refit, serve the winner refitted again on the newest label-complete window (ending
    # at as_of - label delay: 0 days from its label cutoff), calibrated from the twin (its
    # scores mapped onto the twin's by quantile on the newest days) with the twin's
    # thresholds, unless of the rows the twin sends to review there the latest sends fewer
    # than transfer_min_overlap (then the twin, 28 days old, is served)
    serve_latest: bool = True
    transfer_min_overlap: float = Field(0.5, gt=0, le=1)


Range = tuple[float, ...]  # [low, high] of a searched hyper-parameter; one value fixes it


class SearchConfig(_Section):
    """The hyper-parameter search (fraud.search): the budget is the whole search's, all
    candidates together; trials go to the candidates whose best could still win."""

    time_budget_s: float = Field(240, gt=0)   # wall time of the whole search, held to +10 %
    max_trials: int = Field(40, gt=0)          # all candidates together (each gets one at least)
    # every candidate is searched this far before promise decides: the focal-vs-baseline
    # comparison means something only against baselines that were tuned too
    min_trials_per_candidate: int = Field(5, ge=1)
    trial_time_cap_s: float | None = Field(None, gt=0)  # one trial; default: the budget / candidates
    # ranges sampled by the search (learning_rate, min_child_weight_scale, reg_lambda on a log scale)
    gamma: Range = (0.0, 5.0)
    alpha: Range = (0.05, 0.95)
    learning_rate: Range = (0.02, 0.3)
    max_depth: tuple[int, ...] = (3, 8)
    min_child_weight_scale: Range = (0.25, 4.0)  # times the library default (focal: hessian-scaled)
    subsample: Range = (0.5, 1.0)
    colsample_bytree: Range = (0.5, 1.0)
    reg_lambda: Range = (0.1, 10.0)
    beta: Range = (0.9, 0.99999)   # cb_focal_xgb's effective-number beta (log scale of 1 - beta)
    gamma_end: Range = (0.0, 5.0)  # focal_xgb_gamma_schedule's last-round gamma (gamma: its first)
    pruner: str = Field("median", pattern="^(median|hyperband|none)$")
    report_every: int = Field(5, gt=0)         # boosting rounds between intermediate validation AP reports
    # where the trials persist, so each night's search starts from the previous nights'
    # (fraud.search_store): "" keeps them in memory, except that `fraud train` then uses
    # <registry>/search.sqlite3 for a local registry; any SQLAlchemy URL (sqlite:///...,
    # postgresql://... for a store shared by AWS Batch jobs) or "memory"
    storage: str = ""
    study_name: str = "fraud"
    max_rounds: int = Field(400, gt=0)
    early_stopping_rounds: int = Field(30, gt=0)
    # also available (fraud.models): "cb_focal_xgb", "focal_xgb_gamma_schedule"
    candidates: tuple[str, ...] = ("focal_xgb", "focal_lgbm", "logistic_xgb", "weighted_logistic_xgb")
    calibration: str = "platt"
    # legitimate training rows kept (and up-weighted by 1/rate): fraud sets are >99% easy
    # negatives, and a quarter of them trains as well in a quarter of the time
    negative_sample_rate: float = Field(0.25, gt=0, le=1)
    seed: int = 0
    n_jobs: int | None = None  # threads per fit; default: the CPUs this process may use (cgroup quota included)
    device: str = Field("cpu", pattern="^(cpu|cuda)$")  # "cuda": XGBoost trains on the GPU

    RANGE_LIMITS: ClassVar[dict[str, tuple[float, float]]] = {
        "gamma": (0.0, 20.0), "alpha": (1e-6, 1 - 1e-6), "learning_rate": (1e-4, 1.0), "max_depth": (1, 16),
        "min_child_weight_scale": (1e-3, 1e3), "subsample": (0.05, 1.0), "colsample_bytree": (0.05, 1.0),
        "reg_lambda": (1e-4, 1e4), "beta": (0.0, 1 - 1e-7), "gamma_end": (0.0, 20.0)}

    @field_validator(*RANGE_LIMITS)
    @classmethod
    def _range(cls, v, info):
        lo, hi = cls.RANGE_LIMITS[info.field_name]
        if len(v) not in (1, 2) or v[0] > v[-1]:
            raise ValueError("must be [low, high] with low <= high, or one value to fix it")
        if v[0] < lo or v[-1] > hi:
            raise ValueError(f"must lie within [{lo:g}, {hi:g}]")
        return v

    @field_validator("calibration")
    @classmethod
    def _calibration(cls, v):
        if v not in ("isotonic", "platt"):
            raise ValueError("calibration must be 'isotonic' or 'platt'")
        return v


class PolicyConfig(_Section):
    review_capacity_per_day: float = Field(60, ge=0)
    review_cost: float = Field(5.0, ge=0)
    false_decline_cost: float = Field(15.0, ge=0)
    fraud_loss_multiplier: float = Field(1.0, ge=0)
    target_recall: float | None = Field(None, gt=0, le=1)
    decline_precision_floor: float = Field(0.8, ge=0, le=1)


class GateConfig(_Section):
    average_precision_tolerance: float = Field(0.01, ge=0)
    recall_at_capacity_tolerance: float = Field(0.02, ge=0)


class RegistryConfig(_Section):
    uri: str = "registry"  # a local directory or s3://bucket/prefix


class SimulationConfig(_Section):
    days: int = Field(180, gt=0)
    start_date: str = "2026-01-01"
    n_customers: int = Field(5000, gt=0)
    n_terminals: int = Field(2000, gt=0)
    seed: int = 42
    # only transaction_id, timestamp, card_id, terminal_id, amount, label and label_time: data
    # as most teams have it (the features of the other columns are left out)
    basic_columns: bool = False
    # a drift scenario: from this day on, card testing moves from tiny amounts at digital-goods
    # merchants to 8-40 amounts at online marketplaces, three times as often (None: no drift)
    drift_day: int | None = Field(None, ge=0)


class ReportConfig(_Section):
    # retrain the winner's configuration without each feature family (fraud.ablation) and
    # show the test AP of each in the report: one fit per family, no search. Off by default:
    # on the default data its ~9 fits cost more than 20 % of the run
    ablation: bool = False


class MonitoringConfig(_Section):
    """``fraud monitor`` (fraud.monitoring): drift of the decision log against the champion's
    reference, and the policy's recall from labels as they arrive. A day (or recall window)
    with fewer rows or labelled frauds than the minimum gets no verdict, so small days do
    not flap."""
    decisions_uri: str = ".fraud/decisions"    # the decision log (fraud.decisions); s3://bucket/decisions in AWS
    psi_threshold: float = Field(0.2, gt=0)    # PSI above this on the score or an important feature: DRIFT
    psi_epsilon: float = Field(1e-4, gt=0, lt=0.01)  # share given to an empty bin (ln 0 is undefined)
    min_rows: int = Field(1000, ge=1)          # scored rows a day needs for a PSI verdict
    min_labels: int = Field(30, ge=1)          # labelled frauds the recall window needs for a recall verdict
    recall_slo: float = Field(0.7, gt=0, le=1)  # review+decline recall of labelled frauds below this: RECALL_BELOW_SLO
    recall_window_days: int = Field(14, ge=1)  # scored days whose labels count towards the current recall
    # the recall window ends this many days before the judged day: a caught fraud comes back
    # within hours (the reviewer), a missed one only by chargeback, so the newest days' recall
    # reads high. Set it to when most chargebacks are back (7: about 73 % of the simulator's,
    # whose delays have a median of 4 days; a team's own chargeback delays decide)
    recall_lag_days: int = Field(7, ge=0)
    hard_p_t: float = Field(0.5, gt=0, lt=1)   # a labelled row whose p_t (model margin) is below this is hard
    important_features: int = Field(10, ge=0)  # the champion's top-k by importance decide DRIFT; 0 = all
    # features a day's own date fixes (one weekday per day): their daily PSI is shown, never judged
    calendar_features: tuple[str, ...] = ("weekday", "is_weekend")
    days: int = Field(28, ge=1)                # days of the decision log shown and plotted


class RetrainConfig(_Section):
    """Retrain triggers (fraud.monitoring.triggers): ``fraud monitor --act`` and, in AWS, the
    recall/PSI alarms start training unless a retrain started within ``cooldown_hours`` or
    fewer than ``min_new_labels`` labels became known since it started."""
    cooldown_hours: float = Field(12.0, ge=0)
    min_new_labels: int = Field(50, ge=0)
    schedule_hours: float | None = Field(None, gt=0)  # a retrain is due this long after the last start (None: off)


class TrainingConfig(_Section):
    # sample weight of the training rows that are reviewed hard examples (fraud.hard_examples:
    # queued, then labelled); 1.0 = off
    hard_example_weight: float = Field(1.0, gt=0)


class HardExamplesConfig(_Section):
    """``fraud hard-examples`` (fraud.hard_examples): what the model is least sure about, queued
    for labelling (p_t's bound is ``[monitoring] hard_p_t``)."""
    uri: str = ".fraud/hard-examples"         # the queue; s3://<bucket>/hard-examples in AWS
    threshold_margin: float = Field(0.05, ge=0, lt=1)  # |calibrated p - review threshold| at most this
    per_day: int = Field(100, ge=1)            # queued per scored day, the most uncertain first


class TrackingConfig(_Section):
    """Experiment tracking (MLflow): every trial's parameters and figures, every run's
    figures and report. ``uri`` "" = a SQLite store beside the local runs folder
    (``mlflow.db`` and ``mlartifacts`` in its parent); any MLflow tracking URI otherwise
    (a tracking server for runs on S3)."""
    enabled: bool = True
    uri: str = ""
    experiment: str = "fraud-nightly"


class ChallengerConfig(_Section):
    """A challenger scored beside the champion (fraud.challenger): what its promotion needs
    (``fraud challenger promote``, the nightly job) and when a canary is rolled back
    (``fraud challenger check``)."""
    min_shadow_days: float = Field(7.0, ge=0)   # days both models scored the traffic before a promotion
    min_labels: int = Field(200, ge=1)          # labels of shadow-scored transactions before a promotion
    min_frauds: int = Field(5, ge=1)            # of them frauds (AP and recall need some)
    average_precision_tolerance: float = Field(0.01, ge=0)  # challenger AP may be this much below the champion's
    recall_tolerance: float = Field(0.02, ge=0)  # recall at each model's own thresholds, likewise
    # the nightly job sets a version that passes its gate as the shadow challenger (when none
    # is set) instead of promoting it; promoted by a later night once the shadow verdict allows
    shadow_first: bool = False
    canary_recall_tolerance: float = Field(0.05, ge=0)     # canary-decided recall this far below: rolled back
    canary_precision_tolerance: float = Field(0.05, ge=0)  # likewise for precision
    canary_min_labels: int = Field(100, ge=1)   # labelled transactions each side needs before a judgement
    canary_min_frauds: int = Field(10, ge=1)    # labelled frauds each side needs (recall's denominator)
    canary_min_flagged: int = Field(10, ge=1)   # labelled reviews + declines each side needs (precision's)


class FraudConfig(_Section):
    columns: ColumnMapping = ColumnMapping()
    data: DataConfig = DataConfig()
    features: FeatureConfig = FeatureConfig()
    split: SplitConfig = SplitConfig()
    search: SearchConfig = SearchConfig()
    policy: PolicyConfig = PolicyConfig()
    gate: GateConfig = GateConfig()
    registry: RegistryConfig = RegistryConfig()
    simulation: SimulationConfig = SimulationConfig()
    report: ReportConfig = ReportConfig()
    tracking: TrackingConfig = TrackingConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    retrain: RetrainConfig = RetrainConfig()
    training: TrainingConfig = TrainingConfig()
    hard_examples: HardExamplesConfig = HardExamplesConfig()
    challenger: ChallengerConfig = ChallengerConfig()


class ConfigError(ValueError):
    """A config that cannot be used, said in one line naming the file and the field."""


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> FraudConfig:
    """The packaged default config, overlaid section by section with the TOML at ``path``
    and then with ``overrides`` (a nested dict of the same shape).

    Except ``[columns]``: a layer that has it replaces the mapping (``user_columns``), so
    an optional column the default maps but your table lacks is never assumed. Raises
    ``ConfigError`` for a file that cannot be read, is not TOML or does not validate.
    """
    where = f"config {path}" if path else "config"
    raw = tomllib.loads(DEFAULT_CONFIG_PATH.read_text())
    layers = [_read_toml(Path(path))] if path else []
    for layer in layers + [overrides or {}]:
        for section, values in layer.items():
            if not isinstance(values, dict):
                raise ConfigError(f"{where}: [{section}] must be a table")
            if section == "columns":
                raw["columns"] = user_columns(values)
            else:
                raw.setdefault(section, {}).update(values)
    try:
        return FraudConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: " + "; ".join(_describe(error) for error in exc.errors())) from None


def user_columns(values: dict) -> dict:
    """A user's ``[columns]`` as the whole mapping: the required columns and ``label`` are
    ours unless named (our names: a table with them needs no mapping), and an optional
    column is mapped only when named (empty = not mapped)."""
    ours = {name: name for name in (*ColumnMapping.REQUIRED, "label")}
    optional = {name: None for name in ColumnMapping.model_fields if name not in ours}
    return {**ours, **optional, **values}


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"config {path}: cannot read it ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path}: not valid TOML: {exc}") from None


# keys of earlier versions: the message names the key that replaced each
RENAMED = {("search", "gammas"): "gamma = [low, high]", ("search", "alphas"): "alpha = [low, high]",
           ("search", "max_depths"): "max_depth = [low, high]",
           ("search", "learning_rates"): "learning_rate = [low, high]"}


def _describe(error: dict) -> str:
    """One pydantic error as ``[section] key: what is wrong (got value)``."""
    section, *rest = [str(part) for part in error["loc"]] or ["?"]
    field = f"[{section}] {'.'.join(rest)}".rstrip()
    if error["type"] == "extra_forbidden":
        renamed = RENAMED.get(tuple(error["loc"]))
        return f"{field}: unknown key" + (f" (now {renamed})" if renamed else "")
    message = error["msg"].removeprefix("Value error, ")
    return f"{field}: {message} (got {error['input']!r})"


def config_as_toml(config: FraudConfig) -> str:
    """The config as a TOML file that ``load_config`` reads back to the same config; keys
    whose value is None (TOML has no null) are left out, and read back as None."""
    import tomli_w

    def without_none(value):
        if isinstance(value, dict):
            return {k: without_none(v) for k, v in value.items() if v is not None}
        return value

    return tomli_w.dumps(without_none(config.model_dump(mode="json")))
