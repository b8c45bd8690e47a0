"""Which model is served since when, and the dates of the models the run compared: read
from the registry so the report names versions, not roles.

    summary["models"] = model_facts(registry, challenger_version, previous_champion_record)
"""

from __future__ import annotations

import logging

from fraud.registry import ModelRegistry, RegistryError

log = logging.getLogger(__name__)


def _version_facts(registry: ModelRegistry, version: str) -> dict:
    """The version id, when it was published and the last day of data it was trained for."""
    facts = {"version": version, "published": None, "data_as_of": None, "model_kind": None}
    try:
        manifest = registry.manifest(version)
        facts.update(published=manifest.get("created_at"), model_kind=manifest.get("model_kind"))
        facts["data_as_of"] = registry.read_json(version, "bundle.json").get("as_of")
    except (RegistryError, ValueError, KeyError) as exc:  # an old or unreadable version: dates unknown
        log.warning("report: no dates for model version %s (%s)", version, exc)
    return facts


def model_facts(registry: ModelRegistry, challenger: str, previous: dict | None) -> dict:
    """``challenger``: this run's version; ``previous``: the champion record before the run
    (``registry.champion_record()``), None on the first night."""
    served = registry.champion_record() or {}
    champion = None
    if previous and previous.get("version"):
        champion = {**_version_facts(registry, previous["version"]), "champion_since": previous.get("at")}
    return {"served": {"version": served.get("version"), "since": served.get("at"), "reason": served.get("reason")},
            "challenger": _version_facts(registry, challenger),
            "champion": champion}
