"""Synthesize the CDK app for both targets into cdk.out/<target>/ (SAM and cfn-lint read these templates).

python -m config_checks.synth            # bundled assets, as `cdk synth` makes them (for `sam local`)
python -m config_checks.synth --lint     # templates only (asset bundling skipped), into cdk.out/lint/
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("aws", "local")


def synthesize(outdir: Path, bundle: bool = False) -> tuple[dict[str, Path], list[str]]:
    """Templates per target, and cdk-nag's errors (rule and path), if any."""
    warnings.filterwarnings("ignore")
    from infra_cdk.app import build

    templates, errors = {}, []
    for target in TARGETS:
        context = {"target": target} if bundle else {"target": target, "aws:cdk:bundling-stacks": []}
        app, stack = build(context, outdir=str(outdir / target))
        assembly = app.synth()
        templates[target] = Path(assembly.get_stack_artifact(stack.artifact_id).template_full_path)
        errors += [f"{target}: {error}" for error in nag_errors(stack)]
    return templates, errors


def nag_errors(stack) -> list[str]:
    """cdk-nag's error annotations on a synthesized stack (rule, path)."""
    import aws_cdk.cloud_assembly_schema  # noqa: F401 - registers the jsii type find_error's messages come back as
    from aws_cdk.assertions import Annotations, Match

    found = Annotations.from_stack(stack).find_error("*", Match.string_like_regexp("AwsSolutions-.*"))
    return [f"{message.id}: {str(message.entry.data)[:200]}" for message in found]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lint", action="store_true", help="skip asset bundling; write to cdk.out/lint/")
    args = parser.parse_args()
    outdir = ROOT / "cdk.out" / ("lint" if args.lint else "")
    templates, errors = synthesize(outdir, bundle=not args.lint)
    for target, path in templates.items():
        print(f"{target}: {path.relative_to(ROOT)}")
    for error in errors:
        print(f"cdk-nag: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
