"""The console: a small FastAPI app on 127.0.0.1 showing the training state machine, its executions (live), the
model registry and the batches, through the AWS APIs and MLflow's. Every asset is served by the app itself."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.trustedhost import TrustedHostMiddleware

from .graph import build_graph, element_id, to_dot
from .history import analyse
from .settings import ConsoleSettings
from .sources import STEPS, NotDeployed, Sources, Unavailable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VIZ = ROOT / "node_modules" / "@viz-js" / "viz" / "dist" / "viz-global.js"
NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")
STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
PLOTS = ("roc", "pr", "calibration", "confusion_matrix", "feature_importance")
CSRF_HEADER = "X-Console-Request"
# AWS error codes a client's request can cause, and what the console answers
CLIENT_ERRORS = {
    "ExecutionDoesNotExist": 404,
    "StateMachineDoesNotExist": 404,
    "NoSuchKey": 404,
    "InvalidName": 400,
    "InvalidExecutionInput": 400,
    "ValidationException": 400,
    "ExecutionAlreadyExists": 409,
    "ExecutionLimitExceeded": 429,
    "ThrottlingException": 503,
}


def create_app(settings: ConsoleSettings, sources: Sources) -> FastAPI:
    app = FastAPI(title="Diabetes Risk console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sources = sources
    # Another site must not drive the console through the user's browser: requests naming another host (DNS
    # rebinding) are refused, and every POST must carry a header a cross-site form or a no-CORS fetch cannot send.
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=sorted({"127.0.0.1", "localhost", "[::1]", settings.host}))

    @app.middleware("http")
    async def same_origin_posts(request: Request, call_next):
        if request.method not in ("GET", "HEAD", "OPTIONS") and request.headers.get(CSRF_HEADER) != "1":
            return JSONResponse(
                {
                    "error": "Forbidden",
                    "detail": f"a POST needs the header {CSRF_HEADER}: 1 (sent by the console's pages)",
                },
                status_code=403,
            )
        return await call_next(request)

    templates = Jinja2Templates(directory=HERE / "templates")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def page(request: Request, template: str, **context) -> HTMLResponse:
        context |= {
            "mlflow_url": sources.mlflow_url,
            "prometheus_url": sources.prometheus_url,
            "target": settings.target,
        }
        return templates.TemplateResponse(request, template, context)

    @app.exception_handler(NotDeployed)
    async def not_deployed(request: Request, exc: NotDeployed):
        return _problem(request, templates, 409, "Not deployed yet", str(exc))

    @app.exception_handler(Unavailable)
    async def unavailable(request: Request, exc: Unavailable):
        return _problem(request, templates, 503, "A service did not answer", str(exc))

    @app.exception_handler(ClientError)
    async def aws_error(request: Request, exc: ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", str(exc))
        return _problem(request, templates, CLIENT_ERRORS.get(code, 502), f"AWS answered {code}", message)

    @app.exception_handler(BotoCoreError)
    async def aws_down(request: Request, exc: BotoCoreError):
        return _problem(request, templates, 503, "The AWS endpoint did not answer", f"{type(exc).__name__}: {exc}")

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/healthz")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/vendor/viz-global.js")
    def viz() -> FileResponse:
        if not VIZ.exists():
            raise HTTPException(500, f"{VIZ.relative_to(ROOT)} is missing: run `make install` (npm ci)")
        return FileResponse(VIZ, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    @app.get("/")
    def index() -> RedirectResponse:
        return RedirectResponse("/pipeline", status_code=307)

    # --- pipeline ----------------------------------------------------------------------------------------
    @app.get("/pipeline", response_class=HTMLResponse)
    def pipeline(request: Request):
        definition = sources.definition()
        graph = build_graph(definition)
        states = {element_id(p): _state_info(definition, n.path) | {"type": n.type} for p, n in graph.nodes.items()}
        return page(
            request,
            "pipeline.html",
            dot=to_dot(graph),
            states=states,
            arn=sources.state_machine_arn,
            title="Pipeline",
        )

    # --- executions ----------------------------------------------------------------------------------------
    @app.get("/executions", response_class=HTMLResponse)
    def executions(request: Request, status: str | None = Query(None)):
        if status and status not in STATUSES:
            raise HTTPException(400, f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        items = sources.executions(status)
        for item in items:
            if item["status"] == "FAILED":
                record = sources.failure_record(item["name"]) or {}
                item["failed_state"] = record.get("failed_step")
                item["cause"] = record.get("message")
        return page(
            request,
            "executions.html",
            items=items,
            status=status,
            statuses=STATUSES,
            default_input=json.dumps(sources.default_input(), indent=2),
            steps=STEPS,
            title="Executions",
        )

    @app.post("/api/executions")
    async def start(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError as exc:
            raise HTTPException(400, f"the body is not JSON: {exc}") from exc
        payload = body.get("input") if isinstance(body, dict) else None
        if not isinstance(payload, dict):
            raise HTTPException(400, 'expected {"input": {...}} with the execution input as a JSON object')
        fault = body.get("fault")
        if fault:
            step, _, mode = str(fault).partition(":")
            if step not in STEPS or mode not in ("once", "always"):
                raise HTTPException(400, f"fault must be STEP:once|always with STEP in {', '.join(STEPS)}")
            payload = payload | {"fault": {"step": step, "mode": mode}}
        started = await asyncio.to_thread(sources.start, payload)
        return JSONResponse(started | {"url": f"/executions/{started['name']}"}, status_code=201)

    @app.post("/api/executions/{name}/stop")
    def stop(name: str) -> dict:
        arn = _execution_arn(sources, name)
        _describe(sources, arn)  # 404 for an execution that does not exist
        sources.stop(arn)
        return {"stopped": name}

    @app.get("/executions/{name}", response_class=HTMLResponse)
    def execution(request: Request, name: str):
        arn = _execution_arn(sources, name)
        description = _describe(sources, arn)
        definition = sources.definition(arn)
        graph = build_graph(definition)
        states = {element_id(p): _state_info(definition, n.path) | {"type": n.type} for p, n in graph.nodes.items()}
        return page(
            request,
            "execution.html",
            name=name,
            arn=arn,
            description=description,
            dot=to_dot(graph),
            states=states,
            title=f"Execution {name}",
        )

    @app.get("/api/executions/{name}")
    def execution_view(name: str) -> dict:
        return _view(sources, _execution_arn(sources, name))

    @app.get("/api/executions/{name}/artifacts")
    def execution_artifacts(name: str) -> list[dict]:
        _execution_arn(sources, name)  # validates the name
        return sources.run_artifacts(name)

    @app.get("/api/executions/{name}/artifacts/{path:path}")
    def execution_artifact(name: str, path: str) -> Response:
        _execution_arn(sources, name)
        if ".." in path.split("/") or not path:
            raise HTTPException(400, "bad artifact path")
        try:
            body = sources.run_artifact(name, path)
        except FileNotFoundError as exc:
            raise HTTPException(404, str(exc)) from exc
        if len(body) > 50 * 2**20:
            raise HTTPException(413, "larger than 50 MB: fetch it from the artifacts bucket directly")
        media = {".json": "application/json", ".png": "image/png", ".md": "text/markdown; charset=utf-8"}
        kind = next((m for ext, m in media.items() if path.endswith(ext)), "application/octet-stream")
        return Response(body, media_type=kind)

    @app.get("/api/executions/{name}/events")
    async def execution_events(name: str, request: Request) -> StreamingResponse:
        """Server-sent events: the execution's view whenever its history grows, until it ends."""
        arn = _execution_arn(sources, name)
        await asyncio.to_thread(_describe, sources, arn)  # 404 before the stream starts

        async def stream():
            last = None
            while not await request.is_disconnected():
                try:
                    view = await asyncio.to_thread(_view, sources, arn)
                except Exception as exc:  # the cloud stopped, throttling: say so on the page, end this stream
                    problem = {"detail": f"{type(exc).__name__}: {exc}"[:500]}
                    yield f"event: problem\ndata: {json.dumps(problem)}\n\n"
                    return
                key = (view["events"], view["status"])
                if key != last:
                    last = key
                    yield f"data: {json.dumps(view, default=str)}\n\n"
                if view["status"] in TERMINAL:
                    yield "event: end\ndata: {}\n\n"
                    return
                await asyncio.sleep(settings.poll_s)

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    # --- models --------------------------------------------------------------------------------------------
    @app.get("/models", response_class=HTMLResponse)
    def models(request: Request):
        registry = sources.models()
        selected = None
        for version in registry["versions"]:
            if version["run_id"] and (selected is None or "champion" in version["aliases"]):
                selected = version if selected is None or "champion" in version["aliases"] else selected
        details = None
        if selected:
            run = sources.run(selected["run_id"])
            files = set(sources.artifacts(selected["run_id"], "plots"))
            try:
                card = sources.artifact(selected["run_id"], "model_card.md").decode("utf-8", "replace")
            except FileNotFoundError:
                card = None
            details = {
                "version": selected,
                "run": run,
                "plots": [p for p in PLOTS if f"plots/{p}.png" in files],
                "card": card,
                "run_link": sources.run_link(run["experiment_id"], selected["run_id"]),
            }
        return page(
            request, "models.html", registry=registry, details=details, serving=sources.serving(), title="Models"
        )

    @app.get("/api/runs/{run_id}/artifacts/{path:path}")
    def artifact(run_id: str, path: str) -> Response:
        if not re.fullmatch(r"[0-9a-f]{32}", run_id) or ".." in path:
            raise HTTPException(400, "bad run id or artifact path")
        try:
            body = sources.artifact(run_id, path)
        except FileNotFoundError as exc:
            raise HTTPException(404, str(exc)) from exc
        media = "image/png" if path.endswith(".png") else "text/plain; charset=utf-8"
        return Response(body, media_type=media, headers={"Cache-Control": "max-age=3600"})

    # --- batches -------------------------------------------------------------------------------------------
    @app.get("/batches", response_class=HTMLResponse)
    def batches(request: Request):
        return page(
            request,
            "batches.html",
            batches=sources.batches(),
            quarantined=sources.quarantined(),
            max_upload_mb=settings.max_upload_mb,
            title="Batches",
        )

    @app.post("/api/batches")
    async def upload(request: Request, filename: str = Query(..., min_length=1, max_length=200)) -> JSONResponse:
        """The raw file as the body (the page sends it as it is); dropped into the inbox like `diabetes-risk score`."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(filename).name).strip("._") or "upload.csv"
        body = await request.body()
        if not body:
            raise HTTPException(400, "the file is empty")
        if len(body) > settings.max_upload_mb * 1024 * 1024:
            raise HTTPException(413, f"the file is larger than {settings.max_upload_mb} MB: use `diabetes-risk score`")
        dropped = await asyncio.to_thread(sources.upload, safe, body)
        return JSONResponse({"key": dropped.key, "name": dropped.name, "url": "/batches"}, status_code=201)

    @app.get("/api/batches/{name:path}")
    def batch(name: str) -> dict:
        return sources.batch_result(name)

    return app


def _problem(request: Request, templates: Jinja2Templates, status: int, title: str, detail: str) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": title, "detail": detail}, status_code=status)
    return templates.TemplateResponse(
        request,
        "problem.html",
        {"title": title, "detail": detail, "mlflow_url": None, "prometheus_url": None},
        status_code=status,
    )


def _execution_arn(sources: Sources, name: str) -> str:
    if not NAME.fullmatch(name):
        raise HTTPException(400, "an execution name is 1-80 letters, digits and _ . : -")
    machine = sources.state_machine_arn
    return machine.replace(":stateMachine:", ":execution:", 1) + f":{name}"


def _describe(sources: Sources, arn: str) -> dict:
    try:
        return sources.describe(arn)
    except sources.sfn.exceptions.ExecutionDoesNotExist as exc:
        raise HTTPException(404, f"no execution {arn.rsplit(':', 1)[-1]!r}") from exc


def _view(sources: Sources, arn: str) -> dict:
    description = _describe(sources, arn)
    graph = sources.graph(arn)
    events = sources.history(arn)
    now = datetime.now(UTC)
    view = analyse(events, graph).to_json(now)
    view["status"] = description["status"]  # DescribeExecution is the authority on the execution's status
    started = description["startDate"]
    view["started"] = started.isoformat()
    view["stopped"] = description.get("stopDate").isoformat() if description.get("stopDate") else None
    view["seconds"] = round(((description.get("stopDate") or now) - started).total_seconds(), 1)
    view["history"] = [_event_row(e, started) for e in events]
    if view["status"] == "FAILED":  # the pipeline's own record: which step failed and why, in its words
        view["failure"] = sources.failure_record(arn.rsplit(":", 1)[-1])
    view["output"] = description.get("output")
    # the MLflow run exists once Register has run: its output carries the run id (before the execution ends)
    for run in view["runs"]:
        if run["name"] == "Register" and run["output"]:
            with contextlib.suppress(ValueError, AttributeError):
                view["mlflow_run_id"] = json.loads(run["output"]).get("register", {}).get("mlflow_run_id")
    return view


def _event_row(event: dict, started: datetime) -> dict:
    details = next((v for k, v in event.items() if k.endswith("EventDetails") and isinstance(v, dict)), {})
    summary = details.get("name") or details.get("error") or details.get("resource") or ""
    return {
        "id": event["id"],
        "type": event["type"],
        "at": round((event["timestamp"] - started).total_seconds(), 3),
        "summary": str(summary)[:120],
    }


def _state_info(definition: dict, path: str) -> dict:
    """The definition of one state (for the side panel), found by its path through Map/Parallel levels."""
    states = definition["States"]
    parts = path.split("/")
    state: dict = {}
    i = 0
    while i < len(parts):
        state = states[parts[i]]
        i += 1
        if i < len(parts):
            if state["Type"] == "Map":
                states = (state.get("ItemProcessor") or state.get("Iterator"))["States"]
            else:  # Parallel: the next part is the branch index
                states = state["Branches"][int(parts[i])]["States"]
                i += 1
    shown = {k: v for k, v in state.items() if k not in ("ItemProcessor", "Iterator", "Branches")}
    return {"path": path, "definition": json.dumps(shown, indent=2)}
