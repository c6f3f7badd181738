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
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, Sampler
from transformers import DataCollatorWithPadding

from camp import checkpoint as ckpt
from camp.loop import Position, Run, accelerator_for, adamw_with_warmup, epoch_run, steps_for
from camp.metrics import evaluate, predict, validate_texts  # noqa: F401  (re-exported: camp.train.predict)
from camp.utils import check_config

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


def class_weights(labels: list[int], num_labels: int) -> torch.Tensor:
    """Balanced class weights, n / (classes x count): a rare class's errors cost more.

    >>> class_weights([0, 0, 0, 1], 2).tolist()
    [0.6666666865348816, 2.0]
    """
    counts = np.bincount(labels, minlength=num_labels)
    return torch.tensor(len(labels) / (num_labels * np.maximum(counts, 1)), dtype=torch.float32)


def _epochs(position: Position, sampler: LengthGroupedSampler, loader, accelerator: Accelerator):
    """Batches from where `position` stands, epoch after epoch; the caller counts `position.batch`.

    The data order depends only on (seed, epoch). Accelerate's loaders reset the epoch from their own counter
    when iterated, so both are told, and the batches already seen are skipped when resuming mid-epoch.
    """
    while True:
        if position.batch >= len(loader):  # resumed from a checkpoint written at the end of an epoch
            position.epoch, position.batch = position.epoch + 1, 0
        sampler.set_epoch(position.epoch)
        loader.set_epoch(position.epoch)
        batches = loader
        if position.batch:
            batches = accelerator.skip_first_batches(loader, position.batch)
            batches.set_epoch(position.epoch)
        yield from batches
        position.epoch, position.batch = position.epoch + 1, 0


def _train_step(batch: dict, run: Run, loss_fn, max_grad_norm: float) -> tuple[float, int]:
    """Forward and loss (under autocast when mixed precision is on), backward, accumulated; clip and step once
    the accumulation window is full. Returns the batch's loss and size."""
    with run.accelerator.accumulate(run.model):
        labels = batch.pop("labels")
        loss = loss_fn(run.model(**batch).logits.float(), labels)  # logits (B, num_labels)
        run.optimizer_step(loss, max_grad_norm)
    return loss.item(), len(labels)


def train_classifier(model: torch.nn.Module, tokenizer, data: DatasetDict, cfg: TrainConfig | None = None,
                     resume: bool = False, callback: Callable[[int, dict], None] | None = None
                     ) -> tuple[torch.nn.Module, list[dict]]:
    """Fine-tune `model` on data["train"], evaluating on data["validation"]; returns (best model, history).

    With `cfg.checkpoint_dir` set, checkpoints follow `cfg.checkpoint_every` and `cfg.checkpoint_minutes` (see
    `camp.loop.Run`); `resume=True` continues exactly (same data order, optimizer, scheduler and RNG state).
    """
    cfg = cfg or TrainConfig()
    accelerator = accelerator_for(cfg, cfg.grad_accum)
    # 1. data, optimizer, schedule and loss, prepared for the device(s)
    train, sampler, loader = _data(tokenizer, data, cfg, model.config.num_labels)
    total = steps_for(cfg.epochs, cfg.max_steps,
                      math.ceil(len(sampler) / accelerator.num_processes / cfg.grad_accum))
    optimizer, scheduler = adamw_with_warmup(model, cfg.lr, cfg.weight_decay, cfg.warmup_ratio, total,
                                             accelerator.num_processes)
    weights = class_weights([x["labels"] for x in train], model.config.num_labels) if cfg.class_weighted else None
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    loss_fn = torch.nn.CrossEntropyLoss(weight=None if weights is None else weights.to(accelerator.device))
    # 2. the run: checkpoints, best weights, early stopping; resume restores all of it and the position
    run, position = epoch_run(model, optimizer, scheduler, accelerator, cfg, total, resume)
    bar = run.progress_bar("fine-tuning", cfg.progress)
    running, seen, clock = [], 0, time.perf_counter()
    model.train()
    for batch in _epochs(position, sampler, loader, accelerator):
        # 3. forward, backward (accumulated), clip and step
        loss, size = _train_step(batch, run, loss_fn, cfg.max_grad_norm)
        running.append(loss)
        seen += size * accelerator.num_processes
        position.batch += 1
        if not accelerator.sync_gradients:
            continue
        run.step += 1
        bar.update(1)
        # 4. evaluate on validation, keep the best weights
        if ckpt.is_due(run.step, cfg.eval_every, total):
            metrics = evaluate(run.unwrapped, tokenizer, data["validation"], batch_size=cfg.batch_size * 2)
            run.improved(metrics["macro_f1"])
            record = run.record({
                "step": run.step, "epoch": round(position.epoch + position.batch / len(sampler), 3),
                "loss/train": float(np.mean(running)), "lr": scheduler.get_last_lr()[0],
                "time/samples_per_s": seen / (time.perf_counter() - clock),
                "eval/accuracy": metrics["accuracy"], "eval/macro_f1": metrics["macro_f1"]}, callback)
            running, seen, clock = [], 0, time.perf_counter()
            bar.set_postfix(f1=f"{record['eval/macro_f1']:.3f}")
        # 5. checkpoint when due; 6. stop at the last step, or early when macro-F1 has stopped improving
        run.checkpoint()
        if run.should_stop():
            break
    bar.close()
    return run.final_model(), run.history
