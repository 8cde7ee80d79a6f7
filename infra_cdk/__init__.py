"""The CDK app: one stack for Diabetes Risk, deployed to the embedded local cloud (cdklocal, target=local)
or to AWS (cdk deploy, target=aws). The target changes how code is packaged, nothing else."""
