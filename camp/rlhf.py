"""RL fine-tuning of a language model with PPO and a KL penalty (the RLHF recipe). Introduced in lesson 06.

The policy (`camp.lm.PolicyWithValue`: SmolLM2 + LoRA + a value head) answers what a simulated person says; a
scorer (`camp.roles.Scorer`, by default the empathy environment's `camp.env.ReplyScorer`) scores each reply;
every token pays a KL penalty for drifting from the reference model (the same base with the adapters switched
off), so the policy improves its replies without forgetting how to write. Token-level PPO then uses
`camp.rl`'s pieces: a leave-one-out baseline, GAE over tokens, whitened advantages, the clipped surrogate and a
clipped value loss. `RLHFConfig(algorithm="rloo")` or `"grpo"` drops the critic (lesson 07): the other replies to
the same person are the baseline. The three share rollout, scoring, KL penalty and update; `camp.loop` holds
the run (checkpoints, exact resume) and `camp.evaluate` measures the result on held-out people.

Logged metrics (one dict per step in `history`):

| name | meaning |
|---|---|
| `step` | PPO steps done (one rollout of `batch_size` replies and its update each) |
| `reward/score`, `reward/score_std` | the scorer's score of the replies: mean and spread |
| `reward/total` | the score PPO sees (leave-one-out baseline, scaled by the scores' running std) minus the KL penalty |
| `objective/kl`, `objective/kl_k3` | KL(policy, reference) per reply in nats: the estimator in use (k1 or k3), and k3 for reference |
| `objective/beta` | the KL coefficient now (moves when the adaptive controller is on) |
| `loss/policy`, `loss/value` | the clipped surrogate and the value loss (PPO only) |
| `policy/clipfrac`, `policy/approx_kl`, `policy/entropy` | share of clipped tokens; KL between the rollout and updated policy; mean token entropy |
| `response/length` | mean reply length in tokens |
| `time/step_s` | seconds per step, rollout and update together |
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from camp.env import ReplyScorer
from camp.lm import policy_and_reference, response_logprobs, sample_replies
from camp.loop import GeneratorState, Run, accelerator_for, require_one_process
from camp.rl import (
    AdaptiveKLController,
    FixedKLController,
    RunningStd,
    compute_gae,
    entropy,
    group_normalise,
    kl_penalty,
    leave_one_out,
    penalised_rewards,
    ppo_clip_loss,
    value_loss,
    whiten,
)
from camp.roles import Scorer
from camp.utils import ConfigError


# ---------------------------------------------------------------------------------------------------- config
@dataclass
class RLHFConfig:
    """Hyper-parameters of `train_rlhf`; saved inside every checkpoint."""

    algorithm: str = "ppo"  # "ppo" (value head, GAE), "rloo" or "grpo" (no critic: k replies per person are the baseline)
    steps: int = 20  # lesson 06's full mode: 20 steps x 24 replies fit its 30-minute CPU budget with two seeds
    batch_size: int = 24  # replies per rollout (per process): 6 people x replies_per_person
    replies_per_person: int = 4  # several replies to one person give the leave-one-out baseline something to compare
    loo_baseline: bool = True  # how hard a person is sets every reply's score; subtracting the others' mean removes it
    scale_scores: bool = True  # dividing by the scores' running std makes beta mean the same whatever the scorer's scale
    n_minibatches: int = 2  # two gradient steps per epoch: more reuse per rollout without single-reply batches
    ppo_epochs: int = 2  # a third pass mostly hits the clip: the ratio has drifted by then
    sentences: int = 2  # a reply ends after its first two sentences (camp.lm.sentence_mask): nobody reads fragments
    max_new_tokens: int = 40  # only a safety net: two sentences take ~26 tokens on average, a few run past 40
    temperature: float = 0.7  # varied enough to explore, tame enough to stay fluent; log-probs use the same T
    lr: float = 1e-3  # LoRA's few, freshly initialised weights tolerate far higher rates than full tuning (~1e-5)
    clip_range: float = 0.2  # the PPO paper's epsilon
    clip_range_vf: float | None = 0.2  # the value head starts from zero and overshoots its first targets
    vf_coef: float = 0.1  # the value loss is larger than the surrogate early on; keep it from steering LoRA
    gamma: float = 1.0  # one reply is one short episode: no reason to discount its later tokens
    gae_lambda: float = 0.95  # trusts the value head a little, which cuts the variance of per-token credit
    kl_estimator: str = "k1"  # k1 is what the KL penalty of Ziegler et al. uses; "k3" is never negative
    kl_coef: float = 0.05  # the first beta: large enough to hold the policy near the reference in early steps
    adaptive_kl: bool = True  # a fixed beta is either too tight early or too loose late; the controller adapts it
    target_kl: float = 4.0  # nats per reply: replies change noticeably but stay fluent (perplexity held)
    kl_horizon: int = 256  # replies over which beta may roughly double: slow enough not to oscillate
    kl_limit: float = 30.0  # past this, replies are no longer the model's language: stop rather than waste the run
    max_grad_norm: float = 1.0  # guards LoRA against the rare huge advantage
    mixed_precision: str = "auto"  # what the hardware does natively (see camp.utils.mixed_precision)
    checkpoint_dir: str | None = None  # None: no checkpoints (quick runs); lessons point it at Drive on Colab
    checkpoint_every: int = 10  # a lost session repeats at most 10 steps, a few minutes on a CPU
    seed: int = 0  # the people drawn and the tokens sampled
    progress: bool = True  # a tqdm.auto bar

    def __post_init__(self) -> None:
        problems = []
        if self.batch_size < 1 or self.n_minibatches < 1 or self.batch_size % self.n_minibatches:
            problems.append(f"batch_size={self.batch_size} must be a positive multiple of n_minibatches="
                            f"{self.n_minibatches}")
        if self.replies_per_person < 1 or self.batch_size % self.replies_per_person:
            problems.append(f"batch_size={self.batch_size} must be a positive multiple of replies_per_person="
                            f"{self.replies_per_person}")
        elif self.loo_baseline and self.replies_per_person < 2:
            problems.append("loo_baseline=True needs replies_per_person >= 2 (or set loo_baseline=False)")
        if self.algorithm not in ALGORITHMS:
            problems.append(f"algorithm={self.algorithm!r} must be one of {', '.join(ALGORITHMS)}")
        elif self.algorithm != "ppo" and self.replies_per_person < 2:
            problems.append(f"algorithm={self.algorithm!r} needs replies_per_person >= 2: the other replies to a "
                            "person are its baseline")
        if self.sentences < 0:
            problems.append(f"sentences={self.sentences} must be 0 (no cut) or more")
        if self.kl_estimator not in ("k1", "k3"):
            problems.append(f"kl_estimator={self.kl_estimator!r} must be 'k1' or 'k3'")
        if not self.clip_range > 0 or (self.clip_range_vf is not None and not self.clip_range_vf > 0):
            problems.append(f"clip_range={self.clip_range} and clip_range_vf={self.clip_range_vf} must be positive")
        for name in ("steps", "ppo_epochs", "max_new_tokens", "checkpoint_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be at least 1")
        for name in ("lr", "temperature", "target_kl", "kl_horizon", "kl_limit", "max_grad_norm"):
            if not getattr(self, name) > 0:
                problems.append(f"{name}={getattr(self, name)} must be positive")
        if not self.kl_coef >= 0:
            problems.append(f"kl_coef={self.kl_coef} must be zero or positive")
        if problems:
            raise ConfigError("invalid RLHFConfig: " + "; ".join(problems))

    @classmethod
    def quick(cls, **overrides) -> RLHFConfig:
        """A preset for CPUs and CI: 4 steps of 8 replies (2 people x 4), a minute or two on a CPU."""
        return cls(**{"steps": 4, "batch_size": 8, "checkpoint_every": 2, **overrides})


ALGORITHMS = ("ppo", "rloo", "grpo")


def split_situations(situations: Sequence, heldout_every: int = 5) -> tuple[list, list]:
    """(train, held out): every `heldout_every`-th situation of each emotion is held out, the same every time."""
    train, heldout, seen = [], [], {}
    for s in situations:
        seen[s.emotion] = seen.get(s.emotion, 0) + 1
        (heldout if seen[s.emotion] % heldout_every == 0 else train).append(s)
    return train, heldout


# ---------------------------------------------------------------------------------------------------- loop
def policy_run(policy: nn.Module, cfg, resume: bool, total: int, loop: str = "train_rlhf",
               **parts) -> tuple[Run, np.random.Generator]:
    """The loop core's run for a language-model policy (this loop's and `camp.dpo`'s): seeded, AdamW on the
    trainable parameters only (LoRA and the value head), one process, checkpoints of those parameters with
    `parts` and the people sampler's generator (returned). Restored when `resume`."""
    accelerator = accelerator_for(cfg)
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=cfg.lr)
    model, optimizer = accelerator.prepare(policy, optimizer)
    require_one_process(accelerator.num_processes, loop)
    rng = np.random.default_rng([cfg.seed, accelerator.process_index])
    run = Run(model, optimizer, accelerator=accelerator, config=asdict(cfg), folder=cfg.checkpoint_dir,
              resume=resume, total=total, every=cfg.checkpoint_every, trainable_only=True,
              parts={**parts, "rng": GeneratorState(rng)})
    if resume:
        run.restore()
    return run, rng


def rollout(policy: nn.Module, rng: np.random.Generator, situations: Sequence, cfg) -> tuple[list, dict]:
    """Draw batch_size / k people with `rng`, each k times side by side, and sample one reply each (KV cache,
    batched; `camp.lm.sample_replies`)."""
    k = cfg.replies_per_person
    drawn = rng.choice(len(situations), cfg.batch_size // k, replace=False)
    people = [situations[i] for i in drawn for _ in range(k)]
    return people, sample_replies(policy, [p.opening for p in people], cfg.max_new_tokens, cfg.temperature,
                                  cfg.sentences)


def checked_scores(scorer: Scorer, texts: list[str], people: list, step: int, device) -> torch.Tensor:
    """The scorer's score of each reply, refused when any is NaN or infinite (NaN in, NaN out)."""
    scores = torch.as_tensor(np.asarray(scorer(texts, people), dtype=np.float32), device=device)
    if not torch.isfinite(scores).all():
        bad = [i for i in range(len(scores)) if not math.isfinite(scores[i].item())]
        raise FloatingPointError(f"step {step}: the scorer returned {scores[bad[0]].item()} for {len(bad)} of "
                                 f"{len(scores)} replies (first: {texts[bad[0]]!r}); fix the scorer before "
                                 "training on it (NaN in, NaN out).")
    return scores


def _kl(run: Run, batch: dict, mask: torch.Tensor, cfg: RLHFConfig) -> tuple:
    """Log-probs and values under the policy, and the per-token KL to the reference (adapters off)."""
    passes = policy_and_reference(run.model, run.unwrapped, batch, cfg.temperature)
    old_logprobs, ref_logprobs = passes["logprobs"], passes["ref_logprobs"]
    kl = kl_penalty(old_logprobs, ref_logprobs, cfg.kl_estimator) * mask
    per_reply = kl.sum(1).mean().item()
    if not math.isfinite(per_reply) or per_reply > cfg.kl_limit:
        raise RuntimeError(f"step {run.step}: KL to the reference is {per_reply:.1f} nats per reply (limit "
                           f"{cfg.kl_limit}); the policy has drifted too far to trust its replies. Lower lr, "
                           "raise kl_coef, or resume from the last checkpoint with those changes.")
    k3 = (kl_penalty(old_logprobs, ref_logprobs, "k3") * mask).sum(1).mean().item()
    return old_logprobs, passes["values"], kl, {"objective/kl": per_reply, "objective/kl_k3": k3}


def token_advantages(scores: torch.Tensor, kl: torch.Tensor, old_values: torch.Tensor, mask: torch.Tensor,
                     cfg: RLHFConfig, score_stats: RunningStd, beta: float) -> tuple[torch.Tensor, ...]:
    """Per-token advantages (B, R), returns (B, R) for the value head, and the per-token rewards (B, R).

    Every algorithm pays the same KL penalty: the score (scaled by its running std) on a reply's last token,
    minus beta * KL on every token (`penalised_rewards`).
    * ppo: the score with a leave-one-out baseline, then GAE over the reply's tokens with the value head, whitened.
    * rloo: each reply's total reward (score - beta * KL) minus the mean of the other k - 1 replies to the same
      person, the same on every token of the reply (Ahmadian et al. 2024). No critic.
    * grpo: the same total reward normalised within the person's k replies (`camp.rl.group_normalise`; Shao et
      al. 2024 put the KL in the loss instead; here it stays in the reward so the three share one penalty).
    """
    ppo = cfg.algorithm == "ppo"
    shaped = leave_one_out(scores, cfg.replies_per_person) if ppo and cfg.loo_baseline else scores
    if cfg.scale_scores:
        score_stats.update(shaped if ppo else leave_one_out(scores, cfg.replies_per_person))
        shaped = shaped / max(score_stats.std, 1e-3)
    rewards = penalised_rewards(shaped, kl, mask, beta)  # (B, R)
    if not ppo:
        total = (rewards * mask).sum(1)  # (B,): score - beta * KL of the whole reply
        baseline = leave_one_out if cfg.algorithm == "rloo" else group_normalise
        advantages = baseline(total, cfg.replies_per_person)[:, None].expand_as(mask) * mask
        return advantages, torch.zeros_like(mask), rewards
    last = (mask.sum(1).long() - 1).clamp(min=0)
    dones = torch.zeros_like(mask)
    dones[torch.arange(len(last)), last] = 1.0
    advantages, returns = compute_gae(rewards, old_values * mask, cfg.gamma, cfg.gae_lambda, dones)
    return whiten(advantages, mask), returns, rewards


def _minibatch_step(run: Run, mini: dict, m: torch.Tensor, old: dict, idx: torch.Tensor, cfg: RLHFConfig) -> dict:
    """One gradient step of the clipped surrogate (+ the clipped value loss for PPO) on a minibatch."""
    with run.accelerator.autocast():
        logprobs, values, logits = response_logprobs(run.model, mini, cfg.temperature)
    pg_loss, pg_stats = ppo_clip_loss(logprobs, old["logprobs"][idx], old["advantages"][idx], cfg.clip_range, m)
    critic = cfg.algorithm == "ppo"  # rloo and grpo leave the value head alone
    v_loss = value_loss(values, old["returns"][idx], old["values"][idx], cfg.clip_range_vf, m) if critic \
        else torch.zeros((), device=pg_loss.device)
    loss = pg_loss + cfg.vf_coef * v_loss
    if not torch.isfinite(loss):
        raise FloatingPointError(f"step {run.step}: the loss is {loss.item()}; lower lr or check the scores "
                                 "(NaN in, NaN out).")
    run.optimizer_step(loss, cfg.max_grad_norm)
    with torch.no_grad():
        ent = entropy(logits, m).item()
    return {"loss/policy": pg_loss.item(), "loss/value": v_loss.item() if critic else None,
            "policy/clipfrac": pg_stats["clipfrac"], "policy/approx_kl": pg_stats["approx_kl"], "policy/entropy": ent}


def _update(run: Run, batch: dict, mask: torch.Tensor, old: dict, cfg: RLHFConfig) -> dict:
    """PPO's minibatch epochs: clipped surrogate + clipped value loss, gradient clipping. Returns mean stats."""
    stats: dict[str, list[float]] = {}
    for _ in range(cfg.ppo_epochs):
        for idx in torch.randperm(cfg.batch_size).chunk(cfg.n_minibatches):
            mini = {key: v[idx] for key, v in batch.items() if torch.is_tensor(v)}
            for key, value in _minibatch_step(run, mini, mask[idx], old, idx, cfg).items():
                if value is not None:
                    stats.setdefault(key, []).append(value)
    return {k: float(np.mean(v)) for k, v in stats.items()}


def train_rlhf(policy: nn.Module, situations: Sequence, cfg: RLHFConfig | None = None, *,
               scorer: Scorer | None = None, resume: bool = False,
               callback: Callable[[int, dict], None] | None = None) -> tuple[nn.Module, list[dict]]:
    """Token-level PPO (or RLOO, GRPO) with a KL penalty; returns (policy, history).

    `policy` is a `camp.lm.PolicyWithValue` (it knows its tokenizer); `situations` are the people it practises
    on (use the training part of `split_situations`); `scorer(replies, people) -> scores` (a `camp.roles.Scorer`)
    defaults to the environment's reward (`camp.env.ReplyScorer()`). Checkpoints every `cfg.checkpoint_every`
    steps; `resume=True` continues exactly. Runs on a CPU or one GPU.
    """
    cfg = cfg or RLHFConfig()
    if len(situations) < cfg.batch_size // cfg.replies_per_person:
        raise ConfigError(f"{len(situations)} situations cannot fill a batch of {cfg.batch_size} replies at "
                          f"{cfg.replies_per_person} per person")
    scorer = scorer or ReplyScorer()
    kl_ctl = AdaptiveKLController(cfg.kl_coef, cfg.target_kl, cfg.kl_horizon) if cfg.adaptive_kl \
        else FixedKLController(cfg.kl_coef)
    score_stats = RunningStd()
    run, rng = policy_run(policy, cfg, resume, cfg.steps, kl=kl_ctl, scores=score_stats)
    bar = run.progress_bar("RLHF", cfg.progress)
    while run.step < cfg.steps:
        run.step += 1
        clock = time.perf_counter()
        # 1. rollout: k replies to each of batch_size / k people, sampled from the policy
        people, batch = rollout(run.unwrapped, rng, situations, cfg)
        mask = batch["response_mask"].float()  # (B, R)
        # 2. score each reply
        scores = checked_scores(scorer, batch["texts"], people, run.step, mask.device)
        # 3. log-probs under the policy and the reference: the KL penalty
        old_logprobs, old_values, kl, kl_stats = _kl(run, batch, mask, cfg)
        # 4. advantages: baseline, scaling, KL-penalised per-token rewards, GAE
        beta = kl_ctl.value
        advantages, returns, rewards = token_advantages(scores, kl, old_values, mask, cfg, score_stats, beta)
        # 5. minibatch epochs of PPO
        old = {"logprobs": old_logprobs, "values": old_values, "advantages": advantages, "returns": returns}
        stats = _update(run, batch, mask, old, cfg)
        # 6. adapt beta, log, checkpoint
        kl_ctl.update(kl_stats["objective/kl"], cfg.batch_size * run.accelerator.num_processes)
        record = run.record({"step": run.step, "reward/score": scores.mean().item(),
                             "reward/score_std": scores.std().item(), "reward/total": (rewards * mask).sum(1).mean().item(),
                             **kl_stats, "objective/beta": beta, "response/length": mask.sum(1).mean().item(), **stats,
                             "time/step_s": time.perf_counter() - clock}, callback)
        bar.update(1)
        bar.set_postfix(score=f"{record['reward/score']:.3f}", kl=f"{kl_stats['objective/kl']:.2f}")
        run.checkpoint()
    bar.close()
    return run.final_model(), run.history
