# Diabetes Risk — every target sets up what it needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The interpreter: PYTHON=... if given, else python3.13 on PATH (if it really runs), else pyenv's 3.13.
PYTHON ?= $(shell \
  if python3.13 -c 'import sys' >/dev/null 2>&1; then command -v python3.13; \
  elif command -v pyenv >/dev/null 2>&1 && ls -d "$$(pyenv root)"/versions/3.13*/bin/python3.13 >/dev/null 2>&1; then \
    ls -d "$$(pyenv root)"/versions/3.13*/bin/python3.13 | sort -V | tail -n 1; fi)
UV_VERSION := 0.13.8
STATE := .state
UV := $(STATE)/tools/bin/uv
SAM_VENV := $(STATE)/tools/sam
VENV := .venv
BIN := $(VENV)/bin
CLI := $(BIN)/diabetes-risk
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 1
export CDK_DISABLE_VERSION_CHECK := 1
# Each process writes a module's bytecode on its first import, so only what runs is compiled (README, "Bytecode on
# first import"); the CLI does the same for what it starts.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: help install runtime localstack-venv monitoring-tools up down status demo test lint format unit integration bench openapi dashboards synth compose-up compose-down deploy-tools clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[36m%-17s\033[0m %s\n", $$1, $$2}'

$(UV):
	@if [ -z "$(PYTHON)" ]; then \
	  echo "Python 3.13 is required but was not found."; \
	  echo "Install it (e.g. 'pyenv install 3.13', or your OS package python3.13) or run: make PYTHON=/path/to/python3.13 ..."; \
	  exit 1; fi
	@echo "bootstrapping uv $(UV_VERSION) with $(PYTHON)"
	@# With the interpreter's own pip (--python needs pip >= 22.3) the tool venv skips ensurepip (README, "The
	@# installs overlap"); an interpreter without pip gets a venv with its own (checked by hand with such a venv).
	@( $(PYTHON) -m venv --without-pip $(STATE)/tools \
	   && $(PYTHON) -m pip --python $(STATE)/tools/bin/python install --quiet uv==$(UV_VERSION) ) 2>/dev/null \
	 || { $(PYTHON) -m venv $(STATE)/tools && $(STATE)/tools/bin/pip install --quiet uv==$(UV_VERSION); }

$(VENV)/.installed: $(UV) pyproject.toml uv.lock
	@echo "installing the project's runtime into $(VENV) (uv sync --frozen --no-dev)"
	@# The dev group (tests, linters: playwright, moto, cfn-lint, ...) is $(VENV)/.dev-installed, which `make demo`
	@# does not wait for; --inexact keeps it once installed.
	@$(UV) sync --frozen --no-dev --inexact --python $(PYTHON) --quiet
	@touch $@

# The dev group, and the whole environment's bytecode: the tests import most of it, many times over in fresh processes
# (some with PYTHONDONTWRITEBYTECODE set on purpose). The runtime compiles nothing ahead.
$(VENV)/.dev-installed: $(VENV)/.installed
	@echo "installing the dev group (tests, linters) into $(VENV)"
	@$(UV) sync --frozen --python $(PYTHON) --quiet
	@$(BIN)/python -m infra_cdk.bytecode
	@touch $@

node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm is required (for the CDK CLI and cdklocal): install node and npm"; exit 1; }
	@echo "installing the CDK CLI and cdklocal (npm ci)"
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install: runtime ## Create .venv and node_modules (pinned by uv.lock and package-lock.json), LocalStack's venv, SAM CLI's, Prometheus
	@$(MAKE) --no-print-directory -s -j2 $(VENV)/.dev-installed $(SAM_VENV)/.installed

# The runtime's installs overlap (a make of their own with -j2): npm ci beside uv sync, then LocalStack's venv.
runtime: monitoring-tools ## Only what the local cloud and the demo need (no dev group, no SAM CLI)
	@$(MAKE) --no-print-directory -s -j2 node_modules/.installed localstack-venv

localstack-venv: $(VENV)/.installed
	@$(CLI) local install

# AWS SAM CLI in a tool environment of its own (it pins old click and boto3), from hashed pins.
$(SAM_VENV)/.installed: $(UV) config_checks/sam-requirements.txt
	@echo "installing AWS SAM CLI into its own environment ($(SAM_VENV))"
	@rm -rf $(SAM_VENV) && $(UV) venv --quiet --python $(PYTHON) $(SAM_VENV)
	@$(UV) pip install --quiet --python $(SAM_VENV)/bin/python --require-hashes -r config_checks/sam-requirements.txt
	@touch $@

# Prometheus (+ promtool) and Alertmanager (+ amtool) are OS packages: installed when this machine allows it.
APT_MONITORING := DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager
monitoring-tools: ## Install Prometheus and Alertmanager (apt as root or with sudo, or Homebrew) if missing
	@if command -v promtool >/dev/null && command -v amtool >/dev/null && command -v prometheus >/dev/null; then exit 0; fi; \
	if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "installing prometheus and prometheus-alertmanager (apt)"; \
	  $(APT_MONITORING) >/dev/null 2>&1 || { apt-get update -qq && $(APT_MONITORING) >/dev/null; }; \
	elif command -v apt-get >/dev/null && sudo -n true 2>/dev/null; then \
	  echo "installing prometheus and prometheus-alertmanager (sudo apt)"; \
	  sudo $(APT_MONITORING) >/dev/null 2>&1 || { sudo apt-get update -qq && sudo $(APT_MONITORING) >/dev/null; }; \
	elif command -v brew >/dev/null; then \
	  echo "installing prometheus and alertmanager (Homebrew)"; brew install prometheus alertmanager; \
	else \
	  echo "Prometheus and Alertmanager are needed by the local cloud: run"; \
	  echo "  sudo apt-get install prometheus prometheus-alertmanager   (or: brew install prometheus alertmanager)"; \
	  exit 1; \
	fi

up: runtime ## Start the embedded local cloud (LocalStack host mode, MLflow, Prometheus, Alertmanager, the console)
	@$(CLI) local up

down: ## Stop the local cloud and everything it started
	@if [ -x $(CLI) ]; then $(CLI) local down; fi

status: ## Show the local cloud's services, health and memory
	@$(CLI) local status

demo: runtime ## Set up everything and run the story on the local cloud
	@# The app's synth needs no running cloud: it runs beside `local up` (each mostly on one core), and deploy then
	@# finds its assembly (README, "The development loop").
	@$(CLI) deploy --synth-only & $(CLI) local up; up=$$?; wait $$! && [ $$up = 0 ]
	@echo; echo "== deploying the CDK app into the local cloud (cdklocal)"
	@$(CLI) deploy
	@echo; echo "== training on the bundled Pima data through the Step Functions state machine"
	@$(CLI) train
	@echo; $(CLI) runs --limit 3
	@echo; echo "== a prediction through API Gateway and the ONNX Lambda"
	@$(CLI) predict --json '{"pregnancies": 2, "glucose": 148, "blood_pressure": 72, "skin_thickness": 35, "bmi": 33.6, "diabetes_pedigree": 0.627, "age": 50}'
	@echo; echo "== a batch: a clinic's export dropped into the inbox, scored by the batch Lambda; a summary of its manifest"
	@$(CLI) score examples/clinic-export.csv --wait
	@echo; echo "== the feature store: the batch's rows went online (Feast → DynamoDB); a prediction by patient id"
	@$(CLI) features get H0001 --wait 60
	@$(CLI) predict --json '{"patient_id": "H0001"}'
	@echo; echo "== monitoring: the functions' metrics in Prometheus (via the log subscription and the bridge)"
	@$(CLI) metrics --wait 10 'sum by (service) (count_over_time(diabetes_risk_latency[1h]))'
	@$(CLI) alerts
	@echo; $(CLI) local up

lint: install ## ruff, then the config checks: compose, Dockerfiles, workflows, dependabot, SAM, cfn-lint (offline)
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/python -m config_checks

format: install ## Format and fix with ruff
	@$(BIN)/ruff format .
	@$(BIN)/ruff check --fix .

unit: install ## Unit and infrastructure (CDK template) tests, no network
	@$(BIN)/pytest -m "not integration" -q

integration: install ## Integration tests against a local cloud the test session starts and stops
	@$(BIN)/pytest -m integration -q

test: lint unit integration ## Lint and every test tier

bench: install ## Benchmarks; each prints one final JSON line
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

openapi: install ## Regenerate docs/openapi.json from the prediction API's models
	@DR_ARTIFACTS_BUCKET=unused AWS_DEFAULT_REGION=us-east-1 $(BIN)/python -c "import json, sys; sys.path.insert(0, 'functions'); import predict.app as a; print(json.dumps(json.loads(a.openapi_document()), indent=2))" > docs/openapi.json
	@echo "wrote docs/openapi.json"

dashboards: install ## Regenerate the Grafana dashboards (observability/grafana/dashboards/*.json)
	@$(BIN)/python -m observability.dashboards

synth: install ## Synthesize both targets' templates with bundled assets into cdk.out/aws and cdk.out/local (for SAM)
	@$(BIN)/python -m config_checks.synth

COMPOSE ?= docker compose
compose-up: $(VENV)/.installed node_modules/.installed ## With Docker: build and start docker-compose.yml's stack, wait until healthy, deploy into it
	@command -v docker >/dev/null || { echo "compose-up needs Docker with Compose v2; without Docker run: make up"; exit 1; }
	@$(COMPOSE) up --build --detach --wait --wait-timeout 900
	@DR_EXTERNAL=true $(CLI) deploy
	@echo "stack up: LocalStack http://127.0.0.1:4566, MLflow http://127.0.0.1:5000, Prometheus http://127.0.0.1:9090,"
	@echo "          Grafana http://127.0.0.1:3000, Alertmanager http://127.0.0.1:9093"
	@echo "use the CLI against it with DR_EXTERNAL=true, e.g.: DR_EXTERNAL=true $(CLI) train"
	@echo "code changes reach the functions' libraries only through the image: make compose-up rebuilds it"

compose-down: ## Stop the docker-compose stack (its named volumes are kept; docker compose down -v removes them)
	@$(COMPOSE) down

deploy-tools: $(VENV)/.installed node_modules/.installed ## Only what `cdk deploy` needs (.venv and the CDK CLI)

clean: down ## Remove all local state and the venv
	rm -rf $(STATE) $(VENV) cdk.out
