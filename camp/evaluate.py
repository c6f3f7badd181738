"""Held-out evaluation of a reply policy, and paired comparison of two evaluations. Introduced in lesson 06.

Evaluation stands apart from every training loop: lessons 06-08, the CLI and the benchmarks measure PPO, RLOO,
GRPO, DPO and best-of-n with the same `evaluate_replies`, on the same people with the same seeds, and compare two
results with `compare`, person by person.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np
import torch
from torch import nn

from camp import judge
from camp.lm import policy_and_reference, sample_replies, token_logprobs
from camp.roles import Scorer
from camp.text import corpus_distinct_n
from camp.utils import set_seed


def _best_of(batch: dict, people: list, n: int, scorer: Scorer) -> dict:
    """Keep, of each person's n replies (side by side in `batch`), the one `scorer` scores highest."""
    candidates = np.asarray(scorer(batch["texts"], [p for p in people for _ in range(n)]), dtype=float)
    keep = torch.as_tensor(candidates.reshape(-1, n).argmax(1) + np.arange(len(people)) * n)
    return {k: v[keep.to(v.device)] if torch.is_tensor(v) else [v[i] for i in keep.tolist()] for k, v in batch.items()}


@torch.no_grad()
def evaluate_replies(policy: nn.Module, people: Sequence, scorer: Scorer | None = None, *, seed: int = 0,
                     max_new_tokens: int = 40, batch_size: int = 48, reference: bool = False,
                     temperature: float = 0.7, samples_per_person: int = 1, sentences: int = 2,
                     scorers: dict[str, Scorer] | None = None, best_of: int = 1,
                     best_of_scorer: Scorer | None = None) -> dict:
    """Reply to each held-out person `samples_per_person` times (sampled at `temperature`, seeded) and measure.

    `policy` is a `camp.lm.PolicyWithValue` (it knows its tokenizer); `scorer` (a `camp.roles.Scorer`) defaults
    to the environment's reward, `camp.env.ReplyScorer()`. Returns `replies` (person by person, each person's
    samples together) and: `reward` (the scorer's score, mean and std), `judge` (the course's independent judge,
    `camp.judge.score`: nade's attunement to the person's feeling, which the policy never trains against),
    `judge_warmth` (nade trust + joy, a second reading that prefers cheer to sympathy; see `judge.check`),
    `distinct_2` (across all replies), `perplexity` of the replies under the reference model (at temperature 1),
    `kl` (the replies' mean log pi - log pi_ref at the sampling temperature: a Monte Carlo estimate of
    KL(policy || reference) per reply), `length` in tokens, and the per-reply `scores` and `judge_scores` for
    paired comparisons (`compare`). `reference=True` measures the reference model itself. Each extra scorer in
    `scorers` (name -> Scorer, e.g. a `camp.reward_model.RewardModel`) adds `<name>` (mean) and `<name>_scores`.

    `best_of=n` with `best_of_scorer` is best-of-n sampling: n replies to each person, the one that scorer scores
    highest is kept. Its `kl` is then the analytic bound log n - (n - 1) / n (Beirami et al. 2024), since the
    best-of-n policy has no log-probs of its own.
    """
    if samples_per_person < 1 or best_of < 1:
        raise ValueError(f"samples_per_person and best_of must be at least 1, got {samples_per_person}, {best_of}")
    if best_of > 1 and best_of_scorer is None:
        raise ValueError("best_of > 1 needs best_of_scorer, the scorer that picks the best reply (a RewardModel)")
    if scorer is None:
        from camp.env import ReplyScorer

        scorer = ReplyScorer()
    scorers = scorers or {}
    people_all = [p for p in people for _ in range(samples_per_person)]
    set_seed(seed)
    replies, scores, extra, ref_lp, kl, tokens = [], [], {name: [] for name in scorers}, 0.0, 0.0, 0.0
    chunk = max(batch_size // best_of, 1)
    for start in range(0, len(people_all), chunk):
        group = people_all[start:start + chunk]
        with policy.reference() if reference else nullcontext():
            batch = sample_replies(policy, [p.opening for p in group for _ in range(best_of)], max_new_tokens,
                                   temperature, sentences)
        if best_of > 1:
            batch = _best_of(batch, group, best_of, best_of_scorer)
        mask = batch["response_mask"].float()
        # the reference's log-probs at temperature 1 give the perplexity; with the policy's, at T, the KL
        passes = policy_and_reference(policy, policy, batch, with_policy=not reference and best_of == 1)
        ids = batch["response_ids"]
        ref_lp += (token_logprobs(passes["ref_logits"], ids) * mask).sum().item()
        if "logits" in passes:
            kl += ((token_logprobs(passes["logits"], ids, temperature)
                    - token_logprobs(passes["ref_logits"], ids, temperature)) * mask).sum().item()
        tokens += mask.sum().item()
        replies += batch["texts"]
        scores += list(scorer(batch["texts"], group))
        for name, extra_scorer in scorers.items():
            extra[name] += list(np.asarray(extra_scorer(batch["texts"], group), dtype=float))
    return _summary(replies, np.asarray(scores, dtype=float), people_all, extra, ref_lp, kl, tokens, best_of,
                    samples_per_person)


def _summary(replies: list[str], scores: np.ndarray, people: list, extra: dict, ref_lp: float, kl: float,
             tokens: float, best_of: int, samples_per_person: int) -> dict:
    """`evaluate_replies`'s result from its sums."""
    shown = [r or "..." for r in replies]
    judged = judge.score(shown, people)
    n = max(len(replies), 1)
    out = {"replies": replies, "reward": float(scores.mean()), "reward_std": float(scores.std()),
           "judge": float(judged.mean()), "judge_warmth": float(judge.warmth(shown).mean()),
           "distinct_2": corpus_distinct_n(replies, 2), "perplexity": math.exp(-ref_lp / max(tokens, 1)),
           "kl": math.log(best_of) - (best_of - 1) / best_of if best_of > 1 else kl / n,
           "length": tokens / n, "samples_per_person": samples_per_person,
           "scores": scores.tolist(), "judge_scores": judged.tolist()}
    for name, values in extra.items():
        out[name], out[f"{name}_scores"] = float(np.mean(values)), [float(v) for v in values]
    return out


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
