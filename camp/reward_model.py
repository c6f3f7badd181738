"""A reward model learned from preferences: a pretrained encoder with one score, trained with the Bradley-Terry
loss. Introduced in lesson 07.

`RewardModel` reads a (person said, reply) pair as the encoder's two-sentence input and returns one number; it
is a scorer (`camp.roles.Scorer`), so `camp.rlhf.train_rlhf` and every evaluation take it where they take the
environment. `train_reward_model` is a sibling of `camp.train.train_classifier` and shares its pieces: Accelerate,
AdamW with warm-up and decay, atomic checkpoints with exact resume, early stopping, a progress bar and a
`quick()` preset. It saves as a plain transformers folder (`AutoModelForSequenceClassification` with one label).

Logged metrics (one dict per evaluation in `history`):

| name | meaning |
|---|---|
| `step`, `epoch` | optimizer steps done; epochs done (fractional) |
| `loss/train` | mean Bradley-Terry loss of the training batches since the last evaluation |
| `train/loss`, `train/accuracy` | loss and pairwise accuracy on a fixed sample of training pairs, in eval mode |
| `eval/loss`, `eval/accuracy` | the same on the validation pairs: the gap to `train/` is the overfitting |
| `lr` | learning rate now |
| `time/pairs_per_s` | training throughput since the last evaluation |
| `<name>/accuracy` | pairwise accuracy on each set passed as `monitor` (logged only, never used to choose) |
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from camp import checkpoint as ckpt
from camp.data import PreferencePair, says
from camp.loop import Position, Run, accelerator_for, adamw_with_warmup, epoch_run, steps_for
from camp.preferences import agreement, bradley_terry_loss
from camp.utils import (
    CampError,
    ConfigError,
    check_config,
    get_device,
    set_seed,
)


class RewardModelError(CampError, ValueError):
    """A folder that does not hold a reward model; the message says what it holds and what to do."""


@dataclass
class RewardConfig:
    """Hyper-parameters of `train_reward_model`; saved inside every checkpoint."""

    lr: float = 5e-5  # half the classifier's rate: 672 pairs overfit fast, and a smaller step overfits later
    batch_size: int = 16  # pairs per step (32 texts): the classifier's batch of 32 texts
    grad_accum: int = 1  # effective batch = batch_size * grad_accum * processes
    epochs: float = 5.0  # the first full run (720 pairs, 8 epochs) peaked on validation at epoch 6 of 8, within
    # 0.014 of its epoch-3 score; 5 epochs keep lesson 07's full mode near 10 minutes on a 2-core CPU
    max_steps: int | None = None  # optimizer steps; overrides epochs when set
    warmup_ratio: float = 0.1  # the new head starts random: warm up before the encoder moves much
    weight_decay: float = 0.01  # AdamW decay, not applied to biases and LayerNorm weights
    max_grad_norm: float = 1.0  # clip the gradient norm, as in camp.train
    max_length: int = 128  # person's line + reply, truncated longest first; our pairs fit in about 90 tokens
    mixed_precision: str = "auto"  # what the hardware does natively (see camp.utils.mixed_precision)
    eval_every: int = 21  # half an epoch of 672 pairs: enough points for the overfitting curve
    eval_train_pairs: int = 144  # training pairs scored at each evaluation: the train curve, at a quarter the cost
    patience: int | None = 4  # evaluations (two epochs) without a better validation accuracy (None: never stop)
    checkpoint_dir: str | None = None  # None: no checkpoints
    checkpoint_every: int = 42  # one epoch: a lost session repeats at most about two minutes on a CPU
    checkpoint_minutes: float = 1.0  # and at least this long between checkpoints (seconds per epoch on a GPU)
    seed: int = 0  # pair order, dropout and the new head's initialisation
    progress: bool = True  # a tqdm.auto bar

    def __post_init__(self) -> None:
        checks = {"lr": self.lr > 0, "batch_size": self.batch_size >= 1, "grad_accum": self.grad_accum >= 1,
                  "epochs": self.epochs > 0, "warmup_ratio": 0 <= self.warmup_ratio < 1,
                  "max_steps": self.max_steps is None or self.max_steps >= 1, "eval_every": self.eval_every >= 1,
                  "eval_train_pairs": self.eval_train_pairs >= 0, "checkpoint_every": self.checkpoint_every >= 1,
                  "checkpoint_minutes": self.checkpoint_minutes >= 0,
                  "mixed_precision": self.mixed_precision in ("auto", "no", "bf16", "fp16")}
        check_config(self, checks)

    @classmethod
    def quick(cls, **overrides) -> RewardConfig:
        """A preset for CI and CPUs: 32 steps (three quarters of an epoch) at a higher rate, about 80 s on 2
        cores."""
        return cls(**{"lr": 1e-4, "max_steps": 32, "eval_every": 16, "checkpoint_every": 16, "patience": None,
                      "eval_train_pairs": 48, **overrides})


# ---------------------------------------------------------------------------------------------------- the model
def pair_scores(model: torch.nn.Module, tokenizer, said: Sequence[str], replies: Sequence[str],
                max_length: int = 128) -> torch.Tensor:
    """The model's score of each (said, reply) pair, with gradients: shape (N,). Inputs go to the model's device."""
    enc = tokenizer(list(said), list(replies), truncation="longest_first", max_length=max_length, padding=True,
                    return_tensors="pt")
    device = next(model.parameters()).device
    return model(**{k: v.to(device) for k, v in enc.items()}).logits[:, 0].float()  # (N,)


class RewardModel:
    """A scalar score for a reply to what a person said: `rm(replies, people) -> scores` (a scorer).

    `RewardModel.from_encoder("auto")` starts from MiniLM with a fresh one-number head; any hub name or folder
    of an encoder works. `rm.save(folder)` writes a plain transformers folder; `RewardModel.load(folder)` reads
    one back and refuses a folder whose head is not a single score.
    """

    def __init__(self, model: torch.nn.Module, tokenizer, max_length: int = 128):
        if model.config.num_labels != 1:
            raise RewardModelError(f"a reward model has one score, this model has {model.config.num_labels} labels")
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length

    @classmethod
    def from_encoder(cls, name: str = "auto", device: str = "auto", seed: int = 0) -> RewardModel:
        """A pretrained encoder with a fresh one-number head, initialised from `seed`."""
        from camp.models import load_encoder

        set_seed(seed)
        model, tokenizer = load_encoder(name, num_labels=1)
        return cls(model.to(get_device(device)), tokenizer)

    @classmethod
    def load(cls, folder: str | Path, device: str = "auto") -> RewardModel:
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise RewardModelError(f"{folder} holds no model (no config.json); train one with "
                                   f"`python -m camp train-reward --out {folder}` or RewardModel.save.")
        config = AutoConfig.from_pretrained(folder)
        if config.num_labels != 1:
            names = ", ".join(str(v) for v in (config.id2label or {}).values())
            raise RewardModelError(f"{folder} holds a classifier with {config.num_labels} labels ({names}), not a "
                                   "reward model, which has a one-number head. Point at a folder written by "
                                   "RewardModel.save or `python -m camp train-reward`.")
        model = AutoModelForSequenceClassification.from_pretrained(folder)
        return cls(model.to(get_device(device)), AutoTokenizer.from_pretrained(folder))

    def save(self, folder: str | Path) -> Path:
        """Write the model and tokenizer to `folder` (`from_pretrained` loads it), swapped in whole: a crash
        leaves the old folder or the new one."""
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            self.model.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            if folder.exists():
                folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return folder

    @torch.no_grad()
    def score_texts(self, said: Sequence[str], replies: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Scores of (said, reply) texts in eval mode, shape (N,), as a NumPy array. The scorer call,
        `rm(replies, people)`, reads what each person said and calls this."""
        if len(said) != len(replies):
            raise ValueError(f"{len(said)} lines said but {len(replies)} replies; give one reply per line")
        was_training = self.model.training
        self.model.eval()
        out = [pair_scores(self.model, self.tokenizer, said[i:i + batch_size],
                           [r if r.strip() else "..." for r in replies[i:i + batch_size]], self.max_length).cpu()
               for i in range(0, len(replies), batch_size)]
        self.model.train(was_training)
        return torch.cat(out).numpy() if out else np.zeros(0)

    def __call__(self, replies: Sequence[str], people: Sequence) -> np.ndarray:
        """The scorer shape: one score per reply to each person (anything `camp.data.says` can read)."""
        if len(replies) != len(people):
            raise ValueError(f"{len(replies)} replies for {len(people)} people; give one reply per person")
        return self.score_texts([says(p) for p in people], list(replies))

    def pair_agreement(self, pairs: Sequence[PreferencePair]) -> tuple[np.ndarray, np.ndarray]:
        """Scores of every pair's chosen and rejected reply."""
        said = [p.says for p in pairs]
        return self.score_texts(said, [p.chosen for p in pairs]), self.score_texts(said, [p.rejected for p in pairs])


# ---------------------------------------------------------------------------------------------------- training
def _batches(n: int, cfg: RewardConfig, position: Position, process: int, processes: int):
    """Index batches from where `position` stands; the order depends only on (seed, epoch), so a resumed run sees
    the same pairs as an uninterrupted one. Each process takes every `processes`-th pair of a batch."""
    per_epoch = max(1, n // cfg.batch_size)  # drop the last partial batch: every step sees batch_size pairs
    while True:
        if position.batch >= per_epoch:
            position.epoch, position.batch = position.epoch + 1, 0
        order = np.random.default_rng([cfg.seed, position.epoch]).permutation(n)
        for b in range(position.batch, per_epoch):
            yield order[b * cfg.batch_size:(b + 1) * cfg.batch_size][process::processes]
        position.epoch, position.batch = position.epoch + 1, 0


def _measure(rm: RewardModel, pairs: Sequence[PreferencePair]) -> tuple[float, float]:
    """Bradley-Terry loss and pairwise accuracy of `pairs`, in eval mode."""
    chosen, rejected = rm.pair_agreement(pairs)
    loss = float(bradley_terry_loss(torch.from_numpy(chosen), torch.from_numpy(rejected)))
    return loss, float(agreement(chosen, rejected).mean())


def _train_step(run: Run, rm: RewardModel, batch: list[PreferencePair], cfg: RewardConfig) -> float:
    """Score chosen and rejected in one forward pass (under autocast when mixed precision is on), Bradley-Terry
    loss, backward, accumulated; clip and step once the accumulation window is full."""
    with run.accelerator.accumulate(run.model):
        r = pair_scores(run.model, rm.tokenizer, [p.says for p in batch] * 2,
                        [p.chosen for p in batch] + [p.rejected for p in batch], cfg.max_length)  # (2B,)
        loss = bradley_terry_loss(r[:len(batch)], r[len(batch):])
        run.optimizer_step(loss, cfg.max_grad_norm)
    return loss.item()


def _evaluate(run: Run, rm: RewardModel, cfg: RewardConfig, sample: list, validation: list,
              monitor: dict | None) -> dict:
    """Loss and accuracy on a sample of training pairs and on validation (and accuracy on each monitored set);
    the run keeps the weights when validation accuracy (then loss) improved."""
    probe = RewardModel(run.unwrapped, rm.tokenizer, cfg.max_length)
    (train_loss, train_acc), (val_loss, val_acc) = _measure(probe, sample), _measure(probe, validation)
    run.improved((val_acc, -val_loss))
    return {"train/loss": train_loss, "train/accuracy": train_acc, "eval/loss": val_loss, "eval/accuracy": val_acc,
            "lr": run.scheduler.get_last_lr()[0],
            **{f"{name}/accuracy": _measure(probe, watched)[1] for name, watched in (monitor or {}).items()}}


def train_reward_model(rm: RewardModel, train: Sequence[PreferencePair], validation: Sequence[PreferencePair],
                       cfg: RewardConfig | None = None, resume: bool = False,
                       callback: Callable[[int, dict], None] | None = None,
                       monitor: dict[str, Sequence[PreferencePair]] | None = None) -> tuple[RewardModel, list[dict]]:
    """Fit `rm` to `train` with the Bradley-Terry loss; keep the weights with the best validation accuracy.

    `monitor` names further pair sets (such as the judge checks) whose accuracy is logged at every evaluation as
    `<name>/accuracy`, to watch transfer as training goes on; nothing is ever chosen by them.

    With `cfg.checkpoint_dir` set, checkpoints follow `cfg.checkpoint_every` and `cfg.checkpoint_minutes`;
    `resume=True` continues exactly (same pair order, optimizer, schedule and RNG state). Returns (rm, history).
    """
    cfg = cfg or RewardConfig()
    train, validation = list(train), list(validation)
    if len(train) < cfg.batch_size or not validation:
        raise ConfigError(f"need at least batch_size={cfg.batch_size} training pairs and one validation pair, got "
                          f"{len(train)} and {len(validation)}")
    accelerator = accelerator_for(cfg, cfg.grad_accum)
    # 1. optimizer and schedule (the loop core's), prepared for the device(s)
    total = steps_for(cfg.epochs, cfg.max_steps, steps_per_epoch := max(1, len(train) // cfg.batch_size) // cfg.grad_accum or 1)
    optimizer, scheduler = adamw_with_warmup(rm.model, cfg.lr, cfg.weight_decay, cfg.warmup_ratio, total,
                                             accelerator.num_processes)
    model, optimizer, scheduler = accelerator.prepare(rm.model, optimizer, scheduler)
    sample = [train[i] for i in np.random.default_rng(cfg.seed).permutation(len(train))[:cfg.eval_train_pairs]]
    # 2. the run: checkpoints, best weights, early stopping; resume restores all of it and the position
    run, position = epoch_run(model, optimizer, scheduler, accelerator, cfg, total, resume)
    bar = run.progress_bar("reward model", cfg.progress)
    running, seen, clock = [], 0, time.perf_counter()
    model.train()
    for idx in _batches(len(train), cfg, position, accelerator.process_index, accelerator.num_processes):
        # 3. one optimizer step (accumulated) on a batch of pairs
        batch = [train[i] for i in idx]
        running.append(_train_step(run, rm, batch, cfg))
        seen += len(batch) * accelerator.num_processes
        position.batch += 1
        if not accelerator.sync_gradients:
            continue
        run.step += 1
        bar.update(1)
        # 4. evaluate on validation and on a sample of training pairs; keep the best weights
        if ckpt.is_due(run.step, cfg.eval_every, total):
            measured = _evaluate(run, rm, cfg, sample, validation, monitor)
            run.record({"step": run.step, "epoch": round(position.epoch + position.batch / steps_per_epoch, 3),
                        "loss/train": float(np.mean(running)), **measured,
                        "time/pairs_per_s": seen / (time.perf_counter() - clock)}, callback)
            running, seen, clock = [], 0, time.perf_counter()
            bar.set_postfix(val_acc=f"{measured['eval/accuracy']:.3f}")
        # 5. checkpoint when due; 6. stop at the last step, or early when validation accuracy has stopped improving
        run.checkpoint()
        if run.should_stop():
            break
    bar.close()
    final = run.final_model()
    final.eval()
    return RewardModel(final, rm.tokenizer, cfg.max_length), run.history
