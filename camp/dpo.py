"""Direct preference optimisation (Rafailov et al. 2023) on SmolLM2 + LoRA. Introduced in lesson 07.

The KL-regularised objective max E[r(x, y)] - beta * KL(pi || pi_ref) has the closed-form optimum
pi*(y | x) = pi_ref(y | x) exp(r(x, y) / beta) / Z(x). Solved for r, r(x, y) = beta * log(pi*(y | x) / pi_ref(y | x))
+ beta * log Z(x); put into the Bradley-Terry likelihood of a preference (chosen y_w over rejected y_l), Z(x)
cancels and the policy's own log-ratios become the reward model:

    loss = -log sigmoid(beta * [(log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l))]).

The reference is the same network with its LoRA adapters switched off (`PolicyWithValue.reference()`), so there
is no second copy of the weights. Two sources of pairs (`DPOConfig.source`):

* `offline`: the human-written pairs of camp/corpus/preferences.jsonl, `batch_size` pairs a step;
* `on_policy`: each step samples `replies_per_person` replies to `batch_size / replies_per_person` people from the
  current policy, scores them with a scorer (the reward model of lesson 07), keeps best against worst
  (`best_worst_pairs`) and trains on those pairs (online, iterative DPO). Rollout and scoring are `camp.rlhf`'s,
  checkpoints and exact resume the loop core's (`camp.loop`).

Logged metrics (one dict per step in `history`): `loss/dpo`; `rewards/chosen`, `rewards/rejected` (the implicit
rewards beta * log-ratio), `rewards/margin`, `rewards/accuracy` (share of pairs whose implicit reward ranks
chosen first); `objective/logratio` (mean |log pi - log pi_ref| of a pair's replies, nats: how far the policy has
moved on them); `pairs` (pairs trained on); on-policy also `reward/score` (the scorer's mean over the samples) and
`objective/kl` (the samples' KL to the reference per reply); `time/step_s`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from camp.lm import chat_prompts, policy_and_reference, response_logprobs
from camp.loop import Run
from camp.rlhf import checked_scores, policy_run, rollout
from camp.roles import Scorer
from camp.utils import ConfigError, check_config

SOURCES = ("offline", "on_policy")


# ---------------------------------------------------------------------------------------------------- pieces
def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor, beta: float) -> torch.Tensor:
    """The DPO loss, averaged over pairs: -log sigmoid(beta * (chosen log-ratio - rejected log-ratio)).

    Each argument is (B,): the summed log-prob of each pair's whole reply under the policy or the reference.

    >>> # log-ratios 0.5 - 0.0 = 0.5 (chosen) and -1.0 - (-0.5) = -0.5 (rejected): beta * margin = 0.1 * 1.0;
    >>> # -log sigmoid(0.1) = log(1 + e^-0.1) = 0.644397
    >>> round(dpo_loss(torch.tensor([-1.5]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.5]),
    ...                beta=0.1).item(), 6)
    0.644397
    >>> round(dpo_loss(torch.zeros(2), torch.zeros(2), torch.zeros(2), torch.zeros(2), beta=0.1).item(), 6)  # log 2
    0.693147
    """
    margin = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    return -F.logsigmoid(beta * margin).mean()


def best_worst_pairs(scores: Sequence[float] | np.ndarray, k: int, min_margin: float = 0.0) -> list[tuple[int, int]]:
    """On-policy pairs from scored samples in groups of k (k replies to each person, side by side): for each
    group, (index of its highest-scored reply, index of its lowest), both indices into `scores`. A group whose
    best beats its worst by `min_margin` or less gives no pair: equal scores teach nothing. Ties go to the first.

    >>> best_worst_pairs([0.1, 0.9, 0.5, 0.4, 0.4, 0.4], k=3)  # the second person's replies tie
    [(1, 0)]
    """
    scores = np.asarray(scores, dtype=float)
    if k < 2 or len(scores) % k:
        raise ValueError(f"{len(scores)} scores cannot form groups of k={k} (k must be at least 2)")
    pairs = []
    for g, group in enumerate(scores.reshape(-1, k)):
        best, worst = int(np.argmax(group)), int(np.argmin(group))
        if group[best] - group[worst] > min_margin:
            pairs.append((g * k + best, g * k + worst))
    return pairs


def pair_batch(tokenizer, prompts: Sequence[str], chosen: Sequence[str], rejected: Sequence[str], device,
               max_reply_tokens: int = 64) -> dict:
    """Chosen rows then rejected rows, in the layout of `PolicyWithValue.generate` (left-padded `query_ids`,
    right-padded `response_ids`, masks), so `camp.lm.response_logprobs` scores both halves in one pass.
    `prompts` are chat prompts (`camp.lm.chat_prompts`); a reply longer than `max_reply_tokens` is cut there."""
    queries = tokenizer(list(prompts) * 2, return_tensors="pt", padding=True, add_special_tokens=False)
    replies = [tokenizer(t, add_special_tokens=False)["input_ids"][:max_reply_tokens] or [tokenizer.pad_token_id]
               for t in [*chosen, *rejected]]
    width = max(len(r) for r in replies)
    response_ids = torch.full((len(replies), width), tokenizer.pad_token_id, dtype=torch.long)
    response_mask = torch.zeros((len(replies), width), dtype=torch.long)
    for i, r in enumerate(replies):
        response_ids[i, :len(r)] = torch.tensor(r)
        response_mask[i, :len(r)] = 1
    return {"query_ids": queries["input_ids"].to(device), "query_mask": queries["attention_mask"].to(device),
            "response_ids": response_ids.to(device), "response_mask": response_mask.to(device)}


def sequence_logps(model: nn.Module, batch: dict) -> torch.Tensor:
    """Summed log-prob (2B,) of each row's reply under `model` (temperature 1)."""
    logprobs, _, _ = response_logprobs(model, batch)
    return (logprobs * batch["response_mask"]).sum(1)


def training_pairs(pairs: Sequence, heldout: Sequence) -> list:
    """The pairs whose person is not among `heldout` (the people `camp.rlhf.split_situations` keeps for
    evaluation), so offline DPO never practises on someone it is measured on."""
    held = {s.id for s in heldout}
    return [p for p in pairs if p.situation_id not in held]


# ---------------------------------------------------------------------------------------------------- config
@dataclass
class DPOConfig:
    """Hyper-parameters of `train_dpo`; saved inside every checkpoint."""

    source: str = "offline"  # "offline": the human pairs; "on_policy": best vs worst of the policy's own samples
    steps: int = 20  # with batch_size 24 this trains on as many replies as lesson 06's PPO generates
    batch_size: int = 24  # offline: pairs per step (48 replies); on-policy: replies sampled per step
    replies_per_person: int = 4  # on-policy: k samples per person, best against worst gives one pair
    min_margin: float = 0.0  # on-policy: a group whose best and worst score alike gives no pair
    dpo_epochs: int = 2  # on-policy: passes over a step's pairs (each pair was sampled once, like PPO's epochs)
    beta: float = 0.1  # the KL coefficient of the objective DPO solves (Rafailov et al. use 0.1 to 0.5)
    lr: float = 5e-4  # LoRA tolerates far higher rates than full tuning; DPO's gradient is gentler than PPO's
    max_grad_norm: float = 1.0
    max_reply_tokens: int = 64  # offline replies are cut here (the longest human reply is about 60 tokens)
    sentences: int = 2  # on-policy sampling ends a reply after two sentences, as camp.rlhf does
    max_new_tokens: int = 40
    temperature: float = 0.7  # sampling temperature of on-policy replies; the loss uses temperature 1
    kl_limit: float = 30.0  # nats: a pair's reply moved this far from the reference stops the run
    mixed_precision: str = "auto"
    checkpoint_dir: str | None = None
    checkpoint_every: int = 5
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        check_config(self, {
            "source": self.source in SOURCES,
            "steps": self.steps >= 1, "batch_size": self.batch_size >= 1,
            "replies_per_person": self.replies_per_person >= 2 and (self.source == "offline"
                                                                    or self.batch_size % self.replies_per_person == 0),
            "dpo_epochs": self.dpo_epochs >= 1, "beta": self.beta > 0, "lr": self.lr > 0,
            "max_grad_norm": self.max_grad_norm > 0, "max_reply_tokens": self.max_reply_tokens >= 1,
            "sentences": self.sentences >= 0, "max_new_tokens": self.max_new_tokens >= 1,
            "temperature": self.temperature > 0, "kl_limit": self.kl_limit > 0,
            "min_margin": self.min_margin >= 0, "checkpoint_every": self.checkpoint_every >= 1})

    @classmethod
    def quick(cls, **overrides) -> DPOConfig:
        """A preset for CPUs and CI: 4 steps of 8 (pairs offline, replies on-policy), about a minute on a CPU."""
        return cls(**{"steps": 4, "batch_size": 8, "checkpoint_every": 2, **overrides})

    def replies_per_step(self) -> int:
        """Training replies one step uses: sampled ones on-policy, human-written ones (2 per pair) offline."""
        return self.batch_size if self.source == "on_policy" else 2 * self.batch_size


# ---------------------------------------------------------------------------------------------------- loop
def _offline_pairs(rng: np.random.Generator, tokenizer, pairs: Sequence, cfg: DPOConfig) -> tuple[list, list, list]:
    """batch_size human pairs, drawn without replacement within a step by the run's (checkpointed) generator."""
    drawn = [pairs[i] for i in rng.choice(len(pairs), min(cfg.batch_size, len(pairs)), replace=False)]
    return chat_prompts(tokenizer, [p.says for p in drawn]), [p.chosen for p in drawn], [p.rejected for p in drawn]


def _on_policy_pairs(run: Run, rng: np.random.Generator, situations: Sequence, scorer: Scorer,
                     cfg: DPOConfig) -> tuple[list, list, list, dict]:
    """Sample k replies per person from the current policy, score them, keep best against worst."""
    people, batch = rollout(run.unwrapped, rng, situations, cfg)
    mask = batch["response_mask"].float()
    scores = checked_scores(scorer, batch["texts"], people, run.step, mask.device)
    passes = policy_and_reference(run.model, run.unwrapped, batch, cfg.temperature)
    kl = ((passes["logprobs"] - passes["ref_logprobs"]) * mask).sum(1).mean().item()
    chosen = best_worst_pairs(scores.cpu().numpy(), cfg.replies_per_person, cfg.min_margin)
    prompts = chat_prompts(run.unwrapped.tokenizer, [people[w].opening for w, _ in chosen])
    texts = batch["texts"]
    return (prompts, [texts[w] for w, _ in chosen], [texts[lo] for _, lo in chosen],
            {"reward/score": scores.mean().item(), "objective/kl": kl})


def _dpo_update(run: Run, batch: dict, cfg: DPOConfig) -> dict:
    """One gradient step on a pair batch (chosen rows then rejected rows); returns its stats."""
    n = len(batch["query_ids"]) // 2
    with torch.no_grad(), run.unwrapped.reference():
        ref = sequence_logps(run.model, batch)
    with run.accelerator.autocast():
        logps = sequence_logps(run.model, batch)
    loss = dpo_loss(logps[:n], logps[n:], ref[:n], ref[n:], cfg.beta)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"step {run.step}: the DPO loss is {loss.item()}; lower lr or beta (NaN in, NaN out).")
    logratio = (logps - ref).detach()
    moved = logratio.abs().mean().item()
    if not math.isfinite(moved) or moved > cfg.kl_limit:
        raise RuntimeError(f"step {run.step}: the policy's log-probs of the pair replies are {moved:.1f} nats from "
                           f"the reference's (limit {cfg.kl_limit}); it has drifted too far to trust. Lower lr, raise "
                           "beta, or resume from the last checkpoint with those changes.")
    run.optimizer_step(loss, cfg.max_grad_norm)
    chosen, rejected = cfg.beta * logratio[:n], cfg.beta * logratio[n:]
    return {"loss/dpo": loss.item(), "rewards/chosen": chosen.mean().item(), "rewards/rejected": rejected.mean().item(),
            "rewards/margin": (chosen - rejected).mean().item(),
            "rewards/accuracy": (chosen > rejected).float().mean().item(), "objective/logratio": moved}


def _check_data(cfg: DPOConfig, data: Sequence, scorer: Scorer | None) -> None:
    if not data:
        raise ConfigError("train_dpo needs data: the human pairs for source='offline' (camp.data.load_preferences"
                          "('train'), say), the people to sample replies for on-policy")
    if cfg.source == "on_policy":
        if scorer is None:
            raise ConfigError("source='on_policy' needs a scorer to rank the samples (a camp.reward_model.RewardModel)")
        if not hasattr(data[0], "opening"):
            raise ConfigError("source='on_policy' samples replies for people: give situations, not pairs")
        if len(data) < cfg.batch_size // cfg.replies_per_person:
            raise ConfigError(f"{len(data)} situations cannot fill a batch of {cfg.batch_size} replies at "
                              f"{cfg.replies_per_person} per person")
    elif not hasattr(data[0], "chosen"):
        raise ConfigError("source='offline' trains on preference pairs: give camp.data.PreferencePairs")


def train_dpo(policy: nn.Module, data: Sequence, cfg: DPOConfig | None = None, *, scorer: Scorer | None = None,
              resume: bool = False, callback: Callable[[int, dict], None] | None = None
              ) -> tuple[nn.Module, list[dict]]:
    """DPO on a `camp.lm.PolicyWithValue` (its value head is not used); returns (policy, history).

    Offline (`cfg.source="offline"`): `data` are `camp.data.PreferencePair`s (the training split). On-policy:
    `data` are the people to sample replies for, and `scorer(replies, people)` scores them (a
    `camp.reward_model.RewardModel`). Checkpoints every `cfg.checkpoint_every` steps; `resume=True` continues
    exactly, as `camp.rlhf.train_rlhf` does. Runs on a CPU or one GPU.
    """
    cfg = cfg or DPOConfig()
    _check_data(cfg, data, scorer)
    run, rng = policy_run(policy, cfg, resume, cfg.steps, loop="train_dpo")
    tokenizer = run.unwrapped.tokenizer
    bar = run.progress_bar(f"DPO {cfg.source}", cfg.progress)
    while run.step < cfg.steps:
        run.step += 1
        clock = time.perf_counter()
        if cfg.source == "offline":
            prompts, chosen, rejected = _offline_pairs(rng, tokenizer, data, cfg)
            extra, epochs = {}, 1
        else:
            prompts, chosen, rejected, extra = _on_policy_pairs(run, rng, data, scorer, cfg)
            epochs = cfg.dpo_epochs
        stats: dict[str, list[float]] = {}
        if prompts:  # on-policy, every group can tie; then the step only samples
            batch = pair_batch(tokenizer, prompts, chosen, rejected, run.unwrapped.device, cfg.max_reply_tokens)
            for _ in range(epochs):
                for key, value in _dpo_update(run, batch, cfg).items():
                    stats.setdefault(key, []).append(value)
        record = run.record({"step": run.step, **{k: float(np.mean(v)) for k, v in stats.items()}, **extra,
                             "pairs": len(prompts), "time/step_s": time.perf_counter() - clock}, callback)
        bar.update(1)
        bar.set_postfix(loss=f"{record.get('loss/dpo', float('nan')):.3f}", pairs=len(prompts))
        run.checkpoint()
    bar.close()
    return run.final_model(), run.history
