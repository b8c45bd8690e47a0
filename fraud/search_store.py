"""Where the search's trials persist, so that each night starts from the previous nights.

One Optuna study per candidate kind, ``<study_name>-<kind>``, in the storage that
``[search] storage`` names:

- "" or "memory": in memory, gone with the process (the Python API's default: a library
  call writes no files it was not asked to);
- ``fraud train`` with "" and a local registry: ``sqlite:///<registry>/search.sqlite3``
  (``default_storage``);
- any SQLAlchemy URL: ``sqlite:///path`` on one machine; in AWS, where each night is a fresh
  Batch container, a database every job reaches (``postgresql://...`` on RDS or Aurora
  Serverless: Optuna's ``RDBStorage`` creates its tables on first use). A journal file on
  EFS (``optuna.storages.JournalStorage``) would also do; neither is built by ``infra/``.

Warm start: the TPE sampler models every earlier trial of the study (all nights), and the
candidate's first trial tonight re-evaluates the best parameters of the latest earlier run
on tonight's folds (``previous_best``). Selection uses tonight's trials only: earlier
values were measured on other windows.
"""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
from optuna.trial import TrialState

from .config import FraudConfig, SearchConfig

log = logging.getLogger(__name__)

STORE_FILE = "search.sqlite3"


def default_storage(config: FraudConfig, registry_uri: str | None = None) -> FraudConfig:
    """``config`` with the study beside a local registry when ``[search] storage`` is ""
    (``fraud train``'s default); unchanged for a remote registry or an explicit storage."""
    uri = registry_uri or config.registry.uri
    if config.search.storage or "://" in uri:
        return config
    url = f"sqlite:///{(Path(uri) / STORE_FILE).resolve()}"
    return config.model_copy(update={"search": config.search.model_copy(update={"storage": url})})


def storage_for(cfg: SearchConfig):
    """The Optuna storage of ``cfg.storage`` (None: in memory)."""
    if cfg.storage in ("", "memory"):
        return None
    if cfg.storage.startswith("sqlite:///"):
        Path(cfg.storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(cfg.storage)


def _pruner(cfg: SearchConfig) -> optuna.pruners.BasePruner:
    """Median: a trial stops when its best validation AP trails the median of the earlier
    trials at the same round (after three finished trials and the first 20 rounds).
    Hyperband: budgets in boosting rounds, for many cheap trials."""
    if cfg.pruner == "none":
        return optuna.pruners.NopPruner()
    if cfg.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=4 * cfg.report_every, max_resource=cfg.max_rounds)
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=4 * cfg.report_every)


def open_study(kind: str, cfg: SearchConfig, storage, index: int) -> optuna.Study:
    """The kind's study, created or loaded; the sampler's seed follows the config's seed,
    the kind and how many trials the study already holds (the same history and seed
    sample the same points)."""
    name = f"{cfg.study_name}-{kind}"
    study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True, direction="maximize",
                                pruner=_pruner(cfg))
    held = len(study.get_trials(deepcopy=False))
    study.sampler = optuna.samplers.TPESampler(seed=(cfg.seed * 1009 + index * 97 + held) % 2**31,
                                               n_startup_trials=5, multivariate=True,
                                               constant_liar=False)
    return study


def previous_best(study: optuna.Study, run: str) -> tuple[dict, int] | None:
    """The best parameters of the latest earlier run in ``study`` and how many finished
    trials earlier runs left; None for a study without them."""
    earlier = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
               if t.user_attrs.get("run") not in (None, run)]
    if not earlier:
        return None
    latest = max(earlier, key=lambda t: t.datetime_start).user_attrs["run"]
    best = max((t for t in earlier if t.user_attrs["run"] == latest), key=lambda t: t.value)
    return dict(best.user_attrs.get("params", best.params)), len(earlier)
