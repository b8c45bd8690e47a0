"""The CDK app: ``cdk deploy -c stage=prod`` (cdk.json runs ``python3 -m infra.app``).

    python3 -m infra.app            synthesises every template into cdk.out (no AWS account needed)
"""

from __future__ import annotations

import os

import aws_cdk as cdk

from .config import stage_config
from .stack import FraudScoringStack


def build_app(context: dict | None = None, outdir: str | None = None) -> cdk.App:
    app = cdk.App(context=context or {}, outdir=outdir or os.environ.get("CDK_OUTDIR") or "cdk.out")
    config = stage_config(app.node)
    FraudScoringStack(app, f"FraudScoring-{config.stage}", config=config,
                      description=f"Fraud scoring ({config.stage}): API, review routing, nightly training")
    return app


def main() -> None:
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    build_app().synth()


if __name__ == "__main__":
    main()
