"""CDK entry point: `cdk synth -c target=aws`, `cdklocal deploy` (target=local, the default)."""

from __future__ import annotations

import warnings

# jsii's runtime type checks cannot inspect CDK's protocols and say so for every call: noise, not news.
warnings.filterwarnings("ignore", message="Typeguard cannot check")

import aws_cdk as cdk  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from .config import DeployConfig  # noqa: E402
from .stack import DiabetesRiskStack  # noqa: E402

# Feature flags the app is written against (also when synthesized by tests, which do not read cdk.json).
FEATURE_FLAGS = {
    # S3 access logs granted by a bucket policy instead of the legacy LogDeliveryWrite ACL (cfn-lint W3045).
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
}


def build(context: dict | None = None, outdir: str | None = None) -> tuple[cdk.App, DiabetesRiskStack]:
    app = cdk.App(context={**FEATURE_FLAGS, **(context or {})}, outdir=outdir)
    config = DeployConfig.from_context(app.node)
    stack = DiabetesRiskStack(app, config.stack_name, config, description="Diabetes Risk: serverless MLOps")
    cdk.Tags.of(stack).add("project", "diabetes-risk")
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return app, stack


if __name__ == "__main__":
    build()[0].synth()
