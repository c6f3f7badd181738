"""Atomic, resumable training checkpoints in one safetensors file.

A checkpoint holds the model weights, the optimizer state, and (as JSON metadata) the config, scheduler state,
RNG states and loop position, so `resume=True` continues exactly where a run stopped. Files are written to a
temporary name and renamed, so a crash leaves the previous checkpoint intact. A truncated or damaged file is
refused with a clear error, never loaded silently. `camp.loop.Run` writes and restores them for every training
loop (the classifier, lesson 05's heads, token PPO, the reward model, DPO).
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from camp.utils import CampError, atomic_write_bytes

FORMAT = "camp-checkpoint-v1"
FILE_NAME = "checkpoint.safetensors"


class CheckpointError(CampError, RuntimeError):
    """A checkpoint that cannot be trusted; the message names the file and what to do."""


def path_in(folder: str | Path | None, resume: bool = False) -> Path | None:
    """The checkpoint file inside `folder`, or None when checkpoints are off; resuming needs a folder.

    >>> path_in("runs/a").as_posix(), path_in(None)
    ('runs/a/checkpoint.safetensors', None)
    """
    if resume and not folder:
        raise ValueError("resume=True needs cfg.checkpoint_dir: the folder of the run to continue")
    return Path(folder) / FILE_NAME if folder else None


def is_due(step: int, every: int, last: int) -> bool:
    """Whether to write a checkpoint after `step`: every `every` steps, and after the last one.

    >>> [s for s in range(1, 8) if is_due(s, 3, 7)]
    [3, 6, 7]
    """
    return step % every == 0 or step == last


class Cadence:
    """When to write a checkpoint: once at least `every` steps *and* `minutes` minutes have passed since the last
    one (whichever comes later), and always after the last step.

    Steps alone suit a CPU, where 50 steps take a minute or more; on a GPU they pass in seconds, and writing a
    few hundred MB that often would make the run wait on the disk (or on Google Drive).

    >>> c = Cadence(every=3, minutes=0, last=7)
    >>> [s for s in range(1, 8) if c.due(s) and c.saved(s) is None]
    [3, 6, 7]
    """

    def __init__(self, every: int, minutes: float, last: int, step: int = 0):
        self.every, self.seconds, self.last = every, minutes * 60, last
        self.saved(step)

    def due(self, step: int) -> bool:
        waited = time.monotonic() - self._clock >= self.seconds
        return step >= self.last or (step - self._step >= self.every and waited)

    def saved(self, step: int) -> None:
        """Call after writing the checkpoint of `step`."""
        self._step, self._clock = step, time.monotonic()


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states (tensors kept apart, since safetensors stores them)."""
    np_state = np.random.get_state()
    return {
        "python": repr(random.getstate()),
        "numpy": [np_state[0], np_state[2], np_state[3], np_state[4]],
        "tensors": {"rng.numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
                    "rng.torch": torch.get_rng_state()},
    }


def _restore_rng(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    import ast

    random.setstate(ast.literal_eval(meta["python"]))
    name, pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state((name, tensors["rng.numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(tensors["rng.torch"])


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, scalars = {}, {}
    for pid, slots in state["state"].items():
        for key, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value.detach().clone().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


class TrainableState:
    """The trainable tensors of a module as a state dict: what a checkpoint of a mostly frozen model needs to hold
    (lesson 06: LoRA and the value head, not SmolLM2's frozen weights). Pass it to `save_checkpoint`/`restore`."""

    def __init__(self, module: torch.nn.Module):
        self.module = module

    def named_parameters(self):
        return [(n, p) for n, p in self.module.named_parameters() if p.requires_grad]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.named_parameters())

    def load_state_dict(self, weights: dict[str, torch.Tensor], strict: bool = False):
        own = dict(self.named_parameters())
        with torch.no_grad():
            for name, value in weights.items():
                if name in own:
                    own[name].copy_(value)
        return [n for n in own if n not in weights], [n for n in weights if n not in own]


def save_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: Any = None, config: dict | None = None, progress: dict | None = None,
                    extra_tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """Write everything needed to resume to `path`, atomically."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta: dict[str, Any] = {"format": FORMAT, "config": config or {}, "progress": progress or {}}
    if optimizer is not None:
        opt_tensors, meta["optimizer"] = _flatten_optimizer(optimizer.state_dict())
        tensors.update({k: v.cpu() for k, v in opt_tensors.items()})
    if scheduler is not None:
        meta["scheduler"] = scheduler.state_dict()
    rng = rng_state()
    tensors.update(rng.pop("tensors"))
    meta["rng"] = rng
    tensors.update({f"extra.{k}": v.detach().cpu().contiguous() for k, v in (extra_tensors or {}).items()})
    # Tied weights share storage; safetensors wants each tensor to own its memory.
    tensors = {k: v.clone() for k, v in tensors.items()}
    blob = save(tensors, metadata={"camp": json.dumps(meta, default=str)})
    return atomic_write_bytes(path, blob)


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a checkpoint; returns (tensors, metadata). Raises CheckpointError if damaged."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; start without resume=True or point at the right folder.")
    raw = path.read_bytes()
    try:
        tensors = load(raw)
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads(fh.metadata()["camp"])
    except (SafetensorError, OSError, KeyError, ValueError, json.JSONDecodeError) as err:
        raise CheckpointError(f"checkpoint {path} is truncated or damaged ({err}). It was not loaded. Delete it "
                              "to start over, or restore an earlier copy.") from err
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a camp checkpoint (format {meta.get('format')!r}).")
    return tensors, meta


def restore(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
            scheduler: Any = None, rng: bool = True) -> dict[str, Any]:
    """Load a checkpoint into model, optimizer and scheduler; restore RNG states. Returns the metadata."""
    tensors, meta = load_checkpoint(path)
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or [k for k in missing if k in dict(model.named_parameters())]:
        raise CheckpointError(f"{path} does not fit this model (missing {missing[:3]}, unexpected "
                              f"{unexpected[:3]}); was it written for another model or num_labels?")
    if optimizer is not None and "optimizer" in meta:
        optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
    if scheduler is not None and "scheduler" in meta:
        scheduler.load_state_dict(meta["scheduler"])
    if rng:
        _restore_rng(meta["rng"], tensors)
    meta["extra_tensors"] = {k[len("extra."):]: v for k, v in tensors.items() if k.startswith("extra.")}
    return meta
