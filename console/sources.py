"""Everything the console shows, read through the AWS APIs (CloudFormation, Step Functions, S3) and MLflow's REST
API, with the same clients as the CLI: so the same pages serve the embedded local cloud and a stack on AWS."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import boto3
import requests
from botocore.exceptions import BotoCoreError, ClientError

from batch_scoring.naming import result_name
from diabetes_risk.runs import failure_record
from localcloud.settings import LocalCloudSettings

from .graph import Graph, build_graph
from .settings import ConsoleSettings

MODEL_NAME = "diabetes-risk"
STEPS = ("validate", "features", "train", "evaluate", "export", "register", "promote")
FAMILIES = ("logistic_regression", "random_forest", "xgboost")


class NotDeployed(RuntimeError):
    """The stack (or a part of it) is not there yet; the message says what to run."""


class Unavailable(RuntimeError):
    """A service did not answer (MLflow down, the local cloud stopped); the message names it."""


@dataclass
class Upload:
    bucket: str
    key: str
    version_id: str | None
    name: str  # the result folder under outbox/ (batch scoring's result_name)


class Sources:
    def __init__(self, settings: ConsoleSettings, cloud: LocalCloudSettings | None = None) -> None:
        self.settings = settings
        self.cloud = cloud if settings.target == "local" else None
        if self.cloud is not None:
            from localcloud.smoke import clients

            self.cfn, self.sfn, self.s3 = clients(self.cloud, "cloudformation", "stepfunctions", "s3")
            self.mlflow_url = settings.mlflow_url or self.cloud.mlflow_url
            self.prometheus_url = settings.prometheus_url or self.cloud.prometheus_url
        else:
            self.cfn, self.sfn, self.s3 = (boto3.client(n) for n in ("cloudformation", "stepfunctions", "s3"))
            self.mlflow_url = settings.mlflow_url
            self.prometheus_url = settings.prometheus_url
        self.http = requests.Session()
        self._outputs: tuple[float, dict] | None = None
        self._definitions: dict[str, dict] = {}
        self._graphs: dict[str, Graph] = {}
        self._histories: dict[str, list[dict]] = {}
        self._token = None

    # --- the stack ---------------------------------------------------------------------------------------
    def outputs(self) -> dict[str, str]:
        """The stack's outputs, cached for 10 s (every page needs them; a redeploy shows within seconds)."""
        if self._outputs and time.monotonic() - self._outputs[0] < 10:
            return self._outputs[1]
        try:
            stack = self.cfn.describe_stacks(StackName=self.settings.stack_name)["Stacks"][0]
        except ClientError as exc:
            raise NotDeployed(
                f"the {self.settings.stack_name} stack is not deployed: run `diabetes-risk deploy`"
            ) from exc
        except Exception as exc:  # connection refused, timeouts
            raise Unavailable(
                f"the AWS endpoint did not answer ({type(exc).__name__}): is the local cloud up?"
            ) from exc
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        self._outputs = (time.monotonic(), outputs)
        return outputs

    @property
    def state_machine_arn(self) -> str:
        return self.outputs()["TrainingStateMachineArn"]

    def definition(self, arn: str | None = None) -> dict:
        """The deployed definition (DescribeStateMachine), or the one an execution ran with."""
        arn = arn or self.state_machine_arn
        if arn not in self._definitions:
            if ":execution:" in arn:
                description = self.sfn.describe_state_machine_for_execution(executionArn=arn)
            else:
                description = self.sfn.describe_state_machine(stateMachineArn=arn)
            self._definitions[arn] = json.loads(description["definition"])
        return self._definitions[arn]

    def graph(self, arn: str | None = None) -> Graph:
        """The definition as a graph, built once per definition (a live page asks for it every poll)."""
        arn = arn or self.state_machine_arn
        if arn not in self._graphs:
            self._graphs[arn] = build_graph(self.definition(arn))
        return self._graphs[arn]

    # --- executions ----------------------------------------------------------------------------------------
    def executions(self, status: str | None = None, limit: int = 50) -> list[dict]:
        kwargs = {"stateMachineArn": self.state_machine_arn, "maxResults": limit}
        if status:
            kwargs["statusFilter"] = status
        items = self.sfn.list_executions(**kwargs)["executions"]
        return [
            {
                "arn": e["executionArn"],
                "name": e["name"],
                "status": e["status"],
                "started": e["startDate"],
                "stopped": e.get("stopDate"),
                "seconds": round(((e.get("stopDate") or _now(e["startDate"])) - e["startDate"]).total_seconds(), 1),
            }
            for e in items
        ]

    def describe(self, arn: str) -> dict:
        return self.sfn.describe_execution(executionArn=arn)

    def history(self, arn: str) -> list[dict]:
        """The whole history, read once; after that only what is new (newest first, until a known event), so a
        live page costs one small GetExecutionHistory per poll however long the history is."""
        known = self._histories.get(arn, [])
        last = known[-1]["id"] if known else 0
        fresh, kwargs = [], {"executionArn": arn, "maxResults": 100 if known else 1000, "reverseOrder": bool(known)}
        while True:
            page = self.sfn.get_execution_history(**kwargs)
            fresh += [e for e in page["events"] if e["id"] > last]
            if not page.get("nextToken") or (known and any(e["id"] <= last for e in page["events"])):
                break
            kwargs["nextToken"] = page["nextToken"]
        events = known + sorted(fresh, key=lambda e: e["id"])
        if len(self._histories) > 200:  # many executions viewed: keep memory bounded
            self._histories.clear()
        self._histories[arn] = events
        return events

    def default_input(self) -> dict:
        return {"train_uri": "bundled", "holdout_uri": "bundled", "families": list(FAMILIES)}

    def start(self, payload: dict) -> dict:
        name = time.strftime("console-%Y%m%dT%H%M%S-") + uuid.uuid4().hex[:6]
        started = self.sfn.start_execution(stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(payload))
        return {"arn": started["executionArn"], "name": name}

    def stop(self, arn: str, cause: str = "stopped from the console") -> None:
        self.sfn.stop_execution(executionArn=arn, error="Console.Stopped", cause=cause)

    def failure_record(self, name: str) -> dict | None:
        return failure_record(self.s3, self.outputs()["ArtifactsBucket"], name)

    def run_artifacts(self, name: str) -> list[dict]:
        """What the pipeline kept for one run in the artifacts bucket (runs/<name>/...): step outputs, features."""
        bucket = self.outputs()["ArtifactsBucket"]
        listing = self.s3.list_objects_v2(Bucket=bucket, Prefix=f"runs/{name}/", MaxKeys=200)
        return [{"path": o["Key"][len(f"runs/{name}/") :], "bytes": o["Size"]} for o in listing.get("Contents", [])]

    def run_artifact(self, name: str, path: str) -> bytes:
        bucket = self.outputs()["ArtifactsBucket"]
        try:
            return self.s3.get_object(Bucket=bucket, Key=f"runs/{name}/{path}")["Body"].read()
        except ClientError as exc:
            raise FileNotFoundError(f"no artifact {path!r} for run {name}") from exc

    # --- models (MLflow's REST API) -----------------------------------------------------------------------
    def _mlflow(self, endpoint: str, **params) -> dict:
        if not self.mlflow_url:
            raise Unavailable("no MLflow tracking server configured (DR_CONSOLE_MLFLOW_URL)")
        try:
            reply = self.http.get(f"{self.mlflow_url}/api/2.0/mlflow/{endpoint}", params=params, timeout=10)
        except requests.RequestException as exc:
            raise Unavailable(f"MLflow at {self.mlflow_url} did not answer ({type(exc).__name__})") from exc
        if reply.status_code == 404 or (reply.status_code == 400 and "RESOURCE_DOES_NOT_EXIST" in reply.text):
            return {}
        if not reply.ok:
            raise Unavailable(f"MLflow answered {reply.status_code}: {reply.text[:200]}")
        return reply.json()

    def serving(self) -> dict:
        """What the prediction API serves, asked the way a client asks: GET /model with a bearer token (on the
        local cloud minted for the `console` client; on AWS the console has no client secret, so it says so)."""
        if self.cloud is None:
            return {"error": "not asked: on AWS the console holds no API client credentials"}
        from diabetes_risk.access import TokenError, local_token
        from diabetes_risk.predict_client import local_api_url

        try:
            if self._token is None:
                from diabetes_risk.access import TokenSource

                self._token = TokenSource(lambda: local_token(self.cloud, "console", ["model:read"]))
            url = local_api_url(self.cloud.localstack_url, self.outputs()["ApiId"]) + "/model"
            answer = self.http.get(url, headers={"Authorization": f"Bearer {self._token()}"}, timeout=10)
        except (TokenError, KeyError, requests.RequestException, NotDeployed, Unavailable) as exc:
            return {"error": f"the API could not be asked: {exc}"}
        except (BotoCoreError, ClientError) as exc:  # the local cloud stopped between two page loads
            return {"error": f"the API could not be asked: {type(exc).__name__}: {exc}"}
        try:
            body = answer.json()
        except ValueError:
            body = {}
        if answer.status_code != 200:
            return {"error": f"{answer.status_code}: {body.get('error', answer.text[:120])}"}
        return body

    def models(self) -> dict:
        registered = self._mlflow("registered-models/get", name=MODEL_NAME).get("registered_model")
        if not registered:
            return {"aliases": {}, "versions": []}
        aliases = {a["alias"]: a["version"] for a in registered.get("aliases", [])}
        found = self._mlflow("model-versions/search", filter=f"name='{MODEL_NAME}'", max_results=100)
        versions = []
        for v in sorted(found.get("model_versions", []), key=lambda v: int(v["version"]), reverse=True):
            tags = {t["key"]: t["value"] for t in v.get("tags", [])}
            versions.append(
                {
                    "version": v["version"],
                    "run_id": v.get("run_id"),
                    "created": v.get("creation_timestamp"),
                    "aliases": [a for a, ver in aliases.items() if ver == v["version"]],
                    "tags": tags,
                }
            )
        return {"aliases": aliases, "versions": versions}

    def run(self, run_id: str) -> dict:
        run = self._mlflow("runs/get", run_id=run_id).get("run") or {}
        data = run.get("data", {})
        return {
            "run_id": run_id,
            "experiment_id": run.get("info", {}).get("experiment_id"),
            "metrics": {m["key"]: m["value"] for m in data.get("metrics", [])},
            "params": {p["key"]: p["value"] for p in data.get("params", [])},
            "tags": {t["key"]: t["value"] for t in data.get("tags", [])},
        }

    def artifacts(self, run_id: str, path: str = "") -> list[str]:
        listing = self._mlflow("artifacts/list", run_id=run_id, path=path)
        return [f["path"] for f in listing.get("files", [])]

    def artifact(self, run_id: str, path: str) -> bytes:
        try:
            reply = self.http.get(
                f"{self.mlflow_url}/get-artifact", params={"run_uuid": run_id, "path": path}, timeout=30
            )
        except requests.RequestException as exc:
            raise Unavailable(f"MLflow at {self.mlflow_url} did not answer ({type(exc).__name__})") from exc
        if not reply.ok:
            raise FileNotFoundError(f"no artifact {path!r} in run {run_id}")
        return reply.content

    def run_link(self, experiment_id: str | None, run_id: str) -> str | None:
        if not (self.mlflow_url and experiment_id):
            return None
        return f"{self.mlflow_url}/#/experiments/{experiment_id}/runs/{run_id}"

    # --- batches -------------------------------------------------------------------------------------------
    def batches(self, limit: int = 30) -> list[dict]:
        bucket = self.outputs()["BatchBucket"]
        found: dict[str, dict] = {}
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix="outbox/"):
            for obj in page.get("Contents", []):
                name, _, leaf = obj["Key"][len("outbox/") :].rpartition("/")
                if leaf in ("manifest.json", "failed.json"):
                    found.setdefault(name, {"name": name, "modified": obj["LastModified"]})[leaf] = obj["Key"]
        newest = sorted(found.values(), key=lambda b: b["modified"], reverse=True)[:limit]
        for item in newest:
            key = item.get("manifest.json") or item.get("failed.json")
            item["kind"] = "manifest" if "manifest.json" in item else "failed"
            item["document"] = json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        return newest

    def quarantined(self, limit: int = 30) -> list[dict]:
        bucket = self.outputs()["BatchBucket"]
        reasons = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix="quarantine/"):
            for obj in page.get("Contents", []):
                if obj["Key"].endswith("/reason.json"):
                    reasons.append(obj)
        reasons.sort(key=lambda o: o["LastModified"], reverse=True)
        out = []
        for obj in reasons[:limit]:
            doc = json.loads(self.s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
            out.append({"key": obj["Key"], "modified": obj["LastModified"], "reason": doc})
        return out

    def errors_preview(self, key: str, lines: int = 20) -> str:
        bucket = self.outputs()["BatchBucket"]
        body = self.s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-65535")["Body"].read()
        return "\n".join(body.decode("utf-8", "replace").splitlines()[:lines])

    def upload(self, file_name: str, body: bytes) -> Upload:
        """Into inbox/console/: S3's notification starts batch scoring, as for any other drop."""
        bucket = self.outputs()["BatchBucket"]
        key = f"inbox/console/{time.strftime('%Y%m%dT%H%M%S')}-{file_name}"
        put = self.s3.put_object(Bucket=bucket, Key=key, Body=body)
        version = put.get("VersionId")
        version = None if version in (None, "null") else version
        return Upload(bucket, key, version, result_name(key, version, put["ETag"]))

    def batch_result(self, name: str) -> dict:
        """A result folder's manifest or failure record; pending while neither exists."""
        bucket = self.outputs()["BatchBucket"]
        for kind in ("manifest", "failed"):
            try:
                body = self.s3.get_object(Bucket=bucket, Key=f"outbox/{name}/{kind}.json")["Body"].read()
            except ClientError:
                continue
            document = json.loads(body)
            result = {"name": name, "kind": kind, "document": document}
            errors = next((k for k in (document.get("output_keys") or {}).values() if k.endswith("errors.csv")), None)
            if errors and document.get("rows_rejected"):
                result["errors_preview"] = self.errors_preview(errors)
            return result
        return {"name": name, "kind": "pending"}


def _now(like):
    from datetime import datetime

    return datetime.now(like.tzinfo)
