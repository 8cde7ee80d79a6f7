"""CloudFormation properties community LocalStack's resource providers drop, applied after the resource is
created, so a stack deploys with the settings its template declares:

- `AWS::S3::Bucket` `BucketEncryption` (the buckets' KMS keys: without this every bucket stayed on AES256);
- `AWS::ApiGateway::Stage` `MethodSettings` (the stage's throttling, metrics and logging settings).

And two changes of pace, both `DR_CFN_POLL_S` (default 0.05 s) instead of a second:
- a resource still being created is read again that often. A function is Pending for a few milliseconds here, past
  the five immediate re-reads LocalStack allows, so each of the stack's 14 functions waited a full second: 12.5 of
  the 15 s CloudFormation spent on a fresh deploy (the stack's events, 2026-12-01);
- the Lambda resource provider's waits after a function's code and configuration updates (botocore's
  `function_updated_v2` waiter, 1 s between reads): 2 s per changed function, 28 s of a 43.5 s deploy after a
  handler change (the stack's events; 22.1 s after this change; by hand, 2 cores).

Installed when LocalStack starts (an `on_infra_start` hook), before any stack is deployed."""

from __future__ import annotations

import functools
import logging
import math
import os

from .hooks import on_infra_start

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


def poll_interval(environ=os.environ) -> float:
    """DR_CFN_POLL_S in seconds (0.05 when unset or not a number in [0.01, 5]; LocalStack's own is 1)."""
    try:
        value = float(environ.get("DR_CFN_POLL_S") or 0.05)
    except ValueError:
        value = -1.0
    if not 0.01 <= value <= 5:
        LOG.warning(
            "dr: DR_CFN_POLL_S=%r is not a number of seconds in [0.01, 5]; using 0.05", environ.get("DR_CFN_POLL_S")
        )
        return 0.05
    return value


def _poll_every(executor_class, interval: float) -> None:
    """`deploy_loop(provider, resource, payload, max_timeout, sleep_time)`'s wait between reads of an IN_PROGRESS
    resource, unless a caller gives its own (by name or position). Its iteration count is the per-resource timeout
    over the wait, so the timeout stays about what it was (plus the reads' own time, now more of them)."""
    original = executor_class.deploy_loop
    if getattr(original, "_dr", False):
        return

    @functools.wraps(original)
    def deploy_loop(self, *args, **kwargs):
        if len(args) < 5 and "sleep_time" not in kwargs:
            kwargs["sleep_time"] = interval
        return original(self, *args, **kwargs)

    deploy_loop._dr = True
    executor_class.deploy_loop = deploy_loop


# botocore's Lambda waiters: the pinned LocalStack's resource provider uses function_updated_v2 after updates (a
# test reads its source); the others are the same kind of wait, should a later provider use them
LAMBDA_WAITERS = frozenset({"FunctionActive", "FunctionActiveV2", "FunctionUpdated", "FunctionUpdatedV2"})


def _quicker_lambda_waiters(waiter_class, delay: float) -> None:
    """Those waiters read the function every `delay` s, unless the caller configures its own wait; their attempts
    grow so the total wait (the timeout) stays what botocore's delay and attempts made it."""
    original = waiter_class.wait
    if getattr(original, "_dr", False):
        return

    @functools.wraps(original)
    def wait(self, **kwargs):
        config = dict(kwargs.get("WaiterConfig") or {})
        if self.name in LAMBDA_WAITERS and "Delay" not in config and delay < self.config.delay:
            budget = self.config.delay * config.get("MaxAttempts", self.config.max_attempts)
            config.update(Delay=delay, MaxAttempts=max(1, math.ceil(budget / delay)))
            kwargs["WaiterConfig"] = config
        return original(self, **kwargs)

    wait._dr = True
    waiter_class.wait = wait


@on_infra_start
def dr_cloudformation_patches() -> None:
    from localstack.services.apigateway.resource_providers.aws_apigateway_stage import ApiGatewayStageProvider
    from localstack.services.cloudformation.resource_provider import ResourceProviderExecutor
    from localstack.services.s3.resource_providers.aws_s3_bucket import S3BucketProvider

    _after_create(S3BucketProvider, _encrypt_bucket)
    _after_create(ApiGatewayStageProvider, _stage_settings)
    from botocore.waiter import Waiter

    interval = poll_interval()
    _poll_every(ResourceProviderExecutor, interval)
    _quicker_lambda_waiters(Waiter, interval)
    LOG.info(
        "dr: CloudFormation patches installed (bucket encryption, stage method settings, re-reads and Lambda waiters "
        "every %s s)",
        interval,
    )
