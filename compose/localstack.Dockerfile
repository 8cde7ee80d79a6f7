# LocalStack for docker-compose, with the project's Lambda executor: functions run as processes inside this
# container, with the project's locked dependencies in a Python 3.13 environment - the same zip assets and
# the same executor as the embedded local cloud (community LocalStack has no ECR and no Lambda layers, and
# its stock Docker Lambdas would not have the training dependencies).
#
# 4.14.0 is the last LocalStack tag that starts without an auth token (later tags exit 55 without
# LOCALSTACK_AUTH_TOKEN). It must equal localcloud/localstack-requirements.txt's version (a test checks).
FROM localstack/localstack:4.14.0

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# uv, the same version as the Makefile's, from its release image.
COPY --from=ghcr.io/astral-sh/uv:0.13.8 /uv /usr/local/bin/uv

ENV UV_PYTHON_INSTALL_DIR=/opt/dr/python \
    UV_PROJECT_ENVIRONMENT=/opt/dr/venv \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_NO_CACHE=1

WORKDIR /opt/dr/project

# 1. The project's dependencies (uv.lock, no dev group) in their own Python 3.13: the Lambda interpreter.
COPY pyproject.toml uv.lock README.md ./
RUN uv python install 3.13 \
 && uv sync --frozen --no-dev --no-install-project --python 3.13

# 2. The project itself (editable, so training, inference_core, batch_scoring and observability import).
COPY . .
RUN uv sync --frozen --no-dev --python 3.13

# 3. The executor and the project's providers (logs:dr, dynamodb:moto, apigateway:dr) into LocalStack's own venv,
#    where its plugin manager finds their entry points. The worker itself runs under /opt/dr/venv's Python.
RUN uv pip install --no-deps --python /opt/code/localstack/.venv/bin/python /opt/dr/project/localcloud/host_executor \
 && /opt/code/localstack/.venv/bin/python -c "import dr_host_executor.plugin"

ENV LAMBDA_RUNTIME_EXECUTOR=host \
    DR_LAMBDA_PYTHON=/opt/dr/venv/bin/python \
    PROVIDER_OVERRIDE_LOGS=dr \
    PROVIDER_OVERRIDE_DYNAMODB=moto \
    PROVIDER_OVERRIDE_APIGATEWAY=dr

WORKDIR /opt/code/localstack
