"""Policy gradients from scratch: the pure pieces of REINFORCE, PPO and RLHF. Introduced in lessons 05 and 06.

Small functions over batch-first tensors, shape (B, T) for B episodes of up to T steps (T = 1 for a one-shot
guess; T = reply tokens in lesson 06), with a `mask` that is 1 on real steps and 0 on padding:

* advantages: `masked_mean`, `masked_var`, `whiten`, `discounted_returns`, `compute_gae`, `leave_one_out`,
  `group_normalise`;
* losses: `reinforce_loss`, `ppo_clip_loss`, `value_loss`, `entropy`;
* the KL penalty of RLHF: `kl_penalty`, `penalised_rewards`, `FixedKLController`, `AdaptiveKLController`, and
  `RunningStd` for scaling scores.

The loops that put them together live in `camp.ppo` (lesson 05: discrete actions) and `camp.rlhf` (lesson 06:
a language model's tokens); lessons build each piece by hand first, then test it against these.
"""

from __future__ import annotations

import math

import numpy as np
import torch


# ---------------------------------------------------------------------------------------------------- advantages
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


# ---------------------------------------------------------------------------------------------------- the KL penalty
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


def group_normalise(scores: torch.Tensor, k: int, eps: float = 1e-6) -> torch.Tensor:
    """GRPO's advantage (Shao et al. 2024): each score minus its group's mean, over the group's std (groups of k).

    Leave-one-out is the same centring scaled by k / (k - 1); GRPO also divides by the group's spread, so a
    person whose replies all score alike moves the policy as much as one whose replies differ a lot (and a
    group of equal scores gives zeros, not a division by zero).

    >>> [round(a, 4) for a in group_normalise(torch.tensor([1.0, 3.0, 10.0, 10.0]), 2).tolist()]  # std sqrt(2)
    [-0.7071, 0.7071, 0.0, 0.0]
    """
    groups = scores.view(-1, k)
    centred = groups - groups.mean(1, keepdim=True)
    return (centred / (groups.std(1, keepdim=True) + eps)).view(-1)
