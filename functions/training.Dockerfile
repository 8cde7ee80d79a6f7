# Container image for the heavy training steps on AWS (target=aws): scikit-learn, XGBoost, MLflow and
# Feast do not fit a 250 MB zip. Built by `cdk deploy` from the repository root; the same handlers run
# as zip functions on the local cloud.
FROM public.ecr.aws/lambda/python:3.13
WORKDIR /build
COPY pyproject.toml uv.lock README.md ./
RUN pip install --no-cache-dir uv==0.13.8 \
 && uv export --frozen --no-dev --no-hashes --no-emit-project -o requirements.txt \
 && pip install --no-cache-dir -r requirements.txt --target "${LAMBDA_TASK_ROOT}" \
 && rm -rf /build
WORKDIR ${LAMBDA_TASK_ROOT}
COPY inference_core ${LAMBDA_TASK_ROOT}/inference_core
COPY training ${LAMBDA_TASK_ROOT}/training
COPY feature_repo ${LAMBDA_TASK_ROOT}/feature_repo
COPY functions/training_steps ${LAMBDA_TASK_ROOT}/training_steps
CMD ["training_steps.handlers.validate"]
