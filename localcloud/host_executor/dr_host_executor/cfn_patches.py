"""CloudFormation properties community LocalStack's resource providers drop, applied after the resource is
created, so a stack deploys with the settings its template declares:

- `AWS::S3::Bucket` `BucketEncryption` (the buckets' KMS keys: without this every bucket stayed on AES256);
- `AWS::ApiGateway::Stage` `MethodSettings` (the stage's throttling, metrics and logging settings).

Installed when LocalStack starts (an `on_infra_start` hook), before any stack is deployed."""

from __future__ import annotations

import logging

try:
    from localstack.runtime import hooks

    on_infra_start = hooks.on_infra_start()
except ImportError:  # pragma: no cover - imported outside LocalStack's venv (unit tests)

    def on_infra_start(function):
        return function


LOG = logging.getLogger(__name__)


def bucket_encryption_request(model: dict) -> dict | None:
    """`BucketEncryption` as PutBucketEncryption's ServerSideEncryptionConfiguration."""
    rules = ((model.get("BucketEncryption") or {}).get("ServerSideEncryptionConfiguration")) or []
    out = []
    for rule in rules:
        default = rule.get("ServerSideEncryptionByDefault") or {}
        entry: dict = {}
        if default:
            entry["ApplyServerSideEncryptionByDefault"] = {
                k: v for k, v in default.items() if k in ("SSEAlgorithm", "KMSMasterKeyID") and v is not None
            }
        if rule.get("BucketKeyEnabled") is not None:
            entry["BucketKeyEnabled"] = bool(rule["BucketKeyEnabled"])
        out.append(entry)
    return {"Rules": out} if out else None


def _after_create(provider_class, apply) -> None:
    original = provider_class.create
    if getattr(original, "_dr", False):
        return

    def create(self, request):
        event = original(self, request)
        if getattr(event, "status", None) is not None and str(event.status).endswith("SUCCESS"):
            apply(request.desired_state, request.aws_client_factory)
        return event

    create._dr = True
    provider_class.create = create


def _encrypt_bucket(model: dict, factory) -> None:
    configuration = bucket_encryption_request(model)
    if configuration:
        factory.s3.put_bucket_encryption(Bucket=model["BucketName"], ServerSideEncryptionConfiguration=configuration)


def _stage_settings(model: dict, factory) -> None:
    from .apigateway import method_settings_patches

    patches = method_settings_patches(model.get("MethodSettings") or [])
    if patches:
        factory.apigateway.update_stage(
            restApiId=model["RestApiId"], stageName=model["StageName"], patchOperations=patches
        )


@on_infra_start
def dr_cloudformation_patches() -> None:
    from localstack.services.apigateway.resource_providers.aws_apigateway_stage import ApiGatewayStageProvider
    from localstack.services.s3.resource_providers.aws_s3_bucket import S3BucketProvider

    _after_create(S3BucketProvider, _encrypt_bucket)
    _after_create(ApiGatewayStageProvider, _stage_settings)
    LOG.info("dr: CloudFormation patches installed (bucket encryption, stage method settings)")
