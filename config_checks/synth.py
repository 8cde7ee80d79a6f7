"""Synthesize the CDK app for both targets into cdk.out/<target>/ (SAM and cfn-lint read these templates).

python -m config_checks.synth            # bundled assets, as `cdk synth` makes them (for `sam local`)
python -m config_checks.synth --lint     # templates only (asset bundling skipped), into cdk.out/lint/
"""

from __future__ import annotations

import argparse
import json
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
        errors += [f"{target}: {error}" for error in nag_errors(Path(assembly.directory))]
    return templates, errors


def nag_errors(assembly_dir: Path) -> list[str]:
    """cdk-nag's errors in a synthesized cloud assembly, read from its manifest.json (plain JSON: reading them back
    through jsii's Annotations API fails once another app ran in the same kernel)."""
    manifest = json.loads((assembly_dir / "manifest.json").read_text())
    errors = []
    for artifact in manifest.get("artifacts", {}).values():
        for path, entries in (artifact.get("metadata") or {}).items():
            for entry in entries:
                data = str(entry.get("data", ""))
                if entry.get("type") == "aws:cdk:error" and "AwsSolutions-" in data:
                    errors.append(f"{path}: {data.strip()[:200]}")
    return errors


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
