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


# ---- expensive objects, built once per test process (each xdist worker has its own) ----------------------------
@pytest.fixture(scope="session")
def listener():
    """The environment's default listener (MiniLM + the cached logistic-regression head)."""
    from camp.listener import Listener

    return Listener.default()


@pytest.fixture(scope="session")
def emotions():
    """The offline emotion corpus, all three splits."""
    from camp import data

    return data.load_emotions("offline", verbose=False)


@pytest.fixture(scope="session")
def _smollm2():
    from camp import models

    return models.load_policy()


@pytest.fixture(scope="session")
def fresh_policy(_smollm2):
    """Make a new `PolicyWithValue` (LoRA initialised from seed 0) around a copy of SmolLM2, which is loaded
    from disk once per process: a copy takes a fraction of a second, a load several seconds."""
    import copy

    import torch

    from camp import lm

    def make():
        model, tokenizer = _smollm2
        torch.manual_seed(0)
        return lm.PolicyWithValue(copy.deepcopy(model), tokenizer)

    return make


def _kill_after_checkpoint(cmd: list[str], path: Path, min_step: int, timeout: float = 300) -> int:
    """Start `cmd`, SIGKILL it once the checkpoint at `path` records `min_step` steps, and return that step."""
    import signal
    import subprocess
    import time

    from camp import checkpoint

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    step, deadline = 0, time.time() + timeout
    while step < min_step and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
        if path.exists():
            step = checkpoint.load_checkpoint(path)[1]["progress"]["step"]
    assert proc.poll() is None, "training finished before it could be killed; give it more steps"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return step


@pytest.fixture
def kill_after_checkpoint():
    """A training subprocess killed with SIGKILL part-way, as a crash or a lost Colab session would."""
    return _kill_after_checkpoint


def pytest_collection_modifyitems(config, items):
    """Longest first, so that the two xdist workers finish together: solution notebooks, blank lessons, slow
    tests, then the rest (each group keeps its order)."""
    def rank(item) -> int:
        if item.get_closest_marker("notebook"):
            return 0 if "solution" in item.name else 1
        return 2 if item.get_closest_marker("slow") else 3

    items.sort(key=rank)
