"""Policy gradients from scratch: the pieces of REINFORCE and PPO, and a PPO loop. Introduced in lesson 05.

The pieces are small pure functions over batch-first tensors, shape (B, T) for B episodes of up to T steps
(T = 1 for a one-shot guess; T = tokens in lesson 06), with a `mask` that is 1 on real steps and 0 on padding:
`masked_mean`, `whiten`, `discounted_returns`, `compute_gae`, `reinforce_loss`, `ppo_clip_loss`,
`value_loss`, `entropy`. `train_reinforce` and `train_ppo` put them together for discrete actions; the
environments they expect live in `camp.rl_envs`.

Logged metrics (one dict per update in `history`):

| name | meaning |
|---|---|
| `update`, `samples` | updates done; environment steps seen so far |
| `reward/mean`, `reward/correct` | mean reward per step; share of steps that named the dominant emotion |
| `return/mean` | mean undiscounted episode return |
| `loss/policy`, `loss/value` | the clipped surrogate (or REINFORCE) loss; the value loss |
| `policy/entropy`, `policy/approx_kl`, `policy/clipfrac` | mean entropy; KL(old, new) estimate (k3); share of clipped ratios |
| `grad/variance` | (REINFORCE) mean per-parameter variance of the policy gradient over sub-batches |
| `eval/accuracy`, `eval/macro_f1` | greedy policy on the evaluation split, when given |
| `time/samples_per_s` | environment steps per second, rollout and update together |
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from camp import checkpoint as ckpt
from camp.metrics import classification_metrics
from camp.utils import get_device, set_seed


# ---------------------------------------------------------------------------------------------------- pieces
def masked_mean(x: torch.Tensor, mask: torch.Tensor | None = None, dim: int | None = None) -> torch.Tensor:
    """Mean of `x` over the positions where `mask` is 1 (all positions when `mask` is None).

    >>> masked_mean(torch.tensor([1.0, 2.0, 9.0]), torch.tensor([1, 1, 0])).item()
    1.5
    """
    if mask is None:
        return x.mean() if dim is None else x.mean(dim)
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1.0)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def masked_var(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Unbiased variance of `x` over the masked positions."""
    mask = torch.ones_like(x) if mask is None else mask.to(x.dtype)
    n = mask.sum()
    mean = (x * mask).sum() / n.clamp(min=1.0)
    return (((x - mean) ** 2) * mask).sum() / (n - 1).clamp(min=1.0)


def whiten(x: torch.Tensor, mask: torch.Tensor | None = None, shift_mean: bool = True,
           eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over the masked positions; `shift_mean=False` only rescales. Padding stays as it was.

    >>> whiten(torch.tensor([1.0, 3.0])).tolist()  # mean 2, unbiased std sqrt(2)
    [-0.7071067690849304, 0.7071067690849304]
    """
    mean = masked_mean(x, mask)
    out = (x - mean) * torch.rsqrt(masked_var(x, mask) + eps)
    if not shift_mean:
        out = out + mean
    return out if mask is None else torch.where(mask.bool(), out, x)


def discounted_returns(rewards: torch.Tensor, gamma: float, dones: torch.Tensor | None = None) -> torch.Tensor:
    """G_t = r_t + gamma * G_{t+1}, restarting after every step where `dones` is 1. Shapes (B, T) or (T,).

    >>> discounted_returns(torch.tensor([1.0, 1.0, 1.0]), 0.5).tolist()
    [1.75, 1.5, 1.0]
    """
    dones = torch.zeros_like(rewards) if dones is None else dones.to(rewards.dtype)
    out, running = torch.zeros_like(rewards), torch.zeros_like(rewards[..., 0])
    for t in reversed(range(rewards.shape[-1])):
        running = rewards[..., t] + gamma * running * (1.0 - dones[..., t])
        out[..., t] = running
    return out


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float,
                dones: torch.Tensor | None = None, last_values: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016); returns (advantages, returns), both (B, T).

    delta_t = r_t + gamma * V(s_{t+1}) * (1 - done_t) - V(s_t);  A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}.
    `dones[..., t]` is 1 when the episode ended at step t (nothing to bootstrap); `last_values` is V of the state
    after the last step (0 when omitted). returns = advantages + values, the value function's target.

    >>> adv, ret = compute_gae(torch.tensor([[1.0, 1.0]]), torch.tensor([[0.5, 0.5]]), gamma=1.0, lam=1.0)
    >>> adv.tolist(), ret.tolist()
    ([[1.5, 0.5]], [[2.0, 1.0]])
    """
    if rewards.shape != values.shape:
        raise ValueError(f"rewards {tuple(rewards.shape)} and values {tuple(values.shape)} must have one shape")
    dones = torch.zeros_like(rewards) if dones is None else dones.to(rewards.dtype)
    next_value = torch.zeros_like(values[..., 0]) if last_values is None else last_values
    advantages, running = torch.zeros_like(rewards), torch.zeros_like(rewards[..., 0])
    for t in reversed(range(rewards.shape[-1])):
        alive = 1.0 - dones[..., t]
        delta = rewards[..., t] + gamma * next_value * alive - values[..., t]
        running = delta + gamma * lam * alive * running
        advantages[..., t] = running
        next_value = values[..., t]
    return advantages, advantages + values


def reinforce_loss(logprobs: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """-mean(log pi(a|s) * weight): its gradient is the REINFORCE estimate. `weights` (returns or advantages)
    are treated as constants.

    >>> reinforce_loss(torch.tensor([-1.0, -2.0]), torch.tensor([1.0, -1.0])).item()  # -(-1 + 2) / 2
    -0.5
    """
    return -masked_mean(logprobs * weights.detach(), mask)


def ppo_clip_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                  clip_range: float, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """PPO's clipped surrogate (Schulman et al. 2017), as a loss to minimise; returns (loss, stats).

    loss = -mean(min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A)) with ratio = pi / pi_old.
    stats: `clipfrac` (share of positions where clipping was active) and `approx_kl` (k3 estimate of
    KL(pi_old || pi), >= 0).
    """
    if not clip_range > 0:
        raise ValueError(f"clip_range must be positive, got {clip_range}")
    if not torch.isfinite(advantages).all():
        raise ValueError("advantages contain NaN or inf; check the rewards (a log of 0?) and the value head")
    log_ratio = logprobs - old_logprobs.detach()
    ratio = torch.exp(log_ratio)
    advantages = advantages.detach()
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range) * advantages
    loss = -masked_mean(torch.minimum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {"clipfrac": masked_mean((clipped < unclipped).float(), mask).item(),
                 "approx_kl": masked_mean((ratio - 1.0) - log_ratio, mask).item()}
    return loss, stats


def value_loss(values: torch.Tensor, returns: torch.Tensor, old_values: torch.Tensor | None = None,
               clip_range: float | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
    """0.5 * mean((V - R)^2); with `clip_range`, the pessimistic max with V clipped to old_values +/- clip_range.

    >>> value_loss(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0])).item()  # 0.5 * (1 + 9) / 2
    2.5
    """
    returns = returns.detach()
    loss = (values - returns) ** 2
    if clip_range is not None:
        if old_values is None:
            raise ValueError("value clipping needs old_values")
        clipped = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
        loss = torch.maximum(loss, (clipped - returns) ** 2)
    return 0.5 * masked_mean(loss, mask)


def entropy(logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean entropy (nats) of the categorical distributions given by `logits` (..., A).

    >>> round(entropy(torch.zeros(6)).item(), 4) == round(math.log(6), 4)  # uniform over 6: log 6
    True
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    return masked_mean(-(logp.exp() * logp).sum(-1), mask)


# ---------------------------------------------------------------------------------------------------- policy
class ActorCritic(nn.Module):
    """A policy head and a value head on frozen features (e.g. MiniLM embeddings, 384 floats).

    `hidden=0` (the default): both are linear, which learns as well as an MLP here and more steadily;
    `hidden=256` adds a tanh layer to each. The actor starts with tiny weights, so the first policy is nearly
    uniform (accuracy at chance, 1/6).
    """

    def __init__(self, in_dim: int = 384, n_actions: int = 6, hidden: int = 0):
        super().__init__()

        def body() -> nn.Module:
            return nn.Identity() if hidden == 0 else nn.Sequential(nn.Linear(in_dim, hidden), nn.Tanh())

        width = in_dim if hidden == 0 else hidden
        self.actor = nn.Sequential(body(), nn.Linear(width, n_actions))
        self.critic = nn.Sequential(body(), nn.Linear(width, 1))
        nn.init.normal_(self.actor[-1].weight, std=0.01)
        nn.init.zeros_(self.actor[-1].bias)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.actor(obs), self.critic(obs).squeeze(-1)  # (B, A) logits, (B,) values


@torch.no_grad()
def evaluate_policy(policy: nn.Module, features: np.ndarray, labels: np.ndarray) -> dict:
    """Greedy policy (argmax) against `labels`: accuracy, macro-F1, per-class scores, confusion matrix."""
    device = next(policy.parameters()).device
    policy.eval()
    logits, _ = policy(torch.as_tensor(features, dtype=torch.float32, device=device))
    policy.train()
    return classification_metrics(np.asarray(labels), logits.argmax(-1).cpu().numpy(), logits.shape[-1])


# ---------------------------------------------------------------------------------------------------- config
@dataclass
class PPOConfig:
    """Hyper-parameters of `train_ppo` (and `train_reinforce`); saved inside every checkpoint."""

    updates: int = 300  # rollout + optimisation rounds
    n_envs: int = 256  # people per rollout; a rollout holds n_envs episodes
    n_minibatches: int = 4  # n_envs must divide evenly: each minibatch holds n_envs / n_minibatches episodes
    ppo_epochs: int = 4  # passes over each rollout; more reuses data, but the ratio drifts and gets clipped
    lr: float = 1e-2  # Adam; right for a linear head on unit-length features; a full network wants ~1e-5
    clip_range: float = 0.2  # epsilon of the clipped ratio (the PPO paper's default)
    clip_range_vf: float | None = None  # clip value updates too (None: no value clipping)
    vf_coef: float = 0.5  # weight of the value loss against the policy loss
    ent_coef: float = 0.01  # entropy bonus: keeps exploring instead of locking onto one emotion early
    gamma: float = 0.99  # discount per turn (irrelevant for one-turn episodes)
    gae_lambda: float = 0.95  # GAE's bias-variance knob: 0 = one-step TD, 1 = Monte Carlo returns
    normalize_advantages: bool = True  # whiten advantages per minibatch: scale-free steps
    max_grad_norm: float = 0.5  # clip the global gradient norm
    eval_every: int = 10  # updates between greedy evaluations (when eval data is given)
    checkpoint_dir: str | None = None  # where to write checkpoint.safetensors (None: no checkpoints)
    checkpoint_every: int = 25  # updates between checkpoints
    seed: int = 0  # the people drawn, the actions sampled, the minibatch order, the head's initialisation
    device: str = "auto"  # "auto", "cpu", "cuda", "mps"
    progress: bool = True  # show a tqdm.auto progress bar

    def __post_init__(self) -> None:
        problems = []
        if self.n_envs < 1 or self.n_minibatches < 1 or self.n_envs % self.n_minibatches:
            problems.append(f"n_envs={self.n_envs} must be a positive multiple of n_minibatches="
                            f"{self.n_minibatches} (each minibatch takes n_envs / n_minibatches episodes)")
        if not self.clip_range > 0:
            problems.append(f"clip_range={self.clip_range} must be positive (0.1-0.3 is usual)")
        if self.clip_range_vf is not None and not self.clip_range_vf > 0:
            problems.append(f"clip_range_vf={self.clip_range_vf} must be positive or None")
        if not 0 <= self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            problems.append(f"gamma={self.gamma} and gae_lambda={self.gae_lambda} must lie in [0, 1]")
        for name in ("updates", "ppo_epochs", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be at least 1")
        for name in ("lr", "max_grad_norm"):
            if not getattr(self, name) > 0:
                problems.append(f"{name}={getattr(self, name)} must be positive")
        for name in ("vf_coef", "ent_coef"):
            if not getattr(self, name) >= 0:
                problems.append(f"{name}={getattr(self, name)} must be zero or positive")
        if problems:
            raise ValueError("invalid PPOConfig: " + "; ".join(problems))

    @classmethod
    def quick(cls, **overrides) -> PPOConfig:
        """A preset for CPUs and CI: 300 updates, about 10 s for a linear head on cached features."""
        return cls(**{"updates": 300, "n_envs": 256, "eval_every": 10, "checkpoint_every": 25, **overrides})


# ---------------------------------------------------------------------------------------------------- loops
def _rollout(policy: nn.Module, env, device: torch.device) -> dict[str, torch.Tensor]:
    """Play one batch of episodes (B people, up to env.max_turns steps); returns (B, T) tensors and masks."""
    obs = torch.as_tensor(env.reset(), dtype=torch.float32, device=device)
    alive = torch.ones(len(obs), dtype=torch.bool, device=device)
    steps: dict[str, list] = {k: [] for k in ("obs", "actions", "logprobs", "values", "rewards", "dones", "mask",
                                              "correct")}
    with torch.no_grad():
        for _ in range(env.max_turns):
            logits, values = policy(obs)
            dist = torch.distributions.Categorical(logits=logits)
            actions = dist.sample()  # (B,)
            next_obs, rewards, terminated, info = env.step(actions.cpu().numpy())
            done = torch.as_tensor(terminated, device=device)
            for key, value in (("obs", obs), ("actions", actions), ("logprobs", dist.log_prob(actions)),
                               ("values", values), ("dones", done | ~alive), ("mask", alive.clone()),
                               ("rewards", torch.as_tensor(rewards, dtype=torch.float32, device=device)
                                * alive),
                               ("correct", torch.as_tensor(info["correct"], dtype=torch.float32, device=device))):
                steps[key].append(value)
            alive = alive & ~done
            obs = torch.as_tensor(next_obs, dtype=torch.float32, device=device)
            if not alive.any():
                break
        _, last_values = policy(obs)
    out = {k: torch.stack(v, dim=1) for k, v in steps.items()}  # (B, T, ...)
    out["last_values"] = last_values * alive  # bootstrap only episodes cut off by the turn limit
    return out


def _record(roll: dict, extra: dict) -> dict:
    mask = roll["mask"]
    return {"reward/mean": masked_mean(roll["rewards"], mask).item(),
            "reward/correct": masked_mean(roll["correct"], mask).item(),
            "return/mean": roll["rewards"].sum(1).mean().item(), **extra}


def _finish(update: int, record: dict, samples: int, clock: float, policy: nn.Module, eval_data, cfg: PPOConfig,
            total: int) -> dict:
    record = {"update": update, "samples": samples, **record,
              "time/samples_per_s": samples and record.pop("_steps") / (time.perf_counter() - clock)}
    if eval_data is not None and (update % cfg.eval_every == 0 or update == total):
        result = evaluate_policy(policy, *eval_data)
        record.update({"eval/accuracy": result["accuracy"], "eval/macro_f1": result["macro_f1"]})
    return record


def train_ppo(policy: nn.Module, env, cfg: PPOConfig | None = None, eval_data: tuple | None = None,
              resume: bool = False, callback: Callable[[int, dict], None] | None = None
              ) -> tuple[nn.Module, list[dict]]:
    """PPO-clip with GAE for a discrete-action `policy` (obs -> (logits, values)); returns (policy, history).

    `env` is a batched episodic environment (see `camp.rl_envs`): `reset() -> obs (B, D)`,
    `step(actions) -> (obs, rewards, terminated, info)`, `max_turns`, and `state_dict`/`load_state_dict`
    for its random state. `eval_data=(features, labels)` evaluates the greedy policy every `cfg.eval_every`
    updates. With `cfg.checkpoint_dir`, a checkpoint is written every `cfg.checkpoint_every` updates and
    `resume=True` continues from it exactly.
    """
    cfg = cfg or PPOConfig()
    if env.n % cfg.n_minibatches:
        raise ValueError(f"the env has {env.n} people per rollout, not a multiple of n_minibatches="
                         f"{cfg.n_minibatches}; make them match (cfg.n_envs={cfg.n_envs})")
    device = get_device(cfg.device)
    set_seed(cfg.seed)
    env.seed(cfg.seed)
    policy.to(device).train()
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.lr, eps=1e-5)
    history, start, path = [], 0, _checkpoint_path(cfg, resume)
    if resume:
        meta = ckpt.restore(path, policy, optimizer)
        start, history = meta["progress"]["update"], meta["progress"]["history"]
        env.load_state_dict(meta["progress"]["env"])
    bar = tqdm(range(start, cfg.updates), initial=start, total=cfg.updates, disable=not cfg.progress, desc="PPO")
    samples = history[-1]["samples"] if history else 0
    for update in bar:
        clock = time.perf_counter()
        # 1. rollout: B people, actions sampled from the current policy, no gradient
        roll = _rollout(policy, env, device)
        mask = roll["mask"]
        # 2. advantages: GAE over turns, bootstrapping episodes that hit the turn limit
        advantages, returns = compute_gae(roll["rewards"], roll["values"] * mask, cfg.gamma, cfg.gae_lambda,
                                          roll["dones"], roll["last_values"])
        if not torch.isfinite(advantages).all():
            raise FloatingPointError(f"update {update}: advantages are not finite; the rewards or the value head "
                                     "produced NaN or inf. Lower lr, or check the reward function.")
        # 3. minibatch epochs: shuffle episodes, clipped policy loss + value loss - entropy bonus
        stats: dict[str, list[float]] = {}
        for _ in range(cfg.ppo_epochs):
            for idx in torch.randperm(env.n, device=device).chunk(cfg.n_minibatches):
                m = mask[idx]
                logits, values = policy(roll["obs"][idx])  # (b, T, A), (b, T)
                logprobs = torch.log_softmax(logits, -1).gather(-1, roll["actions"][idx].unsqueeze(-1)).squeeze(-1)
                adv = whiten(advantages[idx], m) if cfg.normalize_advantages else advantages[idx]
                pg_loss, pg_stats = ppo_clip_loss(logprobs, roll["logprobs"][idx], adv, cfg.clip_range, m)
                v_loss = value_loss(values, returns[idx], roll["values"][idx], cfg.clip_range_vf, m)
                ent = entropy(logits, m)
                loss = pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * ent
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
                optimizer.step()
                for key, value in (("loss/policy", pg_loss.item()), ("loss/value", v_loss.item()),
                                   ("policy/entropy", ent.item()), ("policy/approx_kl", pg_stats["approx_kl"]),
                                   ("policy/clipfrac", pg_stats["clipfrac"])):
                    stats.setdefault(key, []).append(value)
        # 4. log, evaluate, checkpoint
        steps = int(mask.sum())
        samples += steps
        record = _record(roll, {k: float(np.mean(v)) for k, v in stats.items()} | {"_steps": steps})
        record = _finish(update + 1, record, samples, clock, policy, eval_data, cfg, cfg.updates)
        history.append(record)
        bar.set_postfix(reward=f"{record['reward/mean']:.3f}")
        if callback:
            callback(update + 1, record)
        _maybe_checkpoint(path, update + 1, cfg, policy, optimizer, history, env)
    bar.close()
    return policy, history


def train_reinforce(policy: nn.Module, env, cfg: PPOConfig | None = None, baseline: str = "none",
                    eval_data: tuple | None = None, grad_splits: int = 8,
                    callback: Callable[[int, dict], None] | None = None) -> tuple[nn.Module, list[dict]]:
    """Vanilla policy gradient, one step per rollout, in three flavours; returns (policy, history).

    baseline: "none" weights log pi by the return G_t; "value" by G_t - V(s_t) (the critic learns V by
    regression); "whitened" by whiten(G_t - V(s_t)). Every update also measures `grad/variance`: the mean
    per-parameter variance of the actor's gradient across `grad_splits` equal sub-batches of the rollout.
    """
    if baseline not in ("none", "value", "whitened"):
        raise ValueError(f"baseline must be 'none', 'value' or 'whitened', got {baseline!r}")
    cfg = cfg or PPOConfig()
    if grad_splits < 2 or env.n % grad_splits:
        raise ValueError(f"grad_splits={grad_splits} must be at least 2 and divide the {env.n} people per rollout")
    device = get_device(cfg.device)
    set_seed(cfg.seed)
    env.seed(cfg.seed)
    policy.to(device).train()
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.lr, eps=1e-5)
    history, samples = [], 0
    actor = list(policy.actor.parameters()) if hasattr(policy, "actor") else list(policy.parameters())
    for update in tqdm(range(cfg.updates), disable=not cfg.progress, desc=f"REINFORCE ({baseline})"):
        clock = time.perf_counter()
        # 1. rollout
        roll = _rollout(policy, env, device)
        mask = roll["mask"]
        # 2. weights: returns, minus a learned baseline, optionally whitened
        returns = discounted_returns(roll["rewards"], cfg.gamma, roll["dones"])
        logits, values = policy(roll["obs"])
        logprobs = torch.log_softmax(logits, -1).gather(-1, roll["actions"].unsqueeze(-1)).squeeze(-1)
        weights = returns if baseline == "none" else returns - values.detach()
        if baseline == "whitened":
            weights = whiten(weights, mask)
        # 3. measure the gradient's variance over sub-batches (same estimator, smaller samples)
        grads = []
        for idx in torch.arange(env.n, device=device).chunk(grad_splits):
            g = torch.autograd.grad(reinforce_loss(logprobs[idx], weights[idx], mask[idx]), actor, retain_graph=True)
            grads.append(torch.cat([x.flatten() for x in g]))
        variance = torch.stack(grads).var(0).mean().item()
        # 4. one gradient step on the whole rollout (plus the critic's regression when it is used)
        loss = reinforce_loss(logprobs, weights, mask)
        if baseline != "none":
            loss = loss + cfg.vf_coef * value_loss(values, returns, mask=mask)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
        optimizer.step()
        steps = int(mask.sum())
        samples += steps
        record = _record(roll, {"loss/policy": loss.item(), "grad/variance": variance, "_steps": steps})
        record = _finish(update + 1, record, samples, clock, policy, eval_data, cfg, cfg.updates)
        history.append(record)
        if callback:
            callback(update + 1, record)
    return policy, history


def train_supervised(policy: nn.Module, features: np.ndarray, labels: np.ndarray, samples: int,
                     batch_size: int = 256, lr: float = 1e-2, eval_data: tuple | None = None, eval_every: int = 10,
                     seed: int = 0, device: str = "auto") -> tuple[nn.Module, list[dict]]:
    """The supervised reference: the same actor trained with cross-entropy on the true labels, for the same
    number of `samples`, so its learning curve can be drawn on the same axis as the RL runs."""
    dev = get_device(device)
    set_seed(seed)
    policy.to(dev).train()
    optimizer = torch.optim.Adam(policy.parameters(), lr=lr, eps=1e-5)
    x = torch.as_tensor(features, dtype=torch.float32, device=dev)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long, device=dev)
    rng = np.random.default_rng(seed)
    history = []
    for step in range(1, math.ceil(samples / batch_size) + 1):
        idx = torch.as_tensor(rng.integers(0, len(x), batch_size), device=dev)
        logits, _ = policy(x[idx])
        loss = nn.functional.cross_entropy(logits, y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if eval_data is not None and (step % eval_every == 0 or step * batch_size >= samples):
            result = evaluate_policy(policy, *eval_data)
            history.append({"update": step, "samples": step * batch_size, "loss/supervised": loss.item(),
                            "eval/accuracy": result["accuracy"], "eval/macro_f1": result["macro_f1"]})
    return policy, history


# ---------------------------------------------------------------------------------------------------- checkpoints
def _checkpoint_path(cfg: PPOConfig, resume: bool) -> Path | None:
    if resume and not cfg.checkpoint_dir:
        raise ValueError("resume=True needs cfg.checkpoint_dir")
    return Path(cfg.checkpoint_dir) / "checkpoint.safetensors" if cfg.checkpoint_dir else None


def _maybe_checkpoint(path: Path | None, update: int, cfg: PPOConfig, policy: nn.Module, optimizer, history: list,
                      env) -> None:
    if path and (update % cfg.checkpoint_every == 0 or update == cfg.updates):
        ckpt.save_checkpoint(path, policy, optimizer, config=asdict(cfg),
                             progress={"update": update, "history": history, "env": env.state_dict()})
