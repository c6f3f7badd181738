"""Shared fixtures. Tests never reach a model hub: HF_HUB_OFFLINE is forced on."""

import os
from pathlib import Path

# Under `pytest -n 2` two workers (and the notebook kernels and training subprocesses they start) share the
# machine's cores. Two OpenMP pools of 2 threads on 2 cores spin against each other and run many times slower,
# so each worker's children get one thread. (Must happen before torch is imported.)
if os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") != "1":
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*/*.ipynb"))
LESSONS = sorted((ROOT / "lessons").glob("*/*.ipynb"))


@pytest.fixture
def root() -> Path:
    return ROOT
