"""Build the prediction and batch-score functions' zips on this machine (no Docker): manylinux_2_28 wheels for
python3.13 (Lambda's python3.13 runs on Amazon Linux 2023, glibc 2.34) installed into a folder, trimmed
of what onnxruntime's Python API never loads, plus the inference core. Cached under .state/bundles/ by a
hash of the pins and the sources."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tomllib
from pathlib import Path

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".state" / "bundles"

# The API layer both variants share (boto3 comes with the Lambda runtime).
_API = (
    "pydantic",
    "pydantic-core",
    "annotated-types",
    "typing-extensions",
    "typing-inspection",
    "pydantic-settings",
    "python-dotenv",
    "aws-lambda-powertools",
    "jmespath",
    # Powertools Tracer, active on AWS (botocore, its other dependency, is in the runtime)
    "aws-xray-sdk",
    "wrapt",
)
# What the prediction Lambda imports, with its runtime dependencies.
# mmh3: the online-feature reader computes the key Feast stores a patient under (inference_core/online_features.py)
PREDICT_PACKAGES = ("numpy", "onnxruntime", "flatbuffers", "packaging", "protobuf", "mmh3", *_API)
# The batch-score Lambda: the same, plus pyarrow for streaming CSV/Parquet.
BATCH_PACKAGES = (*PREDICT_PACKAGES, "pyarrow")
# The token authorizer: PyJWT with RS256 (cryptography).
AUTHORIZER_PACKAGES = ("pyjwt", "cryptography", "cffi", "pycparser", *_API)
# The metrics bridge: remote write needs protobuf and snappy (cramjam); botocore signs for AMP (in the runtime).
BRIDGE_PACKAGES = ("protobuf", "cramjam", *_API)
# The scikit-learn equivalent (for the package-size benchmark's baseline): everything that baseline imports —
# scikit-learn, pandas (its pipeline takes a DataFrame) and XGBoost (the champion family), with their dependencies.
SKLEARN_PACKAGES = (
    "numpy",
    "scipy",
    "scikit-learn",
    "joblib",
    "threadpoolctl",
    "pandas",
    "python-dateutil",
    "pytz",
    "tzdata",
    "six",
    "xgboost-cpu",
    *_API,
)
# Never loaded by `import onnxruntime` + InferenceSession: the C API library (the Python module links its own
# copy of the runtime), and the offline tools for transformers and quantization.
PRUNE = (
    "onnxruntime/capi/libonnxruntime.so.*",
    "onnxruntime/transformers",
    "onnxruntime/quantization",
    "onnxruntime/tools",
    "numpy/*/tests",
    "numpy/tests",
    "numpy/f2py",
    "numpy/_pyinstaller",
    "*/__pycache__",
    "**/*.pyi",
    # pyarrow: headers, Cython sources, tests, and Flight (RPC), which batch scoring never loads
    "pyarrow/include",
    "pyarrow/src",
    "pyarrow/tests",
    "pyarrow/*.pyx",
    "pyarrow/*.pxd",
    "pyarrow/*.pxi",
    "pyarrow/libarrow_flight.so*",
    "pyarrow/_flight*.so",
)
# What goes into each zip besides its packages: (source folder, folder in the zip)
BUNDLES = {
    "predict": (PREDICT_PACKAGES, (("inference_core", "inference_core"), ("functions/predict", "predict"))),
    "batch": (
        BATCH_PACKAGES,
        (
            ("inference_core", "inference_core"),
            ("batch_scoring", "batch_scoring"),
            ("functions/batch_score", "batch_score"),
        ),
    ),
    "authorizer": (AUTHORIZER_PACKAGES, (("auth", "auth"), ("functions/authorizer", "authorizer"))),
    "bridge": (BRIDGE_PACKAGES, (("observability", "observability"), ("functions/metrics_bridge", "metrics_bridge"))),
}


def locked_versions(names: tuple[str, ...]) -> list[str]:
    """Exact pins from uv.lock, so the zip has what the tests ran against."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    versions = {p["name"]: p["version"] for p in lock["package"]}
    missing = [n for n in names if n not in versions]
    if missing:
        raise RuntimeError(f"not in uv.lock: {', '.join(missing)}")
    return [f"{n}=={versions[n]}" for n in names]


def _uv() -> str:
    for candidate in (ROOT / ".state" / "tools" / "bin" / "uv", shutil.which("uv")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise RuntimeError("uv not found: run `make install`")


def _digest(pins: list[str], sources: tuple[str, ...]) -> str:
    h = hashlib.sha256("\n".join([*pins, *PRUNE]).encode())
    for src in sources:
        for path in sorted((ROOT / src).rglob("*.py")):
            h.update(str(path.relative_to(ROOT)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def install_packages(names: tuple[str, ...], target: Path, prune: bool) -> None:
    pins = locked_versions(names)
    subprocess.run(
        [
            _uv(),
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            "--python-version",
            "3.13",
            "--python-platform",
            "x86_64-manylinux_2_28",
            "--only-binary",
            ":all:",
            *pins,
        ],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    if prune:
        for pattern in PRUNE:
            for path in target.glob(pattern):
                shutil.rmtree(path) if path.is_dir() else path.unlink()


def build_bundle(kind: str) -> Path:
    """The folder to zip: dependencies plus the function's sources. Built once per pins+sources."""
    packages, sources = BUNDLES[kind]
    pins = locked_versions(packages)
    out = CACHE / f"{kind}-{_digest(pins, tuple(src for src, _ in sources))}"
    if (out / ".complete").exists():
        return out
    tmp = out.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    install_packages(packages, tmp, prune=True)
    for src, dest in sources:
        shutil.copytree(ROOT / src, tmp / dest, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp / ".complete").write_text("ok")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def build_predict_bundle() -> Path:
    return build_bundle("predict")


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


@jsii.implements(ILocalBundling)
class LocalBundler:
    """CDK local bundling: copy the cached bundle into the asset folder; Docker is never needed."""

    def __init__(self, kind: str = "predict") -> None:
        self.kind = kind

    def try_bundle(self, output_dir: str, *args, **kwargs) -> bool:
        shutil.copytree(
            build_bundle(self.kind), output_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".complete")
        )
        return True


def function_code(bundle: str | None = None) -> lambda_.Code:
    """The functions/ folder as a zip asset. Locally the host executor supplies the dependencies (the project's
    interpreter); `bundle` ("predict", "batch") builds the zip with its dependencies for AWS, here, without Docker
    (the Docker image is only the fallback CDK asks for)."""
    exclude = ["*.Dockerfile", "**/__pycache__"]
    if bundle is None:
        return lambda_.Code.from_asset(str(ROOT / "functions"), exclude=exclude)
    return lambda_.Code.from_asset(
        str(ROOT / "functions"),
        bundling=BundlingOptions(
            image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.13"), local=LocalBundler(bundle)
        ),
    )
