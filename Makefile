# Two commands for a new machine: `make run` and `make test`. Each sets itself up first, idempotently.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := $(shell sed -n 's/^uv==//p' requirements.txt)
# bubblewrap runs local invokes without Docker; slirp4netns gives the sandbox outbound internet (never this
# machine's loopback); iproute2 closes the sandbox's network to private and link-local ranges.
SANDBOX_PACKAGES := bubblewrap slirp4netns iproute2
# The engine `make docker-engine` runs with a bridge: the tests' Docker where it answers (DOCKER_HOST), as a
# user's Docker is; else whatever Docker the machine has.
BRIDGE_ENGINE := unix:///run/layerkit-docker/docker.sock
TEST_DOCKER_HOST := $(shell test -S /run/layerkit-docker/docker.sock && echo $(BRIDGE_ENGINE))

.PHONY: setup run synth test lint bench clean wheel

# Run a long step, saying every 5 s that it still runs: a quiet installer or compiler never leaves the user 10 s
# without a line (tests/journeys/test_never_silent.py).
heartbeat = step() { "$$@" & pid=$$!; n=0; while kill -0 $$pid 2>/dev/null; do sleep 1; n=$$((n+1)); \
	if [ $$((n % 5)) = 0 ] && kill -0 $$pid 2>/dev/null; then echo "make: still at it ($$n s)"; fi; done; wait $$pid; }; step

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
	@$(heartbeat) env UV_PYTHON_DOWNLOADS=never $(BIN)/uv pip install --quiet --python $(BIN)/python \
		-r requirements-dev.txt -e . -C editable_mode=compat
	@$(heartbeat) $(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --reinstall-package aws-cdk-lib \
		-r requirements.txt
	@echo "make: compiling aws-cdk-lib's modules once, so that every synth starts in seconds (about a minute)"
	@$(heartbeat) sh -c '$(BIN)/python -m compileall -q -j 0 $(VENV)/lib layerkit stacks >/dev/null || true'
	touch $@

# The CDK CLI, pinned by package-lock.json.
node_modules/.installed: package.json package-lock.json
	@echo "make: the pinned CDK CLI into node_modules (npm ci)"
	@$(heartbeat) npm ci --no-audit --no-fund --loglevel=error
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

# Docker engines for the Docker tests, as root on Debian (docker/engine.sh): a user's Docker (its default bridge,
# in a network namespace of its own, reaching out through slirp4netns) and an engine without a bridge (as a
# rootless or --bridge=none Docker). Elsewhere, say how to get one. Idempotent.
.PHONY: docker-engine docker-images
docker-engine:
	@bash docker/engine.sh

# The stand-ins for the AWS build and Lambda images (docker/standins/build.sh), in each engine, built once.
docker-images: docker-engine
	@for host in $(BRIDGE_ENGINE) unix:///var/run/docker.sock; do \
		DOCKER_HOST=$$host docker info >/dev/null 2>&1 || continue; \
		echo "make: the stand-in images in the engine at $$host"; \
		DOCKER_HOST=$$host bash docker/standins/build.sh; \
	done

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
	$(if $(TEST_DOCKER_HOST),DOCKER_HOST=$(TEST_DOCKER_HOST)) $(BIN)/python -m pytest

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
