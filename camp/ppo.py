"""PPO and REINFORCE loops for discrete actions, built from `camp.rl`'s pieces. Introduced in lesson 05.

The policy is an `ActorCritic` head on frozen features; the environment is a batched environment (see
`camp.roles.BatchedEnv`; lesson 05 uses `camp.rl_envs`). `train_supervised` trains the same head with
cross-entropy on the true labels, as the reference an RL curve is drawn against.

Logged metrics (one dict per update in `history`):

| name | meaning |
|---|---|
| `step`, `samples` | updates done; environment steps seen so far |
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

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from camp import checkpoint as ckpt
from camp.loop import Run
from camp.metrics import classification_metrics
from camp.rl import (
    compute_gae,
    discounted_returns,
    entropy,
    ppo_clip_loss,
    reinforce_loss,
    value_loss,
    whiten,
)
from camp.utils import ConfigError, get_device, set_seed


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
def evaluate_greedy(policy: nn.Module, features: np.ndarray, labels: np.ndarray) -> dict:
    """The greedy policy (argmax) against `labels`: accuracy, macro-F1, per-class scores, confusion matrix."""
    device = next(policy.parameters()).device
    was_training = policy.training
    policy.eval()
    logits, _ = policy(torch.as_tensor(features, dtype=torch.float32, device=device))
    policy.train(was_training)
    return classification_metrics(np.asarray(labels), logits.argmax(-1).cpu().numpy(), logits.shape[-1])


@dataclass
class PPOConfig:
    """Hyper-parameters of `train_ppo` and `train_reinforce`; saved inside every checkpoint.

    The number of people per rollout is the environment's (`env.num_envs`), not the config's.
    """

    updates: int = 300  # a linear head on cached features keeps improving to about here, in ~10 s on a CPU
    n_minibatches: int = 4  # 4 gradient steps per epoch: more reuse per rollout without tiny, noisy batches
    ppo_epochs: int = 4  # more passes reuse data, but the ratio drifts and clipping starts to bite
    lr: float = 1e-2  # Adam; right for a linear head on unit-length features (a full network wants ~1e-5)
    clip_range: float = 0.2  # the PPO paper's epsilon: large enough to learn, small enough to stay near pi_old
    clip_range_vf: float | None = None  # a fresh critic on fixed features overshoots little: no value clipping
    vf_coef: float = 0.5  # the critic's loss is on a different scale from the surrogate's; halve its pull
    ent_coef: float = 0.01  # a small entropy bonus stops the policy locking onto one emotion early
    gamma: float = 0.99  # multi-turn dialogues: later turns matter nearly as much (irrelevant for one turn)
    gae_lambda: float = 0.95  # GAE's bias-variance knob: 0 = one-step TD, 1 = Monte Carlo returns
    normalize_advantages: bool = True  # whitened per minibatch, so the step size does not depend on reward scale
    max_grad_norm: float = 0.5  # guards the first updates, when the critic's error is large
    eval_every: int = 10  # often enough to draw a learning curve, rarely enough to cost little
    checkpoint_dir: str | None = None  # None: no checkpoints (the loops take seconds)
    checkpoint_every: int = 25  # a lost session repeats at most 25 updates
    seed: int = 0  # the people drawn, the actions sampled, the minibatch order, the head's initialisation
    device: str = "auto"  # a GPU when there is one; a head this small runs as fast on a CPU
    progress: bool = True  # a tqdm.auto bar

    def __post_init__(self) -> None:
        problems = []
        if not self.clip_range > 0:
            problems.append(f"clip_range={self.clip_range} must be positive (0.1-0.3 is usual)")
        if self.clip_range_vf is not None and not self.clip_range_vf > 0:
            problems.append(f"clip_range_vf={self.clip_range_vf} must be positive or None")
        if not 0 <= self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            problems.append(f"gamma={self.gamma} and gae_lambda={self.gae_lambda} must lie in [0, 1]")
        for name in ("updates", "n_minibatches", "ppo_epochs", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be at least 1")
        for name in ("lr", "max_grad_norm"):
            if not getattr(self, name) > 0:
                problems.append(f"{name}={getattr(self, name)} must be positive")
        for name in ("vf_coef", "ent_coef"):
            if not getattr(self, name) >= 0:
                problems.append(f"{name}={getattr(self, name)} must be zero or positive")
        if problems:
            raise ConfigError("invalid PPOConfig: " + "; ".join(problems))

    @classmethod
    def quick(cls, **overrides) -> PPOConfig:
        """A preset for CI: 40 updates of 2 epochs, a couple of seconds, enough to see the reward rise."""
        return cls(**{"updates": 40, "ppo_epochs": 2, "eval_every": 10, "checkpoint_every": 10, **overrides})


def _rollout(policy: nn.Module, env, device: torch.device, seed: int | None) -> dict[str, torch.Tensor]:
    """Play one batch of episodes (B people, up to env.max_turns steps); returns (B, T) tensors and masks."""
    obs, _ = env.reset(seed=seed)
    obs = torch.as_tensor(obs, dtype=torch.float32, device=device)
    alive = torch.ones(len(obs), dtype=torch.bool, device=device)
    steps: dict[str, list] = {k: [] for k in ("obs", "actions", "logprobs", "values", "rewards", "dones", "mask",
                                              "correct")}
    with torch.no_grad():
        for _ in range(env.max_turns):
            logits, values = policy(obs)
            dist = torch.distributions.Categorical(logits=logits)
            actions = dist.sample()  # (B,)
            next_obs, rewards, terminated, truncated, info = env.step(actions.cpu().numpy())
            done = torch.as_tensor(terminated, device=device)
            as_float = {"rewards": rewards, "correct": info["correct"]}
            as_float = {k: torch.as_tensor(v, dtype=torch.float32, device=device) for k, v in as_float.items()}
            for key, value in (("obs", obs), ("actions", actions), ("logprobs", dist.log_prob(actions)),
                               ("values", values), ("dones", done | ~alive), ("mask", alive.clone()),
                               ("rewards", as_float["rewards"] * alive), ("correct", as_float["correct"])):
                steps[key].append(value)
            alive = alive & ~done
            obs = torch.as_tensor(next_obs, dtype=torch.float32, device=device)
            if not alive.any():
                break
        _, last_values = policy(obs)
    out = {k: torch.stack(v, dim=1) for k, v in steps.items()}  # (B, T, ...)
    out["last_values"] = last_values * alive  # bootstrap only episodes cut off by the turn limit
    return out


def _start(policy: nn.Module, env, cfg: PPOConfig, resume: bool) -> tuple[torch.device, Run]:
    """The device and the run (`camp.loop.Run`: Adam, history, checkpoints with the environment's random state),
    restored on resume."""
    device = get_device(cfg.device)
    set_seed(cfg.seed)
    policy.to(device).train()
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.lr, eps=1e-5)
    run = Run(policy, optimizer, config=asdict(cfg), folder=cfg.checkpoint_dir, resume=resume, total=cfg.updates,
              every=cfg.checkpoint_every, parts={"env": env})
    if resume:
        run.restore()
    return device, run


def _log(update: int, roll: dict, stats: dict, clock: float, history: list, policy: nn.Module, eval_data,
         cfg: PPOConfig) -> dict:
    """Append the update's record to `history` (evaluating the greedy policy when due) and return it."""
    mask = roll["mask"]
    steps = int(mask.sum())
    samples = (history[-1]["samples"] if history else 0) + steps
    record = {"step": update, "samples": samples,
              "reward/mean": (roll["rewards"].sum() / mask.sum()).item(),
              "reward/correct": (roll["correct"] * mask).sum().item() / steps,
              "return/mean": roll["rewards"].sum(1).mean().item(),
              **{k: float(np.mean(v)) for k, v in stats.items()},
              "time/samples_per_s": steps / (time.perf_counter() - clock)}
    if eval_data is not None and ckpt.is_due(update, cfg.eval_every, cfg.updates):
        result = evaluate_greedy(policy, *eval_data)
        record.update({"eval/accuracy": result["accuracy"], "eval/macro_f1": result["macro_f1"]})
    history.append(record)
    return record


def _action_logprobs(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits, -1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # (B, T)


def train_ppo(policy: nn.Module, env, cfg: PPOConfig | None = None, eval_data: tuple | None = None,
              resume: bool = False, callback: Callable[[int, dict], None] | None = None
              ) -> tuple[nn.Module, list[dict]]:
    """PPO-clip with GAE for a discrete-action `policy` (obs -> (logits, values)); returns (policy, history).

    `env` is a batched environment (`camp.roles.BatchedEnv`) whose `info["correct"]` says whether each action
    named the person's dominant emotion. `eval_data=(features, labels)` evaluates the greedy policy every
    `cfg.eval_every` updates. With `cfg.checkpoint_dir`, a checkpoint is written every `cfg.checkpoint_every`
    updates and `resume=True` continues from it exactly.
    """
    cfg = cfg or PPOConfig()
    if env.num_envs % cfg.n_minibatches:
        raise ConfigError(f"the env has {env.num_envs} people per rollout, not a multiple of n_minibatches="
                          f"{cfg.n_minibatches}; make them match")
    device, run = _start(policy, env, cfg, resume)
    history = run.history
    bar = tqdm(range(run.step, cfg.updates), initial=run.step, total=cfg.updates, disable=not cfg.progress,
               desc="PPO")
    for update in bar:
        clock = time.perf_counter()
        # 1. rollout: B people, actions sampled from the current policy, no gradient
        roll = _rollout(policy, env, device, cfg.seed if update == 0 else None)
        mask = roll["mask"]
        # 2. advantages: GAE over turns, bootstrapping episodes that hit the turn limit
        advantages, returns = compute_gae(roll["rewards"], roll["values"] * mask, cfg.gamma, cfg.gae_lambda,
                                          roll["dones"], roll["last_values"])
        if not torch.isfinite(advantages).all():
            raise FloatingPointError(f"update {update + 1}: advantages are not finite; the rewards or the value "
                                     "head produced NaN or inf. Lower lr, or check the reward function.")
        # 3. minibatch epochs: shuffle episodes, clipped policy loss + value loss - entropy bonus
        stats: dict[str, list[float]] = {}
        for _ in range(cfg.ppo_epochs):
            for idx in torch.randperm(env.num_envs, device=device).chunk(cfg.n_minibatches):
                m = mask[idx]
                logits, values = policy(roll["obs"][idx])  # (b, T, A), (b, T)
                adv = whiten(advantages[idx], m) if cfg.normalize_advantages else advantages[idx]
                pg_loss, pg_stats = ppo_clip_loss(_action_logprobs(logits, roll["actions"][idx]),
                                                  roll["logprobs"][idx], adv, cfg.clip_range, m)
                v_loss = value_loss(values, returns[idx], roll["values"][idx], cfg.clip_range_vf, m)
                ent = entropy(logits, m)
                run.optimizer_step(pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * ent, cfg.max_grad_norm)
                for key, value in (("loss/policy", pg_loss.item()), ("loss/value", v_loss.item()),
                                   ("policy/entropy", ent.item()), ("policy/approx_kl", pg_stats["approx_kl"]),
                                   ("policy/clipfrac", pg_stats["clipfrac"])):
                    stats.setdefault(key, []).append(value)
        # 4. log, evaluate, checkpoint
        record = _log(update + 1, roll, stats, clock, history, policy, eval_data, cfg)
        bar.set_postfix(reward=f"{record['reward/mean']:.3f}")
        if callback:
            callback(update + 1, record)
        run.step = update + 1
        run.checkpoint()
    bar.close()
    return policy, history


def train_reinforce(policy: nn.Module, env, cfg: PPOConfig | None = None, baseline: str = "none",
                    eval_data: tuple | None = None, grad_splits: int = 8, resume: bool = False,
                    callback: Callable[[int, dict], None] | None = None) -> tuple[nn.Module, list[dict]]:
    """Vanilla policy gradient, one step per rollout, in three flavours; returns (policy, history).

    baseline: "none" weights log pi by the return G_t; "value" by G_t - V(s_t) (the critic learns V by
    regression); "whitened" by whiten(G_t - V(s_t)). Every update also measures `grad/variance`: the mean
    per-parameter variance of the actor's gradient across `grad_splits` equal sub-batches of the rollout.
    Checkpoints and `resume` work as in `train_ppo`.
    """
    if baseline not in ("none", "value", "whitened"):
        raise ConfigError(f"baseline must be 'none', 'value' or 'whitened', got {baseline!r}")
    cfg = cfg or PPOConfig()
    if grad_splits < 2 or env.num_envs % grad_splits:
        raise ConfigError(f"grad_splits={grad_splits} must be at least 2 and divide the {env.num_envs} people "
                          "per rollout")
    device, run = _start(policy, env, cfg, resume)
    history = run.history
    actor = list(policy.actor.parameters()) if hasattr(policy, "actor") else list(policy.parameters())
    for update in tqdm(range(run.step, cfg.updates), initial=run.step, total=cfg.updates, disable=not cfg.progress,
                       desc=f"REINFORCE ({baseline})"):
        clock = time.perf_counter()
        # 1. rollout
        roll = _rollout(policy, env, device, cfg.seed if update == 0 else None)
        mask = roll["mask"]
        # 2. weights: returns, minus a learned baseline, optionally whitened
        returns = discounted_returns(roll["rewards"], cfg.gamma, roll["dones"])
        logits, values = policy(roll["obs"])
        logprobs = _action_logprobs(logits, roll["actions"])
        weights = returns if baseline == "none" else returns - values.detach()
        if baseline == "whitened":
            weights = whiten(weights, mask)
        # 3. measure the gradient's variance over sub-batches (same estimator, smaller samples)
        grads = []
        for idx in torch.arange(env.num_envs, device=device).chunk(grad_splits):
            g = torch.autograd.grad(reinforce_loss(logprobs[idx], weights[idx], mask[idx]), actor, retain_graph=True)
            grads.append(torch.cat([x.flatten() for x in g]))
        variance = torch.stack(grads).var(0).mean().item()
        # 4. one gradient step on the whole rollout (plus the critic's regression when it is used)
        loss = reinforce_loss(logprobs, weights, mask)
        if baseline != "none":
            loss = loss + cfg.vf_coef * value_loss(values, returns, mask=mask)
        run.optimizer_step(loss, cfg.max_grad_norm)
        # 5. log, evaluate, checkpoint
        record = _log(update + 1, roll, {"loss/policy": [loss.item()], "grad/variance": [variance]}, clock,
                      history, policy, eval_data, cfg)
        if callback:
            callback(update + 1, record)
        run.step = update + 1
        run.checkpoint()
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
    history, last = [], math.ceil(samples / batch_size)
    for step in range(1, last + 1):
        idx = torch.as_tensor(rng.integers(0, len(x), batch_size), device=dev)
        logits, _ = policy(x[idx])
        loss = nn.functional.cross_entropy(logits, y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if eval_data is not None and ckpt.is_due(step, eval_every, last):
            result = evaluate_greedy(policy, *eval_data)
            history.append({"step": step, "samples": step * batch_size, "loss/supervised": loss.item(),
                            "eval/accuracy": result["accuracy"], "eval/macro_f1": result["macro_f1"]})
    return policy, history
