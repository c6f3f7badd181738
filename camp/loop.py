"""The loop core: what every camp training loop shares. Introduced in lesson 02, used by all five loops.

`camp.train` (the classifier), `camp.reward_model`, `camp.ppo` (PPO and REINFORCE), `camp.rlhf` (token PPO,
RLOO, GRPO) and `camp.dpo` each write only their own step. Everything around it lives here, once:

* `accelerator_for`: seed Python, NumPy and torch from `cfg.seed`, then an Accelerator for the device(s);
* `adamw_with_warmup`: AdamW without decay on biases and LayerNorm, warm-up then linear decay;
* `Run`: the optimizer, scheduler, history, the step counter, the run's own stateful parts (a KL controller,
  a generator, an environment, the position in the data), the best weights so far with early stopping, the
  checkpoint cadence, atomic checkpoints and exact resume;
* `agreed`: one decision across processes.

A loop builds a `Run`, calls `run.restore()` when resuming, and after each optimizer step calls
`run.checkpoint()` and reads `run.should_stop()`. A checkpoint holds the weights, optimizer, scheduler, every
RNG and `progress`: the step, the history, the best score and every part's `state_dict()`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save
from tqdm.auto import tqdm

from camp import checkpoint as ckpt
from camp.utils import (
    ConfigError,
    atomic_write_bytes,
    fresh_accelerator,
    get_device,
    mixed_precision,
    set_seed,
)


def accelerator_for(cfg: Any, grad_accum: int = 1):
    """Seed everything from `cfg.seed`, then a fresh Accelerator in `cfg.mixed_precision`.

    `cpu=True` on a machine without an accelerator lets `accelerate launch --multi_gpu --num_processes N` start N
    CPU processes that talk over gloo (DistributedType.MULTI_CPU)."""
    set_seed(cfg.seed)
    return fresh_accelerator(mixed_precision=mixed_precision(cfg.mixed_precision),
                             gradient_accumulation_steps=grad_accum, cpu=get_device("auto").type == "cpu")


def adamw_with_warmup(model: torch.nn.Module, lr: float, weight_decay: float, warmup_ratio: float, total: int,
                      processes: int) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW (no decay on biases and LayerNorm weights) and warm-up then linear decay over `total` steps."""
    from transformers import get_linear_schedule_with_warmup

    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "LayerNorm" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1 or "LayerNorm" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    # Accelerate steps a prepared scheduler once per process per optimizer step, so count in those units.
    scheduler = get_linear_schedule_with_warmup(optimizer, int(warmup_ratio * total) * processes, total * processes)
    return optimizer, scheduler


def agreed(flag: bool, accelerator) -> bool:
    """True on every process if it is True on any: each process keeps its own clock, and one that went on to
    `wait_for_everyone` alone would hang the run."""
    if accelerator is None or accelerator.num_processes == 1:
        return flag
    return bool(accelerator.reduce(torch.tensor([int(flag)], device=accelerator.device), "sum").item())


def require_one_process(processes: int, loop: str = "train_rlhf") -> None:
    """Refuse several processes (`accelerate launch --num_processes N`) for the language-model loops: the KL
    controller, the score scaling and the error handling of `camp.rlhf.train_rlhf` and `camp.dpo.train_dpo` are
    per process, so ranks would drift apart or hang on one rank's error."""
    if processes > 1:
        raise ConfigError(f"{loop} runs in one process, but {processes} were started: its KL controller, score "
                          "scaling and error handling are not synchronised across processes yet. Run it without "
                          "`accelerate launch` (one GPU or the CPU).")


class GeneratorState:
    """A NumPy generator as a run's part: its state goes into the checkpoint and comes back on resume."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def state_dict(self) -> dict:
        return self.rng.bit_generator.state

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state


@dataclass
class Position:
    """Where an epoch-based loop stands in its data: the epoch, and batches already seen in it."""

    epoch: int = 0
    batch: int = 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.batch = state["epoch"], state["batch"]


class Run:
    """One training run's state around its step: see the module's docstring.

    Args:
        model: the model as the loop trains it (prepared by Accelerate, or plain).
        optimizer, scheduler: the optimizer and (optional) learning-rate schedule.
        config: the run's hyper-parameters as a dict, saved in every checkpoint.
        folder: where checkpoints go (None: no checkpoints). `resume=True` needs one.
        total: the last step. `every` steps *and* `minutes` minutes pass between checkpoints (whichever comes
            later), and one is always written after the last step (`checkpoint.Cadence`).
        accelerator: the Accelerator, or None for a loop on one device without one (lesson 05's heads).
        parts: name -> anything with `state_dict()` / `load_state_dict()` that the checkpoint must hold.
        trainable_only: checkpoint only the parameters that train (LoRA and a value head, not SmolLM2's weights).
        patience: stop after this many evaluations without a better score (None: never stop early).
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *, config: dict,
                 folder: str | None, total: int, every: int, minutes: float = 0.0, resume: bool = False,
                 scheduler: Any = None, accelerator=None, parts: Mapping[str, Any] | None = None,
                 trainable_only: bool = False, patience: int | None = None):
        self.model, self.optimizer, self.scheduler, self.accelerator = model, optimizer, scheduler, accelerator
        self.config, self.total, self.parts, self.patience = config, total, dict(parts or {}), patience
        self.trainable_only = trainable_only
        self.path = ckpt.path_in(folder, resume)
        self.step, self.history = 0, []
        self.best_score: list[float] | None = None
        self.best_step, self.bad_evals, self.best_weights = 0, 0, None
        self._best_written = 0
        self._every, self._minutes = every, minutes
        self.cadence = ckpt.Cadence(every, minutes, total)
        optimizer.zero_grad()  # gradients left by an earlier run on the same model must not leak into this one

    def optimizer_step(self, loss: torch.Tensor, max_grad_norm: float) -> None:
        """Backward, then, once an accumulation window is full, clip the gradient norm, step the optimizer and the
        schedule, and clear the gradients. Under Accelerate's `accumulate()` the step and clearing wait for the
        window; without an Accelerator (lesson 05's heads) it is plain PyTorch."""
        if self.accelerator is None:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_grad_norm)
        else:
            self.accelerator.backward(loss)
            if self.accelerator.sync_gradients:
                self.accelerator.clip_grad_norm_(self.model.parameters(), max_grad_norm)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.optimizer.zero_grad()

    # ------------------------------------------------------------------------------------------ the model
    @property
    def unwrapped(self) -> torch.nn.Module:
        """The model itself, without Accelerate's wrapper."""
        return self.accelerator.unwrap_model(self.model) if self.accelerator is not None else self.model

    @property
    def is_main(self) -> bool:
        return self.accelerator is None or self.accelerator.is_main_process

    def final_model(self) -> torch.nn.Module:
        """The trained model without Accelerate's autocast wrapper (later evaluation runs in the weights' own
        dtype), with the best weights put back when the loop kept them."""
        final = self.accelerator.unwrap_model(self.model, keep_fp32_wrapper=False) if self.accelerator is not None \
            else self.model
        if self.best_weights:
            final.load_state_dict(self.best_weights)
        return final

    def progress_bar(self, desc: str, enabled: bool = True):
        """A tqdm.auto bar from the current step to the last, on the main process only."""
        return tqdm(total=self.total, initial=self.step, desc=desc, disable=not (enabled and self.is_main))

    # ------------------------------------------------------------------------------------------ best weights
    def improved(self, score: float | tuple[float, ...]) -> bool:
        """Record an evaluation's score (higher is better; a tuple compares in order) and, when it beats the
        best so far, keep a copy of the weights. Returns whether it did."""
        score = [float(s) for s in (score if isinstance(score, tuple | list) else (score,))]
        if self.best_score is not None and score <= self.best_score:
            self.bad_evals += 1
            return False
        self.best_score, self.best_step, self.bad_evals = score, self.step, 0
        self.best_weights = {k: v.detach().cpu().clone() for k, v in self.unwrapped.state_dict().items()}
        return True

    def should_stop(self) -> bool:
        """At the last step, or after `patience` evaluations without a better score."""
        return self.step >= self.total or (self.patience is not None and self.bad_evals >= self.patience)

    def _best_file(self, step: int) -> Path:
        return self.path.parent / f"best-step{step:06d}.safetensors"

    # ------------------------------------------------------------------------------------------ checkpoints
    def progress(self) -> dict:
        """What a checkpoint holds besides weights, optimizer, schedule and RNGs."""
        return {"step": self.step, "history": self.history,
                "best": {"score": self.best_score, "step": self.best_step, "bad_evals": self.bad_evals},
                **{name: part.state_dict() for name, part in self.parts.items()}}

    def checkpoint(self) -> bool:
        """Checkpoint from the main process when due (see `Run`); every process waits for it. The best weights
        go to a file of their own, named by their step and written only when they changed; then the checkpoint
        that names it; then older best files go. A crash at any point leaves a checkpoint whose best file
        exists. Returns whether a checkpoint was written."""
        if not self.path or not agreed(self.cadence.due(self.step), self.accelerator):
            return False
        if self.is_main:
            if self.best_weights and self.best_step != self._best_written:
                best = {k: v.contiguous() for k, v in self.best_weights.items()}
                atomic_write_bytes(self._best_file(self.best_step), save(best, metadata={"step": str(self.best_step)}))
            model = ckpt.TrainableState(self.unwrapped) if self.trainable_only else self.unwrapped
            ckpt.save_checkpoint(self.path, model, self.optimizer, self.scheduler, config=self.config,
                                 progress=self.progress())
            for old in self.path.parent.glob("best-step*.safetensors"):
                if old != self._best_file(self.best_step):
                    old.unlink(missing_ok=True)
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()
        self._best_written = self.best_step
        self.cadence.saved(self.step)
        return True

    def restore(self) -> dict:
        """Resume: weights, optimizer, schedule, RNGs, the step, history, best weights and every part. Returns
        the checkpoint's progress."""
        model = ckpt.TrainableState(self.unwrapped) if self.trainable_only else self.unwrapped
        progress = ckpt.restore(self.path, model, self.optimizer, self.scheduler)["progress"]
        self.step, self.history = progress["step"], progress["history"]
        best = progress["best"]
        self.best_score, self.best_step, self.bad_evals = best["score"], best["step"], best["bad_evals"]
        for name, part in self.parts.items():
            part.load_state_dict(progress[name])
        if self.best_step:
            file = self._best_file(self.best_step)
            if not file.is_file():
                raise ckpt.CheckpointError(f"{self.path} names its best weights {file.name}, which is missing from "
                                           f"{self.path.parent}. Restore that file, or start over without resume.")
            self.best_weights = load_file(file)
        self._best_written = self.best_step
        self.cadence = ckpt.Cadence(self._every, self._minutes, self.total, self.step)
        return progress

    def record(self, entry: dict, callback: Callable[[int, dict], None] | None = None) -> dict:
        """Append one history entry (it names its own step) and hand it to `callback(step, entry)`."""
        self.history.append(entry)
        if callback:
            callback(entry["step"], entry)
        return entry


def epoch_run(model: torch.nn.Module, optimizer, scheduler, accelerator, cfg: Any, total: int,
              resume: bool) -> tuple[Run, Position]:
    """The run of a loop that walks its data epoch by epoch and keeps its best weights (the classifier's and the
    reward model's): checkpoints every `cfg.checkpoint_every` steps and `cfg.checkpoint_minutes` minutes, early
    stopping after `cfg.patience` evaluations without a better score, and the position in the data as a part;
    restored when `resume`."""
    position = Position()
    run = Run(model, optimizer, scheduler=scheduler, accelerator=accelerator, config=asdict(cfg),
              folder=cfg.checkpoint_dir, resume=resume, total=total, every=cfg.checkpoint_every,
              minutes=cfg.checkpoint_minutes, parts={"position": position}, patience=cfg.patience)
    if resume:
        run.restore()
    return run, position


def steps_for(epochs: float, max_steps: int | None, steps_per_epoch: int) -> int:
    """Optimizer steps of a run: `max_steps` when set, else `epochs` worth of steps (rounded up).

    >>> steps_for(1.5, None, 10), steps_for(8.0, 190, 10)
    (15, 190)
    """
    return max_steps or math.ceil(epochs * steps_per_epoch)
