"""Learning from human preferences: the Bradley-Terry model and how to measure a scorer against people's choices.
Introduced in lesson 07.

Bradley and Terry (1952) model a preference between two replies as a coin whose bias depends on a score each:
P(a preferred to b) = sigmoid(r(a) - r(b)). A reward model is a network r trained to make the people's choices
likely, by minimising `bradley_terry_loss`; `camp.reward_model` trains one. This module holds the pieces that
need no network: the loss, pairwise agreement (ties count half), Bradley-Terry strengths fitted to a small
tournament, the agreement report with bootstrap intervals, pairs as probabilities for calibration, and the
learner's ratings file.

A *scorer* is camp's one shape for anything that judges replies, `scorer(replies, people) -> scores`
(`camp.roles.Scorer`); every function here that compares judges takes scorers.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from camp.data import EMOTIONS, PreferencePair, says
from camp.metrics import paired_bootstrap
from camp.utils import CampError, atomic_write_bytes


# ---------------------------------------------------------------------------------------------------- the model
def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Mean of -log sigmoid(r(chosen) - r(rejected)) over pairs: the negative log-likelihood of the choices.

    `logsigmoid` keeps it finite however far apart the scores are (log(sigmoid(-100)) underflows to -inf).

    >>> round(float(bradley_terry_loss(torch.tensor([0.0]), torch.tensor([0.0]))), 4)  # a coin: log 2
    0.6931
    """
    if chosen.shape != rejected.shape:
        raise ValueError(f"chosen {tuple(chosen.shape)} and rejected {tuple(rejected.shape)} scores must match")
    return -F.logsigmoid(chosen - rejected).mean()


def agreement(chosen_scores, rejected_scores) -> np.ndarray:
    """Per pair: 1 where the scorer prefers `chosen`, 0 where it prefers `rejected`, 0.5 for a tie.

    >>> agreement([2.0, 1.0, 0.5], [1.0, 1.0, 0.9]).tolist()
    [1.0, 0.5, 0.0]
    """
    c, r = np.asarray(chosen_scores, dtype=float), np.asarray(rejected_scores, dtype=float)
    if c.shape != r.shape:
        raise ValueError(f"{c.shape} chosen scores but {r.shape} rejected scores")
    return (c > r) + 0.5 * (c == r)


def pairwise_accuracy(chosen_scores, rejected_scores) -> float:
    """The share of pairs where the scorer prefers `chosen`, ties counting half (a constant scorer gets 0.5)."""
    return float(agreement(chosen_scores, rejected_scores).mean())


def fit_strengths(winners: Sequence[int], losers: Sequence[int], n_items: int, l2: float = 0.05,
                  iterations: int = 200) -> torch.Tensor:
    """Bradley-Terry strengths of `n_items` replies from a tournament of pairwise games (`winners[g]` beat
    `losers[g]`): the minimiser of mean_g softplus(s[loser] - s[winner]) + l2 / 2 * sum(s ** 2).

    The games fix only differences of strength (adding a constant changes no probability); the L2 term picks the
    solution with mean zero and keeps an item that never lost finite. L-BFGS solves this convex problem.
    """
    w, lo = torch.as_tensor(winners, dtype=torch.long), torch.as_tensor(losers, dtype=torch.long)
    if w.shape != lo.shape or w.ndim != 1 or len(w) == 0:
        raise ValueError("give one loser per winner, at least one game")
    if int(torch.cat([w, lo]).min()) < 0 or int(torch.cat([w, lo]).max()) >= n_items:
        raise ValueError(f"item indices must lie in [0, {n_items})")
    s = torch.zeros(n_items, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([s], max_iter=iterations, tolerance_grad=1e-12, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.softplus(s[lo] - s[w]).mean() + l2 / 2 * (s ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return s.detach()


# ---------------------------------------------------------------------------------------------------- measuring
def length_scorer(replies: Sequence[str], people: Sequence) -> np.ndarray:
    """A scorer that prefers the longer reply (characters): the baseline every reward model must beat."""
    return np.array([len(r) for r in replies], dtype=float)


def agreement_report(scorers: Mapping[str, Callable], pairs: Sequence[PreferencePair],
                     people: Sequence | None = None, seed: int = 0) -> dict:
    """How often each scorer prefers `chosen`, over `pairs` and by kind and emotion, with bootstrap 95 % intervals.

    Args:
        scorers: name -> scorer `(replies, people) -> scores`.
        pairs: anything with `chosen`, `rejected`, `kind`, `emotion` (a `PreferencePair`; a `JudgeCheck` is
            turned into one by `from_judge_checks`).
        people: the person behind each pair as each scorer should see it (default: the pairs themselves).

    Returns:
        {name: {"agreement", "ci95", "n", "by_kind": {kind: share}, "by_emotion": {emotion: share},
        "per_pair": [1, 0.5 or 0 per pair], "scores": {"chosen": [...], "rejected": [...]}}}
    """
    pairs = list(pairs)
    if len(pairs) < 2:
        raise ValueError("need at least two pairs to report agreement with an interval")
    people = list(people) if people is not None else pairs
    report = {}
    for name, scorer in scorers.items():
        chosen = np.asarray(scorer([p.chosen for p in pairs], people), dtype=float)
        rejected = np.asarray(scorer([p.rejected for p in pairs], people), dtype=float)
        agree = agreement(chosen, rejected)
        boot = paired_bootstrap(agree, seed=seed)
        report[name] = {"agreement": boot["mean"], "ci95": list(boot["ci95"]), "n": len(pairs),
                        "by_kind": _shares(agree, [p.kind for p in pairs]),
                        "by_emotion": _shares(agree, [p.emotion for p in pairs]),
                        "per_pair": agree.tolist(), "scores": {"chosen": chosen.tolist(), "rejected": rejected.tolist()}}
    return report


def _shares(agree: np.ndarray, groups: Sequence[str]) -> dict[str, float]:
    order = [e for e in EMOTIONS if e in set(groups)] or sorted(set(groups))
    order += sorted(set(groups) - set(order))
    return {g: float(agree[[x == g for x in groups]].mean()) for g in order}


def situations_of(pairs: Sequence) -> list:
    """The person behind each pair as a `camp.data.Situation`, so the environment can score replies to them:
    the pair's own situation when it names one, else one built from what was said (`camp.data.as_situation`)."""
    from camp.data import as_situation, load_situations

    bank = {s.id: s for s in load_situations()}
    return [bank[p.situation_id] if getattr(p, "situation_id", None) in bank else as_situation(p) for p in pairs]


def standard_scorers(reward_model: Callable, train_pairs: Sequence[PreferencePair]) -> dict[str, Callable]:
    """The five scorers lesson 07 sets side by side: the learned reward model, the environment's hand-built
    reward, the independent judge (nade attunement), reply length, and a TF-IDF + logistic-regression pair model
    fitted to `train_pairs`."""
    from camp.baselines import tfidf_pair_scorer
    from camp.env import ReplyScorer
    from camp.judge import score as judge_score

    return {"reward model": reward_model, "environment reward": ReplyScorer(), "judge (attunement)": judge_score,
            "length": length_scorer, "TF-IDF + LR": tfidf_pair_scorer(train_pairs)}


def report_table(report: dict):
    """The headline of an `agreement_report` as a DataFrame: agreement and its interval per scorer."""
    import pandas as pd

    return pd.DataFrame({name: {"agreement": r["agreement"], "ci95 low": r["ci95"][0], "ci95 high": r["ci95"][1],
                                "pairs": r["n"]} for name, r in report.items()}).T.round(3)


def from_judge_checks(checks: Sequence) -> list[PreferencePair]:
    """The judge checks (`camp.data.load_judge_checks`) as preference pairs: better is chosen, worse rejected."""
    return [PreferencePair(c.id, c.emotion, c.says, c.better, c.worse, c.worse_kind, "test") for c in checks]


def pair_probabilities(chosen_scores, rejected_scores, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The pairs as a two-class problem, so a classifier's calibration tools apply (`camp.viz.reliability_diagram`).

    Each pair is shown in a random order (a, b); the model's P(a preferred) is sigmoid(r(a) - r(b)). Returns
    `probs`, shape (N, 2), columns P(b preferred) and P(a preferred), and `labels`, shape (N,): 1 where a is
    the chosen reply. Without the random order every label would be 1 and calibration could not be read.
    """
    c, r = np.asarray(chosen_scores, dtype=float), np.asarray(rejected_scores, dtype=float)
    a_is_chosen = np.random.default_rng(seed).random(len(c)) < 0.5
    p_a = 1.0 / (1.0 + np.exp(-np.where(a_is_chosen, c - r, r - c)))
    return np.stack([1.0 - p_a, p_a], axis=1), a_is_chosen.astype(int)


# ---------------------------------------------------------------------------------------------------- your ratings
CHOICES = ("a", "b", "tie", "skip")


@dataclass(frozen=True)
class RatingItem:
    """Two replies to one person's line, for a person to rate (`camp.widgets.PreferenceRater`). `first` is the
    corpus's chosen reply when the item comes from the corpus (`source` "corpus"); the rater never sees which."""

    id: str
    emotion: str
    says: str
    first: str
    second: str
    source: str = "corpus"
    situation_id: str | None = None


def items_from_pairs(pairs: Sequence[PreferencePair]) -> list[RatingItem]:
    """Corpus pairs to rate: will you agree with the corpus?"""
    return [RatingItem(p.id, p.emotion, p.says, p.chosen, p.rejected, "corpus", p.situation_id) for p in pairs]


def items_from_policy(policy: Callable, people: Sequence) -> list[RatingItem]:
    """Two replies of a reply policy (`camp.roles.ReplyPolicy`, such as lesson 06's) to each person, to rate."""
    people = list(people)
    replies = policy([says(p) for p in people] * 2, people * 2)
    n = len(people)
    return [RatingItem(f"policy-{getattr(p, 'id', i)}", p.emotion, says(p), replies[i], replies[n + i], "policy",
                       getattr(p, "id", None)) for i, p in enumerate(people)]


class RatingsError(CampError, ValueError):
    """A ratings file is empty, unreadable or unwritable; the message says what to do."""


def append_rating(path: str | Path, record: dict) -> Path:
    """Add one rating as one JSON line at the end of `path`, atomically: the file is rewritten to a temporary
    file next to it and swapped in, so a full disk or a crash leaves every earlier rating as it was.

    `record` needs `choice` (one of CHOICES), `says`, `a` and `b` (the replies as shown, left then right).
    """
    if record.get("choice") not in CHOICES or not all(record.get(k) for k in ("says", "a", "b")):
        raise RatingsError(f"a rating needs choice in {CHOICES} and non-empty 'says', 'a' and 'b'; got {record}")
    path = Path(path)
    old = path.read_bytes() if path.is_file() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    line = json.dumps({**record, "time": record.get("time") or time.strftime("%Y-%m-%dT%H:%M:%S")},
                      ensure_ascii=False) + "\n"
    try:
        return atomic_write_bytes(path, old + line.encode("utf-8"))
    except OSError as err:
        raise RatingsError(f"could not save the rating to {path} ({os.strerror(err.errno or 0) or err}); "
                           "your earlier ratings are unchanged. Free some disk space or choose a writable "
                           "file, then rate again.") from err


def read_ratings(path: str | Path) -> list[dict]:
    """Every rating in a ratings file, in order; a clear error for a missing, empty or damaged file."""
    path = Path(path)
    if not path.is_file():
        raise RatingsError(f"{path} does not exist yet; rate a few pairs with the PreferenceRater first.")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise RatingsError(f"{path}:{number} is not valid JSON ({err}); delete that line and carry on.") from err
        if record.get("choice") not in CHOICES:
            raise RatingsError(f"{path}:{number} has no valid choice (one of {CHOICES}); delete that line.")
        records.append(record)
    if not records:
        raise RatingsError(f"{path} holds no ratings yet; rate a few pairs with the PreferenceRater first.")
    return records


def ratings_to_pairs(records: Sequence[dict]) -> list[PreferencePair]:
    """The decided ratings (A or B) as preference pairs for training; ties and skips carry no preference."""
    pairs = []
    for i, r in enumerate(records):
        if r["choice"] in ("a", "b"):
            chosen, rejected = (r["a"], r["b"]) if r["choice"] == "a" else (r["b"], r["a"])
            if r.get("emotion") not in EMOTIONS:
                raise RatingsError(f"rating {i + 1} has no emotion in {EMOTIONS}; the PreferenceRater records "
                                   "one with every rating, so add it or delete that line.")
            pairs.append(PreferencePair(f"rating-{i:04d}", r["emotion"], r["says"], chosen, rejected,
                                        r.get("kind") or "rated", "train", r.get("situation_id")))
    return pairs
