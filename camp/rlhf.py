"""RL fine-tuning of a language model with PPO and a KL penalty (the RLHF recipe). Introduced in lesson 06.

The policy (`camp.lm.PolicyWithValue`: SmolLM2 + LoRA + a value head) answers what a simulated person says; the
empathy environment scores each reply; every token pays a KL penalty for drifting from the reference model
(the same base with the adapters switched off), so the policy improves its replies without forgetting how to
write. Token-level PPO then uses `camp.rl`'s pieces: GAE over tokens, whitened advantages, the clipped
surrogate and a clipped value loss.

Logged metrics (one dict per step in `history`):

| name | meaning |
|---|---|
| `step` | PPO steps done (one rollout of `batch_size` replies and its update each) |
| `reward/score`, `reward/score_std` | the environment's score of the replies: mean and spread |
| `reward/total` | the score PPO sees (leave-one-out baseline, scaled by the scores' running std) minus the KL penalty |
| `objective/kl`, `objective/kl_k3` | KL(policy, reference) per reply in nats: the estimator in use (k1 or k3), and k3 for reference |
| `objective/beta` | the KL coefficient now (moves when the adaptive controller is on) |
| `loss/policy`, `loss/value` | PPO's clipped surrogate and the value loss |
| `policy/clipfrac`, `policy/approx_kl`, `policy/entropy` | share of clipped tokens; KL between the rollout and updated policy; mean token entropy |
| `response/length` | mean reply length in tokens |
| `time/step_s` | seconds per step, rollout and update together |
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from camp import checkpoint as ckpt
from camp.rl import compute_gae, masked_mean, ppo_clip_loss, value_loss, whiten
from camp.utils import get_device, mixed_precision, set_seed


# ---------------------------------------------------------------------------------------------------- KL
def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, kind: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from the sampled tokens' log-probs, shape (B, T).

    k1 = log pi - log ref: unbiased, but a single token can be negative. k3 = (r - 1) - log r with
    r = ref / pi: also unbiased, never negative, lower variance (Schulman 2020, "Approximating KL divergence").

    >>> kl_penalty(torch.tensor([-1.0]), torch.tensor([-2.0])).item()  # k1: -1 - (-2)
    1.0
    >>> round(kl_penalty(torch.tensor([-1.0]), torch.tensor([-2.0]), "k3").item(), 4)  # (e^-1 - 1) + 1
    0.3679
    """
    log_ratio = logprobs - ref_logprobs
    if kind == "k1":
        return log_ratio
    if kind == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"kind must be 'k1' or 'k3', got {kind!r}")


def penalised_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-token rewards (B, T): -beta * KL on every reply token, plus the reply's score on its last token.

    >>> penalised_rewards(torch.tensor([1.0]), torch.tensor([[0.5, 0.5, 9.0]]), torch.tensor([[1, 1, 0]]), 0.1).tolist()
    [[-0.05000000074505806, 0.949999988079071, 0.0]]
    """
    mask = mask.to(kl.dtype)
    rewards = torch.where(mask.bool(), -beta * kl, torch.zeros_like(kl))
    last = (mask.sum(1).long() - 1).clamp(min=0)  # index of each reply's last real token
    rewards[torch.arange(len(scores)), last] += scores.to(kl.dtype)
    return rewards


class FixedKLController:
    """A constant KL coefficient beta."""

    def __init__(self, beta: float):
        if beta < 0:
            raise ValueError(f"the KL coefficient must be zero or positive, got {beta}")
        self.value = beta

    def update(self, current_kl: float, n_steps: int) -> None:
        pass

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = state["value"]


class AdaptiveKLController(FixedKLController):
    """Ziegler et al. (2019): steer beta so the KL per reply tracks `target`.

    error = clip(KL / target - 1, -0.2, 0.2);  beta <- beta * (1 + error * n_steps / horizon).
    """

    def __init__(self, beta: float, target: float, horizon: int):
        super().__init__(beta)
        if target <= 0 or horizon <= 0:
            raise ValueError(f"target ({target}) and horizon ({horizon}) must be positive")
        self.target, self.horizon = target, horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        error = float(np.clip(current_kl / self.target - 1.0, -0.2, 0.2))
        self.value *= 1.0 + error * n_steps / self.horizon


class RunningStd:
    """Running standard deviation of every score seen so far (Chan et al.'s parallel update of mean and M2).

    >>> r = RunningStd(); r.update(torch.tensor([1.0, 3.0])); r.update(torch.tensor([5.0])); round(r.std, 4)
    2.0
    """

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 1.0

    def update(self, x: torch.Tensor) -> None:
        n, mean = x.numel(), x.float().mean().item()
        m2 = ((x.float() - mean) ** 2).sum().item()
        delta, total = mean - self.mean, self.count + n
        self.m2 += m2 + delta ** 2 * self.count * n / total
        self.mean += delta * n / total
        self.count = total

    def state_dict(self) -> dict:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: dict) -> None:
        self.count, self.mean, self.m2 = state["count"], state["mean"], state["m2"]


# ---------------------------------------------------------------------------------------------------- config
@dataclass
class RLHFConfig:
    """Hyper-parameters of `train_rlhf`; saved inside every checkpoint."""

    steps: int = 20  # PPO steps, each one rollout of batch_size replies and its update
    batch_size: int = 24  # replies per rollout (per process): 6 people x replies_per_person
    replies_per_person: int = 4  # each person drawn gets this many sampled replies (batch_size must divide evenly)
    loo_baseline: bool = True  # score minus the mean score of the same person's other replies (needs >= 2)
    scale_scores: bool = True  # divide those by their running std, so beta means the same whatever the score's scale
    n_minibatches: int = 2  # batch_size must divide evenly
    ppo_epochs: int = 2  # passes over each rollout
    max_new_tokens: int = 20  # reply length cap: a sentence or two
    temperature: float = 0.7  # sampling temperature; log-probs use the same T, so PPO trains softmax(logits / T)
    lr: float = 1e-3  # AdamW on LoRA and the value head (LoRA tolerates far higher rates than full tuning)
    clip_range: float = 0.2  # PPO's epsilon
    clip_range_vf: float | None = 0.2  # clip value updates: the value head starts from scratch and overshoots
    vf_coef: float = 0.1  # value loss weight
    gamma: float = 1.0  # no discount inside one reply
    gae_lambda: float = 0.95  # GAE over tokens
    kl_estimator: str = "k1"  # "k1" (log-ratio) or "k3" (always >= 0, lower variance)
    kl_coef: float = 0.05  # beta, the KL penalty per nat (initial value when adaptive)
    adaptive_kl: bool = True  # Ziegler et al.'s controller steers beta towards target_kl
    target_kl: float = 4.0  # nats per reply the adaptive controller aims at
    kl_horizon: int = 256  # how fast the controller reacts (in replies)
    kl_limit: float = 30.0  # stop with an error when KL per reply passes this (math.inf: never)
    max_grad_norm: float = 1.0  # clip the global gradient norm
    mixed_precision: str = "auto"  # "auto": bf16 on GPUs that support it, fp16 on other GPUs, none on CPU
    checkpoint_dir: str | None = None  # where to write checkpoint.safetensors (LoRA + value head + optimizer)
    checkpoint_every: int = 10  # steps between checkpoints
    seed: int = 0  # situations drawn, tokens sampled
    progress: bool = True  # show a tqdm.auto progress bar

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
            raise ValueError("invalid RLHFConfig: " + "; ".join(problems))

    @classmethod
    def quick(cls, **overrides) -> RLHFConfig:
        """A preset for CPUs and CI: a handful of small steps."""
        return cls(**{"steps": 4, "batch_size": 8, "checkpoint_every": 2, **overrides})


# ---------------------------------------------------------------------------------------------------- helpers
def split_situations(situations: Sequence, heldout_every: int = 5) -> tuple[list, list]:
    """(train, held out): every `heldout_every`-th situation of each emotion is held out, the same every time."""
    train, heldout, seen = [], [], {}
    for s in situations:
        seen[s.emotion] = seen.get(s.emotion, 0) + 1
        (heldout if seen[s.emotion] % heldout_every == 0 else train).append(s)
    return train, heldout


def env_scorer(listener=None) -> Callable[[list[str], Sequence], np.ndarray]:
    """The respond-mode reward of `camp.env` for one reply to each person's opening line."""
    from camp.env import BatchedEmpathy

    def score(replies: list[str], people: Sequence) -> np.ndarray:
        world = BatchedEmpathy(len(people), "respond", max_turns=1, listener=listener)
        world.reset(np.random.default_rng(0), list(people))
        replies = [r if r.strip() else "..." for r in replies]  # an empty reply is scored, not an error
        return world.step(replies)[1]

    return score


def leave_one_out(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Each score minus the mean of the other k - 1 scores for the same person (scores come in groups of k).

    The person's situation sets how high any reply can score; subtracting what other replies to the same person
    got removes that, leaving how much better this reply was (Kool et al. 2019; Ahmadian et al. 2024). A
    baseline that depends only on the person does not change which replies are best.

    >>> leave_one_out(torch.tensor([1.0, 3.0, 10.0, 10.0]), 2).tolist()
    [-2.0, 2.0, 0.0, 0.0]
    """
    groups = scores.view(-1, k)
    others = (groups.sum(1, keepdim=True) - groups) / (k - 1)
    return (groups - others).view(-1)


def response_logprobs(model: nn.Module, batch: dict,
                      temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-probs (B, R) of the response tokens, the values (B, R) and the logits (B, R, V) that predicted them,
    from one forward pass over prompt + response.

    `temperature` must be the one the replies were sampled at: the policy PPO trains is softmax(logits / T),
    and its ratios are only right if both sides use the same T.
    """
    ids = torch.cat([batch["query_ids"], batch["response_ids"]], dim=1)
    mask = torch.cat([batch["query_mask"], batch["response_mask"]], dim=1)
    r = batch["response_ids"].shape[1]
    # Position t predicts token t + 1, so the R response tokens come from the last R + 1 positions but one;
    # asking only for those logits saves a (B, Q, vocabulary) tensor.
    logits, values = model(ids, mask, logits_to_keep=r + 1)  # (B, R + 1, V), (B, Q + R)
    logits = logits[:, :-1].float() / temperature  # (B, R, V)
    logprobs = torch.log_softmax(logits, -1).gather(-1, batch["response_ids"].unsqueeze(-1)).squeeze(-1)
    return logprobs, values[:, -r - 1:-1].float(), logits


class _Trainable:
    """The trainable tensors of a module (LoRA + value head) as a state dict: what a checkpoint needs to hold."""

    def __init__(self, module: nn.Module):
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


# ---------------------------------------------------------------------------------------------------- loop
def train_rlhf(policy: nn.Module, tokenizer, situations: Sequence, cfg: RLHFConfig | None = None,
               score_fn: Callable[[list[str], Sequence], np.ndarray] | None = None, resume: bool = False,
               callback: Callable[[int, dict], None] | None = None) -> tuple[nn.Module, list[dict]]:
    """Token-level PPO with a KL penalty; returns (policy, history).

    `policy` is a `camp.lm.PolicyWithValue`; `situations` are the people it practises on (use the training part
    of `split_situations`); `score_fn(replies, people) -> scores` defaults to the environment's reward
    (`env_scorer()`). Runs on CPU, one GPU, or several with `accelerate launch`.
    """
    from accelerate import Accelerator

    from camp.lm import chat_prompts

    cfg = cfg or RLHFConfig()
    if len(situations) < cfg.batch_size // cfg.replies_per_person:
        raise ValueError(f"{len(situations)} situations cannot fill a batch of {cfg.batch_size} replies at "
                         f"{cfg.replies_per_person} per person")
    score_fn = score_fn or env_scorer()
    set_seed(cfg.seed)
    accelerator = Accelerator(mixed_precision=mixed_precision(cfg.mixed_precision),
                              cpu=get_device("auto").type == "cpu")
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=cfg.lr)
    model, optimizer = accelerator.prepare(policy, optimizer)
    core = accelerator.unwrap_model(model)
    kl_ctl = AdaptiveKLController(cfg.kl_coef, cfg.target_kl, cfg.kl_horizon) if cfg.adaptive_kl \
        else FixedKLController(cfg.kl_coef)
    rng = np.random.default_rng([cfg.seed, accelerator.process_index])
    score_stats = RunningStd()
    history, start = [], 0
    path = Path(cfg.checkpoint_dir) / "checkpoint.safetensors" if cfg.checkpoint_dir else None
    if resume:
        if path is None:
            raise ValueError("resume=True needs cfg.checkpoint_dir")
        meta = ckpt.restore(path, _Trainable(core), optimizer)
        progress = meta["progress"]
        start, history = progress["step"], progress["history"]
        kl_ctl.load_state_dict(progress["kl"])
        score_stats.load_state_dict(progress["scores"])
        rng.bit_generator.state = progress["rng"]
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="RLHF",
               disable=not (cfg.progress and accelerator.is_main_process))
    for step in bar:
        clock = time.perf_counter()
        # 1. rollout: reply to batch_size people, sampling from the policy (KV cache, batched)
        k = cfg.replies_per_person
        drawn = rng.choice(len(situations), cfg.batch_size // k, replace=False)
        people = [situations[i] for i in drawn for _ in range(k)]  # each person k times, side by side
        batch = core.generate(chat_prompts(tokenizer, [p.opening for p in people]),
                              max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature)
        mask = batch["response_mask"].float()  # (B, R)
        # 2. score each reply with the environment
        scores = torch.as_tensor(np.asarray(score_fn(batch["texts"], people), dtype=np.float32),
                                 device=mask.device)
        if not torch.isfinite(scores).all():
            bad = [i for i in range(len(scores)) if not math.isfinite(scores[i].item())]
            raise FloatingPointError(f"step {step + 1}: the score function returned {scores[bad[0]].item()} for "
                                     f"{len(bad)} of {len(scores)} replies (first: {batch['texts'][bad[0]]!r}); "
                                     "fix the scorer before training on it (NaN in, NaN out).")
        # 3. log-probs under the policy and the reference; KL-penalised per-token rewards
        with torch.no_grad():
            old_logprobs, old_values, _ = response_logprobs(model, batch, cfg.temperature)
            with core.reference():
                ref_logprobs, _, _ = response_logprobs(model, batch, cfg.temperature)
        kl = kl_penalty(old_logprobs, ref_logprobs, cfg.kl_estimator) * mask
        kl_per_reply = kl.sum(1).mean().item()
        if not math.isfinite(kl_per_reply) or kl_per_reply > cfg.kl_limit:
            raise RuntimeError(f"step {step + 1}: KL to the reference is {kl_per_reply:.1f} nats per reply (limit "
                               f"{cfg.kl_limit}); the policy has drifted too far to trust its replies. Lower lr, "
                               "raise kl_coef, or resume from the last checkpoint with those changes.")
        shaped = leave_one_out(scores, k) if cfg.loo_baseline else scores
        if cfg.scale_scores:
            score_stats.update(shaped)
            shaped = shaped / max(score_stats.std, 1e-3)
        rewards = penalised_rewards(shaped, kl, mask, kl_ctl.value)
        # 4. advantages: GAE over the reply's tokens, whitened over the real tokens
        last = (mask.sum(1).long() - 1).clamp(min=0)
        dones = torch.zeros_like(mask)
        dones[torch.arange(len(last)), last] = 1.0
        advantages, returns = compute_gae(rewards, old_values * mask, cfg.gamma, cfg.gae_lambda, dones)
        advantages = whiten(advantages, mask)
        # 5. minibatch epochs: clipped surrogate + clipped value loss, gradient clipping
        stats: dict[str, list[float]] = {}
        for _ in range(cfg.ppo_epochs):
            for idx in torch.randperm(cfg.batch_size).chunk(cfg.n_minibatches):
                mini = {key: v[idx] for key, v in batch.items() if torch.is_tensor(v)}
                m = mask[idx]
                with accelerator.autocast():
                    logprobs, values, logits = response_logprobs(model, mini, cfg.temperature)
                pg_loss, pg_stats = ppo_clip_loss(logprobs, old_logprobs[idx], advantages[idx], cfg.clip_range, m)
                v_loss = value_loss(values, returns[idx], old_values[idx], cfg.clip_range_vf, m)
                loss = pg_loss + cfg.vf_coef * v_loss
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"step {step + 1}: the loss is {loss.item()}; lower lr or check the "
                                             "scores (NaN in, NaN out).")
                optimizer.zero_grad()
                accelerator.backward(loss)
                accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                with torch.no_grad():
                    logp_all = torch.log_softmax(logits, -1)
                    ent = masked_mean(-(logp_all.exp() * logp_all).sum(-1), m).item()
                for key, value in (("loss/policy", pg_loss.item()), ("loss/value", v_loss.item()),
                                   ("policy/clipfrac", pg_stats["clipfrac"]),
                                   ("policy/approx_kl", pg_stats["approx_kl"]), ("policy/entropy", ent)):
                    stats.setdefault(key, []).append(value)
        # 6. adapt beta, log, checkpoint
        beta = kl_ctl.value
        kl_ctl.update(kl_per_reply, cfg.batch_size * accelerator.num_processes)
        k3 = (kl_penalty(old_logprobs, ref_logprobs, "k3") * mask).sum(1).mean().item()
        record = {"step": step + 1, "reward/score": scores.mean().item(), "reward/score_std": scores.std().item(),
                  "reward/total": (rewards * mask).sum(1).mean().item(), "objective/kl": kl_per_reply,
                  "objective/kl_k3": k3, "objective/beta": beta, "response/length": mask.sum(1).mean().item(),
                  **{k: float(np.mean(v)) for k, v in stats.items()}, "time/step_s": time.perf_counter() - clock}
        history.append(record)
        bar.set_postfix(score=f"{record['reward/score']:.3f}", kl=f"{kl_per_reply:.2f}")
        if callback:
            callback(step + 1, record)
        if path and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps):
            if accelerator.is_main_process:
                ckpt.save_checkpoint(path, _Trainable(core), optimizer, config=asdict(cfg),
                                     progress={"step": step + 1, "history": history, "kl": kl_ctl.state_dict(),
                                               "scores": score_stats.state_dict(),
                                               "rng": rng.bit_generator.state})
            accelerator.wait_for_everyone()
    bar.close()
    return core, history


# ---------------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate_replies(policy: nn.Module, tokenizer, situations: Sequence, score_fn: Callable | None = None,
                     seed: int = 0, max_new_tokens: int = 20, batch_size: int = 48, reference: bool = False,
                     temperature: float = 0.7, samples_per_person: int = 1) -> dict:
    """Reply to each held-out person `samples_per_person` times (sampled at `temperature`, seeded) and measure.

    Returns `replies` (person by person, each person's samples together) and: `reward` (the environment's
    score, mean and std), `judge` (the course's independent judge, `camp.judge.score`: nade's attunement to the
    person's feeling, which the policy never trains against), `judge_warmth` (nade trust + joy, a second
    reading that prefers cheer to sympathy; see `judge.check`), `distinct_2` (across all replies),
    `perplexity` of the replies under the reference model, `length` in tokens, and the per-reply `scores` and
    `judge_scores` for paired comparisons (`compare`). `reference=True` measures the reference model itself.
    """
    from contextlib import nullcontext

    from camp import judge, rewards
    from camp.lm import chat_prompts

    if samples_per_person < 1:
        raise ValueError(f"samples_per_person must be at least 1, got {samples_per_person}")
    score_fn = score_fn or env_scorer()
    people_all = [p for p in situations for _ in range(samples_per_person)]
    set_seed(seed)
    replies, scores, ref_lp, tokens = [], [], 0.0, 0.0
    for start in range(0, len(people_all), batch_size):
        people = people_all[start:start + batch_size]
        with policy.reference() if reference else nullcontext():
            batch = policy.generate(chat_prompts(tokenizer, [p.opening for p in people]),
                                    max_new_tokens=max_new_tokens, temperature=temperature)
        with policy.reference():
            lp, _, _ = response_logprobs(policy, batch)
        mask = batch["response_mask"].float()
        ref_lp += (lp * mask).sum().item()
        tokens += mask.sum().item()
        replies += batch["texts"]
        scores += list(score_fn(batch["texts"], people))
    scores = np.asarray(scores, dtype=float)
    shown = [r or "..." for r in replies]
    judged = judge.score(shown, [p.emotion for p in people_all])
    return {"replies": replies, "reward": float(scores.mean()), "reward_std": float(scores.std()),
            "judge": float(judged.mean()), "judge_warmth": float(judge.warmth(shown).mean()),
            "distinct_2": rewards.corpus_distinct_n(replies, 2), "perplexity": math.exp(-ref_lp / max(tokens, 1)),
            "length": tokens / max(len(replies), 1), "samples_per_person": samples_per_person,
            "scores": scores.tolist(), "judge_scores": judged.tolist()}


def compare(before: dict, after: dict, seed: int = 0) -> dict:
    """After minus before for the reward and the judge, per held-out person, with paired bootstrap 95 % intervals,
    and the judge's win rate. Both results must come from `evaluate_replies` on the same people and samples."""
    from camp.metrics import paired_bootstrap

    k = before.get("samples_per_person", 1)
    if len(before["scores"]) != len(after["scores"]) or k != after.get("samples_per_person", 1):
        raise ValueError("before and after must evaluate the same people with the same samples_per_person")

    def per_person(key: str) -> np.ndarray:
        return (np.asarray(after[key]) - np.asarray(before[key])).reshape(-1, k).mean(axis=1)

    a, b = np.asarray(after["judge_scores"]), np.asarray(before["judge_scores"])  # ties count half
    return {"reward": paired_bootstrap(per_person("scores"), seed),
            "judge": paired_bootstrap(per_person("judge_scores"), seed),
            "judge_win_rate": float(np.mean((a > b) + 0.5 * (a == b)))}

