"""The challenger pointer beside the champion: set, changed and cleared with the same
integrity rules as a promotion (verified first, an event for each change, one pointer write)."""

from __future__ import annotations

import json
import re

import pytest

from fraud.registry import ModelRegistry, RegistryError


@pytest.fixture
def registry(tmp_path, small_training):
    reg = ModelRegistry.open(tmp_path / "registry")
    champion = reg.publish(small_training.bundle)
    reg.promote(champion, "first")
    return reg, champion, reg.publish(small_training.bundle)


def test_set_change_and_clear_are_recorded(registry):
    reg, champion, other = registry
    assert reg.challenger() is None
    record = reg.set_challenger(other, reason="nightly candidate")
    assert reg.challenger() == record
    assert (record["version"], record["mode"], record["canary_share"], record["champion"]) == \
        (other, "shadow", 0.0, champion)
    canary = reg.set_challenger(other, "canary", 0.1, reason="a tenth of the traffic")
    assert canary["since"] == record["since"]  # the same version keeps its shadow start
    assert reg.challenger()["mode"] == "canary" and reg.challenger()["canary_share"] == 0.1
    assert reg.clear_challenger("not convincing") is True
    assert reg.challenger() is None and reg.clear_challenger("again") is False
    events = [e for e in reg.events() if e["action"].startswith("challenger")]
    assert [(e["action"], e["reason"]) for e in events] == [
        ("challenger-set", "nightly candidate"), ("challenger-set", "a tenth of the traffic"),
        ("challenger-clear", "not convincing")]
    assert events[-1]["previous"] == other
    assert reg.champion() == champion  # the champion pointer never moved


def test_a_new_version_restarts_the_shadow_period(registry, small_training):
    reg, _, other = registry
    first = reg.set_challenger(other)
    third = reg.publish(small_training.bundle)
    assert reg.set_challenger(third)["since"] > first["since"]


@pytest.mark.parametrize("args, message", [
    (("shadow", 0.2), "decides nothing"), (("canary", 0.0), "(0, 1]"), (("canary", 1.5), "(0, 1]"),
    (("mirror", 0.0), "mode"),
])
def test_bad_modes_and_shares_are_refused_and_nothing_written(registry, args, message):
    reg, _, other = registry
    before = len(reg.events())
    with pytest.raises(RegistryError, match=re.escape(message)):
        reg.set_challenger(other, *args)
    assert reg.challenger() is None and len(reg.events()) == before


def test_the_champion_a_tampered_or_unknown_version_is_refused(registry):
    reg, champion, other = registry
    with pytest.raises(RegistryError, match="is the champion"):
        reg.set_challenger(champion)
    with pytest.raises(RegistryError, match="does not exist"):
        reg.set_challenger("no-such-version")
    with pytest.raises(RegistryError, match="plain name"):
        reg.set_challenger("../escape")
    path = reg.store.root / "versions" / other / "thresholds.json"
    path.write_text(json.dumps({"review": 0.0, "decline": 0.0}))
    with pytest.raises(RegistryError, match="SHA-256"):
        reg.set_challenger(other)
    assert reg.challenger() is None and not any(e["action"].startswith("challenger") for e in reg.events())


def test_promoting_the_challenger_clears_its_pointer(registry, small_training):
    reg, champion, other = registry
    reg.set_challenger(other, "canary", 0.05)
    reg.promote(other, "won its shadow period")
    assert reg.champion() == other and reg.challenger() is None
    assert reg.events()[-1]["action"] == "challenger-promoted" and reg.events()[-1]["previous"] == other
    reg.set_challenger(champion)  # promoting another version leaves the challenger alone
    third = reg.publish(small_training.bundle)
    reg.promote(third, "a third")
    assert reg.challenger()["version"] == champion


def test_a_promotion_leaves_an_explicit_no_challenger_pointer(registry):
    """The API's role may not list the bucket: S3 answers its GET of a missing key 403, not
    404, so the pointer exists (naming no version) from the first promotion on."""
    reg, _, _ = registry
    assert json.loads((reg.store.root / "challenger.json").read_text())["version"] is None
    assert reg.challenger() is None
