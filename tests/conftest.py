"""Shared fixtures. Tests never reach a model hub: HF_HUB_OFFLINE is forced on."""

import os
from pathlib import Path

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
