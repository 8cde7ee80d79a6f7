"""Where one training run keeps its intermediate files: an S3 prefix (Lambda, the local cloud) or a local
folder (in-process runs and tests). Steps exchange only keys and small JSON; bulk data stays here."""

from __future__ import annotations

import io
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import joblib
import pandas as pd


class RunStore(ABC):
    """Files of one run under `runs/<run_id>/`, with helpers for JSON, tables and fitted models."""

    @abstractmethod
    def put_bytes(self, name: str, data: bytes) -> str: ...

    @abstractmethod
    def get_bytes(self, name: str) -> bytes: ...

    @abstractmethod
    def exists(self, name: str) -> bool: ...

    @abstractmethod
    def uri(self, name: str) -> str: ...

    def put_json(self, name: str, doc: Any) -> str:
        return self.put_bytes(name, json.dumps(doc, indent=2, default=_default).encode())

    def get_json(self, name: str) -> Any:
        return json.loads(self.get_bytes(name))

    def put_frame(self, name: str, frame: pd.DataFrame) -> str:
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        return self.put_bytes(name, buf.getvalue())

    def get_frame(self, name: str) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(self.get_bytes(name)))

    def put_model(self, name: str, model: Any) -> str:
        buf = io.BytesIO()
        joblib.dump(model, buf)
        return self.put_bytes(name, buf.getvalue())

    def get_model(self, name: str) -> Any:
        # Only this pipeline writes these files, into its own bucket; they are never user input.
        return joblib.load(io.BytesIO(self.get_bytes(name)))


class S3RunStore(RunStore):
    def __init__(self, s3, bucket: str, run_id: str) -> None:
        self.s3, self.bucket, self.prefix = s3, bucket, f"runs/{run_id}/"

    def put_bytes(self, name: str, data: bytes) -> str:
        self.s3.put_object(Bucket=self.bucket, Key=self.prefix + name, Body=data)
        return self.uri(name)

    def get_bytes(self, name: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"].read()

    def exists(self, name: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.s3.head_object(Bucket=self.bucket, Key=self.prefix + name)
            return True
        except ClientError:
            return False

    def uri(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{name}"


class LocalRunStore(RunStore):
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def put_bytes(self, name: str, data: bytes) -> str:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return str(path)

    def get_bytes(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def exists(self, name: str) -> bool:
        return (self.root / name).exists()

    def uri(self, name: str) -> str:
        return str(self.root / name)


def _default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
