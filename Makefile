# Two commands do everything on a fresh machine:
#   make demo   -> installs into .venv, then runs the offline end-to-end demo on the embedded tiny kit
#   make test   -> installs into .venv (with the reference packages for parity tests), then runs the suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch is pinned explicitly so CPU machines take the local CPU wheel instead of a multi-GB CUDA build;
# override with `make TORCH_SPEC=torch==2.13.0+cu128 ...` or preinstall torch in the venv.
TORCH_SPEC ?= torch==2.13.0
PIP    := $(BIN)/python -m pip
PIPQ   := $(PIP) install --quiet --disable-pip-version-check
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo test lint format install install-dev bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIPQ) --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(PIP) show torch >/dev/null 2>&1 || $(PIPQ) "$(TORCH_SPEC)"
	$(PIPQ) -e ".[serve,train,eval]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIPQ) -e ".[dev]"
	# Reference implementation for parity tests, without its heavy declared deps (torchvision, spacy, stanza).
	$(PIPQ) --no-deps "radeval==2.2.1"
	# The OpenRLHF and verl releases the integration tests drive, without their GPU stacks (vLLM, flash-attn,
	# exact torch/transformers pins); tensordict's pyvers pins packaging<26, so it comes without deps too.
	$(PIPQ) --no-deps "openrlhf==0.11.2" "verl==0.9.1" "tensordict==0.10.0" "pyvers==0.1.0"
	-$(PIP) uninstall -y -q torchvision 2>/dev/null
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The venv's console scripts (rrg-reward, rrg-trl, accelerate) must be on PATH for the subprocesses they start.
demo: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/rrg-trl demo $(DEMO_ARGS)

test: $(VENV)/.installed-dev
	PATH="$(CURDIR)/$(BIN):$$PATH" RRG_REQUIRE_TEST_DEPS=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench_radcliq.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache outputs
