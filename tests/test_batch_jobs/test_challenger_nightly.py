"""The nightly job with [challenger] shadow_first: a version that passes the gate becomes the
shadow challenger, not the champion, and the run says so in its report."""

from __future__ import annotations

import json

from batch_jobs.cli import main
from fraud.registry import ModelRegistry
from helpers.configs import SMALL

ONE_CANDIDATE = SMALL.replace("max_trials = 4", "max_trials = 1\ncandidates = [\"focal_xgb\"]")
SHADOW_FIRST = ONE_CANDIDATE + """[gate]
average_precision_tolerance = 1.0   # every new version passes the offline gate
recall_at_capacity_tolerance = 1.0
[challenger]
shadow_first = true
"""


def test_a_gated_version_is_shadowed_first(tmp_path, small_sim_dir, monkeypatch):
    monkeypatch.setenv("FRAUD_DECISIONS_URI", str(tmp_path / "decisions"))
    registry = ModelRegistry.open(tmp_path / "registry")
    for name, text in (("plain.toml", ONE_CANDIDATE), ("shadow.toml", SHADOW_FIRST)):
        (tmp_path / name).write_text(text)

    def night(config: str) -> dict:
        assert main(["--config", str(tmp_path / config), "--registry", str(tmp_path / "registry"), "train", "--data",
                     str(small_sim_dir), "--runs", str(tmp_path / "runs"), "--no-progress", "--no-score"]) == 0
        run = sorted((tmp_path / "runs").iterdir())[-1]
        return json.loads((run / "report.json").read_text())

    first = night("plain.toml")
    assert first["challenger"] == {"judged": None, "new_version": "promote"}
    champion = registry.champion()
    assert champion == first["registry_version"]
    second = night("shadow.toml")
    assert second["challenger"] == {"judged": None, "new_version": "shadow"}
    assert registry.champion() == champion  # not promoted ...
    assert registry.challenger()["version"] == second["registry_version"]  # ... but scored beside it
