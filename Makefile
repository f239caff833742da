# sovereign: every target installs what it needs first, so `make test` works on a fresh machine.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3.11
# The registry `make images` tags for: the stacks' operatorImage and servingImage (infra/stacks/*.yaml).
REGISTRY ?= registry.example
# The Pulumi stand-ins (tools/pulumi-plugins/README.md) must be on PATH for a plain `pulumi` run.
export PATH := $(CURDIR)/tools/pulumi-plugins:$(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help tools venv venv-serving lint lock lock-check images policy-test test test-fast bundle demo demo-check demo-down dev-up dev-down dev-status clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

tools:  ## build/install the pinned external binaries into ~/.cache/sovereign/tools (idempotent)
	tools/install.sh

venv: $(VENV)/.installed  ## create .venv with sovereign and its test dependencies

# Every package from a hash-pinned lock (locks/, `make lock`), then the project itself without resolving
# anything: what is installed is exactly what was locked and checked (`sovereign lock check`). The installer
# is the interpreter's own pip (ensurepip's, pinned by the interpreter): upgrading it would fetch whatever
# pip is newest, outside the lock (its 23.2.1 installs every lock here, checked with `pip check`).
PIP_LOCKED := $(VENV)/bin/pip install --disable-pip-version-check --progress-bar off --require-hashes --no-deps

$(VENV)/.installed: pyproject.toml locks/tools.txt
	@echo "[venv] creating $(VENV) from locks/tools.txt (base + dev)"
	$(PYTHON) -m venv $(VENV)
	$(PIP_LOCKED) -r locks/tools.txt
	$(VENV)/bin/pip install --disable-pip-version-check --progress-bar off --no-deps -e .
	touch $@

lint: venv  ## ruff, the import layer contract (pyproject.toml), the locks against pyproject, hadolint
	ruff check .
	ruff format --check .
	lint-imports
	$(VENV)/bin/sovereign lock check
	hadolint images/*.Containerfile

lock: venv  ## rewrite locks/*.txt from pyproject.toml (uv pip compile --generate-hashes; needs the index)
	$(VENV)/bin/sovereign lock compile

lock-check: venv  ## offline: every lock agrees with pyproject.toml and with locks/dev.txt (part of lint)
	$(VENV)/bin/sovereign lock check

images: venv  ## build the operator and serving images (docker, podman or buildah); REGISTRY=... to retag
	$(VENV)/bin/sovereign images build --registry $(REGISTRY)

policy-test: tools venv  ## opa fmt, opa check --strict, opa test --coverage (>= 95 %)
	policies/check.sh

# The tests write Python's bytecode caches (__pycache__, ignored by git) even where the environment says not
# to: otherwise each pytest-xdist worker and every `sovereign` process a test starts compiles the same
# modules again, and pytest rewrites every test module's asserts again (half of test-fast's collection).
test test-fast: export PYTHONDONTWRITEBYTECODE :=

test: tools venv-serving lint policy-test  ## the test command: set-up, lint, policy tests, pytest
	# A native crash (also while the interpreter exits) prints every thread's stack instead of only a signal.
	PYTHONFAULTHANDLER=1 pytest -p no:cacheprovider

test-fast: venv-serving  ## the inner loop: every test without a control plane, a local Ray or a long run
	pytest -p no:cacheprovider -m "not controlplane and not slow" -n 2

bundle: tools venv  ## build and sign the policy bundle (Rego + Wasm): the only step that signs
	$(VENV)/bin/sovereign bundle build

venv-serving: $(VENV)/.serving  ## add the serving stack (torch CPU/CUDA, transformers, Ray Serve)

$(VENV)/.serving: $(VENV)/.installed locks/dev.txt
	$(PIP_LOCKED) -r locks/dev.txt
	touch $@

demo: tools venv-serving  ## the main job: three sovereign regions end to end; stays up until demo-down
	$(VENV)/bin/sovereign demo

demo-check: tools venv-serving  ## the demo, non-interactive: every outcome asserted, everything stopped
	$(VENV)/bin/sovereign demo --check

demo-down:  ## stop the demo; no process or port is left
	$(VENV)/bin/sovereign demo down

dev-up: tools venv bundle  ## start the local control plane (etcd, kube-apiserver, OPA on the built bundle)
	$(VENV)/bin/sovereign dev up

dev-down: venv  ## stop it
	$(VENV)/bin/sovereign dev down

dev-status: venv
	$(VENV)/bin/sovereign dev status

clean:  ## remove the venv and build outputs (the tool cache stays)
	rm -rf $(VENV) build
