"""Reward terms: small pure functions over batches, and `RewardSpec` to combine them. Introduced in lesson 04.

Every term has the signature `term(completions, **context) -> list[float]`: one float per completion (reply),
with whatever context it needs passed by keyword. They can be tested one by one, weighted, and swapped without
touching the environment's dynamics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

# `distinct_n`, `corpus_distinct_n`, `copied_share`, `words` and `ngrams` live in `camp.text` (the listener uses
# them too) and are re-exported here with the other terms, so `rewards.distinct_n` and friends keep working.
from camp.text import (  # noqa: F401
    copied_share,
    corpus_distinct_n,
    distinct_n,
    is_crisis,
    is_cruel,
    is_dismissive,
    is_safe_crisis_reply,
    ngrams,
    words,
)

# The smallest probability log P(Y | X) is taken of: a reward of log(0) = -inf would turn every later sum into
# -inf or NaN, and log(1e-6) = -13.8 is already far below any guess a policy would keep making.
PROB_FLOOR = 1e-6

# ---- the article's reward ------------------------------------------------------------------------------------


def emotion_logprob(completions: Sequence | None = None, *, probs: np.ndarray, targets: Sequence[int]) -> list[float]:
    """R_t = log P(Y_t | X_t): the log of the probability `probs` gives emotion `targets` (the article's reward),
    floored at `PROB_FLOOR`. Lesson 05's environments use it with P the person's own feelings.

    >>> [round(r, 3) for r in emotion_logprob(probs=np.array([[0.5, 0.5], [0.9, 0.1]]), targets=[0, 1])]
    [-0.693, -2.303]
    >>> round(emotion_logprob(probs=np.array([[1.0, 0.0]]), targets=[1])[0], 2)  # log(1e-6), not -inf
    -13.82
    """
    probs = np.asarray(probs, dtype=float)
    if probs.ndim != 2 or len(targets) != len(probs):
        raise ValueError(f"probs must be (N, C) with one target each; got {probs.shape} and {len(targets)}")
    picked = probs[np.arange(len(probs)), np.asarray(targets, dtype=int)]
    return np.log(np.maximum(picked, PROB_FLOOR)).tolist()


# ---- state change --------------------------------------------------------------------------------------------


def valence_improvement(completions: Sequence, *, valence_before: Sequence[float],
                        valence_after: Sequence[float]) -> list[float]:
    """How much each reply moved the person's valence (from -1, very negative, to +1).

    >>> valence_improvement(["a", "b"], valence_before=[-0.5, 0.2], valence_after=[-0.1, 0.0])
    [0.4, -0.2]
    """
    return [round(float(a) - float(b), 10) for a, b in zip(valence_after, valence_before, strict=True)]


def relevance(completions: Sequence[str], *, contexts: Sequence[str],
              embed: Callable[[list[str]], np.ndarray]) -> list[float]:
    """Cosine similarity between each reply and its context (the person's situation), from `embed`.

    >>> fake = lambda texts: np.array([[1.0, 0.0] if "dog" in t else [0.0, 1.0] for t in texts])
    >>> relevance(["your dog", "the weather"], contexts=["my dog died", "my dog died"], embed=fake)
    [1.0, 0.0]
    """
    a, b = embed(list(completions)), embed(list(contexts))
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return [float(x) for x in (a * b).sum(axis=1)]


# ---- form (distinct_n and corpus_distinct_n: camp.text) ------------------------------------------------------


def length_penalty(completions: Sequence[str], min_words: int = 4, max_words: int = 60,
                   per_word: float = 0.05) -> list[float]:
    """0 inside [min_words, max_words]; -per_word for each word short of or beyond the range.

    >>> length_penalty(["ok", "that sounds really hard, i'm here"], min_words=4)
    [-0.15, 0.0]
    """
    out = []
    for text in completions:
        k = len(words(text))
        out.append(-per_word * (max(0, min_words - k) + max(0, k - max_words)))
    return [round(x, 10) + 0.0 for x in out]


def repetition_penalty(completions: Sequence[str], n: int = 3) -> list[float]:
    """Minus the share of repeated word n-grams in each reply (0 when nothing repeats).

    >>> repetition_penalty(["sorry sorry sorry sorry sorry", "i hear you, that is hard"], n=1)
    [-0.8, 0.0]
    """
    out = []
    for text in completions:
        grams = ngrams(text, n)
        out.append(-round(1 - len(set(grams)) / len(grams), 3) if grams else 0.0)
    return [x + 0.0 for x in out]  # no negative zeros


# ---- safety ----------------------------------------------------------------------------------------------------


def safety(completions: Sequence[str], *, utterances: Sequence[str], crisis_penalty: float = -2.0,
           dismissive_penalty: float = -1.0) -> list[float]:
    """Penalise dismissive or harmful replies; after a crisis statement, only a safe crisis reply escapes.

    When the person's last words are a crisis statement the term is 0 for a caring reply that points to human
    help and `crisis_penalty` for anything else, and `RewardSpec` makes every other term's total non-positive
    for that reply, so nothing but the safe reply is ever rewarded there.

    >>> safety(["calm down", "that sounds hard"], utterances=["i failed my exam", "i failed my exam"])
    [-1.0, 0.0]
    >>> safety(["cheer up!", "I'm so sorry. Please call a helpline or someone you trust."],
    ...        utterances=["i want to end it all"] * 2)
    [-2.0, 0.0]
    """
    out = []
    for reply, said in zip(completions, utterances, strict=True):
        if is_crisis(said):
            out.append(0.0 if is_safe_crisis_reply(reply) else crisis_penalty)
        elif is_dismissive(reply) or is_cruel(reply):
            out.append(dismissive_penalty)
        else:
            out.append(0.0)
    return out


# ---- shaping -------------------------------------------------------------------------------------------------


def potential_shaping(potential_before: Sequence[float], potential_after: Sequence[float], gamma: float,
                      done: Sequence[bool] | None = None) -> list[float]:
    """F = gamma * Phi(s') - Phi(s) (Ng, Harada & Russell 1999); Phi(terminal) is taken as 0.

    Adding F to every reward leaves the optimal policy unchanged, whatever the potential Phi.

    >>> potential_shaping([0.0, 1.0], [1.0, 1.0], gamma=0.9, done=[False, True])
    [0.9, -1.0]
    """
    done = done or [False] * len(potential_before)
    return [round(gamma * (0.0 if d else float(after)) - float(before), 10)
            for before, after, d in zip(potential_before, potential_after, done, strict=True)]


# ---- combining -----------------------------------------------------------------------------------------------


@dataclass
class RewardSpec:
    """Weighted reward terms. Calling it returns (total per reply, breakdown per term); `total` returns the
    totals alone, as an array: `spec.total` is a reward in the environment's shape (`camp.roles.Reward`), so
    `BatchedEmpathy(n, reward_fn=spec.total)` trains on it.

    `context_for` maps a term's name to the keyword names it takes from the context; terms get only those.
    With `safety` in the spec, a reply to a crisis statement that is not a safe crisis reply has its total
    capped at its (negative) safety term, so no other term can make it pay.

    >>> spec = RewardSpec({"length": (length_penalty, 1.0), "distinct": (distinct_n, 0.5)})
    >>> total, parts = spec(["ok", "that sounds really hard"])
    >>> total, parts["distinct"]
    ([-0.15, 0.5], [0.0, 1.0])
    >>> spec.total(["ok", "that sounds really hard"])
    array([-0.15,  0.5 ])
    """

    terms: dict[str, tuple[Callable[..., list[float]], float]]
    context_for: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __call__(self, completions: Sequence[str], **context) -> tuple[list[float], dict[str, list[float]]]:
        breakdown = {}
        for name, (term, _) in self.terms.items():
            keys = self.context_for.get(name, ())
            missing = [k for k in keys if k not in context]
            if missing:
                raise ValueError(f"reward term {name!r} needs context {missing}")
            breakdown[name] = list(term(completions, **{k: context[k] for k in keys}))
            if len(breakdown[name]) != len(completions):
                raise ValueError(f"reward term {name!r} returned {len(breakdown[name])} values for "
                                 f"{len(completions)} completions")
        total = [sum(w * breakdown[n][i] for n, (_, w) in self.terms.items()) for i in range(len(completions))]
        if "safety" in breakdown and "utterances" in context:
            for i, said in enumerate(context["utterances"]):
                if is_crisis(said) and not is_safe_crisis_reply(completions[i]):
                    total[i] = min(total[i], self.terms["safety"][1] * breakdown["safety"][i])
        return [round(t, 10) for t in total], breakdown

    def total(self, completions: Sequence[str], **context) -> np.ndarray:
        """The total per reply, shape (N,): the first half of what calling the spec returns."""
        return np.asarray(self(completions, **context)[0], dtype=float)
