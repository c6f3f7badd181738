"""The machine a benchmark ran on, as the kept JSON of several benches records it."""

from __future__ import annotations

import platform

import torch


def machine_info() -> dict:
    """What a kept benchmark JSON records about the machine it ran on."""
    return {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads()}
