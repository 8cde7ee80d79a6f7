"""The CDK app: one stack for Diabetes Risk, deployed to the embedded local cloud (cdklocal, target=local)
or to AWS (cdk deploy, target=aws). The target changes how code is packaged, nothing else."""

import os

from . import lazy_cdk

# aws_cdk's service modules load on first use: a synth ran 13.6 s with all ~300 of them, 5.9 s with the ~56 the app
# uses, the assembly the same (2 cores, by hand; tests/infra/test_lazy_cdk.py compares the templates).
# DR_CDK_EAGER_IMPORT=1 loads them all, as before (bench/bench_loop.py's baseline).
if os.environ.get("DR_CDK_EAGER_IMPORT", "").strip() != "1":
    lazy_cdk.install()
