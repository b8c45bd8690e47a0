"""EMF metric lines: on stdout where CloudWatch reads them (Lambda, the aws backend), in a file
when serving locally, so the server's log stays readable."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore")


def served(settings):
    from lambda_handler.api import create_app
    from lambda_handler.container import build_container

    client = TestClient(create_app(build_container(settings)))
    assert client.get("/v1/health").status_code == 200
    return client


def emf_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]


def test_locally_metrics_go_to_a_file_not_the_log(local_settings, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    served(local_settings.model_copy(update={"metrics": "emf"}))
    assert emf_lines(capsys.readouterr().out) == []
    lines = emf_lines((tmp_path / ".fraud" / "metrics-emf.jsonl").read_text())
    assert any(b.get("Endpoint") == "/v1/health" and "Requests" in b for b in lines)


def test_a_metrics_path_setting_moves_the_file_or_keeps_stdout(local_settings, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    served(local_settings.model_copy(update={"metrics": "emf", "metrics_path": str(tmp_path / "m" / "emf.log")}))
    assert emf_lines((tmp_path / "m" / "emf.log").read_text()) and not (tmp_path / ".fraud").exists()
    served(local_settings.model_copy(update={"metrics": "emf", "metrics_path": "-"}))
    assert any(b.get("Endpoint") == "/v1/health" for b in emf_lines(capsys.readouterr().out))


def test_on_lambda_metrics_stay_on_stdout(local_settings, tmp_path, monkeypatch, capsys):
    """CloudWatch turns stdout's EMF lines into metrics; Lambda's disk is read-only but /tmp."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fraud-dev-score")
    served(local_settings.model_copy(update={"metrics": "emf"}))
    assert any(b.get("Endpoint") == "/v1/health" for b in emf_lines(capsys.readouterr().out))
    assert not (tmp_path / ".fraud").exists()


def test_the_aws_backend_writes_metrics_to_stdout(local_settings, monkeypatch):
    import sys

    from lambda_handler.metrics_output import emf_path, emf_stream

    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    aws = local_settings.model_copy(update={"backend": "aws", "metrics": "emf"})
    assert emf_path(aws) is None and emf_stream(aws) is sys.stdout
