"""Exporting the lesson-06 policy: merge the LoRA adapters, save with safetensors, optionally quantise to int8.
Introduced in lesson 08.

`export_merged` writes a folder any transformers user can load with `AutoModelForCausalLM.from_pretrained`
(no peft, no camp). `quantize_int8` applies PyTorch's dynamic int8 quantisation to the Linear layers, for CPU
inference; `compare` measures size, speed and quality side by side, because a smaller model that says worse
things is not a win.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn


def export_merged(policy, out_dir: str | Path, card: str | None = None) -> Path:
    """Merge the policy's adapters into a copy of the base weights and save it, with the tokenizer, to `out_dir`
    as safetensors (plus `README.md` if a model card is given). The folder appears whole or not at all: it is
    written next to its final place and renamed. The value head is training-only and is left out."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        merged = policy.merged()
        merged.save_pretrained(tmp, safe_serialization=True)
        policy.tokenizer.save_pretrained(tmp)
        if card:
            (tmp / "README.md").write_text(card, encoding="utf-8")
        (tmp / "camp_export.json").write_text(json.dumps({"merged_lora": True, "dtype": str(merged.dtype)}))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of `model` whose Linear layers are dynamically quantised to int8 (CPU only).

    Weights are stored in int8 with one scale per output channel; activations are quantised on the fly, one
    scale per tensor. The output layer is left in float: it shares its weights with the embeddings, and
    quantising it would store them twice. PyTorch marks this API as deprecated in favour of torchao; it still
    works in 2.13 and needs no extra package.
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    model = model.to("cpu").eval()
    layers = {name: per_channel_dynamic_qconfig for name, module in model.named_modules()
              if isinstance(module, nn.Linear) and name != "lm_head"}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        return quantize_dynamic(model, layers, inplace=False)


def int8_sensitivity(model: nn.Module, tokenizer, prompts: list[str], reference_texts: Sequence[str],
                     layers: Sequence[int] | None = None) -> list[dict]:
    """Where int8 costs quality: the perplexity of `reference_texts` (given `prompts`) with only one part of the
    model quantised at a time, each decoder layer's attention projections and its MLP separately, as
    `quantize_int8` would quantise them. Returns one row per part, `{"part", "layer", "perplexity",
    "increase"}`, plus a first row for the float model (`part` "none") and a last one with every part quantised
    ("all"). `layers` picks which decoder layers to probe (default: all)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    model = model.to("cpu").eval()
    linear = [name for name, module in model.named_modules() if isinstance(module, nn.Linear) and name != "lm_head"]
    count = 1 + max((int(n.split(".layers.")[1].split(".")[0]) for n in linear if ".layers." in n), default=-1)
    if count == 0:
        raise ValueError("no decoder layers (`...layers.<i>...` Linear modules) found in this model")
    base = _perplexity(model, tokenizer, prompts, reference_texts)
    rows = [{"part": "none", "layer": None, "perplexity": round(base, 3), "increase": 0.0}]

    def measure(names: list[str], part: str, layer: int | None) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            quantised = quantize_dynamic(model, dict.fromkeys(names, per_channel_dynamic_qconfig), inplace=False)
        ppl = _perplexity(quantised, tokenizer, prompts, reference_texts)
        rows.append({"part": part, "layer": layer, "perplexity": round(ppl, 3), "increase": round(ppl - base, 3)})

    for i in (range(count) if layers is None else layers):
        if not 0 <= i < count:
            raise ValueError(f"layer {i} is not one of this model's {count} decoder layers (0..{count - 1})")
        for part, marker in (("attention", f".layers.{i}.self_attn."), ("mlp", f".layers.{i}.mlp.")):
            names = [n for n in linear if marker in n]
            if names:
                measure(names, part, i)
    measure(linear, "all", None)
    return rows


def state_size_mb(model: nn.Module) -> float:
    """Bytes the model's saved state takes, in MB (tied weights counted once), via torch.save to memory."""
    import io

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes / 1e6


@torch.no_grad()
def _replies(model: nn.Module, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    out = model.generate(**enc, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, do_sample=False,
                         pad_token_id=tokenizer.pad_token_id)
    new = out[:, enc["input_ids"].shape[1]:]
    return [tokenizer.decode(row, skip_special_tokens=True).strip() for row in new]


@torch.no_grad()
def _perplexity(model: nn.Module, tokenizer, prompts: list[str], texts: Sequence[str]) -> float:
    """Perplexity of fixed reply texts given their prompts (only the reply tokens count)."""
    total, count = 0.0, 0
    for prompt, text in zip(prompts, texts, strict=True):
        p = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        r = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        ids = torch.cat([p, r], dim=1).to(model.device)
        logits = model(input_ids=ids).logits[0, p.shape[1] - 1:-1].float()
        total += torch.nn.functional.cross_entropy(logits, r[0].to(logits.device), reduction="sum").item()
        count += r.shape[1]
    return float(torch.exp(torch.tensor(total / max(count, 1))))


def compare_models(models: dict[str, nn.Module], tokenizer, prompts: list[str], reference_texts: Sequence[str],
                   max_new_tokens: int = 20, repeats: int = 2) -> tuple[list[dict], dict[str, list[str]]]:
    """Size, speed and quality of each model, measured side by side on the CPU.

    * `size_mb`: the saved state's size;
    * `tokens_per_s`: greedy generation of `max_new_tokens` for every prompt in one batch, best of `repeats`
      (the models take turns, so machine noise hits all of them alike);
    * `perplexity` of `reference_texts` (replies written by people) given their prompts: lower is better;
    * `same_reply_as_first`: share of prompts where the greedy reply equals the first model's, word for word.

    Returns (rows, replies per model).
    """
    names = list(models)
    best = dict.fromkeys(names, float("inf"))
    replies: dict[str, list[str]] = {}
    for name in names:  # warm-up: the first call of each model pays for allocations, not for generating
        _replies(models[name], tokenizer, prompts[:1], 2)
    for _ in range(repeats):
        for name in names:
            start = time.perf_counter()
            replies[name] = _replies(models[name], tokenizer, prompts, max_new_tokens)
            best[name] = min(best[name], time.perf_counter() - start)
    rows = []
    for name in names:
        same = sum(a == b for a, b in zip(replies[name], replies[names[0]], strict=True)) / len(prompts)
        rows.append({"model": name, "size_mb": round(state_size_mb(models[name]), 1),
                     "tokens_per_s": round(len(prompts) * max_new_tokens / best[name], 1),
                     "perplexity": round(_perplexity(models[name], tokenizer, prompts, reference_texts), 3),
                     "same_reply_as_first": round(same, 3)})
    return rows, replies
