"""Benchmarks behind the figures in the README: `python -m camp bench classifier | env | policies`.

`classifier`: camp's loop against Hugging Face Trainer, side by side in one run.

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

import numpy as np
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
                                 max_steps=steps, warmup_steps=int(0.06 * steps), weight_decay=0.01, lr_scheduler_type="linear",
                                 max_grad_norm=1.0, save_strategy="no", eval_strategy="no", report_to=[],
                                 logging_strategy="no", seed=seed, disable_tqdm=True)
        trainer = Trainer(model=model, args=args, train_dataset=train_set)
        output = trainer.train()
    result = metrics.evaluate(model, tokenizer, data["test"])
    return {"samples_per_s": output.metrics["train_samples_per_second"],
            "wall_s_train": round(output.metrics["train_runtime"], 1),
            "test_macro_f1": result["macro_f1"], "test_accuracy": result["accuracy"]}


def classifier(steps: int = 400, batch_size: int = 32, lr: float = 1e-4, seeds: tuple[int, ...] = (0, 1, 2)) -> dict:
    """Run both trainings for each seed and return the comparison (see module docstring)."""
    from camp import data as camp_data

    data = camp_data.load_emotions("offline", verbose=False)
    runs = [{"seed": seed, "camp": _camp_run(data, steps, batch_size, lr, seed),
             "hf_trainer_pad128": _trainer_run(data, steps, batch_size, lr, seed)} for seed in seeds]

    def mean(loop: str, key: str) -> float:
        return round(sum(r[loop][key] for r in runs) / len(runs), 4)

    return {
        "benchmark": "classifier", "steps": steps, "batch_size": batch_size, "lr": lr, "seeds": list(seeds),
        "model": "all-MiniLM-L6-v2 + linear head", "data": "camp offline corpus, train split",
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.machine()}, "
                  f"{torch.get_num_threads()} threads)",
        "runs": runs,
        "samples_per_s_ratio": round(mean("camp", "samples_per_s") / mean("hf_trainer_pad128", "samples_per_s"), 2),
        "mean_test_macro_f1": {"camp": mean("camp", "test_macro_f1"),
                               "hf_trainer_pad128": mean("hf_trainer_pad128", "test_macro_f1")},
        "std_test_macro_f1": {loop: round(float(np.std([r[loop]["test_macro_f1"] for r in runs])), 4)
                              for loop in ("camp", "hf_trainer_pad128")},
    }


def env(batch: int = 64, steps: int = 30, seed: int = 0) -> dict:
    """Respond-mode throughput: `batch` people, each answered every step, perceived in one listener call."""

    from camp import policies
    from camp.env import BatchedEmpathy
    from camp.listener import Listener

    listener = Listener.default()
    world = BatchedEmpathy(batch, "respond", max_turns=steps + 1, listener=listener)
    said = world.reset(np.random.default_rng(seed))
    world.step(policies.oracle(said, world.people))  # warm-up: first model call
    start = time.perf_counter()
    for _ in range(steps):
        said, *_ = world.step(policies.oracle(said, world.people))
    seconds = time.perf_counter() - start
    return {"benchmark": "env", "mode": "respond", "batch": batch, "steps": steps,
            "steps_per_s": round(steps / seconds, 2), "replies_per_s": round(steps * batch / seconds, 1),
            "device": f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"}


def scripted_policies(episodes: int = 200, seed: int = 0) -> dict:
    """Mean episode return (and spread) of the scripted policies over the same seeded people."""
    from camp import data, policies
    from camp.listener import Listener

    listener = Listener.default()
    pool = list(data.load_emotions("offline", verbose=False)["train"]["text"])
    candidates = {"reflective listening": policies.reflective(listener.classify),
                  "random replies": policies.random_replies(pool, np.random.default_rng(seed + 1)),
                  "dismissive": policies.dismissive(np.random.default_rng(seed + 2)),
                  "oracle (told the emotion)": policies.oracle}
    out = {}
    for name, policy in candidates.items():
        r = policies.evaluate_policy(policy, episodes=episodes, seed=seed, listener=listener)
        out[name] = {"mean_return": round(r["mean"], 3), "std": round(r["std"], 3), "sem": round(r["sem"], 3)}
    return {"benchmark": "policies", "episodes": episodes, "seed": seed, "max_turns": 6, "results": out}


def main(args: argparse.Namespace) -> int:
    if args.what == "env":
        result = env()
    elif args.what == "policies":
        result = scripted_policies()
    else:
        result = classifier(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seeds=tuple(args.seeds))
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 0
