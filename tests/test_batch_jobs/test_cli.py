"""The ``fraud`` command as a user meets it: the installed entry point run in a subprocess,
its exit codes, what it says on stderr, its help, its global options, ``--version``,
``registry``/``promote`` output, ``config show|validate`` and progress bars."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from batch_jobs.cli import build_parser, main
from fraud.config import load_config

FRAUD = Path(sys.executable).with_name("fraud")  # the console script pip installed
TINY_SIMULATION = "[simulation]\nn_customers = 40\nn_terminals = 15\n"


def fraud(*argv: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the installed ``fraud`` with no FRAUD_CONFIG/FRAUD_REGISTRY_URI/FRAUD_DEVICE of
    the caller's (the secrets directory, set by conftest, is kept: same signing key)."""
    base = {k: v for k, v in os.environ.items() if k not in ("FRAUD_CONFIG", "FRAUD_REGISTRY_URI", "FRAUD_DEVICE")}
    return subprocess.run([str(FRAUD), *argv], cwd=cwd, env={**base, **(env or {})}, capture_output=True,
                          text=True, timeout=120)


def lines_naming(text: str, phrase: str) -> list[str]:
    return [line for line in text.splitlines() if phrase in line]


# -- --version and global options ------------------------------------------------------------
def test_version_is_the_installed_distributions(tmp_path, monkeypatch, capsys):
    done = fraud("--version", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == f"fraud {metadata.version('focal-fraud')}"
    monkeypatch.setattr("batch_jobs.cli_args.metadata.version", lambda name: "9.8.7" if name == "focal-fraud" else "")
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == "fraud 9.8.7"


@pytest.mark.parametrize("argv, expected", [
    (["--config", "a.toml", "registry", "list"], {"config": "a.toml", "verbose": False}),
    (["registry", "list", "--config", "a.toml", "-v"], {"config": "a.toml", "verbose": True}),
    # given before and left out after: the subcommand does not reset it to a default
    (["--registry", "r1", "-v", "registry", "list"], {"registry": "r1", "verbose": True, "config": None}),
    (["--registry", "r1", "registry", "list", "--registry", "r2"], {"registry": "r2"}),
    (["config", "show", "--config", "a.toml", "--registry", "r"], {"config": "a.toml", "registry": "r"}),
    (["state", "load", "--history", "h", "--registry", "r"], {"action": "load", "history": "h", "registry": "r"}),
])
def test_global_options_go_before_or_after_the_subcommand(monkeypatch, argv, expected):
    monkeypatch.delenv("FRAUD_CONFIG", raising=False)
    monkeypatch.delenv("FRAUD_REGISTRY_URI", raising=False)
    args = vars(build_parser().parse_args(argv))
    assert {k: args[k] for k in expected} == expected


def test_fraud_config_is_the_default_config_and_an_explicit_one_wins(tmp_path):
    (tmp_path / "env.toml").write_text("[policy]\nreview_cost = 7.5\n")
    (tmp_path / "explicit.toml").write_text("[policy]\nreview_cost = 9.0\n")

    def review_cost(*argv, env=None):
        done = fraud("config", "show", "--format", "json", *argv, cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["policy"]["review_cost"]

    assert review_cost() == 5.0  # the packaged default
    assert review_cost(env={"FRAUD_CONFIG": "env.toml"}) == 7.5
    assert review_cost("--config", "explicit.toml", env={"FRAUD_CONFIG": "env.toml"}) == 9.0
    done = fraud("--config", "explicit.toml", "config", "show", "--format", "json", cwd=tmp_path,
                 env={"FRAUD_CONFIG": "env.toml"})
    assert json.loads(done.stdout)["policy"]["review_cost"] == 9.0


# -- help --------------------------------------------------------------------------------------
def _command_paths(parser, path=()):
    yield path
    for action in parser._actions:
        if action.choices and hasattr(action, "_name_parser_map"):
            for name, sub in action.choices.items():
                yield from _command_paths(sub, (*path, name))


def _option_entries(help_text: str) -> list[str]:
    """Each option's entry in an argparse help: its line(s) from '  -' up to the next entry."""
    entries, current = [], None
    for line in help_text.splitlines():
        if re.match(r"^  -", line):
            current = [line]
            entries.append(current)
        elif current is not None and re.match(r"^ {6,}\S", line):
            current.append(line)
        else:
            current = None
    return [" ".join(part.strip() for part in entry) for entry in entries]


def test_every_option_of_every_command_shows_its_default(tmp_path):
    paths = list(_command_paths(build_parser()))
    assert ("config", "validate") in paths and ("state",) in paths and ("train",) in paths
    checked = 0
    for path in paths:
        done = fraud(*path, "--help", cwd=tmp_path)
        assert done.returncode == 0 and done.stdout.startswith("usage: fraud"), (path, done.stderr)
        for entry in _option_entries(done.stdout):
            invocation = re.split(r"\s{2,}", entry, maxsplit=1)[0]
            is_flag = all(len(part.split()) == 1 for part in invocation.split(", "))  # no metavar
            assert is_flag or re.search(r"\(default|default:|default \$|required", entry), (path, entry)
            assert "default: None" not in entry, (path, entry)
            checked += 1
    assert checked > 40


# -- exit codes and what stderr says -----------------------------------------------------------
EXPECTED_ERRORS = {
    "config value": (["registry", "list", "--config", "bad.toml"], "[policy]\nreview_cost = -1\n",
                     "config bad.toml: [policy] review_cost: Input should be greater than or equal to 0 (got -1)"),
    "config key": (["--config", "bad.toml", "registry", "list"], "[polcy]\nreview_cost = 1\n",
                   "config bad.toml: [polcy]: unknown key"),
    "config syntax": (["config", "show", "--config", "bad.toml"], "[policy\n", "config bad.toml: not valid TOML"),
    "config missing": (["registry", "list", "--config", "nowhere.toml"], None, "config nowhere.toml: cannot read it"),
    "config validate": (["config", "validate", "bad.toml"], "[gate]\naverage_precision_tolerance = 'x'\n",
                        "config bad.toml: [gate] average_precision_tolerance: Input should be a valid number"),
    "no champion": (["registry", "show", "--registry", "empty"], None, "no champion model in"),
    "no champion to score with": (["score-batch", "--registry", "empty", "--input", "x", "--output", "y.parquet",
                                   "--no-history"], None, "no champion model in"),
    "version name": (["promote", "../x", "--registry", "empty"], None, "model version '../x' is not a plain name"),
    "unknown version": (["rollback", "20260101T000000Z-abcdef", "--registry", "empty"], None,
                        "model version '20260101T000000Z-abcdef' does not exist"),
}


@pytest.mark.parametrize("case", list(EXPECTED_ERRORS))
def test_an_expected_error_exits_2_with_one_line_and_no_traceback(tmp_path, case):
    argv, bad_config, message = EXPECTED_ERRORS[case]
    if bad_config is not None:
        (tmp_path / "bad.toml").write_text(bad_config)
    done = fraud(*argv, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    naming = lines_naming(done.stderr, message)  # said once, as the error line: not logged and printed too
    assert len(naming) == 1 and naming[0].startswith("error: ") and done.stderr.count("error: ") == 1, done.stderr


def test_too_little_data_exits_2_naming_the_shortfall(tmp_path):
    (tmp_path / "tiny.toml").write_text(TINY_SIMULATION)
    assert fraud("simulate", "--config", "tiny.toml", "--days", "3", "--out", "d", cwd=tmp_path).returncode == 0
    done = fraud("train", "--config", "tiny.toml", "--data", "d", "--registry", "reg", "--runs", "runs", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(lines_naming(done.stderr, "3 days of data")) == 1
    assert lines_naming(done.stderr, "3 days of data")[0].startswith("error: 3 days of data (2026-01-01 to 2026-01-03) "
                                                                     "is too short for the configured windows")


def test_a_usage_error_exits_2_with_the_usage(tmp_path):
    done = fraud("registry", "frob", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("usage: fraud registry")
    assert len(lines_naming(done.stderr, "invalid choice: 'frob'")) == 1 and "Traceback" not in done.stderr


def test_an_unexpected_failure_exits_1_with_its_traceback(tmp_path):
    (tmp_path / "a-file").write_text("not a registry directory")
    done = fraud("registry", "list", "--registry", "a-file", cwd=tmp_path)
    assert done.returncode == 1
    assert "ERROR fraud: fraud registry failed" in done.stderr and "NotADirectoryError" in done.stderr
    assert "Traceback" in done.stderr  # a failure nobody expected: kept for whoever debugs it


# -- registry list / show / promote ------------------------------------------------------------
@pytest.fixture
def two_versions(tmp_path, small_training):
    """A registry with a champion and a newer version that was not promoted, each with the
    metrics a nightly run publishes."""
    from fraud.registry import ModelRegistry

    registry = ModelRegistry.open(tmp_path / "registry")
    summary = json.loads(json.dumps(small_training.summary, default=str))
    first = registry.publish(small_training.bundle, extra={"metrics.json": {**summary, "gate": {"decision": "promote"}}})
    registry.promote(first, "first night")
    second = registry.publish(small_training.bundle, extra={"metrics.json": {
        **summary, "test": {**summary["test"], "average_precision": 0.123456}, "gate": {"decision": "reject"}}})
    return registry, first, second, summary


def test_registry_list_has_a_header_and_each_versions_figures(tmp_path, two_versions):
    registry, first, second, summary = two_versions
    done = fraud("registry", "list", "--registry", "registry", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert re.split(r"\s{2,}", header.strip()) == ["VERSION", "CREATED (UTC)", "MODEL", "VAL AP", "TEST AP", "GATE"]
    kind = summary["winner"]["kind"]
    created = registry.manifest(first)["created_at"][:16].replace("T", " ")
    validation = f"{summary['candidates'][kind]['validation_average_precision']:.4f}"
    order = registry.versions()  # by id: both published within a second may sort either way
    champion_row, other_row = rows[order.index(first)], rows[order.index(second)]
    assert champion_row.startswith("* ") and re.split(r"\s{2,}", champion_row[2:]) == [
        first, created, kind, validation, f"{summary['test']['average_precision']:.4f}", "promote"]
    assert other_row.startswith("  ") and re.split(r"\s{2,}", other_row[2:])[2:] == [kind, validation, "0.1235", "reject"]
    assert re.split(r"\s{2,}", other_row[2:])[0] == second
    assert rows[2].startswith("* the champion")
    newest = fraud("registry", "list", "--last", "1", "--registry", "registry", cwd=tmp_path).stdout.splitlines()
    assert newest[0] == header and newest[1] == rows[1] and newest[2] == "  (and 1 older: --last 0 lists all)"
    assert fraud("registry", "list", "--last", "0", "--registry", "registry", cwd=tmp_path).stdout == done.stdout


def test_registry_show_without_a_version_shows_the_champion(tmp_path, two_versions):
    registry, first, second, _ = two_versions
    shown = json.loads(fraud("registry", "show", "--registry", "registry", cwd=tmp_path).stdout)
    assert shown["manifest"]["version"] == first and shown["champion"] is True
    other = json.loads(fraud("registry", "show", second, "--registry", "registry", cwd=tmp_path).stdout)
    assert other["manifest"]["version"] == second and other["champion"] is False
    assert other["metrics"]["test"]["average_precision"] == 0.123456


def test_promoting_the_champion_says_so_and_changes_nothing(tmp_path, two_versions):
    registry, first, second, _ = two_versions
    pointer, events = (tmp_path / "registry" / "champion.json").read_bytes(), registry.events()
    for action in ("promote", "rollback"):
        done = fraud(action, first, "--registry", "registry", cwd=tmp_path)
        assert done.returncode == 0 and done.stdout.strip() == f"{first} is the champion already; nothing changed"
    assert (tmp_path / "registry" / "champion.json").read_bytes() == pointer and registry.events() == events
    done = fraud("promote", second, "--registry", "registry", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == f"champion is now {second}"
    assert registry.champion() == second and len(registry.events()) == len(events) + 1
    assert registry.events()[-1]["reason"] == "manual promotion"


# -- config show / validate --------------------------------------------------------------------
def test_config_show_prints_the_merged_config_that_reads_back_the_same(tmp_path):
    overlay = tmp_path / "mine.toml"
    overlay.write_text('[policy]\nreview_cost = 7.5\n[columns]\nchannel = ""\n[split]\ngap_days = 3.5\n')
    done = fraud("config", "show", "--config", "mine.toml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    shown = tomllib.loads(done.stdout)
    assert shown["policy"]["review_cost"] == 7.5 and shown["search"]["max_trials"] == 40
    assert "target_recall" not in shown["policy"]  # None: TOML has no null, left out
    (tmp_path / "shown.toml").write_text(done.stdout)
    assert load_config(tmp_path / "shown.toml") == load_config(overlay)
    as_json = fraud("config", "show", "--format", "json", "--config", "mine.toml", cwd=tmp_path)
    assert json.loads(as_json.stdout) == load_config(overlay).model_dump(mode="json")
    valid = fraud("config", "validate", "shown.toml", cwd=tmp_path)
    assert valid.returncode == 0 and valid.stdout.strip() == "shown.toml: ok" and valid.stderr == ""


# -- progress bars and log lines -----------------------------------------------------------------
class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_bars_only_when_asked_and_on_a_terminal():
    from fraud.progress import progress_bar

    assert progress_bar(range(3), file=io.StringIO()).disable  # a pipe or a log file: no bar
    assert not progress_bar(range(3), file=_Terminal()).disable
    assert progress_bar(range(3), enabled=False, file=_Terminal()).disable  # --no-progress


def test_no_bar_in_output_that_is_not_a_terminal(tmp_path):
    (tmp_path / "tiny.toml").write_text(TINY_SIMULATION)
    done = fraud("simulate", "--config", "tiny.toml", "--days", "2", "--out", "d", cwd=tmp_path)
    assert done.returncode == 0 and "wrote 2 daily partitions" in done.stdout
    assert "simulating days" not in done.stderr and "\r" not in done.stderr
    assert "INFO fraud.simulator: simulated 2 days" in done.stderr


def test_log_lines_go_above_a_bar_not_into_it(monkeypatch):
    """On a terminal, each log line starts a line of its own: the bar is cleared before it
    and drawn again after (tqdm.write), never glued to the bar's text."""
    from batch_jobs import cli
    from fraud.progress import progress_bar

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    cli._setup_logging(False)
    try:
        with cli._log_above_progress_bars():
            for i in progress_bar(range(3), desc="work", mininterval=0, miniters=1):
                logging.getLogger("fraud.test").info("step %d", i)
    finally:
        logging.getLogger().handlers.clear()
    output = terminal.getvalue()
    assert "work:" in output and "%|" in output  # a bar was drawn
    pieces = [piece for piece in re.split(r"[\r\n]", output) if "step " in piece]
    assert len(pieces) == 3 and all(re.match(r"^\d{4}-\d\d-\d\d [\d:,]+ INFO fraud.test: step \d$", piece)
                                    for piece in pieces), pieces
