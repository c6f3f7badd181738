"""RL fine-tuning of a language model with PPO and a KL penalty (the RLHF recipe). Introduced in lesson 06.

The policy (`camp.lm.PolicyWithValue`: SmolLM2 + LoRA + a value head) answers what a simulated person says; a
scorer (`camp.roles.Scorer`, by default the empathy environment's `camp.env.ReplyScorer`) scores each reply;
every token pays a KL penalty for drifting from the reference model (the same base with the adapters switched
off), so the policy improves its replies without forgetting how to write. Token-level PPO then uses
`camp.rl`'s pieces: a leave-one-out baseline, GAE over tokens, whitened advantages, the clipped surrogate and a
clipped value loss. `RLHFConfig(algorithm="rloo")` or `"grpo"` drops the critic (lesson 07): the other replies to
the same person are the baseline. The three share rollout, scoring, KL penalty, update and checkpoints.

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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from camp import checkpoint as ckpt
from camp.env import ReplyScorer
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
from camp.utils import ConfigError, fresh_accelerator, get_device, mixed_precision, set_seed


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


def require_one_process(processes: int) -> None:
    """Refuse several processes (`accelerate launch --num_processes N`): the KL controller, the score scaling and
    the error handling of `train_rlhf` are per process, so ranks would drift apart or hang on one rank's error."""
    if processes > 1:
        raise ConfigError(f"train_rlhf runs in one process, but {processes} were started: its KL controller, score "
                          "scaling and error handling are not synchronised across processes yet. Run it without "
                          "`accelerate launch` (one GPU or the CPU).")


def split_situations(situations: Sequence, heldout_every: int = 5) -> tuple[list, list]:
    """(train, held out): every `heldout_every`-th situation of each emotion is held out, the same every time."""
    train, heldout, seen = [], [], {}
    for s in situations:
        seen[s.emotion] = seen.get(s.emotion, 0) + 1
        (heldout if seen[s.emotion] % heldout_every == 0 else train).append(s)
    return train, heldout


# ---------------------------------------------------------------------------------------------------- loop
@dataclass
class _Run:
    """Everything a PPO step reads or moves: the prepared model and optimizer, the KL controller, the score
    scaling, the people sampler's random state, and the history. A checkpoint holds all of it."""

    accelerator: object
    model: nn.Module  # as prepared by Accelerate (wrapped under several processes)
    core: nn.Module  # the PolicyWithValue itself
    optimizer: torch.optim.Optimizer
    kl_ctl: FixedKLController
    rng: np.random.Generator
    path: Path | None
    score_stats: RunningStd = field(default_factory=RunningStd)
    history: list[dict] = field(default_factory=list)
    start: int = 0

    @classmethod
    def begin(cls, policy: nn.Module, cfg: RLHFConfig, resume: bool) -> _Run:
        set_seed(cfg.seed)
        accelerator = fresh_accelerator(mixed_precision=mixed_precision(cfg.mixed_precision),
                                        cpu=get_device("auto").type == "cpu")
        optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=cfg.lr)
        model, optimizer = accelerator.prepare(policy, optimizer)
        # camp.dpo's loop shares this run; its KL is held by beta in the loss, so it has no controller to adapt
        kl_ctl = AdaptiveKLController(cfg.kl_coef, cfg.target_kl, cfg.kl_horizon) if getattr(cfg, "adaptive_kl", 0) \
            else FixedKLController(getattr(cfg, "kl_coef", 0.0))
        require_one_process(accelerator.num_processes)
        run = cls(accelerator, model, accelerator.unwrap_model(model), optimizer, kl_ctl,
                  np.random.default_rng([cfg.seed, accelerator.process_index]), ckpt.path_in(cfg.checkpoint_dir, resume))
        if resume:
            progress = ckpt.restore(run.path, ckpt.TrainableState(run.core), optimizer)["progress"]
            run.start, run.history = progress["step"], progress["history"]
            run.kl_ctl.load_state_dict(progress["kl"])
            run.score_stats.load_state_dict(progress["scores"])
            run.rng.bit_generator.state = progress["rng"]
        return run

    def save(self, step: int, cfg: RLHFConfig) -> None:
        if self.path and ckpt.is_due(step, cfg.checkpoint_every, cfg.steps):
            if self.accelerator.is_main_process:
                ckpt.save_checkpoint(self.path, ckpt.TrainableState(self.core), self.optimizer, config=asdict(cfg),
                                     progress={"step": step, "history": self.history, "kl": self.kl_ctl.state_dict(),
                                               "scores": self.score_stats.state_dict(),
                                               "rng": self.rng.bit_generator.state})
            self.accelerator.wait_for_everyone()


def _rollout(run: _Run, tokenizer, situations: Sequence, cfg: RLHFConfig) -> tuple[list, dict]:
    """Draw batch_size / k people, each k times side by side, and sample one reply each (KV cache, batched)."""
    from camp.lm import chat_prompts

    k = cfg.replies_per_person
    drawn = run.rng.choice(len(situations), cfg.batch_size // k, replace=False)
    people = [situations[i] for i in drawn for _ in range(k)]
    batch = run.core.generate(chat_prompts(tokenizer, [p.opening for p in people]),
                              max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, sentences=cfg.sentences)
    return people, batch


def _scores(score_fn: Callable, texts: list[str], people: list, step: int, device) -> torch.Tensor:
    """The scorer's score of each reply, refused when any is NaN or infinite (NaN in, NaN out)."""
    scores = torch.as_tensor(np.asarray(score_fn(texts, people), dtype=np.float32), device=device)
    if not torch.isfinite(scores).all():
        bad = [i for i in range(len(scores)) if not math.isfinite(scores[i].item())]
        raise FloatingPointError(f"step {step}: the score function returned {scores[bad[0]].item()} for "
                                 f"{len(bad)} of {len(scores)} replies (first: {texts[bad[0]]!r}); "
                                 "fix the scorer before training on it (NaN in, NaN out).")
    return scores


def _kl(run: _Run, batch: dict, mask: torch.Tensor, cfg: RLHFConfig, step: int) -> tuple:
    """Log-probs and values under the policy, and the per-token KL to the reference (adapters off)."""
    from camp.lm import response_logprobs

    with torch.no_grad():
        old_logprobs, old_values, _ = response_logprobs(run.model, batch, cfg.temperature)
        with run.core.reference():
            ref_logprobs, _, _ = response_logprobs(run.model, batch, cfg.temperature)
    kl = kl_penalty(old_logprobs, ref_logprobs, cfg.kl_estimator) * mask
    per_reply = kl.sum(1).mean().item()
    if not math.isfinite(per_reply) or per_reply > cfg.kl_limit:
        raise RuntimeError(f"step {step}: KL to the reference is {per_reply:.1f} nats per reply (limit "
                           f"{cfg.kl_limit}); the policy has drifted too far to trust its replies. Lower lr, "
                           "raise kl_coef, or resume from the last checkpoint with those changes.")
    k3 = (kl_penalty(old_logprobs, ref_logprobs, "k3") * mask).sum(1).mean().item()
    return old_logprobs, old_values, kl, {"objective/kl": per_reply, "objective/kl_k3": k3}


def _advantages(run: _Run, scores: torch.Tensor, kl: torch.Tensor, old_values: torch.Tensor, mask: torch.Tensor,
                cfg: RLHFConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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
        run.score_stats.update(shaped if ppo else leave_one_out(scores, cfg.replies_per_person))
        shaped = shaped / max(run.score_stats.std, 1e-3)
    rewards = penalised_rewards(shaped, kl, mask, run.kl_ctl.value)  # (B, R)
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


def _update(run: _Run, batch: dict, mask: torch.Tensor, old: dict, cfg: RLHFConfig, step: int) -> dict:
    """PPO's minibatch epochs: clipped surrogate + clipped value loss, gradient clipping. Returns mean stats."""
    from camp.lm import response_logprobs

    stats: dict[str, list[float]] = {}
    for _ in range(cfg.ppo_epochs):
        for idx in torch.randperm(cfg.batch_size).chunk(cfg.n_minibatches):
            mini = {key: v[idx] for key, v in batch.items() if torch.is_tensor(v)}
            m = mask[idx]
            with run.accelerator.autocast():
                logprobs, values, logits = response_logprobs(run.model, mini, cfg.temperature)
            pg_loss, pg_stats = ppo_clip_loss(logprobs, old["logprobs"][idx], old["advantages"][idx],
                                              cfg.clip_range, m)
            critic = cfg.algorithm == "ppo"  # rloo and grpo leave the value head alone
            v_loss = value_loss(values, old["returns"][idx], old["values"][idx], cfg.clip_range_vf, m) if critic \
                else torch.zeros((), device=pg_loss.device)
            loss = pg_loss + cfg.vf_coef * v_loss
            if not torch.isfinite(loss):
                raise FloatingPointError(f"step {step}: the loss is {loss.item()}; lower lr or check the scores "
                                         "(NaN in, NaN out).")
            run.optimizer.zero_grad()
            run.accelerator.backward(loss)
            run.accelerator.clip_grad_norm_(run.model.parameters(), cfg.max_grad_norm)
            run.optimizer.step()
            with torch.no_grad():
                ent = entropy(logits, m).item()
            for key, value in (("loss/policy", pg_loss.item()), ("loss/value", v_loss.item() if critic else None),
                               ("policy/clipfrac", pg_stats["clipfrac"]),
                               ("policy/approx_kl", pg_stats["approx_kl"]), ("policy/entropy", ent)):
                if value is not None:
                    stats.setdefault(key, []).append(value)
    return {k: float(np.mean(v)) for k, v in stats.items()}


def train_rlhf(policy: nn.Module, tokenizer, situations: Sequence, cfg: RLHFConfig | None = None,
               score_fn: Callable[[list[str], Sequence], np.ndarray] | None = None, resume: bool = False,
               callback: Callable[[int, dict], None] | None = None) -> tuple[nn.Module, list[dict]]:
    """Token-level PPO with a KL penalty; returns (policy, history).

    `policy` is a `camp.lm.PolicyWithValue`; `situations` are the people it practises on (use the training part
    of `split_situations`); `score_fn(replies, people) -> scores` (a `camp.roles.Scorer`) defaults to the
    environment's reward (`camp.env.ReplyScorer()`). Runs on a CPU or one GPU.
    """
    cfg = cfg or RLHFConfig()
    if len(situations) < cfg.batch_size // cfg.replies_per_person:
        raise ConfigError(f"{len(situations)} situations cannot fill a batch of {cfg.batch_size} replies at "
                          f"{cfg.replies_per_person} per person")
    score_fn = score_fn or ReplyScorer()
    run = _Run.begin(policy, cfg, resume)
    bar = tqdm(range(run.start, cfg.steps), initial=run.start, total=cfg.steps, desc="RLHF",
               disable=not (cfg.progress and run.accelerator.is_main_process))
    for step in range(run.start + 1, cfg.steps + 1):
        clock = time.perf_counter()
        # 1. rollout: k replies to each of batch_size / k people, sampled from the policy
        people, batch = _rollout(run, tokenizer, situations, cfg)
        mask = batch["response_mask"].float()  # (B, R)
        # 2. score each reply
        scores = _scores(score_fn, batch["texts"], people, step, mask.device)
        # 3. log-probs under the policy and the reference: the KL penalty
        old_logprobs, old_values, kl, kl_stats = _kl(run, batch, mask, cfg, step)
        # 4. advantages: baseline, scaling, KL-penalised per-token rewards, GAE
        advantages, returns, rewards = _advantages(run, scores, kl, old_values, mask, cfg)
        # 5. minibatch epochs of PPO
        old = {"logprobs": old_logprobs, "values": old_values, "advantages": advantages, "returns": returns}
        stats = _update(run, batch, mask, old, cfg, step)
        # 6. adapt beta, log, checkpoint
        beta = run.kl_ctl.value
        run.kl_ctl.update(kl_stats["objective/kl"], cfg.batch_size * run.accelerator.num_processes)
        record = {"step": step, "reward/score": scores.mean().item(), "reward/score_std": scores.std().item(),
                  "reward/total": (rewards * mask).sum(1).mean().item(), **kl_stats, "objective/beta": beta,
                  "response/length": mask.sum(1).mean().item(), **stats, "time/step_s": time.perf_counter() - clock}
        run.history.append(record)
        bar.update(1)
        bar.set_postfix(score=f"{record['reward/score']:.3f}", kl=f"{kl_stats['objective/kl']:.2f}")
        if callback:
            callback(step, record)
        run.save(step, cfg)
    bar.close()
    # Without Accelerate's autocast wrapper: later evaluation runs in the weights' own dtype, as before training.
    return run.accelerator.unwrap_model(run.model, keep_fp32_wrapper=False), run.history


# ---------------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate_replies(policy: nn.Module, tokenizer, situations: Sequence, score_fn: Callable | None = None,
                     seed: int = 0, max_new_tokens: int = 40, batch_size: int = 48, reference: bool = False,
                     temperature: float = 0.7, samples_per_person: int = 1, sentences: int = 2,
                     scorers: dict[str, Callable] | None = None, best_of: int = 1,
                     best_by: Callable | None = None) -> dict:
    """Reply to each held-out person `samples_per_person` times (sampled at `temperature`, seeded) and measure.

    Returns `replies` (person by person, each person's samples together) and: `reward` (the environment's
    score, mean and std), `judge` (the course's independent judge, `camp.judge.score`: nade's attunement to the
    person's feeling, which the policy never trains against), `judge_warmth` (nade trust + joy, a second
    reading that prefers cheer to sympathy; see `judge.check`), `distinct_2` (across all replies),
    `perplexity` of the replies under the reference model (at temperature 1), `kl` (the replies' mean
    log pi - log pi_ref at the sampling temperature: a Monte Carlo estimate of KL(policy || reference) per reply),
    `length` in tokens, and the per-reply `scores` and `judge_scores` for paired comparisons (`compare`).
    `reference=True` measures the reference model itself. Each extra scorer in `scorers` (name -> Scorer, e.g. a
    `camp.reward_model.RewardModel`) adds `<name>` (mean) and `<name>_scores`.

    `best_of=n` with `best_by` (a Scorer) is best-of-n sampling: n replies to each person, the one `best_by`
    scores highest is kept. Its `kl` is then the analytic bound log n - (n - 1) / n (Beirami et al. 2024), since
    the best-of-n policy has no log-probs of its own.
    """
    from contextlib import nullcontext

    from camp import judge, rewards
    from camp.lm import chat_prompts, response_logprobs

    if samples_per_person < 1 or best_of < 1:
        raise ValueError(f"samples_per_person and best_of must be at least 1, got {samples_per_person}, {best_of}")
    if best_of > 1 and best_by is None:
        raise ValueError("best_of > 1 needs best_by, the scorer that picks the best reply (e.g. a RewardModel)")
    score_fn = score_fn or ReplyScorer()
    scorers = scorers or {}
    people_all = [p for p in situations for _ in range(samples_per_person)]
    set_seed(seed)
    replies, scores, extra, ref_lp, kl, tokens = [], [], {name: [] for name in scorers}, 0.0, 0.0, 0.0
    for start in range(0, len(people_all), max(batch_size // best_of, 1)):
        people = people_all[start:start + max(batch_size // best_of, 1)]
        with policy.reference() if reference else nullcontext():
            batch = policy.generate(chat_prompts(tokenizer, [p.opening for p in people for _ in range(best_of)]),
                                    max_new_tokens=max_new_tokens, temperature=temperature, sentences=sentences)
        if best_of > 1:
            candidates = np.asarray(best_by(batch["texts"], [p for p in people for _ in range(best_of)]), dtype=float)
            keep = torch.as_tensor(candidates.reshape(-1, best_of).argmax(1) + np.arange(len(people)) * best_of)
            batch = {k: v[keep.to(v.device)] if torch.is_tensor(v) else [v[i] for i in keep.tolist()]
                     for k, v in batch.items()}
        mask = batch["response_mask"].float()
        with policy.reference():
            _, _, ref_logits = response_logprobs(policy, batch)
        ref_lp += (_token_logprobs(ref_logits, batch, 1.0) * mask).sum().item()
        if not reference and best_of == 1:
            _, _, logits = response_logprobs(policy, batch)
            kl += ((_token_logprobs(logits, batch, temperature) - _token_logprobs(ref_logits, batch, temperature))
                   * mask).sum().item()
        tokens += mask.sum().item()
        replies += batch["texts"]
        scores += list(score_fn(batch["texts"], people))
        for name, scorer in scorers.items():
            extra[name] += list(np.asarray(scorer(batch["texts"], people), dtype=float))
    scores = np.asarray(scores, dtype=float)
    shown = [r or "..." for r in replies]
    judged = judge.score(shown, people_all)
    out = {"replies": replies, "reward": float(scores.mean()), "reward_std": float(scores.std()),
           "judge": float(judged.mean()), "judge_warmth": float(judge.warmth(shown).mean()),
           "distinct_2": rewards.corpus_distinct_n(replies, 2), "perplexity": math.exp(-ref_lp / max(tokens, 1)),
           "kl": math.log(best_of) - (best_of - 1) / best_of if best_of > 1 else kl / max(len(replies), 1),
           "length": tokens / max(len(replies), 1), "samples_per_person": samples_per_person,
           "scores": scores.tolist(), "judge_scores": judged.tolist()}
    for name, values in extra.items():
        out[name], out[f"{name}_scores"] = float(np.mean(values)), [float(v) for v in values]
    return out


def _token_logprobs(logits: torch.Tensor, batch: dict, temperature: float) -> torch.Tensor:
    """Log-probs (B, R) of the reply tokens under logits (B, R, V) from `response_logprobs` at temperature 1."""
    return torch.log_softmax(logits.float() / temperature, -1).gather(-1, batch["response_ids"][..., None]).squeeze(-1)


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

