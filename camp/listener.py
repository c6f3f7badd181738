"""The listener: how the simulated person perceives a reply. Introduced in lesson 03.

It answers five questions about each reply, all in [0, 1], for a whole batch at once:

* recognition: does the reply recognise the person's emotion? (the emotion a classifier reads in the reply,
  or an explicit feeling word of that emotion);
* relevance: is it about their situation? (MiniLM cosine between reply and situation, rescaled);
* tone: does its sentiment fit the emotion? (VADER compound inside the band that suits it);
* dismissive: does it brush them off? (phrases such as "calm down" or "get over it");
* parroting: does it just say their words back? (share of its word 3-grams copied from what they said). Lesson
  06's first RL run found this hole: echoing a person's own sentence scored as perfectly relevant and
  recognising, so the policy learned to repeat people. Nobody feels understood by that.

The emotion classifier is, by default, a linear head on frozen MiniLM features fitted on both registers of camp's
corpus (narrative and conversational train splits) in a few seconds and cached; any classifier with
`predict_proba`-style output, such as a lesson-02 model, can replace it.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence

import numpy as np

from camp import utils
from camp.data import EMOTIONS
from camp.text import copied_share, is_dismissive

# Feeling words a reply can use to name each emotion (stems, matched at word starts).
FEELING_WORDS = {
    "sadness": ("sad", "heartbr", "grief", "griev", "loss", "lonel", "hurt", "down", "miss", "gutted", "painful"),
    "joy": ("happy", "congrat", "wonderful", "great news", "proud", "delight", "exciting", "amazing", "glad"),
    "love": ("love", "adore", "sweet", "tender", "care about", "lucky to have", "special", "precious"),
    "anger": ("frustrat", "anger", "angry", "unfair", "infuriat", "annoy", "furious", "disrespect", "mad"),
    "fear": ("scar", "afraid", "worr", "anxi", "frighten", "nervous", "terrif", "unsettl", "uncertain"),
    "surprise": ("surpris", "unexpected", "shock", "wow", "out of nowhere", "didn't see", "astonish", "caught off"),
}
# VADER compound band that fits a reply to each emotion: gentle for pain, warm for joy.
TONE_BAND = {"sadness": (-0.6, 0.5), "anger": (-0.6, 0.5), "fear": (-0.5, 0.6),
             "joy": (0.3, 1.0), "love": (0.3, 1.0), "surprise": (-0.3, 1.0)}


def mentions(reply: str, emotion: str) -> bool:
    """Whether `reply` names `emotion` with one of its feeling words."""
    text = reply.lower()
    return any(re.search(r"\b" + re.escape(w), text) for w in FEELING_WORDS[emotion])


class Listener:
    """Perceives replies in batches. Build it with `Listener.default()` (fits or loads the cached head)."""

    def __init__(self, embed: Callable[[list[str]], np.ndarray], classify: Callable[[list[str]], np.ndarray],
                 head: tuple[np.ndarray, np.ndarray] | None = None):
        self.embed = embed  # texts -> (N, H) unit vectors
        self.classify = classify  # texts -> (N, 6) emotion probabilities
        self.head = head  # (weights, bias) when classify is a linear head on embed's vectors: reuse them
        self._contexts: dict[str, np.ndarray] = {}  # situations repeat every turn: embed each once
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._vader = SentimentIntensityAnalyzer()

    @classmethod
    def default(cls) -> Listener:
        """MiniLM embeddings plus a logistic-regression head fitted on camp's corpus, both registers (cached)."""
        from camp.models import embed

        head = _linear_head()
        return cls(embed, lambda texts: _softmax_head(embed(texts), head), head)

    @classmethod
    def from_classifier(cls, model, tokenizer) -> Listener:
        """Use any sequence classifier over camp.data.EMOTIONS, such as the model fine-tuned in lesson 02."""
        from camp.metrics import predict_proba
        from camp.models import embed

        labels = [model.config.id2label[k] for k in range(model.config.num_labels)]
        if tuple(labels) != EMOTIONS:
            raise ValueError(f"the listener's classifier must predict {EMOTIONS} in that order, got {labels}")
        return cls(embed, lambda texts: predict_proba(model, tokenizer, texts))

    def perceive(self, replies: Sequence[str], emotions: Sequence[str], contexts: Sequence[str]) -> dict:
        """The five signals for each (reply, person's emotion, person's situation), as arrays of shape (N,)."""
        replies, contexts = list(replies), list(contexts)
        new = sorted({c for c in contexts if c not in self._contexts})
        if len(self._contexts) + len(new) > 50_000:
            self._contexts.clear()
        # Replies and new contexts are embedded in separate calls, so a reply's vector depends only on the batch
        # of replies (float results shift slightly with batch shape) and a context's never changes once cached:
        # the same seed and replies give bit-identical trajectories.
        reply_vecs = self.embed(replies)
        if new:
            self._contexts.update(zip(new, self.embed(new), strict=True))
        probs = _softmax_head(reply_vecs, self.head) if self.head is not None else self.classify(replies)
        idx = [EMOTIONS.index(e) for e in emotions]
        named = np.array([mentions(r, e) for r, e in zip(replies, emotions, strict=True)], dtype=float)
        recognition = np.maximum(probs[np.arange(len(replies)), idx], named)
        cos = (reply_vecs * np.stack([self._contexts[c] for c in contexts])).sum(axis=1)
        relevance = np.clip((cos - 0.05) / 0.45, 0.0, 1.0)  # MiniLM cosines of related sentences: ~0.1 to 0.5
        compound = np.array([self._vader.polarity_scores(r)["compound"] for r in replies])
        low, high = np.array([TONE_BAND[e] for e in emotions]).T
        tone = 1.0 - np.clip(np.maximum(low - compound, compound - high), 0.0, 1.0)
        dismissive = np.array([is_dismissive(r) for r in replies], dtype=float)
        parroting = np.array([copied_share(r, c) for r, c in zip(replies, contexts, strict=True)])
        return {"recognition": recognition, "relevance": relevance, "tone": tone, "dismissive": dismissive,
                "parroting": parroting,
                "reply_probs": probs}


def _softmax_head(vectors: np.ndarray, head: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    weights, bias = head
    logits = vectors @ weights.T + bias  # (N, 6)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def _linear_head() -> tuple[np.ndarray, np.ndarray]:
    """Weights (6, H) and bias (6,) of logistic regression on frozen MiniLM features of the corpus's train split
    (both registers), cached under a key made from the encoder and the training texts and labels: when either
    changes (as when the conversational register joined), the old head is never reused."""
    import hashlib

    from camp.baselines import fit_frozen_head
    from camp.data import load_emotions
    from camp.models import encoder_identity, resolve_encoder_name

    train = load_emotions("offline", verbose=False, register="both")["train"]
    parts = [encoder_identity(resolve_encoder_name("auto")), *train["text"], *map(str, train["label"])]
    key = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:16]
    path = utils.cache_dir("listener") / f"minilm_logreg_{key}.npz"
    if path.exists():
        try:
            stored = np.load(path)
            return stored["weights"], stored["bias"]
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # damaged cache: refit
    clf = fit_frozen_head(train["text"], train["label"], seed=0)
    weights, bias = clf.coef_.astype(np.float32), clf.intercept_.astype(np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, weights=weights, bias=bias)
    utils.atomic_write_bytes(path, buffer.getvalue())
    return weights, bias
