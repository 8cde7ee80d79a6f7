"""The CDK app: one stack for Diabetes Risk, deployed to the embedded local cloud (cdklocal, target=local)
or to AWS (cdk deploy, target=aws). The target changes how code is packaged, nothing else."""

import os

from . import lazy_cdk

# aws_cdk's service modules load on first use: the app's run in a synth took 12.0 s against 23.6 s with all ~290
# (bench/bench_loop.py, 2 cores), the assembly the same (tests/infra/test_lazy_cdk.py compares them).
# DR_CDK_EAGER_IMPORT=1 loads them all, as before (bench/bench_loop.py's baseline).
if os.environ.get("DR_CDK_EAGER_IMPORT", "").strip() != "1":
    lazy_cdk.install()
