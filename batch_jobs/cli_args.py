"""The ``fraud`` command's argument parsing: help that shows every option's default, the
global options accepted before or after the subcommand, and ``--version``.

Every subcommand's parser is a ``CommandParser`` (``add_subparsers(parser_class=...)``,
which nested groups inherit), so a subcommand added later gets both without asking.
"""

from __future__ import annotations

import argparse
import os
from importlib import metadata

DISTRIBUTION = "focal-fraud"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: ...)`` to an option's help, or ``(required)``, unless it is a flag
    or its help already says so (so an option whose default is None explains it in words)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.nargs == 0 or "default" in text or "required" in text or action.default is argparse.SUPPRESS:
            return text
        if action.required:
            return f"{text} (required)"
        if not action.option_strings and action.nargs not in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return text
        return f"{text} (default: %(default)s)"


def add_global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``--config``, ``--registry`` and ``-v``. On the top parser with their defaults; on a
    subcommand's parser without one (SUPPRESS), so that leaving an option out after the
    subcommand keeps what was given before it."""

    def default(value):
        return value if top else argparse.SUPPRESS

    parser.add_argument("--config", metavar="FILE", default=default(os.environ.get("FRAUD_CONFIG") or None),
                        help="TOML config overlaid on the packaged defaults (default: $FRAUD_CONFIG, else the "
                             "packaged defaults alone)")
    parser.add_argument("--registry", metavar="URI", default=default(os.environ.get("FRAUD_REGISTRY_URI")),
                        help="registry directory or s3://bucket/prefix (default: $FRAUD_REGISTRY_URI, else the "
                             "config's [registry] uri)")
    parser.add_argument("-v", "--verbose", action="store_true", default=default(False), help="debug logging")


class CommandParser(argparse.ArgumentParser):
    """A subcommand's parser: defaults in its help, the global options after it."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        add_global_options(self, top=False)


def top_parser(**kwargs) -> argparse.ArgumentParser:
    """The ``fraud`` parser itself: global options with their defaults, and ``--version``."""
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter, **kwargs)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    add_global_options(parser, top=True)
    return parser


def package_version() -> str:
    """The installed distribution's version (pyproject.toml's, as pip installed it)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"
