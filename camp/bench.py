"""`python -m camp bench classifier`: camp's loop against Hugging Face Trainer, side by side in one run.

Both runs fine-tune the same encoder from the same initial weights on the same data for the same number of
optimizer steps, batch size and learning-rate schedule. The Trainer run is set up the way the article's sample
code prepares data: every text padded to 128 tokens. camp's run pads each batch to its own longest text and
groups texts of similar length. Throughput is measured over the training steps only (no evaluation inside);
both models are then scored with the same `camp.metrics.evaluate` on the test split.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time

import torch


def _fresh_model(seed: int):
    from camp import models, utils

    utils.set_seed(seed)
    return models.load_encoder("auto")


def _camp_run(data, steps: int, batch_size: int, lr: float, seed: int) -> dict:
    from camp import metrics, train

    model, tokenizer = _fresh_model(seed)
    cfg = train.TrainConfig(lr=lr, batch_size=batch_size, max_steps=steps, eval_every=steps, patience=None,
                            seed=seed, progress=False)
    start = time.perf_counter()
    model, history = train.train_classifier(model, tokenizer, data, cfg)
    wall = time.perf_counter() - start
    result = metrics.evaluate(model, tokenizer, data["test"])
    return {"samples_per_s": history[-1]["time/samples_per_s"], "wall_s_with_final_eval": round(wall, 1),
            "test_macro_f1": result["macro_f1"], "test_accuracy": result["accuracy"]}


def _trainer_run(data, steps: int, batch_size: int, lr: float, seed: int) -> dict:
    from transformers import Trainer, TrainingArguments

    from camp import metrics

    model, tokenizer = _fresh_model(seed)
    train_set = data["train"].map(lambda b: tokenizer(b["text"], padding="max_length", truncation=True,
                                                      max_length=128), batched=True, remove_columns=["text"])
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=batch_size, learning_rate=lr,
                                 max_steps=steps, warmup_ratio=0.06, weight_decay=0.01, lr_scheduler_type="linear",
                                 max_grad_norm=1.0, save_strategy="no", eval_strategy="no", report_to=[],
                                 logging_strategy="no", seed=seed, disable_tqdm=True)
        trainer = Trainer(model=model, args=args, train_dataset=train_set)
        output = trainer.train()
    result = metrics.evaluate(model, tokenizer, data["test"])
    return {"samples_per_s": output.metrics["train_samples_per_second"],
            "wall_s_train": round(output.metrics["train_runtime"], 1),
            "test_macro_f1": result["macro_f1"], "test_accuracy": result["accuracy"]}


def classifier(steps: int = 120, batch_size: int = 32, lr: float = 1e-4, seed: int = 0) -> dict:
    """Run both trainings and return the comparison (see module docstring)."""
    from camp import data as camp_data

    data = camp_data.load_emotions("offline", verbose=False)
    camp_result = _camp_run(data, steps, batch_size, lr, seed)
    trainer_result = _trainer_run(data, steps, batch_size, lr, seed)
    return {
        "benchmark": "classifier", "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
        "model": "all-MiniLM-L6-v2 + linear head", "data": "camp offline corpus, train split",
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.machine()}, "
                  f"{torch.get_num_threads()} threads)",
        "camp": camp_result, "hf_trainer_pad128": trainer_result,
        "samples_per_s_ratio": round(camp_result["samples_per_s"] / trainer_result["samples_per_s"], 2),
        "macro_f1_difference": round(camp_result["test_macro_f1"] - trainer_result["test_macro_f1"], 4),
    }


def main(args: argparse.Namespace) -> int:
    result = classifier(steps=args.steps, batch_size=args.batch_size)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 0
