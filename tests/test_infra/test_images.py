"""The images contain what runs.

Each Dockerfile installs the project itself with one extra ([serve] for the scoring Lambda,
[train] for the nightly job). Here that install is reproduced without Docker: the files the
Dockerfile copies are built into a wheel, installed with the Dockerfile's extras into an
empty target for Python 3.12 on manylinux x86_64 (binary wheels only, as pip in the image
picks them), and the images' entry points run from that target alone, in a Python 3.12
that sees nothing else (``-I -S``: no site-packages, no dev environment):

- the Lambda handler with real HTTP API v2 events (health, model, score, a refused key)
  and the outbox drain with an EventBridge scheduled event, for an XGBoost, a LightGBM and a
  baseline (logistic XGBoost) champion: answers checked against the dev environment's, and
  neither pandas, pyarrow, numba nor scikit-learn installed or imported;
- the nightly job (``fraud train --no-progress``) on a tiny simulated run: a champion with
  its SHA-256 manifest and a report;
- every native library the installed wheels need is bundled, in the base image, or
  installed by the Dockerfile (libgomp for LightGBM).

The installs take about 15 s (scoring) and 30 s (training) here: pip downloads the Python
3.12 wheels each run, as this machine's proxy answers are not cacheable. The file runs in
about 95 s with two xdist workers, each install shared between them.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from helpers.api import API_KEY, API_KEY_HASH
from helpers.configs import SMALL
from helpers.images import (DOCKER, SYSTEM_PACKAGES, distributions, install_image, installed_system_packages,
                            lambda_python, package_manager, read_dockerfile, system_libraries_needed)

pytestmark = pytest.mark.slow

SCORING = DOCKER / "scoring.Dockerfile"
TRAINING = DOCKER / "training.Dockerfile"
NOT_SERVED = ("pandas", "pyarrow", "numba", "llvmlite", "scikit-learn", "nvidia-nccl-cu12", "xgboost", "optuna",
              "matplotlib", "dask")
NOT_IMPORTED = ("pandas", "pyarrow", "numba", "sklearn")
TXN = {"transaction_id": "img-1", "timestamp": "2026-02-10T10:00:00Z", "card_id": "card-img-1",
       "terminal_id": "term-img-1", "amount": 742.5, "currency": "EUR", "channel": "online", "country": "FR"}


@pytest.fixture(scope="session")
def python312():
    python = lambda_python()
    if python is None:
        pytest.skip("no Python 3.12 with pip (the images' version): set FRAUD_IMAGE_PYTHON")
    return python


@contextlib.contextmanager
def shared_install(python: str, dockerfile: Path, name: str):
    """The install of ``dockerfile`` into a target, built once per test run and shared by
    the xdist workers: a file lock guards it, and the last worker done with it removes it
    (0.3 GB for the scoring image, 1.4 GB for the training image)."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"
    root = Path(tempfile.gettempdir()) / f"fraud-image-{name}-{run}"
    lock_path, target, users = Path(f"{root}.lock"), root / "target", root / "users"

    @contextlib.contextmanager
    def locked():
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    with locked():
        if not (root / "installed").exists():
            shutil.rmtree(root, ignore_errors=True)
            try:
                install_image(python, dockerfile, root / "build", target, compile=False)  # .pyc: on import
            except BaseException:
                shutil.rmtree(root, ignore_errors=True)
                lock_path.unlink(missing_ok=True)  # a worker waiting for it retries the install, and fails alike
                raise
            (root / "installed").touch()
        users.write_text(str(int(users.read_text()) + 1 if users.exists() else 1))
    try:
        yield target, read_dockerfile(dockerfile)
    finally:
        with locked():
            left = int(users.read_text()) - 1
            users.write_text(str(left))
            if left == 0:
                shutil.rmtree(root, ignore_errors=True)
                lock_path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def serving_target(python312):
    """What the scoring image installs: ``LAMBDA_TASK_ROOT`` of the Lambda."""
    with shared_install(python312, SCORING, "serving") as installed:
        yield installed


@pytest.fixture(scope="session")
def training_target(python312):
    """What the training image installs into its site-packages."""
    with shared_install(python312, TRAINING, "training") as installed:
        yield installed


def test_the_images_install_the_project_with_one_extra():
    scoring, training = read_dockerfile(SCORING), read_dockerfile(TRAINING)
    assert scoring.extras == {"serve"}
    assert training.extras == {"train"}
    assert scoring.options[scoring.options.index("--target") + 1] == "${LAMBDA_TASK_ROOT}"  # the handler's path
    for install in (scoring, training):
        assert "--no-cache-dir" in install.options
    assert not (DOCKER / "requirements-serving.txt").exists()  # one list of what runs: pyproject.toml


def test_serving_image_installs_neither_training_libraries_nor_full_xgboost(serving_target):
    target, _ = serving_target
    installed = distributions(target)
    assert {"focal-fraud", "xgboost-cpu", "lightgbm", "fastapi", "mangum", "aws-lambda-powertools",
            "pydantic-settings", "boto3", "numpy", "scipy", "orjson"} <= set(installed), sorted(installed)
    assert not set(NOT_SERVED) & set(installed), sorted(set(NOT_SERVED) & set(installed))
    assert not [p.name for p in target.iterdir() if p.name.split("-")[0].split(".")[0] in NOT_IMPORTED]


# -- the Lambda, from the serving image's packages alone ---------------------------------

def http_api_v2(method: str, path: str, body: dict | None = None, api_key: str | None = API_KEY,
                request_id: str = "img-req") -> dict:
    """An API Gateway HTTP API (payload 2.0) event, as the scoring function receives it."""
    headers = {"host": "abc123.execute-api.us-east-1.amazonaws.com", "user-agent": "pytest"}
    if body is not None:
        headers["content-type"] = "application/json"
    if api_key:
        headers["x-api-key"] = api_key
    event = {"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "", "headers": headers,
             "requestContext": {"accountId": "123456789012", "apiId": "abc123",
                                "domainName": "abc123.execute-api.us-east-1.amazonaws.com", "domainPrefix": "abc123",
                                "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                                         "sourceIp": "203.0.113.1", "userAgent": "pytest"},
                                "requestId": request_id, "routeKey": "$default", "stage": "$default",
                                "time": "10/Feb/2026:10:00:00 +0000", "timeEpoch": 1770717600000},
             "isBase64Encoded": False}
    if body is not None:
        event["body"] = base64.b64encode(json.dumps(body).encode()).decode()
        event["isBase64Encoded"] = True
    return event


SCHEDULED_EVENT = {"version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
                   "source": "aws.events", "account": "123456789012", "time": "2026-02-10T10:01:00Z",
                   "region": "us-east-1", "detail": {},
                   "resources": ["arn:aws:events:us-east-1:123456789012:rule/fraud-dev-OutboxDrainSchedule"]}

LAMBDA_CHILD = r"""
import base64, json, sys, time
from types import SimpleNamespace

target, events_path = sys.argv[1], sys.argv[2]
sys.path.insert(0, target)  # LAMBDA_TASK_ROOT, as the runtime puts it first
started = time.perf_counter()
import lambda_handler.app as app  # the init phase: settings, registry, model verified and loaded
init_s = time.perf_counter() - started
import lambda_handler.outbox as outbox

context = SimpleNamespace(aws_request_id="img-lambda-req", function_name="fraud-dev-score", memory_limit_in_mb=2048,
                          invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:fraud-dev-score",
                          get_remaining_time_in_millis=lambda: 10000)
events = json.load(open(events_path))
out = {"init_s": init_s, "responses": {}}
for name, event in events["api"].items():
    response = app.handler(event, context)
    body = response.get("body") or ""
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    out["responses"][name] = {"status": response["statusCode"], "body": json.loads(body) if body else None}
out["drain"] = outbox.handler(events["drain"], context)
out["imported"] = sorted(m for m in %(not_imported)r if sys.modules.get(m) is not None)
out["from_elsewhere"] = sorted({m.split(".")[0] for m, mod in list(sys.modules.items())
                                if m != "__main__" and getattr(mod, "__file__", None)
                                and not mod.__file__.startswith((target, sys.base_prefix))})
print("RESULT " + json.dumps(out))
"""


def run_lambda(python: str, target: Path, registry: Path, workdir: Path) -> tuple[dict, str]:
    events = {"api": {"health": http_api_v2("GET", "/v1/health", api_key=None),
                      "model": http_api_v2("GET", "/v1/model"),
                      "score": http_api_v2("POST", "/v1/score", TXN),
                      "refused": http_api_v2("POST", "/v1/score", {**TXN, "transaction_id": "img-2"}, api_key="wrong")},
              "drain": SCHEDULED_EVENT}
    (workdir / "events.json").write_text(json.dumps(events))
    (workdir / "child.py").write_text(LAMBDA_CHILD % {"not_imported": NOT_IMPORTED})
    env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "LANG": "C.UTF-8", "LAMBDA_TASK_ROOT": str(target),
           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_LAMBDA_FUNCTION_NAME": "fraud-dev-score",
           "FRAUD_BACKEND": "local", "FRAUD_REGISTRY_URI": str(registry), "FRAUD_API_KEY_HASHES": API_KEY_HASH,
           "FRAUD_METRICS": "emf",
           # the deployment's keys: those the registry was published (and its manifests signed) with
           "FRAUD_SECRETS_DIR": os.environ.get("FRAUD_SECRETS_DIR") or str(workdir / "secrets")}
    out = subprocess.run([python, "-I", "-S", str(workdir / "child.py"), str(target), str(workdir / "events.json")],
                         env=env, cwd=workdir, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    (line,) = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    return json.loads(line[len("RESULT "):]), out.stdout


def reference_score(registry: Path) -> dict:
    """The same transaction scored by the dev environment (training's libraries)."""
    from lambda_handler.container import build_container
    from lambda_handler.schemas import Transaction
    from lambda_handler.settings import Settings

    container = build_container(Settings(backend="local", registry_uri=str(registry), api_key_hashes=API_KEY_HASH,
                                         metrics="memory"))
    return container.scoring.score(Transaction.model_validate(TXN), "reference").model_dump(mode="json")


@pytest.mark.parametrize("kind", ["focal_xgb", "focal_lgbm", "logistic_xgb"])
def test_lambda_handlers_run_from_the_serving_image_alone(python312, serving_target, champion_registry, kind,
                                                          tmp_path):
    target, _ = serving_target
    registry = champion_registry(kind)
    champion = json.loads((registry / "champion.json").read_text())["version"]
    result, stdout = run_lambda(python312, target, registry, tmp_path)

    assert result["imported"] == [], f"the {kind} champion's cold start imported {result['imported']}"
    assert result["from_elsewhere"] == [], f"imported from outside the image's packages: {result['from_elsewhere']}"
    r = result["responses"]
    assert r["health"]["status"] == 200 and r["health"]["body"]["status"] == "ok"
    assert r["health"]["body"]["model_version"] == champion
    model = r["model"]["body"]
    assert r["model"]["status"] == 200 and model["version"] == champion
    files = json.loads((registry / "versions" / champion / "manifest.json").read_text())["files"]
    assert {name: f["sha256"] for name, f in model["manifest"]["files"].items()} == \
        {name: f["sha256"] for name, f in files.items()}
    assert r["refused"]["status"] == 401

    score = r["score"]
    assert score["status"] == 200, score
    body = score["body"]
    assert body["transaction_id"] == TXN["transaction_id"] and body["model_version"] == champion
    assert body["request_id"] == "img-lambda-req"
    assert set(model["features"]) >= {reason["feature"] for reason in body["reasons"]}
    thresholds = model["thresholds"]
    expected = ("decline" if body["probability"] >= thresholds["decline"] else
                "review" if body["probability"] >= thresholds["review"] else "approve")
    assert body["decision"] == expected
    reference = reference_score(registry)  # same model, same features, training's library versions
    assert body["probability"] == pytest.approx(reference["probability"], rel=1e-5, abs=1e-9)
    assert body["decision"] == reference["decision"]
    assert [x["feature"] for x in body["reasons"]] == [x["feature"] for x in reference["reasons"]]

    assert result["drain"] == {"sent": 0, "failed": 0, "pending": 0}
    assert '"_aws"' in stdout and "FraudScoring" in stdout  # EMF metrics through Powertools, from the image
    # the decision log, written without pandas or pyarrow (the local default: .fraud/decisions in the cwd)
    from fraud.decisions import read_decisions

    logged = read_decisions(tmp_path / ".fraud" / "decisions")
    assert list(logged["transaction_id"]) == [TXN["transaction_id"]]
    assert logged["probability"][0] == body["probability"] and logged["model_version"][0] == champion


# -- the nightly job, from the training image's packages alone -----------------------------

TINY = SMALL + """
[simulation]
days = 45
n_customers = 800
n_terminals = 300
seed = 5
"""

TRAINING_CHILD = r"""
import sys
target, argv = sys.argv[1], sys.argv[2:]
sys.path.insert(0, target)  # the image's site-packages
from importlib.metadata import entry_points

(script,) = entry_points(group="console_scripts", name=argv[0])  # the ENTRYPOINT, as pip installed it
sys.argv = argv
sys.exit(script.load()())
"""


def test_training_image_runs_the_nightly_job(python312, training_target, tmp_path):
    target, install = training_target
    installed = distributions(target)
    assert {"focal-fraud", "xgboost", "pandas", "pyarrow", "numba", "scikit-learn", "optuna", "matplotlib",
            "aws-lambda-powertools"} <= set(installed)
    assert not {"xgboost-cpu", "fastapi", "mangum", "uvicorn", "dask"} & set(installed)
    (tmp_path / "tiny.toml").write_text(TINY)
    (tmp_path / "child.py").write_text(TRAINING_CHILD)
    # the task definition's environment (infra/stack.py), with local paths for S3
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8", "NUMBA_CACHE_DIR": str(tmp_path / "nc"),
           "FRAUD_REGISTRY_URI": str(tmp_path / "registry"), "FRAUD_RUNS_URI": str(tmp_path / "runs"),
           "FRAUD_TRAINING_METRICS": "emf", "FRAUD_METRICS_NAMESPACE": "FraudScoring",
           "FRAUD_SECRETS_DIR": str(tmp_path / "secrets")}
    entrypoint, *arguments = install.entrypoint + install.cmd
    assert [entrypoint, *arguments] == ["fraud", "train", "--no-progress"]
    argv = [entrypoint, "--config", str(tmp_path / "tiny.toml"), *arguments]  # + the tiny run's sizes
    out = subprocess.run([python312, "-I", "-S", str(tmp_path / "child.py"), str(target), *argv], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]

    assert any((tmp_path / "data" / "transactions").rglob("*.parquet"))  # simulated: no data given
    champion = json.loads((tmp_path / "registry" / "champion.json").read_text())["version"]
    version = tmp_path / "registry" / "versions" / champion
    manifest = json.loads((version / "manifest.json").read_text())
    assert {"calibration.json", "thresholds.json", "feature_spec.json", "candidate.json"} <= set(manifest["files"])
    for name, entry in manifest["files"].items():
        assert hashlib.sha256((version / name).read_bytes()).hexdigest() == entry["sha256"], name
    (run,) = (tmp_path / "runs").iterdir()
    assert (run / "report.html").stat().st_size > 0
    report = json.loads((run / "report.json").read_text())
    assert report["gate"]["decision"] == "promote" and 0 < report["test"]["average_precision"] <= 1
    assert any(run.glob("scores-*.parquet"))
    assert "TrainingRunSucceeded" in out.stdout  # the run's EMF metric (the missing-run alarm watches it)


# -- native libraries ----------------------------------------------------------------------

@pytest.mark.parametrize("image", ["scoring", "training"])
def test_every_native_library_is_bundled_in_the_base_image_or_installed(image, request):
    dockerfile, target = (SCORING, "serving_target") if image == "scoring" else (TRAINING, "training_target")
    target, install = request.getfixturevalue(target)
    manager = package_manager(install.base_image)
    packages = installed_system_packages(dockerfile)[manager]
    needed = system_libraries_needed(target)
    assert needed, "no system library needed at all: is readelf reading the wheels?"
    for library, users in needed.items():
        assert library in SYSTEM_PACKAGES, (f"{users[:3]} need {library}, which neither the wheels bundle nor the "
                                            "base image provides: install it in the Dockerfile and map it in "
                                            "tests/helpers/images.py")
        package = SYSTEM_PACKAGES[library][manager]
        assert package in packages, (f"{dockerfile.name} must install {package} ({manager}): {users[:3]} need "
                                     f"{library}")
