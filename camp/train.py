"""Fine-tune a sequence classifier: camp's own training loop on top of Accelerate. Introduced in lesson 02.

Accelerate handles device placement, mixed precision, gradient accumulation and several processes
(`accelerate launch`) with no code change. The loop adds what makes fine-tuning fast and safe on small
hardware: dynamic padding with length-grouped batches, warm-up then linear decay, gradient clipping, an
optional class-weighted loss, early stopping on validation macro-F1, and atomic checkpoints with exact resume.

Logged metrics (one dict per evaluation in `history`):

| name | meaning |
|---|---|
| `step`, `epoch` | optimizer steps done; epochs done (fractional) |
| `loss/train` | mean training loss since the last evaluation |
| `lr` | learning rate now |
| `eval/accuracy`, `eval/macro_f1` | on the validation split |
| `time/samples_per_s` | training throughput since the last evaluation |
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding, get_linear_schedule_with_warmup

from camp import checkpoint as ckpt
from camp.metrics import evaluate, predict, validate_texts  # noqa: F401  (re-exported: camp.train.predict)
from camp.utils import (
    atomic_write_bytes,
    check_config,
    fresh_accelerator,
    get_device,
    mixed_precision,
    set_seed,
)

if TYPE_CHECKING:
    from datasets import DatasetDict  # annotations only: the loop reads any mapping of splits to columns


@dataclass
class TrainConfig:
    """Hyper-parameters of `train_classifier`; saved inside every checkpoint."""

    lr: float = 1e-4  # small encoders such as MiniLM (22M params) tolerate a higher rate than BERT-base's 2e-5
    batch_size: int = 32  # per process and per accumulation step
    grad_accum: int = 1  # effective batch = batch_size * grad_accum * processes
    epochs: float = 8.0  # upper bound; early stopping usually ends sooner
    max_steps: int | None = None  # optimizer steps; overrides epochs when set
    warmup_ratio: float = 0.06  # share of steps spent warming the learning rate up from 0
    weight_decay: float = 0.01  # AdamW decay, not applied to biases and LayerNorm weights
    max_grad_norm: float = 1.0  # clip the gradient norm: protects the pretrained weights from early spikes
    max_length: int = 128  # truncation only: batches are padded to their own longest text, not to this
    length_grouped: bool = True  # batch texts of similar length together, so there is little padding
    group_window: int = 50  # batches per length-sorted window (see LengthGroupedSampler)
    class_weighted: bool = False  # weight the loss by balanced class weights (helps rare classes' recall)
    mixed_precision: str = "auto"  # what the hardware does natively (see camp.utils.mixed_precision)
    eval_every: int = 50  # often enough for early stopping to react, rarely enough to cost little
    patience: int | None = 4  # stop after this many evaluations without a better macro-F1 (None: never)
    checkpoint_dir: str | None = None  # None: no checkpoints; lessons point it at Drive on Colab
    checkpoint_every: int = 50  # a lost session repeats at most 50 steps, under a minute for MiniLM on a CPU
    checkpoint_minutes: float = 2.0  # and at least this long between checkpoints: 50 steps take seconds on a GPU
    seed: int = 0  # the data order, dropout and the new head's initialisation
    progress: bool = True  # a tqdm.auto bar

    def __post_init__(self) -> None:
        checks = {"lr": self.lr > 0, "batch_size": self.batch_size >= 1, "grad_accum": self.grad_accum >= 1,
                  "epochs": self.epochs > 0, "warmup_ratio": 0 <= self.warmup_ratio < 1,
                  "max_steps": self.max_steps is None or self.max_steps >= 1,
                  "eval_every": self.eval_every >= 1, "group_window": self.group_window >= 1,
                  "checkpoint_every": self.checkpoint_every >= 1, "checkpoint_minutes": self.checkpoint_minutes >= 0,
                  "mixed_precision": self.mixed_precision in ("auto", "no", "bf16", "fp16")}
        check_config(self, checks)

    @classmethod
    def quick(cls, **overrides) -> TrainConfig:
        """A preset for CI and CPUs: 190 steps at a higher rate, about 2 minutes for MiniLM on 2 cores.

        A fixed number of steps, so its cost does not grow with the data: 190 batches of 32 were 1.5 epochs of
        the narrative register, and are 0.9 of both registers (`python -m camp bench registers` scores both).
        """
        return cls(**{"lr": 2e-4, "max_steps": 190, "eval_every": 64, "checkpoint_every": 64, "patience": None,
                      **overrides})


class LengthGroupedSampler(Sampler[list[int]]):
    """Batches of similar-length examples, in a random order that depends only on (seed, epoch).

    Indices are shuffled, cut into windows of `window` batches, sorted by length inside each, cut into batches,
    and the batches shuffled: padding shrinks while batches stay random. A wider window pads less but makes
    each batch more uniform in length (window 1, or grouped=False: plain shuffled batches).
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, grouped: bool = True, window: int = 50):
        self.lengths, self.batch_size, self.seed, self.grouped = np.asarray(lengths), batch_size, seed, grouped
        self.window, self.epoch = window, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        if self.grouped:
            mega = self.batch_size * self.window
            order = np.concatenate([chunk[np.argsort(-self.lengths[chunk], kind="stable")]
                                    for chunk in np.split(order, range(mega, len(order), mega))])
        batches = [order[i:i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def __iter__(self):
        return iter(self.batches())

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)


def _tokenize(tokenizer, texts: list[str], labels: list[int], max_length: int, num_labels: int) -> list[dict]:
    validate_texts(texts)
    bad = [i for i, y in enumerate(labels) if not isinstance(y, int | np.integer) or not 0 <= y < num_labels]
    if bad:
        raise ValueError(f"labels at rows {bad[:5]} are outside 0..{num_labels - 1} (e.g. {labels[bad[0]]!r}).")
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    return [{"input_ids": ids, "attention_mask": mask, "labels": int(y)}
            for ids, mask, y in zip(enc["input_ids"], enc["attention_mask"], labels, strict=True)]


@dataclass
class _State:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_f1: float = -1.0
    best_step: int = 0
    bad_evals: int = 0
    history: list[dict] = field(default_factory=list)


def _accelerator(cfg: TrainConfig) -> Accelerator:
    # cpu=True on a machine without an accelerator lets `accelerate launch --multi_gpu --num_processes N`
    # start N CPU processes that talk over gloo (DistributedType.MULTI_CPU).
    return fresh_accelerator(mixed_precision=mixed_precision(cfg.mixed_precision),
                             gradient_accumulation_steps=cfg.grad_accum, cpu=get_device("auto").type == "cpu")


def _data(tokenizer, data: DatasetDict, cfg: TrainConfig, num_labels: int) -> tuple[list[dict], Sampler, DataLoader]:
    """The training split tokenised once, and a loader of dynamically padded, length-grouped batches."""
    train = _tokenize(tokenizer, list(data["train"]["text"]), list(data["train"]["label"]), cfg.max_length,
                      num_labels)
    sampler = LengthGroupedSampler([len(x["input_ids"]) for x in train], cfg.batch_size, cfg.seed,
                                   cfg.length_grouped, cfg.group_window)
    # Every DataLoader iteration draws a seed from its generator; a private one keeps the global RNG (dropout)
    # untouched, so a resumed run sees exactly the random numbers an uninterrupted run would.
    loader = DataLoader(train, batch_sampler=sampler, collate_fn=DataCollatorWithPadding(tokenizer),
                        generator=torch.Generator().manual_seed(cfg.seed))
    return train, sampler, loader


def _optimisation(model: torch.nn.Module, train: list[dict], steps_per_epoch: int, cfg: TrainConfig,
                  processes: int) -> tuple:
    """AdamW (no decay on biases and LayerNorm), warm-up then linear decay, the (optionally weighted) loss, and
    the number of optimizer steps."""
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "LayerNorm" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1 or "LayerNorm" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    total = cfg.max_steps or math.ceil(cfg.epochs * steps_per_epoch)
    # Accelerate steps a prepared scheduler once per process per optimizer step, so count in those units.
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total) * processes,
                                                total * processes)
    weights = None
    if cfg.class_weighted:
        num_labels = model.config.num_labels
        counts = np.bincount([x["labels"] for x in train], minlength=num_labels)
        weights = torch.tensor(len(train) / (num_labels * np.maximum(counts, 1)), dtype=torch.float32)
    return optimizer, scheduler, weights, total


def _epochs(state: _State, sampler: LengthGroupedSampler, loader, accelerator: Accelerator):
    """Batches from where `state` stands, epoch after epoch; the caller counts `state.batch_in_epoch`.

    The data order depends only on (seed, epoch). Accelerate's loaders reset the epoch from their own counter
    when iterated, so both are told, and the batches already seen are skipped when resuming mid-epoch.
    """
    while True:
        if state.batch_in_epoch >= len(loader):  # resumed from a checkpoint written at the end of an epoch
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
        sampler.set_epoch(state.epoch)
        loader.set_epoch(state.epoch)
        batches = loader
        if state.batch_in_epoch:
            batches = accelerator.skip_first_batches(loader, state.batch_in_epoch)
            batches.set_epoch(state.epoch)
        yield from batches
        state.epoch, state.batch_in_epoch = state.epoch + 1, 0


def _best_file(path: Path, step: int) -> Path:
    return path.parent / f"best-step{step:06d}.safetensors"


def _resume(path: Path, model, optimizer, scheduler, state_cls: type = _State) -> tuple:
    """Restore a checkpoint into model, optimizer, schedule and RNGs; return the loop state (a `state_cls`, any
    dataclass with `best_step`) and the best weights."""
    meta = ckpt.restore(path, model, optimizer, scheduler)
    state = state_cls(**{k: v for k, v in meta["progress"].items() if k in state_cls.__dataclass_fields__})
    if not state.best_step:  # no evaluation yet, or a checkpoint from before best weights had their own file
        return state, meta["extra_tensors"] or None
    best = _best_file(path, state.best_step)
    if not best.is_file():
        raise ckpt.CheckpointError(f"{path} names its best weights {best.name}, which is missing from "
                                   f"{path.parent}. Restore that file, or start over without resume.")
    return state, load_file(best)


def _save(path: Path, accelerator: Accelerator, model, optimizer, scheduler, cfg: TrainConfig, state: _State,
          best_weights: dict | None, best_written: int) -> int:
    """Checkpoint from the main process, once `cfg.checkpoint_every` steps and `cfg.checkpoint_minutes` minutes
    have passed (whichever comes later): weights, optimizer and loop state in one file. The best weights go to a
    file of their own, named by their step and written only when validation has improved since; then the
    checkpoint that names it; then older best files go. A crash at any point leaves a checkpoint whose best file
    exists. Returns the step of the best weights on disk."""
    if accelerator.is_main_process:
        if best_weights and state.best_step != best_written:
            best = {k: v.contiguous() for k, v in best_weights.items()}
            atomic_write_bytes(_best_file(path, state.best_step), save(best, metadata={"step": str(state.best_step)}))
        ckpt.save_checkpoint(path, accelerator.unwrap_model(model), optimizer, scheduler, config=asdict(cfg),
                             progress=asdict(state))
        for old in path.parent.glob("best-step*.safetensors"):
            if old != _best_file(path, state.best_step):
                old.unlink(missing_ok=True)
    accelerator.wait_for_everyone()
    return state.best_step


def _train_step(batch: dict, model, optimizer, scheduler, loss_fn, accelerator: Accelerator,
                max_grad_norm: float) -> tuple[float, int]:
    """Forward and loss (under autocast when mixed precision is on), backward, accumulated; clip and step once
    the accumulation window is full. Returns the batch's loss and size."""
    with accelerator.accumulate(model):
        labels = batch.pop("labels")
        loss = loss_fn(model(**batch).logits.float(), labels)  # logits (B, num_labels)
        accelerator.backward(loss)
        if accelerator.sync_gradients:
            accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return loss.item(), len(labels)


def _evaluate(model, tokenizer, data: DatasetDict, cfg: TrainConfig, state: _State, extra: dict
              ) -> tuple[dict, dict | None]:
    """Validation metrics as a history record (with `extra`), and a copy of the weights when macro-F1 improved."""
    metrics = evaluate(model, tokenizer, data["validation"], batch_size=cfg.batch_size * 2)
    record = {"step": state.step, **extra, "eval/accuracy": metrics["accuracy"], "eval/macro_f1": metrics["macro_f1"]}
    state.history.append(record)
    if metrics["macro_f1"] > state.best_f1:
        state.best_f1, state.best_step, state.bad_evals = metrics["macro_f1"], state.step, 0
        return record, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    state.bad_evals += 1
    return record, None


def _checkpoint_then_stop(path: Path | None, accelerator: Accelerator, model, optimizer, scheduler, cfg, state,
                          best_weights: dict | None, best_written: int, cadence: ckpt.Cadence, total: int
                          ) -> tuple[int, bool]:
    """Steps 5 and 6 of camp's training loops (the classifier's here, the reward model's in camp.reward_model):
    checkpoint atomically (main process only) once enough steps and time have passed, then say whether to stop:
    at the last step, or after `cfg.patience` evaluations without improvement. Returns (the step of the best
    weights on disk, stop)."""
    if path and _agreed(cadence.due(state.step), accelerator):
        best_written = _save(path, accelerator, model, optimizer, scheduler, cfg, state, best_weights, best_written)
        cadence.saved(state.step)
    return best_written, state.step >= total or (cfg.patience is not None and state.bad_evals >= cfg.patience)


def _agreed(flag: bool, accelerator: Accelerator) -> bool:
    """True on every process if it is True on any: each process keeps its own clock, and one that went on to
    `wait_for_everyone` alone would hang the run."""
    if accelerator.num_processes == 1:
        return flag
    return bool(accelerator.reduce(torch.tensor([int(flag)], device=accelerator.device), "sum").item())


def train_classifier(model: torch.nn.Module, tokenizer, data: DatasetDict, cfg: TrainConfig | None = None,
                     resume: bool = False, callback: Callable[[int, dict], None] | None = None
                     ) -> tuple[torch.nn.Module, list[dict]]:
    """Fine-tune `model` on data["train"], evaluating on data["validation"]; returns (best model, history).

    With `cfg.checkpoint_dir` set, checkpoints follow `cfg.checkpoint_every` and `cfg.checkpoint_minutes` (see
    `_save`); `resume=True` continues exactly (same data order, optimizer, scheduler and RNG state).
    """
    cfg = cfg or TrainConfig()
    set_seed(cfg.seed)
    accelerator = _accelerator(cfg)
    # 1. data, optimizer, schedule and loss, prepared for the device(s)
    train, sampler, loader = _data(tokenizer, data, cfg, model.config.num_labels)
    steps_per_epoch = math.ceil(len(sampler) / accelerator.num_processes / cfg.grad_accum)
    optimizer, scheduler, weights, total = _optimisation(model, train, steps_per_epoch, cfg, accelerator.num_processes)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    loss_fn = torch.nn.CrossEntropyLoss(weight=None if weights is None else weights.to(accelerator.device))
    # 2. resume: weights, optimizer, schedule, RNG, loop position and the best weights so far
    path = ckpt.path_in(cfg.checkpoint_dir, resume)
    state, best_weights = _resume(path, accelerator.unwrap_model(model), optimizer, scheduler) if resume \
        else (_State(), None)
    cadence, best_written = ckpt.Cadence(cfg.checkpoint_every, cfg.checkpoint_minutes, total, state.step), state.best_step
    bar = tqdm(total=total, initial=state.step, disable=not (cfg.progress and accelerator.is_main_process),
               desc="fine-tuning")
    running, seen, clock = [], 0, time.perf_counter()
    model.train()
    for batch in _epochs(state, sampler, loader, accelerator):
        # 3. forward, backward (accumulated), clip and step
        loss, size = _train_step(batch, model, optimizer, scheduler, loss_fn, accelerator, cfg.max_grad_norm)
        running.append(loss)
        seen += size * accelerator.num_processes
        state.batch_in_epoch += 1
        if not accelerator.sync_gradients:
            continue
        state.step += 1
        bar.update(1)
        # 4. evaluate on validation, keep the best weights
        if ckpt.is_due(state.step, cfg.eval_every, total):
            record, better = _evaluate(accelerator.unwrap_model(model), tokenizer, data, cfg, state, {
                "epoch": round(state.epoch + state.batch_in_epoch / len(sampler), 3),
                "loss/train": float(np.mean(running)), "lr": scheduler.get_last_lr()[0],
                "time/samples_per_s": seen / (time.perf_counter() - clock)})
            best_weights = better or best_weights
            running, seen, clock = [], 0, time.perf_counter()
            bar.set_postfix(f1=f"{record['eval/macro_f1']:.3f}")
            if callback:
                callback(state.step, record)
        # 5. checkpoint when due; 6. stop at the last step, or early when macro-F1 has stopped improving
        best_written, stop = _checkpoint_then_stop(path, accelerator, model, optimizer, scheduler, cfg, state,
                                                   best_weights, best_written, cadence, total)
        if stop:
            break
    bar.close()
    final = accelerator.unwrap_model(model, keep_fp32_wrapper=False)  # predicts in its own dtype afterwards
    if best_weights:
        final.load_state_dict(best_weights)
    return final, state.history
