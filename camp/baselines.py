"""Baselines a fine-tuned classifier must beat. Introduced in lesson 02.

Each returns test-split metrics from camp.metrics.classification_metrics, trained on the train split only.
`cross_register` trains on one register of the corpus and tests on another (lesson 02's domain shift).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from datasets import DatasetDict
from sklearn.linear_model import LogisticRegression

from camp.metrics import classification_metrics


def _names(data: DatasetDict) -> list[str]:
    return list(data["train"].features["label"].names)


def _fit_predict(x_train, y_train, x_test, seed: int, C: float = 1.0) -> np.ndarray:
    clf = LogisticRegression(max_iter=3000, C=C, random_state=seed)
    return clf.fit(x_train, y_train).predict(x_test)


def majority(data: DatasetDict) -> dict:
    """Always predict the most common training class."""
    y_train, y_test = np.asarray(data["train"]["label"]), np.asarray(data["test"]["label"])
    pred = np.full_like(y_test, np.bincount(y_train).argmax())
    return classification_metrics(y_test, pred, len(_names(data)), _names(data))


def vader_lexicon(data: DatasetDict, seed: int = 0) -> dict:
    """Logistic regression on VADER's four sentiment scores (neg, neu, pos, compound)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()

    def feats(texts):
        return np.array([[s["neg"], s["neu"], s["pos"], s["compound"]]
                         for s in map(vader.polarity_scores, texts)])

    pred = _fit_predict(feats(data["train"]["text"]), data["train"]["label"], feats(data["test"]["text"]), seed)
    return classification_metrics(data["test"]["label"], pred, len(_names(data)), _names(data))


def tfidf(data: DatasetDict, seed: int = 0) -> dict:
    """TF-IDF over word 1-2 grams, then logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    x_train = vec.fit_transform(list(data["train"]["text"]))
    pred = _fit_predict(x_train, data["train"]["label"], vec.transform(list(data["test"]["text"])), seed, C=10.0)
    return classification_metrics(data["test"]["label"], pred, len(_names(data)), _names(data))


def fit_frozen_head(texts: list[str], labels, seed: int = 0, name: str = "auto") -> LogisticRegression:
    """Logistic regression on mean-pooled, frozen encoder embeddings (cached on disk). The same head is the
    emotion reader of lesson 03's listener (`camp.listener.Listener.default`)."""
    from camp.models import cached_embed

    clf = LogisticRegression(max_iter=3000, C=10.0, random_state=seed)
    return clf.fit(cached_embed(list(texts), name), list(labels))


def frozen_encoder(data: DatasetDict, seed: int = 0, name: str = "auto") -> dict:
    """Mean-pooled sentence embeddings from the frozen encoder, then logistic regression."""
    from camp.models import cached_embed

    clf = fit_frozen_head(data["train"]["text"], data["train"]["label"], seed, name)
    pred = clf.predict(cached_embed(list(data["test"]["text"]), name))
    return classification_metrics(data["test"]["label"], pred, len(_names(data)), _names(data))


ALL = {"majority class": majority, "VADER lexicon + LR": vader_lexicon, "TF-IDF + LR": tfidf,
       "frozen MiniLM + LR": frozen_encoder}


def table(data: DatasetDict) -> list[dict]:
    """One row per baseline: name, accuracy and macro-F1 on the test split."""
    rows = []
    for name, fn in ALL.items():
        m = fn(data)
        rows.append({"baseline": name, "accuracy": round(m["accuracy"], 3), "macro_f1": round(m["macro_f1"], 3)})
    return rows


def cross_register(method: Callable[[DatasetDict], dict], data: dict[str, DatasetDict],
                   tests: tuple[str, ...] | None = None) -> dict[str, dict[str, dict]]:
    """`result[a][b]`: `method` (a baseline above) trained on register a's train split, scored on b's test split.

    `data` maps a register's name to its DatasetDict (`camp.data.load_emotions(register=...)`); `tests` picks
    which registers' test splits to score on (default: all of them). The diagonal is the in-domain figure.
    """
    tests = tuple(data) if tests is None else tests
    missing = [name for name in tests if name not in data]
    if missing:
        raise ValueError(f"no data for the test registers {missing}; pass them in `data` as well")
    return {a: {b: method(DatasetDict({"train": data[a]["train"], "validation": data[a]["validation"],
                                       "test": data[b]["test"]})) for b in tests} for a in data}


def tfidf_pair_scorer(pairs, seed: int = 0, C: float = 1.0) -> Callable:
    """A linear reward model on word counts (lesson 07's baseline): TF-IDF features of a reply, and logistic
    regression on the difference chosen - rejected, which is the Bradley-Terry model with a linear score.

    Each pair is shown both ways round (chosen - rejected labelled 1, its negative 0), so the fit has no
    intercept to learn. Returns a scorer `(replies, people) -> scores`; it ignores who the reply answers.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    pairs = list(pairs)
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    vec.fit([p.chosen for p in pairs] + [p.rejected for p in pairs])
    diff = vec.transform([p.chosen for p in pairs]) - vec.transform([p.rejected for p in pairs])
    from scipy.sparse import vstack

    x, y = vstack([diff, -diff]), np.r_[np.ones(len(pairs)), np.zeros(len(pairs))]
    clf = LogisticRegression(max_iter=3000, C=C, fit_intercept=False, random_state=seed).fit(x, y)

    def scorer(replies, people=None) -> np.ndarray:
        return np.asarray(vec.transform(list(replies)) @ clf.coef_[0], dtype=float).ravel()

    return scorer
