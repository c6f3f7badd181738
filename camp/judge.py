"""An independent judge: nade's Plutchik emotion scores of a reply. Introduced in lesson 04.

The policy is never trained against it, so when a reward is being hacked the judge tends to disagree: a reply
spammed with "so sorry" scores high on the reward's sympathy words but reads to nade as pure sadness with
little trust or joy.

Two readings of nade's scores: `warmth` (trust + joy) and `attunement` (the share of the emotion read in a
reply that is the person's own feeling). A judge must itself be checked before its verdict counts: `check`
scores both on 36 hand-written clear cases (`camp.data.load_judge_checks`). Warmth orders them no better than a
coin, because it prefers cheer to sympathy; attunement orders most of them correctly, so it is the course's
judge (`score`) from lesson 06 on.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import pandas as pd

PLUTCHIK = ("anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise", "trust")


@functools.lru_cache(maxsize=1)
def _nade():
    from nade import Nade

    return Nade()


def scores(texts: Sequence[str]) -> dict[str, np.ndarray]:
    """nade's eight Plutchik scores (each roughly 0..1) for each text."""
    texts = list(texts)
    if not texts:
        return {k: np.zeros(0) for k in PLUTCHIK}
    raw = _nade().predict(texts)
    return {k: np.asarray(raw[k].to_pylist() if hasattr(raw[k], "to_pylist") else raw[k], dtype=float)
            for k in PLUTCHIK}


def warmth(texts: Sequence[str]) -> np.ndarray:
    """Trust + joy as nade reads them: how warm and supportive a reply sounds to an outside judge."""
    s = scores(texts)
    return s["trust"] + s["joy"]


# Where each of camp's six emotions sits among Plutchik's eight (love is joy + trust in Plutchik's wheel).
PLUTCHIK_OF = {"sadness": ("sadness",), "joy": ("joy",), "love": ("joy", "trust"), "anger": ("anger",),
               "fear": ("fear",), "surprise": ("surprise",)}


def attunement(texts: Sequence[str], emotions: Sequence[str]) -> np.ndarray:
    """How much of the emotion nade reads in each reply is the person's own feeling, in [0, 1].

    nade's score for the person's emotion (the mean over its Plutchik parts for love) divided by the sum of all
    eight scores. A reply that meets grief with sadness or good news with joy scores high; "so sorry" said to
    someone celebrating scores low. It measures the same thing the environment's *recognition* signal rewards,
    with a different model that the policy never trained against: a gold check on a proxy (Gao et al. 2022).

    >>> a = attunement(["I'm so sorry, losing him must be so hard.", "What a wonderful day, congratulations!"],
    ...                ["sadness", "sadness"])
    >>> bool(a[0] > a[1])
    True
    """
    texts, emotions = [t or "..." for t in texts], list(emotions)
    if len(texts) != len(emotions):
        raise ValueError(f"{len(texts)} replies but {len(emotions)} emotions")
    if unknown := sorted(set(emotions) - set(PLUTCHIK_OF)):
        raise ValueError(f"unknown emotions {unknown}; use camp.data.EMOTIONS")
    s = scores(texts)
    total = sum(s[k] for k in PLUTCHIK) + 1e-9
    own = np.array([np.mean([s[k][i] for k in PLUTCHIK_OF[e]]) for i, e in enumerate(emotions)])
    return np.clip(own / total, 0.0, 1.0)


def score(replies: Sequence[str], people: Sequence) -> np.ndarray:
    """The course's judge as a scorer (`camp.roles.Scorer`): the `attunement` of each reply to the feeling of the
    person it answers (anything with an `emotion`: a `Situation`, a `JudgeCheck`). It is the reading that
    passes `check`."""
    return attunement(replies, [p.emotion for p in people])


def check(judge=None, checks=None) -> dict:
    """How often a judge prefers the better reply of each clear case; ties count half, so a coin scores 0.5.

    `judge(replies, people) -> scores`, a scorer (default `score`); each case stands for the person (its
    `emotion`, what it `says`). `checks` default `camp.data.load_judge_checks()`.
    Returns `agreement` (the share over all cases), `by_kind` (a Series per way the worse reply fails) and
    `by_emotion`.
    """
    from camp.data import load_judge_checks

    judge = judge or score
    checks = list(checks) if checks is not None else load_judge_checks()
    if not checks:
        raise ValueError("no judge checks given")
    emotions = [c.emotion for c in checks]
    better = np.asarray(judge([c.better for c in checks], checks), dtype=float)
    worse = np.asarray(judge([c.worse for c in checks], checks), dtype=float)
    agree = (better > worse) + 0.5 * (better == worse)
    table = pd.DataFrame({"kind": [c.worse_kind for c in checks], "emotion": emotions, "agree": agree})
    return {"agreement": float(agree.mean()), "by_kind": table.groupby("kind")["agree"].mean(),
            "by_emotion": table.groupby("emotion")["agree"].mean()}
