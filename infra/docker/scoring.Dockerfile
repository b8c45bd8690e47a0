# The scoring Lambda: FastAPI wrapped by Mangum, model loaded from the S3 registry at init.
# Build context: the repository root (see .dockerignore).
FROM public.ecr.aws/lambda/python:3.12

COPY infra/docker/requirements-serving.txt /tmp/requirements-serving.txt
RUN pip install --no-cache-dir -r /tmp/requirements-serving.txt

COPY pyproject.toml README.md ${LAMBDA_TASK_ROOT}/
COPY objectives ${LAMBDA_TASK_ROOT}/objectives
COPY fraud ${LAMBDA_TASK_ROOT}/fraud
COPY lambda_handler ${LAMBDA_TASK_ROOT}/lambda_handler

# The handler the README documents; the outbox drain function overrides it with
# lambda_handler.outbox.handler.
CMD ["lambda_handler.app.handler"]
