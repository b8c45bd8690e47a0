"""The ``fraud`` command line.

    fraud train                 the nightly job on the embedded default (simulates data if absent)
    fraud train --data DIR --config my.toml     on your own transactions
    fraud train --as-of 2026-06-01 --from 2026-01-01 --to 2026-06-01    a past moment, a date range
    fraud simulate --days 180 --out data/transactions
    fraud score-batch --input DAY --output scores.parquet --history DIR | --no-history [--dask local]
    fraud registry list | show [VERSION]        versions with their figures; one version (default: the champion)
    fraud promote VERSION / fraud rollback VERSION
    fraud config show [--format toml|json] | validate FILE     the merged configuration; check a file
    fraud --version

Global options (--config, --registry, -v) go before or after the subcommand; $FRAUD_CONFIG is
the default --config. Exit codes: 0 ok, 1 failure (logged with its traceback), 2 usage error
or bad input (one line on stderr: config, data, registry version, missing champion).
    fraud serve                 the scoring API under uvicorn, on the local registry
    fraud api-key create [--secret-arn ARN]     a new API key, printed once, its digest stored
    fraud state load --history SRC [--since DATE] [--features-table NAME]   online feature state from history
    fraud state catch-up --history SRC --features-table NAME   what the lake holds beyond the state's watermark
    fraud labels import FILE|s3://bucket/drop/ [--store URI]    labels for training (all checked, then stored)
    fraud decisions compact [--root DIR]   the local decision log's closed days into Parquet
    fraud monitor [--decisions URI] [--labels URI] [--out DIR]   drift and recall of the champion; exit 3 unhealthy
    fraud monitor --act         ... and start `fraud train` on a retrain trigger (cooldown, minimum new labels)
    fraud hard-examples [--day DATE]   the day's (default: yesterday's, UTC) hard examples queued for labelling
    fraud challenger set VERSION [--canary SHARE] | clear | status | promote | check   shadow, canary, exit 3 refused
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

DEFAULT_DATA = "data/transactions"
DEFAULT_LABELS = ".fraud/labels"


def _setup_logging(verbose: bool, log_file: Path | None = None) -> None:
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("distributed", "numba", "matplotlib", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _config(args):
    from fraud.config import load_config

    device = os.environ.get("FRAUD_DEVICE")  # the GPU Batch job sets cuda
    return load_config(args.config, overrides={"search": {"device": device}} if device else None)


def cmd_simulate(args) -> int:
    from fraud.simulator import TransactionSimulator

    config = _config(args)
    sim = config.simulation
    files = TransactionSimulator(n_customers=sim.n_customers, n_terminals=sim.n_terminals, start_date=sim.start_date,
                                 seed=args.seed if args.seed is not None else sim.seed,
                                 label_delay_days=config.data.label_delay_days,
                                 basic_columns=args.basic or sim.basic_columns,
                                 drift_day=sim.drift_day).write(args.out, args.days or sim.days)
    print(f"wrote {len(files)} daily partitions to {args.out}")
    return 0


def cmd_train(args) -> int:
    from fraud.search_store import default_storage
    from fraud.splits import TrainingWindow

    from .nightly import run_nightly

    config = default_storage(_config(args), args.registry)  # the search's trials persist beside the registry
    if args.trigger:  # started by a retrain trigger: the cooldown and the minimum of new labels first
        from .retrain import TRIGGER_DETAIL_ENV, admit_training_start

        decision = admit_training_start(args.trigger, config, triggers_uri=args.triggers, labels_uri=args.labels,
                                        endpoint_url=os.environ.get("FRAUD_AWS_ENDPOINT_URL"),
                                        detail=os.environ.get(TRIGGER_DETAIL_ENV))
        if decision is not None and not decision.fired:
            print(f"not training: {decision.message} (recorded in {args.triggers})")
            return 0
    data = args.data or os.environ.get("FRAUD_DATA_URI") or DEFAULT_DATA
    window = TrainingWindow.parse(args.window_from, args.window_to, args.as_of, config.data.timezone)
    try:
        result = run_nightly(config, data, registry_uri=args.registry, runs_dir=args.runs,
                             simulate_if_missing=data == DEFAULT_DATA, dask=args.dask, score_latest=not args.no_score,
                             progress=not args.no_progress, config_path=args.config, window=window,
                             labels_uri=args.labels, hard_examples_uri=args.hard_examples)
    except BaseException:
        _training_metric(False)
        raise
    _training_metric(True)
    s = result.summary
    test = s["test"]
    print("\n== nightly run", result.run_id, "==")
    print(f"data:        {s['data']['rows']:,} transactions from {data} ({s['data']['invalid_rows']} quarantined)")
    print("candidates (validation AP -> test AP):")
    for kind, c in s["candidates"].items():
        mark = "*" if kind == s["winner"]["kind"] else " "
        print(f"  {mark} {kind:24s} {c['validation_average_precision']:.4f} -> {c['test_average_precision']:.4f}")
    print(f"winner:      {s['winner']['kind']} (gamma {s['winner']['gamma']}, alpha {s['winner']['alpha']}): "
          f"{s['choice']['reason']}")
    print(f"test:        AUC {test['auc_roc']:.4f}, AP {test['average_precision']:.4f}, recall at thresholds "
          f"{test['policy']['recall']:.3f}, {test['policy']['reviews_per_day']:.1f} reviews/day, "
          f"card precision@{test['card_precision_at_k']['k']} {test['card_precision_at_k']['mean']:.3f}")
    print(f"thresholds:  review >= {s['policy']['thresholds']['review']:.4f}, "
          f"decline >= {s['policy']['thresholds']['decline']:.4f}")
    print(f"gate:        {s['gate']['decision']}: {s['gate']['reason']}")
    print(f"registry:    version {result.version} ({'promoted' if result.promoted else 'not promoted'}); "
          f"champion is {result.champion}")
    for name, path in result.artefacts.items():
        print(f"{name + ':':12s} {path}")
    print(f"took {s['seconds']:.0f} s")
    return 0


def _training_metric(succeeded: bool) -> None:
    """In AWS, one EMF line per run: the alarm on missing successes watches it."""
    if os.environ.get("FRAUD_TRAINING_METRICS") != "emf":
        return
    from fraud.storage.metrics import EMFMetricsSink

    EMFMetricsSink(os.environ.get("FRAUD_METRICS_NAMESPACE", "FraudScoring"), "fraud-training").put(
        {"TrainingRunSucceeded": (1 if succeeded else 0, "Count"), "TrainingRunFailed": (0 if succeeded else 1, "Count")})


def cmd_score_batch(args) -> int:
    from fraud.registry import ModelRegistry

    from .scoring import score_batch

    config = _config(args)
    registry = ModelRegistry.open(args.registry or config.registry.uri)
    if args.dask:  # read, score and write on the workers: --output is a directory of partitions
        from fraud.features.distributed import dask_client

        from .dask_score import score_batch_dask

        with dask_client(args.dask) as client:
            result = score_batch_dask(client, args.input, args.output, config, registry, history_source=args.history,
                                      raw_card_ids=args.raw_card_ids, no_history=args.no_history)
        print(json.dumps(result, indent=2))
        return 0
    result = score_batch(args.input, args.output, config, registry, history_source=args.history,
                         chunk_rows=args.chunk_rows, dask=args.dask, progress=not args.no_progress,
                         raw_card_ids=args.raw_card_ids, no_history=args.no_history)
    print(json.dumps(result, indent=2))
    return 0


def cmd_registry(args) -> int:
    from fraud.registry import ModelRegistry, RegistryError

    from .registry_table import registry_lines

    registry = ModelRegistry.open(args.registry or _config(args).registry.uri)
    if args.action == "list":  # a version the registry refuses is listed with why, not hidden
        print("\n".join(registry_lines(registry, args.last)))
        return 0
    champion = registry.champion()
    version = args.version or champion
    if version is None:
        raise RegistryError(f"no champion model in {registry.uri} to show: name a version (`fraud registry list`) "
                            "or train one with `fraud train`")
    print(json.dumps({"champion": version == champion, "manifest": registry.manifest(version),
                      "metrics": {k: v for k, v in registry.read_json(version, "metrics.json").items()
                                  if k in ("winner", "test", "policy", "gate")}}, indent=2, default=str))
    return 0


def cmd_config(args) -> int:
    """The merged configuration (packaged defaults, --config, $FRAUD_DEVICE), or a file checked."""
    from fraud.config import config_as_toml, load_config

    if args.config_action == "validate":
        load_config(args.file)  # ConfigError: exit 2 with the file and the field
        print(f"{args.file}: ok")
        return 0
    config = _config(args)
    print(config_as_toml(config) if args.format == "toml" else json.dumps(config.model_dump(mode="json"), indent=2))
    return 0


def cmd_promote(args, action: str) -> int:
    from fraud.registry import ModelRegistry

    registry = ModelRegistry.open(args.registry or _config(args).registry.uri)
    if action == "rollback":
        changed = registry.rollback(args.version, args.reason or "manual rollback")
    else:
        changed = registry.promote(args.version, args.reason or "manual promotion")
    print(f"champion is now {registry.champion()}" if changed
          else f"{args.version} is the champion already; nothing changed")
    return 0


def cmd_api_key(args) -> int:
    """Make a key, print it once, keep only its digest."""
    from fraud.api_keys import API_KEYS_SECRET, create_api_key
    from fraud.storage.secrets import open_secret_store

    store = open_secret_store(bool(args.secret_arn), os.environ.get("FRAUD_AWS_ENDPOINT_URL"))
    key = create_api_key(store, args.secret_arn or API_KEYS_SECRET)
    where = args.secret_arn or getattr(store, "root", "")
    print(f"x-api-key: {key}")
    print(f"(shown once; only its SHA-256 digest was stored, in {where})", file=sys.stderr)
    return 0


def cmd_state(args) -> int:
    """The online feature state, for the champion's spec, under the API's hash key: loaded
    from history, or caught up with the data lake beyond its watermark."""
    from fraud.io import load_transactions
    from fraud.pseudonym import configured_pseudonymizer
    from fraud.registry import ModelRegistry
    from fraud.storage.kv import DynamoDBKeyValueStore, InMemoryKeyValueStore
    from fraud.validation import InputError

    config = _config(args)
    endpoint = os.environ.get("FRAUD_AWS_ENDPOINT_URL")
    keys = configured_pseudonymizer(endpoint)
    registry = ModelRegistry.open(args.registry or config.registry.uri, endpoint, keys=keys)
    bundle = registry.load_champion()
    table = args.features_table or os.environ.get("FRAUD_FEATURES_TABLE")
    if args.action == "catch-up" and not table:
        raise InputError("state catch-up needs the features table: --features-table or $FRAUD_FEATURES_TABLE")
    frame, _ = load_transactions(args.history, config, endpoint_url=endpoint)
    store = DynamoDBKeyValueStore(table, endpoint) if table else InMemoryKeyValueStore()
    if args.action == "catch-up":
        from .state_catch_up import catch_up_state

        summary = catch_up_state(frame, bundle.spec, store, keys, as_of=args.as_of, since=args.since,
                                 progress=not args.no_progress)
        print("\n".join(summary.lines()))
        print(f"caught up DynamoDB table {table}")
        return 0
    from .state_load import load_state

    summary = load_state(frame, bundle.spec, store, keys, since=args.since, as_of=args.as_of, source=args.history,
                         progress=not args.no_progress,
                         extra={"model_version": bundle.metadata.get("version"), "table": table})
    print("\n".join(summary.lines()))
    if table:
        print(f"loaded into DynamoDB table {table}")
    else:
        print("dry run: no --features-table (or $FRAUD_FEATURES_TABLE), so the state went to an in-memory store "
              "that ends with this process; `fraud serve` warms its own from the local history")
    return 0


def cmd_labels(args) -> int:
    """Bulk labels (transactions the API never scored): every file read and checked first,
    then stored; on any bad cell nothing is stored."""
    from .labels_import import import_labels

    summary = import_labels(args.file, args.store, os.environ.get("FRAUD_AWS_ENDPOINT_URL"))
    print(f"imported {summary['labels']} labels ({summary['fraud']} fraud, {summary['legitimate']} legitimate) from "
          f"{summary['files']} file(s) into {summary['store']}; known {summary['first_known']} to "
          f"{summary['last_known']}")
    return 0


def cmd_monitor(args) -> int:
    """The champion's health (batch_jobs.monitor): a few lines, health.json and a page in
    --out, EMF metrics with --metrics emf; exit 0 healthy, 3 DRIFT or RECALL_BELOW_SLO."""
    from .monitor import exit_code, parse_when, run_monitor

    as_of, day = parse_when(args.as_of, args.day)
    health, paths = run_monitor(_config(args), args.registry, args.labels, args.out, args.decisions, as_of, day,
                                args.metrics, os.environ.get("FRAUD_AWS_ENDPOINT_URL"))
    print("\n".join(health.lines()))
    print(f"report: {paths['html']}")
    if args.act:  # retrain triggers (batch_jobs.retrain): every decision recorded, `fraud train` started on one
        from .retrain import act_from_cli

        acted = act_from_cli(args, _config(args), health)
        print(f"retrain: {acted.decision.outcome}: {acted.decision.message} (trigger log {args.triggers})")
        if acted.exit_code:
            return 1
    return exit_code(health)


def cmd_hard_examples(args) -> int:
    """The day's hard examples (batch_jobs.hard_examples) into the labelling queue."""
    from .hard_examples import queue_hard_examples

    done = queue_hard_examples(args.day, _config(args), args.registry, args.decisions, args.labels, args.queue,
                               endpoint_url=os.environ.get("FRAUD_AWS_ENDPOINT_URL"))
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(done["by_kind"].items())) or "none"
    print(f"{done['day']}: queued {done['queued']} hard examples ({kinds}) of {done['scored']} scored; "
          f"{done['queued_before']} queued before, cap {done['cap']} a day; queue {done['queue']}")
    return 0


def cmd_challenger(args) -> int:
    """The challenger beside the champion (batch_jobs.challenger); exit 3: promotion refused
    or the canary rolled back."""
    from .challenger import cmd_challenger as run

    return run(args, _config(args), os.environ.get("FRAUD_AWS_ENDPOINT_URL"))


def cmd_serve(args) -> int:
    import uvicorn

    from fraud.api_keys import API_KEYS_SECRET, create_api_key, stored_digests
    from fraud.storage.secrets import open_secret_store

    if args.registry:
        os.environ["FRAUD_REGISTRY_URI"] = args.registry
    if args.config:
        os.environ["FRAUD_CONFIG_PATH"] = args.config
    store = open_secret_store(False)
    if not os.environ.get("FRAUD_API_KEY_HASHES") and not stored_digests(store, API_KEYS_SECRET):
        key = create_api_key(store, API_KEYS_SECRET)
        print(f"no API key yet: made one (kept across restarts; more with `fraud api-key create`)\n"
              f"  x-api-key: {key}")
    if "FRAUD_HISTORY_PATH" not in os.environ and Path(DEFAULT_DATA).exists():
        os.environ["FRAUD_HISTORY_PATH"] = DEFAULT_DATA  # warm the feature state from recent history
    print(f"docs: http://{args.host}:{args.port}/docs")
    uvicorn.run("lambda_handler.app:app", host=args.host, port=args.port, log_level="info")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .cli_args import CommandParser, top_parser

    parser = top_parser(prog="fraud", description="Fraud scoring with focal-loss gradient boosting.",
                        epilog="exit codes: 0 ok, 1 failure, 2 usage error or bad input")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=CommandParser)

    p = sub.add_parser("train", help="the nightly job: train, compare, calibrate, gate, promote, report, score")
    p.add_argument("--data", help=f"transactions (file, directory, s3://); default $FRAUD_DATA_URI, else "
                                  f"{DEFAULT_DATA}, simulated if absent")
    p.add_argument("--runs", default=os.environ.get("FRAUD_RUNS_URI", "runs"),
                   help="where reports go, a directory or s3:// prefix (one sub-directory per run)")
    p.add_argument("--dask", help="'local' for a LocalCluster or a scheduler address, e.g. tcp://host:8786 "
                                  "(default: no Dask, this process alone)")
    p.add_argument("--as-of", help="train as of this moment: later transactions are left out and the windows "
                                   "count back from it (default: the data's newest day)")
    p.add_argument("--from", dest="window_from", help="first day (or time) of the transactions used (default: all)")
    p.add_argument("--to", dest="window_to", help="end (exclusive) of the transactions used (default: all); "
                                                  "dates without an offset are read in [data] timezone")
    p.add_argument("--no-score", action="store_true", help="skip scoring the latest day (never scored with "
                                                           "--as-of/--from/--to)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (there are none when stderr is "
                                                              "not a terminal)")
    p.add_argument("--labels", default=os.environ.get("FRAUD_LABELS_URI", DEFAULT_LABELS),
                   help="label store whose labels (feedback, imports) override the data's: a directory or s3:// "
                        f"prefix (default $FRAUD_LABELS_URI, else {DEFAULT_LABELS}); '' for none")
    p.add_argument("--trigger", default=os.environ.get("FRAUD_TRAINING_TRIGGER"),
                   help="why this run was started: 'alarm:<name>' (held back within the cooldown or without enough "
                        "new labels, and then exits 0), 'schedule' (recorded, never held back), 'decision:<id>' "
                        "(admitted by `fraud monitor --act`); default $FRAUD_TRAINING_TRIGGER, else none: no check")
    p.add_argument("--triggers", default=os.environ.get("FRAUD_TRIGGERS_URI", ".fraud/triggers"),
                   help="the trigger log, a directory or s3:// prefix (default $FRAUD_TRIGGERS_URI, else "
                        ".fraud/triggers)")
    p.add_argument("--hard-examples", default=os.environ.get("FRAUD_HARD_EXAMPLES_URI"),
                   help="the hard-example queue whose labelled rows [training] hard_example_weight up-weights "
                        "(default $FRAUD_HARD_EXAMPLES_URI, else [hard_examples] uri)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("simulate", help="write simulated transactions as daily Parquet partitions")
    p.add_argument("--out", default=DEFAULT_DATA, help="directory of the daily partitions")
    p.add_argument("--days", type=int, help="days to simulate (default: the config's [simulation] days)")
    p.add_argument("--seed", type=int, help="random seed (default: the config's [simulation] seed)")
    p.add_argument("--basic", action="store_true", help="only transaction_id, timestamp, card_id, terminal_id, "
                                                        "amount, label and label_time (default: the config's "
                                                        "[simulation] basic_columns)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("score-batch", help="score a Parquet day with the champion model")
    p.add_argument("--input", required=True, help="the transactions to score: a Parquet file or directory")
    p.add_argument("--output", required=True, help="the Parquet file of scores and decisions")
    history = p.add_mutually_exclusive_group()
    history.add_argument("--history", help="transactions before the input, for the card and terminal features "
                                           "(e.g. the training data); required unless --no-history")
    history.add_argument("--no-history", action="store_true",
                         help="score the input on its own: every card's first transaction in it looks like its "
                              "first ever (more reviews); the output counts the rows without card history")
    p.add_argument("--chunk-rows", type=int, default=50_000, help="rows scored per chunk")
    p.add_argument("--dask", help="'local' or a scheduler address, for the features (default: no Dask)")
    p.add_argument("--raw-card-ids", action="store_true",
                   help="write card ids in clear (default: a keyed token per card, column card_token)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_score_batch)

    p = sub.add_parser("registry", help="list model versions or show one")
    p.add_argument("action", choices=["list", "show"])
    p.add_argument("version", nargs="?", help="the version to show (default: the champion)")
    p.add_argument("--last", type=int, default=20, metavar="N", help="list: the N newest versions, 0 for all")
    p.set_defaults(func=cmd_registry)

    p = sub.add_parser("config", help="show the merged configuration, or validate a config file")
    config_sub = p.add_subparsers(dest="config_action", required=True)
    shown = config_sub.add_parser("show", help="the configuration a run would use: the packaged defaults, "
                                               "overlaid with --config ($FRAUD_CONFIG) and $FRAUD_DEVICE")
    shown.add_argument("--format", choices=["toml", "json"], default="toml",
                       help="toml: a file --config reads back (keys without a value left out); json: every key")
    shown.set_defaults(func=cmd_config)
    checked = config_sub.add_parser("validate", help="check a config file: 'ok', or exit 2 naming the field")
    checked.add_argument("file", help="the TOML file")
    checked.set_defaults(func=cmd_config)

    for action in ("promote", "rollback"):
        p = sub.add_parser(action, help=f"{action} a registry version to champion")
        p.add_argument("version", help="the registry version")
        p.add_argument("--reason", default="manual promotion" if action == "promote" else "manual rollback",
                       help="why, kept in the registry's audit trail")
        p.set_defaults(func=lambda a, action=action: cmd_promote(a, action))

    p = sub.add_parser("api-key", help="make an API key: printed once, only its digest is stored")
    p.add_argument("action", choices=["create"])
    p.add_argument("--secret-arn", help="add it to this Secrets Manager secret (the stack's ApiKeysSecretArn "
                                        "output); default: the local secrets directory ($FRAUD_SECRETS_DIR, .fraud)")
    p.set_defaults(func=cmd_api_key)

    p = sub.add_parser("state", help="load the online feature state from historical transactions and labels "
                                     "(load), or apply what the data lake holds beyond its watermark (catch-up)")
    p.add_argument("action", choices=["load", "catch-up"])
    p.add_argument("--history", required=True, help="transactions with labels: a directory, file or s3:// prefix")
    p.add_argument("--since", help="load: first transaction date read (default: the champion's longest window, "
                                   "plus one bucket, before the newest transaction); catch-up: start here instead of "
                                   "the watermark when later (older ones are taken as applied by the API)")
    p.add_argument("--as-of", help="load transactions and labels before this time (default: all)")
    p.add_argument("--features-table", help="DynamoDB table (default $FRAUD_FEATURES_TABLE; neither: a dry run "
                                            "in memory); $FRAUD_AWS_ENDPOINT_URL for a local endpoint")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_state)

    p = sub.add_parser("labels", help="import labels for training from a CSV/Parquet file or an s3:// drop prefix")
    p.add_argument("action", choices=["import"])
    p.add_argument("file", help="a .csv or .parquet file, a directory or s3:// prefix of them; columns "
                                "transaction_id, label (0/1 or fraud/legitimate), source, known_at (optional: now)")
    p.add_argument("--store", default=os.environ.get("FRAUD_LABELS_URI", DEFAULT_LABELS),
                   help=f"the label store (default $FRAUD_LABELS_URI, else {DEFAULT_LABELS})")
    p.set_defaults(func=cmd_labels)

    from .decision_log import add_parser as add_decisions_parser

    add_decisions_parser(sub)  # fraud decisions compact

    p = sub.add_parser("monitor", help="the champion's health: drift of the decision log against its reference, "
                                       "recall from the labels known so far; exit 3 when unhealthy")
    p.add_argument("--decisions", default=os.environ.get("FRAUD_DECISIONS_URI"),
                   help="the decision log, a directory or s3:// prefix (default $FRAUD_DECISIONS_URI, else "
                        "[monitoring] decisions_uri)")
    p.add_argument("--labels", default=os.environ.get("FRAUD_LABELS_URI", DEFAULT_LABELS),
                   help=f"the label store (default $FRAUD_LABELS_URI, else {DEFAULT_LABELS}); '' for none")
    p.add_argument("--out", help="directory for health.json, health.html and the plots (default runs/monitor/<day>)")
    p.add_argument("--as-of", help="evaluate as known at this UTC time (default: now); later labels do not count")
    p.add_argument("--day", help="the UTC day judged, YYYY-MM-DD (default: the day before --as-of)")
    p.add_argument("--metrics", choices=["none", "emf"], default=os.environ.get("FRAUD_MONITOR_METRICS", "none"),
                   help="emf: the health as CloudWatch EMF lines on stdout (default $FRAUD_MONITOR_METRICS, else none)")
    p.add_argument("--act", action="store_true",
                   help="retrain triggers: recall below the SLO or PSI above the threshold on an important feature "
                        "starts `fraud train` (same --config, --registry, --labels; data and runs from "
                        "$FRAUD_DATA_URI/$FRAUD_RUNS_URI or their defaults) unless within [retrain] cooldown_hours or "
                        "with fewer than min_new_labels new labels; every decision goes to the trigger log")
    p.add_argument("--triggers", default=os.environ.get("FRAUD_TRIGGERS_URI", ".fraud/triggers"),
                   help="the trigger log, a directory or s3:// prefix (default $FRAUD_TRIGGERS_URI, else "
                        ".fraud/triggers)")
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("hard-examples", help="queue a scored day's hard examples (near the review threshold, low "
                                             "p_t, or a label contradicting the decision) for labelling")
    p.add_argument("--day", help="the UTC day scored, YYYY-MM-DD (default: yesterday, UTC)")
    p.add_argument("--decisions", default=os.environ.get("FRAUD_DECISIONS_URI"),
                   help="the decision log (default $FRAUD_DECISIONS_URI, else [monitoring] decisions_uri)")
    p.add_argument("--labels", default=os.environ.get("FRAUD_LABELS_URI", DEFAULT_LABELS),
                   help=f"the label store (default $FRAUD_LABELS_URI, else {DEFAULT_LABELS}); '' for none")
    p.add_argument("--queue", default=os.environ.get("FRAUD_HARD_EXAMPLES_URI"),
                   help="the queue, a directory or s3:// prefix (default $FRAUD_HARD_EXAMPLES_URI, else "
                        "[hard_examples] uri)")
    p.set_defaults(func=cmd_hard_examples)

    p = sub.add_parser("challenger", help="a challenger the API scores beside the champion: set VERSION [--canary "
                                          "SHARE], clear, status, promote (after its shadow period; exit 3 refused), "
                                          "check (a canary worse than the champion is rolled back; exit 3)")
    p.add_argument("action", choices=["set", "clear", "status", "promote", "check"])
    p.add_argument("version", nargs="?", help="set: the registry version")
    p.add_argument("--canary", type=float, metavar="SHARE", help="set: the share of transactions (0 < SHARE <= 1) "
                                                                "the challenger decides (default: shadow, none)")
    p.add_argument("--reason", help="why, kept in the registry's audit trail (default: 'manual'; promote: "
                                    "the shadow verdict alone)")
    p.add_argument("--decisions", default=os.environ.get("FRAUD_DECISIONS_URI"),
                   help="the decision log (default $FRAUD_DECISIONS_URI, else [monitoring] decisions_uri)")
    p.add_argument("--labels", default=os.environ.get("FRAUD_LABELS_URI", DEFAULT_LABELS),
                   help=f"the label store (default $FRAUD_LABELS_URI, else {DEFAULT_LABELS})")
    p.set_defaults(func=cmd_challenger)

    p = sub.add_parser("serve", help="run the scoring API locally under uvicorn")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    p.add_argument("--port", type=int, default=8000, help="port to listen on")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv=None) -> int:
    """Exit 0 when done; 2 on a usage error (argparse) or bad input: config, data, registry
    version, missing champion, said in one line on stderr without a traceback; 1 on any other
    failure, logged with its traceback. Log lines go above progress bars, not into them."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    from fraud.config import ConfigError
    from fraud.registry import RegistryError
    from fraud.validation import InputError

    with _log_above_progress_bars():
        try:
            return args.func(args)
        except (ConfigError, InputError, RegistryError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except BrokenPipeError:  # `fraud registry list | head`: the reader left
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
        except Exception:
            logging.getLogger("fraud").exception("fraud %s failed", args.command)
            return 1


def _log_above_progress_bars():
    """Console log lines through ``tqdm.write``, which clears a bar before the line and
    redraws it after; nothing to do where tqdm (the [train] extra) is not installed."""
    try:
        from tqdm.contrib.logging import logging_redirect_tqdm
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return logging_redirect_tqdm()


if __name__ == "__main__":
    sys.exit(main())
