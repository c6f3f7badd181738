"""Evaluation and prediction for emotion classifiers. Introduced in lesson 02.

`evaluate` returns accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix; `predict` turns
texts into labels and probabilities. Both pad each batch only to its own longest text.
"""

from __future__ import annotations

import numpy as np
import torch

from camp.utils import length_sorted_batches


def validate_texts(texts) -> list[str]:
    """Refuse what a tokenizer would mangle: a bare string, None, non-strings and empty texts."""
    if isinstance(texts, str):
        raise TypeError("expected a list of texts, got a single string; wrap it: [text]")
    texts = list(texts)
    if not texts:
        raise ValueError("expected at least one text, got an empty list")
    for i, text in enumerate(texts):
        if text is None:
            raise TypeError(f"text {i} is None; remove it or replace it with a string")
        if not isinstance(text, str):
            raise TypeError(f"text {i} is a {type(text).__name__}, not a string: {text!r}")
        if not text.strip():
            raise ValueError(f"text {i} is empty; an emotion cannot be read from nothing")
    return texts


def classification_metrics(y_true, y_pred, num_labels: int, names: list[str] | None = None) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix (rows: true class).

    A class never predicted (or never present) scores 0 where its denominator is 0, as scikit-learn's
    `zero_division=0` does; `tests/test_train.py` checks the two agree. NumPy only, so the training loops need no
    scikit-learn (a bare GPU machine has none).

    >>> m = classification_metrics([0, 0, 1, 1], [0, 1, 1, 1], 2)
    >>> m["accuracy"], round(m["macro_f1"], 4), m["confusion_matrix"]
    (0.75, 0.7333, [[1, 1], [0, 2]])
    """
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"need two equal-length lists of class indices, got shapes {y_true.shape} and {y_pred.shape}")
    outside = [int(y) for y in np.concatenate([y_true, y_pred]) if not 0 <= y < num_labels]
    if outside:  # bincount would file them under other classes without a word
        raise ValueError(f"labels {sorted(set(outside))[:5]} are outside 0..{num_labels - 1}; check num_labels")
    confusion = np.bincount(y_true * num_labels + y_pred, minlength=num_labels ** 2).reshape(num_labels, num_labels)
    tp, support, predicted = np.diag(confusion), confusion.sum(axis=1), confusion.sum(axis=0)

    def ratio(a, b):
        return np.divide(a, b, out=np.zeros(len(a)), where=b > 0)

    precision, recall, f1 = ratio(tp, predicted), ratio(tp, support), ratio(2 * tp, support + predicted)
    names = names or [str(k) for k in range(num_labels)]
    return {
        "accuracy": float(tp.sum() / max(len(y_true), 1)),
        "macro_f1": float(f1.mean()),
        "per_class": {n: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for n, p, r, f, s in zip(names, precision, recall, f1, support, strict=True)},
        "confusion_matrix": confusion.tolist(),
    }


@torch.inference_mode()
def predict_proba(model: torch.nn.Module, tokenizer, texts: list[str], batch_size: int = 64,
                  max_length: int = 128) -> np.ndarray:
    """Class probabilities, shape (N, num_labels), in the order of `texts`."""
    texts = validate_texts(texts)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    probs = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    for idx in length_sorted_batches(texts, batch_size):
        batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt").to(device)
        logits = model(**batch).logits.float()  # (B, num_labels)
        probs[idx] = torch.softmax(logits, dim=-1).cpu().numpy()
    model.train(was_training)
    return probs


def predict(model: torch.nn.Module, tokenizer, texts: list[str], batch_size: int = 64) -> tuple[list[str], np.ndarray]:
    """Predicted label names and probabilities (N, num_labels) for `texts`."""
    probs = predict_proba(model, tokenizer, texts, batch_size)
    id2label = model.config.id2label
    return [id2label[int(k)] for k in probs.argmax(axis=1)], probs


def evaluate(model: torch.nn.Module, tokenizer, dataset, batch_size: int = 64) -> dict:
    """Metrics of `model` on a dataset with `text` and integer `label` columns (plus `probs` for calibration)."""
    texts, labels = list(dataset["text"]), np.asarray(dataset["label"])
    probs = predict_proba(model, tokenizer, texts, batch_size)
    names = [model.config.id2label[k] for k in range(model.config.num_labels)]
    result = classification_metrics(labels, probs.argmax(axis=1), model.config.num_labels, names)
    result["probs"] = probs
    return result


def paired_bootstrap(differences, seed: int = 0, draws: int = 2000) -> dict:
    """Mean of paired differences (one per unit: a person, a template) with a bootstrap 95 % interval.

    An interval that contains 0 means the data cannot tell the two sides apart at this sample size.

    >>> r = paired_bootstrap([0.1, 0.2, 0.3, 0.2]); round(r["mean"], 3), r["ci95"][0] > 0
    (0.2, True)
    """
    diffs = np.asarray(differences, dtype=float)
    if diffs.ndim != 1 or len(diffs) < 2 or not np.isfinite(diffs).all():
        raise ValueError(f"need at least two finite paired differences, got {diffs.shape} values")
    boot = np.random.default_rng(seed).choice(diffs, size=(draws, len(diffs))).mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"mean": float(diffs.mean()), "ci95": (float(lo), float(hi)), "n": len(diffs)}
