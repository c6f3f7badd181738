"""Pure text helpers: words and n-grams, how varied or copied replies are, and the safety pattern checks.
Introduced in lesson 04.

The floor the rest of camp stands on: no model is loaded and nothing else from camp is imported, so the
listener (lesson 03), the reward terms (`camp.rewards`), the environment (`camp.env`) and the safety filter
(`camp.safety`) can all use these without importing one another. `camp.rewards` and `camp.safety` re-export
them, so `rewards.distinct_n` and `safety.is_crisis` keep working.

The detectors are pattern lists, deliberately broad: `is_crisis` is tuned to miss as little as it can (a false
alarm costs one gentle message; a miss can cost far more). Patterns are not understanding, though, so a deployed
system would add a trained classifier and, above all, people.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# ---- words and n-grams -----------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    """Lowercase word tokens (letters, digits, apostrophes).

    >>> words("I'm SO tired, again.")
    ["i'm", 'so', 'tired', 'again']
    """
    return _WORD.findall(text.lower())


def ngrams(text: str, n: int) -> list[tuple[str, ...]]:
    """The word n-grams of `text`, in order (none for a text shorter than n words).

    >>> ngrams("I am so sorry", 3)
    [('i', 'am', 'so'), ('am', 'so', 'sorry')]
    """
    toks = words(text)
    return [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]


def _unique_share(grams: list) -> float:
    """Distinct items / all items, rounded to 3 places; 0.0 when there are none."""
    return round(len(set(grams)) / len(grams), 3) if grams else 0.0


def distinct_n(completions: Sequence[str], n: int = 2) -> list[float]:
    """Per reply: distinct n-grams / all n-grams (1.0 = no repeats; 0.0 for a reply shorter than n words).

    >>> distinct_n(["so sorry so sorry", "that sounds hard"], n=2)
    [0.667, 1.0]
    """
    return [_unique_share(ngrams(text, n)) for text in completions]


def copied_share(reply: str, source: str, n: int = 3) -> float:
    """Share of the reply's word n-grams that also occur in `source`: 1.0 when it repeats them word for word.

    >>> copied_share("i failed my driving test again", "I failed my driving test again today.")
    1.0
    >>> copied_share("that sounds so disappointing after all your practice", "I failed my driving test again.")
    0.0
    """
    seen, grams = set(ngrams(source, n)), ngrams(reply, n)
    return round(sum(g in seen for g in grams) / len(grams), 3) if grams else 0.0


def corpus_distinct_n(completions: Sequence[str], n: int = 2) -> float:
    """Distinct n-grams across all replies / all n-grams: low when every reply says the same thing.

    >>> corpus_distinct_n(["i am so sorry", "i am so sorry"], n=2)
    0.5
    """
    return _unique_share([g for text in completions for g in ngrams(text, n)])


# ---- detectors: pattern lists, deliberately broad (a false alarm costs one gentle message) -------------------
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
