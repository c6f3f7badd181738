"""Scripted reply policies for the empathy environment, and a batched evaluator. Introduced in lesson 03.

Each is a reply policy, `policy(utterances, people) -> replies` (`camp.roles.ReplyPolicy`). They are the
yardsticks an RL policy must beat: random replies (other people's posts), a dismissive policy,
a scripted reflective-listening policy (names the feeling it reads in the person's words and reflects their
own words back), and an oracle that is told the true emotion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from camp.data import EMOTIONS
from camp.text import words

FEELING = {"sadness": "really sad and hurt", "joy": "so happy, and proud", "love": "how much you care about them",
           "anger": "frustrated, and that it feels unfair", "fear": "worried and anxious",
           "surprise": "caught off guard, it was so unexpected"}
DISMISSIVE = ("Calm down, it's not a big deal.", "Just get over it.", "Whatever, could be worse.",
              "Stop complaining and move on.", "You're overreacting.", "Don't be so dramatic.")
STOP = set("i me my myself we our you your he she it they them the a an and or but so to of in on at for with "
           "is was are were be been am this that these those just really very not no it's i'm im its what when "
           "then than if about up out all like get got have has had do did don't can't cant".split())


def keywords(text: str, k: int = 3) -> list[str]:
    """The longest content words of `text`, in order of appearance (a crude topic echo); of words equally long,
    the first to appear.

    >>> keywords("my brother moved abroad and my sister moved house", k=2)  # 'abroad' and 'sister' tie at 6 letters
    ['brother', 'abroad']
    """
    toks = [w for w in words(text) if w not in STOP and len(w) > 3]
    # dict.fromkeys, not set: a set's order changes with Python's hash seed, and so would the words kept on a tie
    keep = set(sorted(dict.fromkeys(toks), key=len, reverse=True)[:k])
    seen, out = set(), []
    for w in toks:
        if w in keep and w not in seen:
            seen.add(w)
            out.append(w)
    return out


def reflective_reply(utterance: str, emotion: str) -> str:
    """Reflective listening: name the feeling, echo their words, invite them to say more."""
    echo = ", ".join(keywords(utterance))
    about = f" about {echo}" if echo else ""
    return (f"It sounds like you're feeling {FEELING[emotion]}{about}. That makes sense to me. "
            "I'm here and listening - what has been the hardest part?")


def reflective(read_emotion: Callable[[list[str]], np.ndarray]) -> Callable[[list[str], list], list[str]]:
    """A reflective policy that reads the emotion with `read_emotion` (texts -> (N, 6) probabilities)."""

    def policy(utterances: list[str], people: Sequence | None = None) -> list[str]:
        guesses = read_emotion(list(utterances)).argmax(axis=1)
        return [reflective_reply(u, EMOTIONS[g]) for u, g in zip(utterances, guesses, strict=True)]

    return policy


def oracle(utterances: list[str], people: Sequence) -> list[str]:
    """Reflective listening with the true emotion (an upper reference, not a fair policy)."""
    return [reflective_reply(u, p.emotion) for u, p in zip(utterances, people, strict=True)]


def dismissive(rng: np.random.Generator) -> Callable[[list[str], list], list[str]]:
    def policy(utterances: list[str], people: Sequence | None = None) -> list[str]:
        return [DISMISSIVE[i] for i in rng.integers(0, len(DISMISSIVE), len(utterances))]

    return policy


def random_replies(pool: Sequence[str], rng: np.random.Generator) -> Callable[[list[str], list], list[str]]:
    """Replies drawn at random from `pool` (for example other people's posts from the corpus)."""

    def policy(utterances: list[str], people: Sequence | None = None) -> list[str]:
        return [pool[i] for i in rng.integers(0, len(pool), len(utterances))]

    return policy


def evaluate_policy(policy: Callable, episodes: int = 200, seed: int = 0, max_turns: int = 6,
                    listener=None) -> dict:
    """Mean and spread of episode returns of `policy` over `episodes` seeded people, stepped as one batch.

    Finished episodes stop accumulating reward (their later actions are ignored).
    """
    from camp.env import BatchedEmpathy

    env = BatchedEmpathy(episodes, "respond", max_turns, listener=listener)
    said, _ = env.reset(seed=seed)
    returns, alive = np.zeros(episodes), np.ones(episodes, dtype=bool)
    valence_path = [env.state["valence"].copy()]
    for _ in range(max_turns):
        said, reward, terminated, truncated, _ = env.step(policy(said, env.people))
        returns += reward * alive
        alive &= ~(terminated | truncated)
        valence_path.append(env.state["valence"].copy())
        if not alive.any():
            break
    return {"mean": float(returns.mean()), "std": float(returns.std()), "returns": returns,
            "sem": float(returns.std() / np.sqrt(episodes)), "valence": np.array(valence_path)}
