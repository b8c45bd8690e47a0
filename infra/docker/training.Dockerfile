# The nightly training job: `fraud train`, reading transactions from and writing the
# registry and reports to S3 (FRAUD_DATA_URI, FRAUD_REGISTRY_URI, FRAUD_RUNS_URI).
# Build context: the repository root (see .dockerignore).
# bookworm: the Debian release the libgomp1 pin below belongs to (plain 3.12-slim moved on).
FROM python:3.12-slim-bookworm

# LightGBM links the system OpenMP runtime (libgomp.so.1); tests/test_infra/test_images.py
# checks every native library the installed wheels need.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1=12.* \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 fraud
WORKDIR /app
COPY pyproject.toml README.md ./
COPY objectives ./objectives
COPY fraud ./fraud
COPY batch_jobs ./batch_jobs
# The project with its [train] extra: what the job imports is defined in pyproject.toml.
RUN pip install --no-cache-dir "/app[train]"

ENV NUMBA_CACHE_DIR=/tmp/numba-cache
USER 1000
WORKDIR /home/fraud
# The command the README documents for the nightly job.
ENTRYPOINT ["fraud"]
CMD ["train", "--no-progress"]
