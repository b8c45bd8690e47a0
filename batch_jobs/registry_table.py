"""``fraud registry list``: one line per version with the figures that tell versions apart
(when, which model, validation and test average precision, the gate's decision), under a
header. A version the registry refuses (unsigned, crafted) is listed with why, not hidden.
"""

from __future__ import annotations

from fraud.registry import ModelRegistry, RegistryError

COLUMNS = ("VERSION", "CREATED (UTC)", "MODEL", "VAL AP", "TEST AP", "GATE")


def _number(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def version_row(registry: ModelRegistry, version: str) -> tuple[str, ...]:
    """The version's columns; raises ``RegistryError`` for a version the registry refuses."""
    manifest = registry.manifest(version)
    try:
        metrics = registry.read_json(version, "metrics.json")
    except RegistryError:  # a version published without metrics (by hand, by a test)
        metrics = {}
    kind = (metrics.get("winner") or {}).get("kind") or manifest.get("model_kind", "?")
    validation = ((metrics.get("candidates") or {}).get(kind) or {}).get("validation_average_precision")
    created = str(manifest.get("created_at", "?"))[:16].replace("T", " ")
    return (version, created, kind, _number(validation), _number((metrics.get("test") or {}).get("average_precision")),
            str((metrics.get("gate") or {}).get("decision", "-")))


def registry_lines(registry: ModelRegistry, last: int = 0) -> list[str]:
    """Header, then the ``last`` newest versions (0: all), oldest first; ``*`` marks the
    champion. Each version costs a few reads (on S3, requests): a year of nights is slow."""
    champion = registry.champion()
    every = registry.versions()
    versions = every[-last:] if last > 0 else every
    rows, refused = [], {}
    for version in versions:
        try:
            rows.append(version_row(registry, version))
        except RegistryError as exc:
            refused[version] = str(exc)
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS))]

    def line(mark: str, cells) -> str:
        return f"{mark} " + "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()

    lines = [line(" ", COLUMNS)]
    by_version = {row[0]: row for row in rows}
    for version in versions:
        mark = "*" if version == champion else " "
        lines.append(line(mark, by_version[version]) if version in by_version
                     else f"{mark} {version}  refused: {refused[version]}")
    if len(versions) < len(every):
        lines.append(f"  (and {len(every) - len(versions)} older: --last 0 lists all)")
    if not by_version and not refused:
        lines.append(f"  (no versions in {registry.uri}; train one with `fraud train`)")
    elif champion is None:
        lines.append("  (no champion: `fraud promote VERSION`)")
    else:
        lines.append("* the champion: the version the API serves")
    return lines
