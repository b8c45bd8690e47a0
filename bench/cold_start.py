"""Cold start of the scoring Lambda, installed as its image installs it, and the size of
the image's Python packages.

    python bench/cold_start.py [--target DIR] [--runs 7] [--json bench/results/cold_start.json]

1. Installs what ``infra/docker/scoring.Dockerfile`` installs (the project with its
   [serve] extra, for Python 3.12 on manylinux x86_64, .pyc files compiled as pip does in
   the image) into ``--target`` (reused when it already holds the install; a temporary
   directory, removed at the end, otherwise). Needs a Python 3.12 with pip (FRAUD_IMAGE_PYTHON, python3.12 or
   pyenv's).
2. Trains a focal XGBoost and a focal LightGBM champion on default-sized simulated data
   (the simulator's 5,000 cards and 2,000 terminals, 70 days, one search trial; as
   ``bench/scoring.py`` does) with this environment, each in its own local registry.
3. Cold start: a fresh ``python3.12 -I -S`` process that sees only the target imports
   ``lambda_handler.app`` (settings, registry, SHA-256 verification of every model file,
   model load, app): the seconds of that import, and the whole process from spawn to exit.
   One discarded warm-up round, then ``--runs`` rounds, the kinds interleaved: median and
   min.
   Target <= 1.5 s each.
4. The target's size on disk and the ten largest distributions (by their RECORD files).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from common import write_json  # noqa: E402
from helpers.images import DOCKER, distributions, du, install_image, lambda_python  # noqa: E402

CHILD = ("import sys, time\nsys.path.insert(0, sys.argv[1])\nt = time.perf_counter()\n"
         "import lambda_handler.app as app\n"
         "print('COLD', time.perf_counter() - t, app.container.holder.bundle.model.kind)\n")
API_KEY_HASH = "0" * 64


def serving_target(python: str, target: Path | None) -> tuple[Path, float | None]:
    if target is not None and (target / "lambda_handler").is_dir():
        return target, None
    target = target or Path(tempfile.mkdtemp(prefix="fraud-cold-start-")) / "target"
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as build:
        install_image(python, DOCKER / "scoring.Dockerfile", Path(build), target, compile=True)
    return target, time.perf_counter() - started


def package_sizes(target: Path) -> list[dict]:
    """Bytes per installed distribution, from its RECORD (files outside RECORD, such as the
    .pyc pip compiled, are counted with the module they belong to)."""
    out = []
    for info in target.glob("*.dist-info"):
        files = set()
        for line in (info / "RECORD").read_text().splitlines():
            path = line.rsplit(",", 2)[0]
            if path:
                files.add((target / path).resolve())
                if path.endswith(".py"):  # the compiled module next to it
                    p = target / path
                    files.update(p.parent.glob(f"__pycache__/{p.stem}.*.pyc"))
        size = sum(f.stat().st_size for f in files if f.is_file())
        name, version = info.name.removesuffix(".dist-info").rsplit("-", 1)
        out.append({"distribution": name, "version": version, "bytes": size, "mib": round(size / 2**20, 1)})
    return sorted(out, key=lambda d: -d["bytes"])


def measure(python: str, target: Path, registries: dict[str, Path], runs: int, secrets_dir: str) -> dict:
    """Runs interleaved across the model kinds, so that the machine's noise hits each alike."""
    base = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LAMBDA_TASK_ROOT": str(target), "AWS_REGION": "us-east-1",
            "FRAUD_BACKEND": "local", "FRAUD_API_KEY_HASHES": API_KEY_HASH, "FRAUD_METRICS": "emf"}
    times = {kind: {"imports": [], "processes": []} for kind in registries}
    with tempfile.TemporaryDirectory() as cwd:
        base["HOME"], base["FRAUD_SECRETS_DIR"] = cwd, secrets_dir
        for i in range(runs + 1):
            for kind, registry in registries.items():
                started = time.perf_counter()
                out = subprocess.run([python, "-I", "-S", "-c", CHILD, str(target)], cwd=cwd, capture_output=True,
                                     text=True, check=True, env={**base, "FRAUD_REGISTRY_URI": str(registry)})
                wall = time.perf_counter() - started
                (line,) = [ln for ln in out.stdout.splitlines() if ln.startswith("COLD ")]
                _, seconds, loaded = line.split()
                assert loaded == kind, (loaded, kind)
                if i:  # the first round warms the page cache, as a deployed image's layers are
                    times[kind]["imports"].append(float(seconds))
                    times[kind]["processes"].append(wall)
    return {kind: {"import_median_s": statistics.median(t["imports"]), "import_min_s": min(t["imports"]),
                   "process_median_s": statistics.median(t["processes"]), "process_min_s": min(t["processes"]),
                   "import_runs_s": t["imports"], "process_runs_s": t["processes"]} for kind, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=Path, help="the [serve] install to use or create")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    python = lambda_python()
    if python is None:
        sys.exit("needs a Python 3.12 with pip: set FRAUD_IMAGE_PYTHON")
    # the deployment's keys (card hashing, manifest signatures): one temporary set for the
    # champions this process publishes and the processes that load them
    secrets_dir = tempfile.mkdtemp(prefix="fraud-bench-secrets-")
    os.environ["FRAUD_SECRETS_DIR"] = secrets_dir
    target, install_s = serving_target(python, args.target)
    print(f"[serve] install in {target}" + (f" ({install_s:.0f} s)" if install_s else " (reused)"))

    from scoring import prepare  # bench/scoring.py: default-sized simulation, one trial

    results = {"python": python, "target": str(target), "install_s": install_s, "runs": args.runs,
               "champions": "default-sized simulation (5,000 cards, 2,000 terminals), 70 days, one search trial",
               "distributions": distributions(target), "cold_start": {}}
    with tempfile.TemporaryDirectory() as tmp:
        registries, version_bytes = {}, {}
        for kind in ("focal_xgb", "focal_lgbm"):
            started = time.perf_counter()
            _, registry = prepare(Path(tmp) / kind, kind)
            registries[kind] = Path(tmp) / kind / "registry"
            version_bytes[kind] = sum(p.stat().st_size for p in (registries[kind] / "versions").rglob("*")
                                      if p.is_file())
            print(f"{kind}: trained in {time.perf_counter() - started:.0f} s, version {registry.champion()}, "
                  f"{version_bytes[kind] / 1024:.0f} KiB")
        results["cold_start"] = measure(python, target, registries, args.runs, secrets_dir)
    for kind, figures in results["cold_start"].items():
        figures["version_bytes"] = version_bytes[kind]
        print(f"{kind} cold start (import lambda_handler.app): median {figures['import_median_s']:.2f} s, "
              f"min {figures['import_min_s']:.2f} s; whole process median {figures['process_median_s']:.2f} s")
    sizes = package_sizes(target)
    results["target_bytes"] = du(target)
    results["largest_distributions"] = sizes[:10]
    print(f"[serve] packages: {results['target_bytes'] / 2**20:.0f} MiB in {len(sizes)} distributions; largest:")
    for d in sizes[:10]:
        print(f"  {d['distribution'] + ' ' + d['version']:32s} {d['mib']:7.1f} MiB")
    write_json(args.json, results)
    shutil.rmtree(secrets_dir, ignore_errors=True)
    if args.target is None:  # a temporary install: 300 MB
        shutil.rmtree(target.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
