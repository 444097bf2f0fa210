# Two commands for a new machine: `make run` and `make test`. Each sets itself up first, idempotently.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := $(shell sed -n 's/^uv==//p' requirements.txt)
# bubblewrap runs local invokes without Docker; slirp4netns gives the sandbox outbound internet (never this
# machine's loopback); iproute2 closes the sandbox's network to private and link-local ranges.
SANDBOX_PACKAGES := bubblewrap slirp4netns iproute2

.PHONY: setup run synth test lint bench clean wheel

LOCKTOOLS := .venv-locktools

setup: $(VENV)/.installed node_modules/.installed sandbox-tools

# poetry and pipenv, for the tests only (they lock fixture projects): their own environment, so that their
# dependencies never meet the app's.
$(LOCKTOOLS)/.installed: requirements-locktools.txt $(VENV)/.installed
	@echo "make: poetry and pipenv for the tests, in $(LOCKTOOLS)"
	test -x $(LOCKTOOLS)/bin/python || $(PYTHON) -m venv $(LOCKTOOLS)
	UV_PYTHON_DOWNLOADS=never $(BIN)/uv pip install --quiet --python $(LOCKTOOLS)/bin/python -r requirements-locktools.txt
	touch $@

# Python: a virtual environment with the pinned uv, which installs the rest (pip alone is 10x slower here).
# compileall: aws-cdk-lib's Python modules are 240 MB of source; without .pyc on disk (uv writes none, and
# PYTHONDONTWRITEBYTECODE stops Python from writing them) every synth and test process compiles them again:
# 2-3 s each; the kit's own modules, ~25 ms per `layerkit` command. (A file that does not compile for 3.11,
# e.g. a Python 2 example, is skipped: hence "|| true".)
# aws-cdk-lib installed again, alone: it and its dependency aws-cdk.cloud-assembly-schema both ship
# aws_cdk/cloud_assembly_schema/__init__.py, and uv installs wheels in parallel, so either copy could win
# (uv issue 21819). aws-cdk-lib's must, as pip's one-by-one install makes it; with the other, reading an
# assembly's messages fails ("Unknown interface: aws-cdk-lib.cloud_assembly_schema.MetadataEntry").
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml Makefile
	@echo "make: the Python environment in $(VENV): the pinned requirements and the kit (about a minute, once)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	UV_PYTHON_DOWNLOADS=never $(BIN)/uv pip install --quiet --python $(BIN)/python \
		-r requirements-dev.txt -e . -C editable_mode=compat
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --reinstall-package aws-cdk-lib -r requirements.txt
	@echo "make: compiling aws-cdk-lib's modules once, so that every synth starts in seconds (about a minute)"
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib layerkit stacks >/dev/null || true
	touch $@

# The CDK CLI, pinned by package-lock.json.
node_modules/.installed: package.json package-lock.json
	@echo "make: the pinned CDK CLI into node_modules (npm ci)"
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The sandbox's tools (SANDBOX_PACKAGES). Installed with apt where we are root; elsewhere, say how.
.PHONY: sandbox-tools
sandbox-tools:
	@command -v bwrap >/dev/null && command -v slirp4netns >/dev/null && command -v ip >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "make: the sandbox's tools ($(SANDBOX_PACKAGES)) with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SANDBOX_PACKAGES) >/dev/null; \
	else \
		echo "make: the sandbox needs $(SANDBOX_PACKAGES); install them (sudo apt-get install $(SANDBOX_PACKAGES))" >&2; \
	fi

# A Docker engine for the Docker tests, where none answers and we are root on Debian: Debian's docker.io, run
# without a bridge network (containers use the host's network or none, so none gets a private address; local
# servers stay on 127.0.0.1). Elsewhere, say how to get one. Idempotent.
.PHONY: docker-engine docker-images
docker-engine:
	@docker info >/dev/null 2>&1 && { echo "make: a Docker engine answers already ($$(docker version --format '{{.Server.Version}}'))"; exit 0; }; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
		echo "make: no Docker daemon answers; start Docker (or run 'make docker-engine' as root on Debian) to run the Docker tests" >&2; \
		exit 0; \
	fi; \
	if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null; \
	fi; \
	echo "make: starting Debian's dockerd without a bridge network"; \
	setsid nohup dockerd --bridge=none --iptables=false </dev/null >/var/log/layerkit-dockerd.log 2>&1 & \
	for i in $$(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done; \
	docker info >/dev/null 2>&1 || { echo "make: dockerd did not start; see /var/log/layerkit-dockerd.log" >&2; exit 1; }; \
	echo "make: Docker engine $$(docker version --format '{{.Server.Version}}') running (no bridge network)"

# The stand-ins for the AWS build and Lambda images (docker/standins/build.sh), built once per engine.
docker-images: docker-engine
	@docker info >/dev/null 2>&1 && bash docker/standins/build.sh || echo "make: no Docker engine: no stand-in images"

# Synthesize with the real CDK CLI (which builds the layers), then invoke each function from cdk.out.
run: setup
	@echo "make: cdk synth: the CDK CLI runs app.py, which builds the layers and functions (their lines follow)"
	npx cdk synth --quiet
	$(BIN)/layerkit describe --assembly cdk.out
	@for fn in order_total text_stats; do \
		stack="lambda-layers-example-$$(echo $$fn | tr _ -)"; \
		echo; echo "== $$stack/Function with lambdas/$$fn/events/*.json"; \
		$(BIN)/layerkit invoke --assembly cdk.out "$$stack/Function" \
			$$(for e in lambdas/$$fn/events/*.json; do printf -- '--event %s ' "$$e"; done) || exit 1; \
	done
	@echo; echo "make: the layerkit command is $(BIN)/layerkit ('source $(BIN)/activate' puts it on your PATH)"

synth: setup
	npx cdk synth --quiet

# cdk.json's feature flags, as the pinned CDK CLI recommends them to a new app (`cdk init app --language python`),
# with the kit's own context keys kept. Run after upgrading aws-cdk in package.json.
.PHONY: cdk-flags
cdk-flags: node_modules/.installed
	@work=$$(mktemp -d) && (cd $$work && $(CURDIR)/node_modules/.bin/cdk init app --language python --generate-only >/dev/null 2>&1) && \
	$(PYTHON) -c 'import json, sys; new = json.load(open(sys.argv[1]))["context"]; ours = json.load(open("cdk.json")); \
	ours["context"] = {**{k: v for k, v in ours["context"].items() if k.startswith("layerkit:")}, **new}; \
	open("cdk.json", "w").write(json.dumps(ours, indent=2) + "\n")' $$work/cdk.json && rm -rf $$work && \
	echo "make: cdk.json has the $$(npx cdk --version | cut -d" " -f1) CLI's recommended feature flags"

test: setup $(LOCKTOOLS)/.installed
	@echo "make: ruff, then the whole test suite (about 15 minutes on 2 cores)"
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .

# The bench's peers (AWS SAM's builder and the pip it drives) in their own Python 3.12 environment.
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed: bench/requirements-peers.txt $(VENV)/.installed
	test -x $(BENCH_VENV)/bin/python || UV_PYTHON_DOWNLOADS=never $(BIN)/uv venv --quiet \
		--python "$$($(BIN)/python -c 'from layerkit.core.interpreters import find_python; print(find_python("3.12"))')" $(BENCH_VENV)
	UV_PYTHON_DOWNLOADS=never $(BIN)/uv pip install --quiet --python $(BENCH_VENV)/bin/python -r bench/requirements-peers.txt
	touch $@

# The kit's .pyc first: with PYTHONDONTWRITEBYTECODE set (as here), a module edited since `make setup` is
# compiled again by every process, which the cache-hit figure would count as the kit's start.
bench: setup $(BENCH_VENV)/.installed docker-images
	$(BIN)/python -m compileall -q layerkit >/dev/null
	$(BIN)/python bench/run.py

# The kit as a wheel, to install into another app: pip install dist/layerkit-<version>-py3-none-any.whl
wheel: $(VENV)/.installed
	@echo "make: building the layerkit wheel into dist/"
	$(BIN)/uv build --wheel --out-dir dist --quiet .
	@ls dist/*.whl

clean:
	rm -rf cdk.out .pytest_cache .ruff_cache dist
