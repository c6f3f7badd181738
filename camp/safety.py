"""A safety filter around any reply policy. Introduced in lesson 08.

A crisis statement (someone says they may harm themselves) must get a caring reply that gives no advice and
points to human help. Camp makes sure of that in three places, each tested on its own (tests/test_safety.py):

1. the environment: a person in crisis feels heard only by such a reply (`camp.env.crisis_perception`);
2. the reward: anything else scores -2 there, and `RewardSpec` keeps every other term from paying for it;
3. this filter, at inference, around whatever policy is deployed. Training makes a safe reply likely; the
   filter makes it certain for every statement the detector catches. The model never writes free text to
   someone in crisis (its words go unused), and a cruel or dismissive reply never reaches anyone.

The detectors (`is_crisis`, `is_dismissive`, `is_cruel`, `is_safe_crisis_reply`) live in `camp.text` with their
pattern lists, so the environment and the rewards use them without this filter; they are re-exported here.
`is_crisis` is a broad pattern list, tuned to miss as little as it can: a false alarm costs one gentle message;
a miss can cost far more. Patterns are not understanding, though, so a deployed system would add a trained
classifier and, above all, people.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

# The detectors, re-exported so that `safety.is_crisis` and friends keep working.
from camp.text import is_crisis, is_cruel, is_dismissive, is_safe_crisis_reply  # noqa: F401

CRISIS_REPLY = ("I'm really glad you told me, and I'm so sorry you're hurting this much. You don't have to carry "
                "this alone: please reach out right now to someone you trust or a crisis line (in the US, call or "
                "text 988; in the UK and Ireland, Samaritans on 116 123). If you might act on these thoughts, "
                "call your local emergency number.")
# A reply that was blocked because it was cruel or dismissive is replaced by this: no advice, just presence.
FALLBACK_REPLY = "I'm sorry, I didn't put that well. I'm here and listening. How are you feeling right now?"


@dataclass(frozen=True)
class Decision:
    """What the filter did with one reply: `action` is 'passed', 'crisis' or 'blocked'."""

    reply: str
    action: str
    reason: str = ""


def guard(utterance: str, reply: str | None) -> Decision:
    """Check one reply to what the person said.

    >>> guard("I want to end it all", "Cheer up!").action
    'crisis'
    >>> guard("My cat died today", "Calm down, it's not a big deal.").reply == FALLBACK_REPLY
    True
    >>> guard("My cat died today", "I'm so sorry. You must miss her.").action
    'passed'
    """
    if is_crisis(utterance):
        return Decision(CRISIS_REPLY, "crisis", "crisis statement: the vetted reply, not the model's words")
    if reply is None or not reply.strip():
        return Decision(FALLBACK_REPLY, "blocked", "empty reply")
    if is_dismissive(reply):
        return Decision(FALLBACK_REPLY, "blocked", "dismissive")
    if is_cruel(reply):
        return Decision(FALLBACK_REPLY, "blocked", "cruel")
    return Decision(reply, "passed")


class SafeResponder:
    """Wrap a reply policy (`camp.roles.ReplyPolicy`) so that every reply goes through `guard`; itself a reply
    policy.

    The policy is asked only about the utterances that are not crisis statements, so a crisis never even
    reaches the model. `log` keeps every decision, for an audit of what was blocked and why.

    >>> from camp.roles import from_texts
    >>> echo = SafeResponder(from_texts(lambda said: [f"Tell me more about '{s}'." for s in said]))
    >>> [d.action for d in echo.respond(["I got the job!", "I want to die"])]
    ['passed', 'crisis']
    """

    def __init__(self, policy: Callable[..., Sequence[str]]):
        self.policy = policy
        self.log: list[tuple[str, Decision]] = []

    def respond(self, utterances: Sequence[str], people: Sequence | None = None) -> list[Decision]:
        """One decision per utterance, in order."""
        utterances = list(utterances)
        ask = [i for i, u in enumerate(utterances) if not is_crisis(u)]
        asked_people = None if people is None else [people[i] for i in ask]
        answers = list(self.policy([utterances[i] for i in ask], asked_people)) if ask else []
        if len(answers) != len(ask):
            raise ValueError(f"the policy returned {len(answers)} replies for {len(ask)} utterances")
        replies: list[str | None] = [None] * len(utterances)
        for i, answer in zip(ask, answers, strict=True):
            replies[i] = answer
        decisions = [guard(u, r) for u, r in zip(utterances, replies, strict=True)]
        self.log += list(zip(utterances, decisions, strict=True))
        return decisions

    def __call__(self, utterances: Sequence[str], people: Sequence | None = None) -> list[str]:
        return [d.reply for d in self.respond(utterances, people)]
