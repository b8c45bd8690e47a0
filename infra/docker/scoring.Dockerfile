# The scoring Lambda: FastAPI wrapped by Mangum, model loaded from the S3 registry at init.
# Build context: the repository root (see .dockerignore).
FROM public.ecr.aws/lambda/python:3.12

# LightGBM's wheel links the system OpenMP runtime (libgomp.so.1) instead of bundling it
# (XGBoost's wheel bundles its own), and the minimal Lambda base image does not promise it;
# tests/test_infra/test_images.py checks every native library the installed wheels need.
# Not pinned: it follows the base image's gcc (11 at first, 14 since 2025), and the base
# image's tag already pins the distribution.
# hadolint ignore=DL3041
RUN dnf install -y libgomp && dnf clean all

# The project itself with its [serve] extra, and nothing else: what the Lambda imports is
# defined in pyproject.toml (no pandas, pyarrow, numba or scikit-learn; xgboost-cpu).
COPY pyproject.toml README.md /tmp/focal-fraud/
COPY objectives /tmp/focal-fraud/objectives
COPY fraud /tmp/focal-fraud/fraud
COPY lambda_handler /tmp/focal-fraud/lambda_handler
RUN pip install --no-cache-dir --target "${LAMBDA_TASK_ROOT}" "/tmp/focal-fraud[serve]" \
    && rm -rf /tmp/focal-fraud

# The handler the README documents; the outbox drain function overrides it with
# lambda_handler.outbox.handler.
CMD ["lambda_handler.app.handler"]
