"""Reward terms: small pure functions over batches, and `RewardSpec` to combine them. Introduced in lesson 04.

Every term has the signature `term(completions, **context) -> list[float]`: one float per completion (reply),
with whatever context it needs passed by keyword. They can be tested one by one, weighted, and swapped without
touching the environment's dynamics.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

# ---- the article's reward ------------------------------------------------------------------------------------


def emotion_logprob(completions: Sequence | None = None, *, probs: np.ndarray, targets: Sequence[int],
                    eps: float = 1e-8) -> list[float]:
    """R_t = log P(Y_t | X_t): the log-probability a policy gave the true emotion (the article's reward).

    >>> [round(r, 3) for r in emotion_logprob(probs=np.array([[0.5, 0.5], [0.9, 0.1]]), targets=[0, 1])]
    [-0.693, -2.303]
    """
    probs = np.asarray(probs, dtype=float)
    if probs.ndim != 2 or len(targets) != len(probs):
        raise ValueError(f"probs must be (N, C) with one target each; got {probs.shape} and {len(targets)}")
    return [float(math.log(max(probs[i, t], eps))) for i, t in enumerate(targets)]


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


# ---- form ----------------------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    """Lowercase word tokens (letters, digits, apostrophes)."""
    return _WORD.findall(text.lower())


def distinct_n(completions: Sequence[str], n: int = 2) -> list[float]:
    """Per reply: distinct n-grams / all n-grams (1.0 = no repeats; 0.0 for a reply shorter than n words).

    >>> distinct_n(["so sorry so sorry", "that sounds hard"], n=2)
    [0.667, 1.0]
    """
    out = []
    for text in completions:
        toks = words(text)
        grams = [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]
        out.append(round(len(set(grams)) / len(grams), 3) if grams else 0.0)
    return out


def copied_share(reply: str, source: str, n: int = 3) -> float:
    """Share of the reply's word n-grams that also occur in `source`: 1.0 when it repeats them word for word.

    >>> copied_share("i failed my driving test again", "I failed my driving test again today.")
    1.0
    >>> copied_share("that sounds so disappointing after all your practice", "I failed my driving test again.")
    0.0
    """
    toks = words(reply)
    src = words(source)
    seen = {tuple(src[i:i + n]) for i in range(len(src) - n + 1)}
    grams = [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]
    return round(sum(g in seen for g in grams) / len(grams), 3) if grams else 0.0


def corpus_distinct_n(completions: Sequence[str], n: int = 2) -> float:
    """Distinct n-grams across all replies / all n-grams: low when every reply says the same thing.

    >>> corpus_distinct_n(["i am so sorry", "i am so sorry"], n=2)
    0.5
    """
    grams = [tuple(t[i:i + n]) for t in map(words, completions) for i in range(len(t) - n + 1)]
    return round(len(set(grams)) / len(grams), 3) if grams else 0.0


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
        toks = words(text)
        grams = [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]
        out.append(-round(1 - len(set(grams)) / len(grams), 3) if grams else 0.0)
    return [x + 0.0 for x in out]  # no negative zeros


# ---- safety --------------------------------------------------------------------------------------------------

CRISIS_PATTERNS = (
    r"\b(kill|hurt|harm|cutt?|starv)(ing)? myself\b", r"\bself[- ]?harm", r"\bend(ing)? (it all|my (own )?life)\b",
    r"\bsuicid", r"\bwant(ed)? to die\b", r"\bbetter off (dead|without me)\b", r"\bno reason to (live|go on)\b",
    r"\btak(e|ing) my (own )?life\b", r"\bdon'?t want to (be here|be alive|live|wake up)\b", r"\boverdos",
)
# Self-help tips and silver linings: not for someone in crisis, who needs a person, not a tip.
ADVICE_PATTERNS = (r"\bhave you tried\b", r"\bwhy (don'?t|not) you\b", r"\btry (going|taking|doing|thinking)\b",
                   r"\bjust (think|focus|relax|breathe|stop)\b", r"\bbright side\b", r"\bat least\b",
                   r"\bcheer up\b", r"\bgo for a (walk|run)\b", r"\bget some (sleep|rest|fresh air|exercise)\b",
                   r"\bthink positive", r"\bmeditat", r"\bit will (all )?(pass|get better)\b")
HELP_PATTERNS = (
    r"\bhelpline\b", r"\bcrisis (line|team|service)\b", r"\bemergency\b", r"\b(988|999|911|112|116 ?123)\b",
    r"\bsamaritans\b", r"\bdoctor\b", r"\b(gp|therapist|counsell?or)\b", r"\bsomeone you trust\b",
    r"\b(call|text|reach out to|talk to) (someone|a friend|a professional|them)\b", r"\bprofessional help\b",
)
CARE_PATTERNS = (r"\b(i'?m|i am) (so |really |truly )?(sorry|glad you told me|here)\b", r"\bsounds\b",
                 r"\byou (don'?t|do not) have to\b", r"\bmatter\b", r"\bnot alone\b", r"\bcare\b",
                 r"\b(safe|safety)\b")
DISMISSIVE_PATTERNS = (
    r"\bget over it\b", r"\bcalm down\b", r"\bnot a big deal\b", r"\bstop (complaining|whining|crying)\b",
    r"\bwhatever\b", r"\bman up\b", r"\bjust cheer up\b", r"\bcould be worse\b", r"\bwho cares\b",
    r"\byou'?re overreacting\b", r"\bdeal with it\b", r"\bmove on\b", r"\bdon'?t be (so )?(dramatic|sensitive)\b",
)
# Cruel in any conversation; the rest of HARMFUL_PATTERNS is harmful only as an answer to a crisis statement.
CRUEL_PATTERNS = (r"\bno one would (care|notice)\b", r"\byou deserve\b")
HARMFUL_PATTERNS = (r"\bdo it\b", r"\bgo ahead\b", *CRUEL_PATTERNS, r"\bhow to (kill|hurt)\b", r"\bpills?\b",
                    r"\bbridge\b")


def _any(patterns: Sequence[str], text: str) -> bool:
    return any(re.search(p, text.lower()) for p in patterns)


def is_crisis(text: str) -> bool:
    """Whether a person's words suggest a risk of self-harm (a deliberately broad pattern check).

    >>> is_crisis("honestly everyone would be better off without me"), is_crisis("my cat is better off now")
    (True, False)
    """
    return _any(CRISIS_PATTERNS, text)


def is_dismissive(text: str) -> bool:
    """Whether a reply brushes the person off.

    >>> is_dismissive("Calm down, it's not a big deal."), is_dismissive("That sounds exhausting.")
    (True, False)
    """
    return _any(DISMISSIVE_PATTERNS, text)


def is_cruel(text: str) -> bool:
    """Whether a reply is cruel (wrong in any conversation, not only after a crisis statement).

    >>> is_cruel("Honestly no one would notice."), is_cruel("I would notice.")
    (True, False)
    """
    return _any(CRUEL_PATTERNS, text)


def is_safe_crisis_reply(text: str) -> bool:
    """A caring reply that points to human help and carries no advice and nothing harmful: the only acceptable
    crisis reply.

    >>> is_safe_crisis_reply("I'm really glad you told me. Please call a crisis line or someone you trust now.")
    True
    >>> is_safe_crisis_reply("That sounds hard. Have you tried going for a run?")
    False
    >>> is_safe_crisis_reply("I'm so sorry. Call a helpline, and at least try going for a walk.")
    False
    """
    return _any(CARE_PATTERNS, text) and _any(HELP_PATTERNS, text) and not _any(HARMFUL_PATTERNS, text) \
        and not _any(ADVICE_PATTERNS, text) and not is_dismissive(text)


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
    """Weighted reward terms. Calling it returns (total per reply, breakdown per term).

    `context_for` maps a term's name to the keyword names it takes from the context; terms get only those.
    With `safety` in the spec, a reply to a crisis statement that is not a safe crisis reply has its total
    capped at its (negative) safety term, so no other term can make it pay.

    >>> spec = RewardSpec({"length": (length_penalty, 1.0), "distinct": (distinct_n, 0.5)})
    >>> total, parts = spec(["ok", "that sounds really hard"])
    >>> total, parts["distinct"]
    ([-0.15, 0.5], [0.0, 1.0])
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
