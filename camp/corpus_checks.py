"""Quality checks for the emotion corpus (lesson 01) and the preference corpus (lesson 07). The tests run them on
camp's own corpus; the lessons show them.

Each check returns what it found, so a test can assert on it and a planted problem makes it fail.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
from datasets import DatasetDict

from camp.data import EMOTIONS, SPLITS

# Target share of each class, per register, as planned when it was written. Narrative: the real dataset's order
# (joy > sadness > anger > fear > love > surprise; there 33.5/29.2/13.5/12.1/8.2/3.6 % of train) with the
# minorities lifted so that every class has at least 300 sentences. Conversational: 600 texts per emotion.
# Both: the two mixed in proportion to their sizes (5,050 and 3,600 texts), the same in every split.
_NARRATIVE = {"sadness": 0.253, "joy": 0.285, "love": 0.093, "anger": 0.150, "fear": 0.139, "surprise": 0.079}
TARGET_SHARES = {"narrative": _NARRATIVE, "conversational": {e: 1 / 6 for e in EMOTIONS},
                 "both": {e: (5050 * _NARRATIVE[e] + 600) / 8650 for e in EMOTIONS}}
SHARE_BAND = 0.02  # each class's share must stay within +-2 points of its target, in every split
NEAR_DUPLICATE_COSINE = 0.92
MAX_OPENER_SHARE = 0.005  # no four-word opening may start more than 0.5% of all sentences
# Macro-F1 a classifier may reach from surface features alone (length, punctuation, emoji, capitals). Six
# classes at these shares: predicting the majority scores 0.07, guessing in proportion 0.16 on our test split.
MAX_SURFACE_MACRO_F1 = 0.22
_EMOJI = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF]")
_EMOTICON = re.compile(r"(?:^|\s)(?:[:;=]-?[()dDpP/]|<3|xd|XD)(?=\s|$)")


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def exact_duplicates(texts: list[str]) -> list[str]:
    """Texts that occur more than once, ignoring case and white space."""
    counts = Counter(normalise(t) for t in texts)
    return sorted(t for t, n in counts.items() if n > 1)


def cross_split_near_duplicates(data: DatasetDict, threshold: float = NEAR_DUPLICATE_COSINE,
                                embeddings: dict[str, np.ndarray] | None = None) -> list[tuple]:
    """Pairs (split_a, i, split_b, j, cosine) across different splits whose MiniLM cosine exceeds threshold."""
    from camp.models import cached_embed

    emb = embeddings or {s: cached_embed(list(data[s]["text"])) for s in SPLITS}
    found = []
    for a_pos, a in enumerate(SPLITS):
        for b in SPLITS[a_pos + 1:]:
            sims = emb[a] @ emb[b].T  # (Na, Nb), unit vectors so this is the cosine
            for i, j in zip(*np.nonzero(sims > threshold), strict=True):
                found.append((a, int(i), b, int(j), float(sims[i, j])))
    return found


def class_shares(data: DatasetDict) -> dict[str, dict[str, float]]:
    """Share of each emotion in each split."""
    shares = {}
    for split in SPLITS:
        counts = Counter(data[split]["label"])
        total = sum(counts.values())
        shares[split] = {name: counts.get(i, 0) / total for i, name in enumerate(EMOTIONS)}
    return shares


def shares_out_of_band(data: DatasetDict, register: str = "both", band: float = SHARE_BAND) -> list[str]:
    """Messages for each (split, class) whose share is outside the register's target share +- band."""
    if register not in TARGET_SHARES:
        raise ValueError(f"register must be one of {tuple(TARGET_SHARES)}, got {register!r}")
    targets = TARGET_SHARES[register]
    return [f"{split}/{name}: share {share:.3f} outside {targets[name]:.3f} +- {band}"
            for split, row in class_shares(data).items() for name, share in row.items()
            if abs(share - targets[name]) > band]


def top_opener(texts: list[str], words: int = 4) -> tuple[str, float]:
    """The most common opening of `words` words and the share of texts that start with it."""
    openers = Counter(" ".join(normalise(t).split()[:words]) for t in texts if len(t.split()) >= words)
    opener, count = openers.most_common(1)[0]
    return opener, count / len(texts)


def tfidf_baseline_macro_f1(data: DatasetDict, seed: int = 0) -> float:
    """Macro-F1 on the test split of TF-IDF (word 1-2 grams) + logistic regression trained on train."""
    from camp.baselines import tfidf

    return tfidf(data, seed)["macro_f1"]


def surface_features(texts: list[str]) -> np.ndarray:
    """Per text: characters, words, !, ?, ., commas, emoji, emoticons and the share of capital letters."""
    rows = []
    for t in texts:
        letters = [c for c in t if c.isalpha()]
        rows.append([len(t), len(t.split()), t.count("!"), t.count("?"), t.count("."), t.count(","),
                     len(_EMOJI.findall(t)), len(_EMOTICON.findall(t)),
                     sum(c.isupper() for c in letters) / max(len(letters), 1)])
    return np.asarray(rows, dtype=float)


def surface_giveaway_macro_f1(data: DatasetDict, seed: int = 0) -> float:
    """Test macro-F1 of logistic regression trained on `surface_features` alone. Near chance means the labels
    cannot be read off length, punctuation or emoji: the writers did not give each emotion a shape."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from camp.metrics import classification_metrics

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, class_weight="balanced",
                                                               random_state=seed))
    model.fit(surface_features(list(data["train"]["text"])), data["train"]["label"])
    predicted = model.predict(surface_features(list(data["test"]["text"])))
    return classification_metrics(data["test"]["label"], predicted, len(EMOTIONS))["macro_f1"]


# ---------------------------------------------------------------------------------------------------- preferences
LENGTH_BAND = (0.40, 0.60)  # the longer reply may be the chosen one in 40-60 % of pairs, so length alone cannot win
MIN_PAIRS_PER_KIND, MIN_PAIRS_PER_EMOTION = 30, 90


def longer_chosen_share(pairs) -> float:
    """The share of pairs whose chosen reply is the longer (characters): what a length-only scorer gets right."""
    return float(np.mean([len(p.chosen) > len(p.rejected) for p in pairs]))


def repeated_replies(pairs) -> list[str]:
    """Replies (chosen or rejected) that occur more than once anywhere in the pairs, ignoring case and spaces."""
    return exact_duplicates([p.chosen for p in pairs] + [p.rejected for p in pairs])


def splits_sharing_a_person(pairs) -> list[str]:
    """Situations or utterances that appear in more than one split: a model could meet a test person in training."""
    seen: dict[str, set[str]] = {}
    for p in pairs:
        seen.setdefault(p.situation_id or normalise(p.says), set()).add(p.split)
    return sorted(person for person, splits in seen.items() if len(splits) > 1)


def under_minimum(pairs, per_kind: int = MIN_PAIRS_PER_KIND, per_emotion: int = MIN_PAIRS_PER_EMOTION) -> list[str]:
    """Kinds with fewer than `per_kind` pairs and emotions with fewer than `per_emotion`, as 'name: count'."""
    kinds, emotions = Counter(p.kind for p in pairs), Counter(p.emotion for p in pairs)
    return [f"kind {k}: {n}" for k, n in sorted(kinds.items()) if n < per_kind] + \
        [f"emotion {e}: {emotions.get(e, 0)}" for e in EMOTIONS if emotions.get(e, 0) < per_emotion]


def reused_texts(pairs, others: list[str]) -> list[str]:
    """Replies that also occur in `others` (texts of other corpus files), ignoring case and spaces."""
    other = {normalise(t) for t in others}
    return sorted({normalise(t) for p in pairs for t in (p.chosen, p.rejected)} & other)


def preference_problems(pairs, others: list[str] = ()) -> list[str]:
    """Every preference check at once; an empty list means the corpus passes."""
    share = longer_chosen_share(pairs)
    problems = [] if LENGTH_BAND[0] <= share <= LENGTH_BAND[1] else \
        [f"the longer reply is chosen in {share:.1%} of pairs, outside {LENGTH_BAND}"]
    problems += [f"repeated reply: {t}" for t in repeated_replies(pairs)]
    problems += [f"in several splits: {t}" for t in splits_sharing_a_person(pairs)]
    problems += [f"under the minimum: {t}" for t in under_minimum(pairs)]
    return problems + [f"reused from another file: {t}" for t in reused_texts(pairs, list(others))]
