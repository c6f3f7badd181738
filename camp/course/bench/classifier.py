"""The classifier benches (lessons 01 and 02).

`classifier`: camp's loop against Hugging Face Trainer, side by side in one run.

Both runs fine-tune the same encoder from the same initial weights on the same data for the same number of
optimizer steps, batch size and learning-rate schedule. The Trainer run is set up the way the article's sample
code prepares data: every text padded to 128 tokens. camp's run pads each batch to its own longest text and
groups texts of similar length. Throughput is measured over the training steps only (no evaluation inside);
both models are then scored with the same `camp.metrics.evaluate` on the test split.

`registers`: domain shift between the corpus's two registers (lesson 02). Train on one register, test on both.

`class_weights`: lesson 01's balanced class weights, used: fine-tuning with and without them (lesson 02).
"""

from __future__ import annotations

import platform
import tempfile
import time

import numpy as np
import torch

from camp.course.bench.machine import machine_info


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

    data = camp_data.load_emotions("offline", verbose=False, register="narrative")
    runs = [{"seed": seed, "camp": _camp_run(data, steps, batch_size, lr, seed),
             "hf_trainer_pad128": _trainer_run(data, steps, batch_size, lr, seed)} for seed in seeds]

    def mean(loop: str, key: str) -> float:
        return round(sum(r[loop][key] for r in runs) / len(runs), 4)

    return {
        "benchmark": "classifier", "steps": steps, "batch_size": batch_size, "lr": lr, "seeds": list(seeds),
        "model": "all-MiniLM-L6-v2 + linear head", "data": "camp offline corpus, narrative register, train split",
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.machine()}, "
                  f"{torch.get_num_threads()} threads)",
        "runs": runs,
        "samples_per_s_ratio": round(mean("camp", "samples_per_s") / mean("hf_trainer_pad128", "samples_per_s"), 2),
        "mean_test_macro_f1": {"camp": mean("camp", "test_macro_f1"),
                               "hf_trainer_pad128": mean("hf_trainer_pad128", "test_macro_f1")},
        "std_test_macro_f1": {loop: round(float(np.std([r[loop]["test_macro_f1"] for r in runs])), 4)
                              for loop in ("camp", "hf_trainer_pad128")},
    }


def _scores(m: dict) -> dict:
    return {"macro_f1": round(m["macro_f1"], 4), "accuracy": round(m["accuracy"], 4),
            "per_class_f1": {k: round(v["f1"], 4) for k, v in m["per_class"].items()},
            "confusion_matrix": np.asarray(m["confusion_matrix"]).tolist()}


def registers(steps: int = 190, batch_size: int = 32, lr: float = 2e-4, seeds: tuple[int, ...] = (0, 1)) -> dict:
    """The 2x2 (and the combined row) of domain shift: train on narrative, conversational or both; test on each.

    Three models per training set: TF-IDF + LR, frozen MiniLM + LR (the listener's reader) and MiniLM
    fine-tuned with camp's loop and lesson 02's quick preset (`TrainConfig.quick`: validation checks every 64
    steps, the best weights kept) for `steps` optimizer steps, the same budget for every training set (190 steps
    is 1.5 epochs of the narrative train split), once per seed. Two more fine-tuned runs per
    seed train on narrative alone and on both for twice the steps: does training longer on one register close
    the gap as well as varied data does, at equal budget?
    """
    from camp import baselines, metrics, train, utils
    from camp import data as camp_data

    data = {r: camp_data.load_emotions("offline", verbose=False, register=r)
            for r in (*camp_data.REGISTERS, "both")}
    tests = camp_data.REGISTERS
    out = {"benchmark": "registers", "tests": list(tests),
           "train_sizes": {r: len(d["train"]) for r, d in data.items()},
           "test_sizes": {r: len(data[r]["test"]) for r in tests}, "models": {}}
    for name, method in (("TF-IDF + LR", baselines.tfidf), ("frozen MiniLM + LR", baselines.frozen_encoder)):
        table = baselines.cross_register(method, data, tests)
        out["models"][name] = {a: {b: _scores(m) for b, m in row.items()} for a, row in table.items()}
    runs = [(r, steps) for r in data] + [("narrative", 2 * steps), ("both", 2 * steps)]
    per_seed = {}
    for register, n in runs:
        key = register if n == steps else f"{register}, {n} steps"
        for seed in seeds:
            utils.set_seed(seed)
            model, tokenizer = _fresh_model(seed)
            cfg = train.TrainConfig.quick(lr=lr, batch_size=batch_size, max_steps=n, seed=seed, progress=False)
            start = time.perf_counter()
            model, _ = train.train_classifier(model, tokenizer, data[register], cfg)
            row = {b: _scores(metrics.evaluate(model, tokenizer, data[b]["test"])) for b in tests}
            per_seed.setdefault(key, {})[seed] = {**row, "train_s": round(time.perf_counter() - start, 1)}
    out["models"][f"MiniLM fine-tuned, {steps} steps"] = {
        key: {b: {"macro_f1": round(float(np.mean([r[b]["macro_f1"] for r in runs_.values()])), 4),
                  "macro_f1_per_seed": [r[b]["macro_f1"] for r in runs_.values()]} for b in tests}
        for key, runs_ in per_seed.items()}
    out["fine_tuned_runs"] = per_seed
    out["fine_tuning"] = {"steps": steps, "batch_size": batch_size, "lr": lr, "seeds": list(seeds),
                          "preset": "TrainConfig.quick (lesson 02's quick mode), max_steps as given"}
    out["device"] = f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
    return out


def class_weights(steps: int = 190, batch_size: int = 32, lr: float = 2e-4, seeds: tuple[int, ...] = (0, 1)) -> dict:
    """Lesson 01's balanced class weights, used: MiniLM fine-tuned on both registers with lesson 02's quick preset
    (the same `steps` for each run), once with a plain cross-entropy and once weighted by
    n / (classes * count), per seed. Test macro-F1, accuracy, and each emotion's recall and F1 on both test
    splits together: weights trade the common classes' precision for the rare classes' recall."""
    from camp import data as camp_data
    from camp import metrics, train, utils

    data = camp_data.load_emotions("offline", verbose=False, register="both")
    counts = np.bincount(data["train"]["label"], minlength=len(camp_data.EMOTIONS))
    runs = {}
    for weighted in (False, True):
        for seed in seeds:
            utils.set_seed(seed)
            model, tokenizer = _fresh_model(seed)
            cfg = train.TrainConfig.quick(lr=lr, batch_size=batch_size, max_steps=steps, seed=seed, progress=False,
                                          class_weighted=weighted)
            start = time.perf_counter()
            model, _ = train.train_classifier(model, tokenizer, data, cfg)
            m = metrics.evaluate(model, tokenizer, data["test"])
            runs.setdefault("weighted" if weighted else "plain", {})[f"seed{seed}"] = {
                "macro_f1": round(m["macro_f1"], 4), "accuracy": round(m["accuracy"], 4),
                "recall": {k: round(v["recall"], 4) for k, v in m["per_class"].items()},
                "f1": {k: round(v["f1"], 4) for k, v in m["per_class"].items()},
                "train_s": round(time.perf_counter() - start, 1)}
    mean = {name: {key: round(float(np.mean([r[key] for r in by_seed.values()])), 4)
                   for key in ("macro_f1", "accuracy")} | {
        "recall": {k: round(float(np.mean([r["recall"][k] for r in by_seed.values()])), 4)
                   for k in next(iter(by_seed.values()))["recall"]}} for name, by_seed in runs.items()}
    return {"benchmark": "class_weights", "train_counts": dict(zip(camp_data.EMOTIONS, counts.tolist(), strict=True)),
            "test_size": len(data["test"]), "runs": runs, "mean_over_seeds": mean,
            "fine_tuning": {"steps": steps, "batch_size": batch_size, "lr": lr, "seeds": list(seeds),
                            "preset": "TrainConfig.quick (lesson 02's quick mode), max_steps as given"},
            "machine": machine_info(), "date": time.strftime("%Y-%m-%d")}

