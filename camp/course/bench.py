"""Benchmarks behind the figures in the README: `python -m camp bench classifier | registers | env | policies | rl |
prefs`.

Each choice maps to one function: `classifier`, `registers`, `env` -> `env_speed`, `policies` ->
`scripted_policies`, `rl` -> `rollout_speed`, `prefs` -> `prefs` (lesson 07: every way of learning from
preferences against the reference, at an equal budget of training replies).

`registers`: domain shift between the corpus's two registers (lesson 02). Train on one register, test on both.

`classifier`: camp's loop against Hugging Face Trainer, side by side in one run.

Both runs fine-tune the same encoder from the same initial weights on the same data for the same number of
optimizer steps, batch size and learning-rate schedule. The Trainer run is set up the way the article's sample
code prepares data: every text padded to 128 tokens. camp's run pads each batch to its own longest text and
groups texts of similar length. Throughput is measured over the training steps only (no evaluation inside);
both models are then scored with the same `camp.metrics.evaluate` on the test split.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path

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


def class_weights_table(result: dict) -> str:
    """A `class_weights` result as a Markdown table (lesson 02 quotes it; a test compares): per loss, test macro-F1
    and accuracy (mean over seeds, each seed in brackets) and each emotion's recall (mean over seeds)."""
    seeds = ", ".join(map(str, result["fine_tuning"]["seeds"]))
    emotions = list(result["train_counts"])
    lines = [f"| loss | macro-F1 (seeds {seeds}) | accuracy | " + " | ".join(f"recall: {e}" for e in emotions) + " |",
             "|---|---|---|" + "---|" * len(emotions),
             "| training texts per emotion | | | " + " | ".join(str(result["train_counts"][e]) for e in emotions) + " |"]
    for name, label in (("plain", "plain cross-entropy"), ("weighted", "balanced class weights")):
        mean, runs = result["mean_over_seeds"][name], result["runs"][name].values()
        per_seed = ", ".join(f"{r['macro_f1']:.3f}" for r in runs)
        lines.append(f"| {label} | {mean['macro_f1']:.3f} ({per_seed}) | {mean['accuracy']:.3f} | "
                     + " | ".join(f"{mean['recall'][e]:.3f}" for e in emotions) + " |")
    return "\n".join(lines)


def registers_table(result: dict) -> str:
    """The fine-tuned rows of a `registers` result as a Markdown table (lesson 02 quotes it; a test compares)."""
    tuned = next(v for k, v in result["models"].items() if k.startswith("MiniLM fine-tuned"))
    seeds = ", ".join(map(str, result["fine_tuning"]["seeds"]))
    lines = [f"| MiniLM fine-tuned on | steps | test macro-F1: narrative (seeds {seeds}) | conversational |",
             "|---|---|---|---|"]
    for key, row in tuned.items():
        register, _, steps = key.partition(", ")
        cells = [f"{row[b]['macro_f1']:.3f} ({', '.join(f'{x:.3f}' for x in row[b]['macro_f1_per_seed'])})"
                 for b in result["tests"]]
        lines.append(f"| {register} | {steps.split()[0] if steps else result['fine_tuning']['steps']} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def reward_table(report: dict) -> str:
    """A `train-reward` report (benchmarks/reward_model*.json) as a Markdown table: each scorer's agreement with
    the chosen reply and its bootstrap 95 % interval, on the test split and on the judge checks (lesson 07 and
    the README quote it; a test compares)."""
    sets = [("test", f"test split ({report['test']['length']['n']} pairs)"),
            ("judge_checks", f"judge checks ({report['judge_checks']['length']['n']})")]
    lines = ["| scorer | " + " | ".join(label for _, label in sets) + " |", "|---|" + "---|" * len(sets)]
    for name in report["test"]:
        cells = [f"{report[key][name]['agreement']:.3f} [{report[key][name]['ci95'][0]:.3f}, "
                 f"{report[key][name]['ci95'][1]:.3f}]" for key, _ in sets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


PREF_LABELS = {"reference": "reference", "best_of_4": "best-of-4 (reward model)", "ppo_env": "PPO, environment reward",
               "ppo_rm": "PPO, reward model", "rloo_rm": "RLOO, reward model", "dpo_offline": "DPO, human pairs",
               "dpo_on_policy": "DPO, on-policy pairs"}


def machine_info() -> dict:
    """What a kept benchmark JSON records about the machine it ran on."""
    return {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads()}


def prefs_table(report: dict) -> str:
    """`bench prefs` (benchmarks/prefs.json) as a Markdown table, one row per method and seed: reward model,
    environment reward and judge with the judge's change against the reference [95 % CI], the judge's win rate,
    KL, distinct-2, perplexity, and the training minutes: the sum of the steps' own wall times, which a run
    resumed after a kill reports whole (lesson 07 and the README quote it)."""
    lines = ["| method | seed | reward model | environment | judge | judge change [95 % CI] | win rate | KL | "
             "distinct-2 | perplexity | train min |", "|---|---|" + "---|" * 9]
    for method, by_seed in report["methods"].items():
        for seed, row in by_seed.items():
            change = row["judge_change"]
            t = row["train"]
            cost = f"{t.get('steps_wall_s', t['wall_s']) / 60:.1f}" if t["replies"] else \
                ("sampling only" if method == "best_of_4" else "-")
            if t.get("stopped"):  # a drift guard ended training early; measured at its last checkpoint
                cost += f" (stopped by the drift guard at step {t['stopped']['at_step']} of {t['stopped']['of']})"
            lines.append(f"| {PREF_LABELS.get(method, method)} | {seed.removeprefix('seed')} | {row['reward_model']:+.3f} | "
                         f"{row['reward']:+.3f} | {row['judge']:.3f} | {change['mean']:+.3f} [{change['ci95'][0]:+.3f}, "
                         f"{change['ci95'][1]:+.3f}] | {row['judge_win_rate']:.2f} | {row['kl']:.2f} | "
                         f"{row['distinct_2']:.2f} | {row['perplexity']:.2f} | {cost} |")
    return "\n".join(lines)


def prefs_timing_table(report: dict) -> str:
    """`bench prefs-timing` (benchmarks/prefs_timing.json) as a Markdown table: seconds per training step of each
    method, timed one after another in one process, its ratio to PPO on the environment reward, and the
    minutes the bench's full budget would take at that rate."""
    lines = ["| method | seconds per step | ratio to PPO, environment reward | steps in the budget | minutes for the budget |",
             "|---|---|---|---|---|"]
    for method, row in report["methods"].items():
        lines.append(f"| {PREF_LABELS.get(method, method)} | {row['step_s']:.1f} | {row['ratio_to_ppo_env']:.2f} | "
                     f"{row['budget_steps']} | {row['budget_minutes']:.1f} |")
    return "\n".join(lines)


def prefs_curve_table(report: dict) -> str:
    """The over-optimisation curve of `bench prefs` as a Markdown table: for each seed's reward-model-trained RLOO
    run, the reference (step 0) and the checkpoints along training, with sqrt(KL), the reward model's mean score
    (the proxy it optimised) and the judge's (which it never saw), one reply per held-out person."""
    lines = ["| run | step | sqrt(KL) | reward model | judge |", "|---|---|---|---|---|"]
    for name, points in report["overoptimisation"].items():
        method, seed = name.rsplit("-s", 1)
        for point in points:
            lines.append(f"| {PREF_LABELS.get(method, method)}, seed {seed} | {point['step']} | "
                         f"{max(point['kl'], 0.0) ** 0.5:.2f} | {point['reward_model']:+.3f} | {point['judge']:.3f} |")
    return "\n".join(lines)


def prefs_samples(report: dict) -> str:
    """The sample table of `bench prefs`: one reply per method to the same held-out people (first seed)."""
    methods = list(report["methods"])
    lines = ["| person says | " + " | ".join(PREF_LABELS.get(m, m) for m in methods) + " |",
             "|---|" + "---|" * len(methods)]
    for row in report["samples"]:
        cells = [row["says"], *(row[m] for m in methods)]
        lines.append("| " + " | ".join(c.replace("|", "/").replace("\n", " ") or "(empty)" for c in cells) + " |")
    return "\n".join(lines)


def int8(people: int = 16) -> dict:
    """Lesson 08's question about int8: where does the perplexity go? SmolLM2-135M-Instruct (the reference, no
    adapters), perplexity of a reply a person wrote (lesson 07's corpus) to each of `people` held-out people,
    spread over the six emotions, with one part at a time quantised (`camp.export.int8_sensitivity`)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from camp import data, export, lm, models, rlhf

    path = models.policy_path("auto")
    model, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    _, heldout = rlhf.split_situations(data.load_situations())
    chosen = {pair.situation_id: pair.chosen for pair in data.load_preferences()}
    shown = [p for p in heldout if p.id in chosen][::max(len(heldout) // people, 1)][:people]
    start = time.perf_counter()
    rows = export.int8_sensitivity(model, tokenizer, lm.chat_prompts(tokenizer, [p.opening for p in shown]),
                                   [chosen[p.id] for p in shown])
    parts = [r for r in rows if r["part"] in ("attention", "mlp")]
    return {"benchmark": "int8", "model": "SmolLM2-135M-Instruct", "people": len(shown),
            "quantiser": "torch dynamic int8, per-channel weights, one activation scale per tensor; lm_head in float",
            "rows": rows, "sum_of_single_part_increases": {part: round(sum(r["increase"] for r in parts
                                                                            if r["part"] == part), 3)
                                                            for part in ("attention", "mlp")},
            "largest": sorted(parts, key=lambda r: -r["increase"])[:5], "seconds": round(time.perf_counter() - start, 1),
            "machine": machine_info(), "date": time.strftime("%Y-%m-%d")}


def env_speed(batch: int = 64, steps: int = 30, seed: int = 0) -> dict:
    """Respond-mode throughput: `batch` people, each answered every step, perceived in one listener call."""

    from camp import policies
    from camp.env import BatchedEmpathy
    from camp.listener import Listener

    listener = Listener.default()
    world = BatchedEmpathy(batch, "respond", max_turns=steps + 1, listener=listener)
    said, _ = world.reset(seed=seed)
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


def _naive_rollout(policy, prompts: list[str], new_tokens: int) -> int:
    """The loop many first RL scripts write: one prompt at a time, the whole sequence re-run for every token."""
    generated = 0
    for prompt in prompts:
        ids = policy.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        for _ in range(new_tokens):
            logits = policy.peft(input_ids=ids, use_cache=False).logits[:, -1]  # (1, V), no KV cache
            token = torch.multinomial(torch.softmax(logits / 0.7, -1), 1)
            ids = torch.cat([ids, token], dim=1)
            generated += 1
    return generated


def _naive_update(policy, optimizer, batch: dict, epochs: int) -> None:
    """PPO-shaped update one reply at a time, with logits over every position (no logits_to_keep)."""
    for _ in range(epochs):
        for i in range(len(batch["texts"])):
            q = batch["query_ids"][i][batch["query_mask"][i].bool()]
            r = batch["response_ids"][i][batch["response_mask"][i].bool()]
            ids = torch.cat([q, r])[None]
            logits, values = policy(ids, torch.ones_like(ids))  # (1, T, V) for all T positions
            logp = torch.log_softmax(logits[0, len(q) - 1:-1].float(), -1).gather(-1, r[:, None]).squeeze(-1)
            loss = -logp.mean() + 0.1 * values[0, len(q) - 1:-1].pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def rollout_speed(batch_size: int = 8, new_tokens: int = 32, epochs: int = 2, n_minibatches: int = 2,
                  seed: int = 0) -> dict:
    """Rollout tokens/s and PPO update samples/s: camp's batched pieces against a naive loop, side by side.

    camp: `PolicyWithValue.generate` (one batched `generate` with the KV cache) and `lm.response_logprobs`
    minibatches (logits for the reply positions only). Naive: one prompt at a time, no KV cache; one reply per
    forward and backward, logits for every position. Both generate exactly `new_tokens` per reply (EOS is held
    back), so the work is the same.
    """
    from camp import data, lm, rlhf, utils

    utils.set_seed(seed)
    policy = lm.PolicyWithValue.from_pretrained("auto")
    _, heldout = rlhf.split_situations(data.load_situations())
    prompts = lm.chat_prompts(policy.tokenizer, [p.opening for p in heldout[:batch_size]])
    optimizer = torch.optim.AdamW(policy.trainable_parameters(), lr=1e-5)
    policy.generate(prompts[:2], max_new_tokens=4)  # warm-up
    timings = {}

    start = time.perf_counter()
    batch = policy.generate(prompts, max_new_tokens=new_tokens, min_new_tokens=new_tokens, temperature=0.7,
                            sentences=0)
    timings["camp_rollout_s"] = time.perf_counter() - start
    tokens = int(batch["response_mask"].sum())
    start = time.perf_counter()
    for _ in range(epochs):
        for idx in torch.randperm(batch_size).chunk(n_minibatches):
            mini = {k: v[idx] for k, v in batch.items() if torch.is_tensor(v)}
            logprobs, values, _ = lm.response_logprobs(policy, mini, 0.7)
            loss = -logprobs.mean() + 0.1 * values.pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    timings["camp_update_s"] = time.perf_counter() - start

    start = time.perf_counter()
    with torch.no_grad():
        naive_tokens = _naive_rollout(policy, prompts, new_tokens)
    timings["naive_rollout_s"] = time.perf_counter() - start
    start = time.perf_counter()
    _naive_update(policy, optimizer, batch, epochs)
    timings["naive_update_s"] = time.perf_counter() - start

    camp = {"rollout_tokens_per_s": round(tokens / timings["camp_rollout_s"], 1),
            "update_samples_per_s": round(batch_size * epochs / timings["camp_update_s"], 2)}
    naive = {"rollout_tokens_per_s": round(naive_tokens / timings["naive_rollout_s"], 1),
             "update_samples_per_s": round(batch_size * epochs / timings["naive_update_s"], 2)}
    return {"benchmark": "rl", "model": "SmolLM2-135M-Instruct + LoRA r=8 + value head", "batch_size": batch_size,
            "new_tokens_per_reply": new_tokens, "ppo_epochs": epochs, "n_minibatches": n_minibatches,
            "device": str(policy.device) if policy.device.type != "cpu"
            else f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)",
            "camp": camp, "naive": naive,
            "rollout_speedup": round(camp["rollout_tokens_per_s"] / naive["rollout_tokens_per_s"], 2),
            "update_speedup": round(camp["update_samples_per_s"] / naive["update_samples_per_s"], 2),
            "seconds": {k: round(v, 2) for k, v in timings.items()}}


# ---------------------------------------------------------------------------------------------------- prefs
PREF_METHODS = ("reference", "best_of_4", "ppo_env", "ppo_rm", "rloo_rm", "dpo_offline", "dpo_on_policy")
SAMPLE_PEOPLE = 6  # the sample table: one reply per method for the first held-out person of each emotion


TRAINED_PREF_METHODS = ("ppo_env", "ppo_rm", "rloo_rm", "dpo_offline", "dpo_on_policy")


def _pref_config(method: str, seed: int, budget: int, **overrides):
    """The training config of one bench method: `budget` generated training replies (for offline DPO, human-written
    ones, two per pair), 24 a step, 4 replies per person where the method samples."""
    from camp import dpo, rlhf

    if method not in TRAINED_PREF_METHODS:
        raise ValueError(f"{method!r} does not train; the trained methods are {', '.join(TRAINED_PREF_METHODS)}")
    if method.startswith("dpo"):
        source = method.removeprefix("dpo_")
        # offline: pairs per step (two human replies each); on-policy: sampled replies, 4 per person
        batch = max(min(24, budget // 2), 1) if source == "offline" else max(min(24, budget) // 4 * 4, 4)
        per_step = 2 * batch if source == "offline" else batch  # DPOConfig.replies_per_step
        return dpo.DPOConfig(**{"source": source, "seed": seed, "progress": False, "batch_size": batch,
                                "steps": max(budget // per_step, 1), **overrides})
    batch = max(min(rlhf.RLHFConfig.batch_size, budget) // 4 * 4, 4)  # 4 replies per person, 2 minibatches
    return rlhf.RLHFConfig(**{"algorithm": method.split("_")[0], "seed": seed, "progress": False,
                              "batch_size": batch, "steps": max(budget // batch, 1), **overrides})


def prefs_timing(reward_model: str, steps: int = 3, budget: int = 480, seed: int = 0,
                 methods: tuple[str, ...] = TRAINED_PREF_METHODS) -> dict:
    """Wall time per training step of each trained bench method, measured one after another in one process, so
    the ratios compare like with like on a noisy machine. Each method trains `steps` steps of its bench config
    from the reference; the first step (warm-up) is left out of the mean. `budget_minutes` scales the mean to the
    bench's full budget; `ratio_to_ppo_env` is against lesson 06's recipe (PPO on the environment reward).
    The load average before and after is recorded: run it while nothing else does."""
    from camp import data, dpo, env, lm, rlhf, utils
    from camp.reward_model import RewardModel

    if steps < 2:
        raise ValueError(f"steps={steps}: the first step is warm-up and is dropped, so time at least 2")
    rm = RewardModel.load(reward_model)
    train_people, heldout = rlhf.split_situations(data.load_situations())
    pairs = dpo.training_pairs(data.load_preferences("train"), heldout)
    load_before, rows = os.getloadavg(), {}
    for method in methods:
        utils.set_seed(seed)
        policy = lm.PolicyWithValue.from_pretrained("auto")
        cfg = _pref_config(method, seed, budget, steps=steps)
        full_steps = _pref_config(method, seed, budget).steps
        if method.startswith("dpo"):
            _, history = dpo.train_dpo(policy, policy.tokenizer, cfg, pairs=pairs, situations=train_people,
                                       score_fn=rm)
        else:
            _, history = rlhf.train_rlhf(policy, policy.tokenizer, train_people, cfg,
                                         score_fn=env.ReplyScorer() if method == "ppo_env" else rm)
        timed = [r["time/step_s"] for r in history[1:]]
        rows[method] = {"step_s": round(float(np.mean(timed)), 2), "steps_timed": len(timed),
                        "budget_steps": full_steps, "budget_minutes": round(float(np.mean(timed)) * full_steps / 60, 1)}
    base = rows.get("ppo_env", {}).get("step_s")
    for row in rows.values():
        row["ratio_to_ppo_env"] = round(row["step_s"] / base, 2) if base else None
    return {"benchmark": "prefs_timing", "budget_replies": budget, "seed": seed, "methods": rows,
            "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
            "machine": machine_info(), "date": time.strftime("%Y-%m-%d")}


def _pref_run(method: str, seed: int, budget: int, rm, eval_samples: int, curve_every: int,
              people: int | None = None, work: Path | None = None) -> dict:
    """Train (or not) one method from the reference policy with `budget` training replies; measure it on the 72
    held-out people. Returns the evaluation plus training wall time, CPU time and history.

    With `work`, training checkpoints every step to `work/<method>-s<seed>.ckpt/` (and the over-optimisation
    curve's adapters beside them), so a bench killed mid-run continues from its last step. The training wall
    time is then the sum of the steps' own times, the same whether or not the run was interrupted."""
    import shutil

    from safetensors.torch import load_file, save_file

    from camp import data, dpo, env, lm, rlhf, utils

    utils.set_seed(seed)
    policy = lm.PolicyWithValue.from_pretrained("auto")
    train_people, heldout = rlhf.split_situations(data.load_situations())
    heldout = heldout[:people]
    measure = dict(seed=seed, samples_per_person=eval_samples, scorers={"reward_model": rm})
    history, curve, train = [], [], {"wall_s": 0.0, "cpu_s": 0.0, "replies": 0, "steps": 0}
    folder = work / f"{method}-s{seed}.ckpt" if work else None
    saved = {"checkpoint_dir": str(folder), "checkpoint_every": 1} if folder else {}
    resume = bool(folder) and (folder / "checkpoint.safetensors").is_file()
    wall, cpu = time.perf_counter(), time.process_time()
    if method in ("ppo_env", "ppo_rm", "rloo_rm"):
        cfg = _pref_config(method, seed, budget, **saved)
        kept = {}

        def keep(step: int, record: dict) -> None:  # adapters along the way, for the over-optimisation curve
            if curve_every and (step % curve_every == 0 or step == cfg.steps):
                kept[step] = policy.adapter_state()
                if folder:  # kept on disk too, for a bench that continues after a kill
                    save_file(kept[step], folder / f"curve-{step}.safetensors.tmp")
                    os.replace(folder / f"curve-{step}.safetensors.tmp", folder / f"curve-{step}.safetensors")

        policy, history, stopped = _guarded(lambda c, r: rlhf.train_rlhf(
            policy, policy.tokenizer, train_people, c, resume=r,
            score_fn=env.ReplyScorer() if method == "ppo_env" else rm, callback=keep), cfg, resume, folder)
        if folder:
            kept = {int(f.stem.split("-")[1].split(".")[0]): load_file(f) for f in folder.glob("curve-*.safetensors")}
        steps = len(history)
        train.update(replies=steps * cfg.batch_size, steps=steps, config=cfg.__dict__.copy(), **stopped)
    elif method.startswith("dpo"):
        cfg = _pref_config(method, seed, budget, **saved)
        pairs = dpo.training_pairs(data.load_preferences("train"), heldout)
        policy, history, stopped = _guarded(lambda c, r: dpo.train_dpo(
            policy, policy.tokenizer, c, pairs=pairs, situations=train_people, score_fn=rm, resume=r),
            cfg, resume, folder)
        steps = len(history)
        train.update(replies=steps * cfg.replies_per_step(), steps=steps, config=cfg.__dict__.copy(), **stopped)
        kept = {}
    else:
        kept = {}
    train.update(wall_s=round(time.perf_counter() - wall, 1), cpu_s=round(time.process_time() - cpu, 1))
    if history:  # resumption-proof: the steps' own times (setup aside)
        train.update(steps_wall_s=round(sum(r["time/step_s"] for r in history), 1),
                     resumed=resume)
    wall, cpu = time.perf_counter(), time.process_time()
    if method == "best_of_4":
        result = rlhf.evaluate_replies(policy, policy.tokenizer, heldout, reference=True, best_of=4, best_by=rm,
                                       **measure)
    else:
        result = rlhf.evaluate_replies(policy, policy.tokenizer, heldout, reference=method == "reference", **measure)
    result["eval_wall_s"], result["eval_cpu_s"] = round(time.perf_counter() - wall, 1), round(time.process_time() - cpu, 1)
    for step, weights in sorted(kept.items()):  # the over-optimisation curve: one sample per person is enough
        policy.load_adapter_state(weights)
        point = rlhf.evaluate_replies(policy, policy.tokenizer, heldout, seed=seed, samples_per_person=1,
                                      scorers={"reward_model": rm})
        curve.append({"step": step, **{k: point[k] for k in ("reward_model", "judge", "reward", "kl", "distinct_2")},
                      "judge_scores": point["judge_scores"], "reward_model_scores": point["reward_model_scores"]})
    if folder and folder.is_dir():
        shutil.rmtree(folder)  # the run is done; its JSON keeps everything the bench reports
    return {"method": method, "seed": seed, "train": train, "history": history, "curve": curve, **result}


def _guarded(train, cfg, resume: bool, folder: Path | None):
    """Run `train(cfg, resume)`; if a drift guard stops it ("drifted too far"), measure the policy at its last
    checkpoint instead of losing the run: that is what a learner would be left with. Returns (policy, history,
    {"stopped": {...}} or {})."""
    import dataclasses

    from camp import checkpoint as ckpt

    try:
        policy, history = train(cfg, resume)
        return policy, history, {}
    except RuntimeError as err:
        if "drifted too far" not in str(err) or not folder or not (folder / ckpt.FILE_NAME).is_file():
            raise
        last = ckpt.load_checkpoint(folder / ckpt.FILE_NAME)[1]["progress"]["step"]
        policy, history = train(dataclasses.replace(cfg, steps=last), True)  # reloads step `last`, trains nothing
        return policy, history, {"stopped": {"at_step": last + 1, "of": cfg.steps, "measured_at_step": last,
                                             "reason": str(err)}}


class BenchPending(RuntimeError):
    """Some (method, seed) of `prefs` is still being run by another process sharing the work folder."""


def _claim(lock: Path) -> bool:
    """Take `lock` for this process; False while a live process holds it. A lock left by a killed process (its
    pid gone) is taken over, so a bench killed mid-run continues from its checkpoint."""
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                os.kill(int(lock.read_text() or 0), 0)
                return False  # its holder is alive
            except (ProcessLookupError, ValueError):
                lock.unlink(missing_ok=True)  # stale: its holder died
                continue
            except PermissionError:
                return False
        with os.fdopen(fd, "w") as fh:
            fh.write(str(os.getpid()))
        return True
    return False


def _first_reply_point(reference: dict) -> dict:
    """Step 0 of an over-optimisation curve: the reference scored like the checkpoints, on the first of its
    replies to each held-out person (the curve's points sample one reply per person)."""
    k = reference["samples_per_person"]
    return {"step": 0, "kl": 0.0, **{key: round(float(np.mean(reference[scores][::k])), 4) for key, scores in
                                     (("reward_model", "reward_model_scores"), ("judge", "judge_scores"),
                                      ("reward", "scores"))}}


def _top_opening(replies: list[str], words: int = 2) -> dict:
    """The commonest first `words` words of the replies and their share: a policy that found one phrasing the
    reward model likes opens most replies with it."""
    from collections import Counter

    openings = Counter(" ".join(r.split()[:words]).lower() for r in replies)
    text, count = openings.most_common(1)[0]
    return {"words": text, "share": round(count / len(replies), 4)}


def _spearman(a, b) -> dict:
    """Spearman's rank correlation of two score lists, with its p-value (scipy)."""
    from scipy.stats import spearmanr

    result = spearmanr(a, b)
    return {"rho": round(float(result.statistic), 4), "p": round(float(result.pvalue), 4), "n": len(a)}


def prefs(out: str, reward_model: str, budget: int = 480, seeds: tuple[int, ...] = (0, 1), eval_samples: int = 2,
          methods: tuple[str, ...] = PREF_METHODS, curve_every: int = 4, people: int | None = None) -> dict:
    """Lesson 07's comparison. Each (method, seed) is trained from the same reference policy on `budget` training
    replies (sampled ones; for offline DPO the human-written ones, two per pair) and measured on the 72 held-out
    people of `camp.rlhf.split_situations` with `eval_samples` replies each, against the reference's replies for
    the same seed (paired 95 % intervals). Each (method, seed) is saved to `out/<method>-s<seed>.json` as it
    finishes and reused when the bench runs again, so a long bench can continue after an interruption.
    `reward_model` is a folder saved by `train-reward` (DIR/model); its report.json is quoted when present.
    `people` measures only the first N held-out people (tests).
    """
    from pathlib import Path

    from camp import data, rlhf, utils
    from camp.reward_model import RewardModel

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    rm = RewardModel.load(reward_model)
    runs: dict[str, dict[int, dict]] = {}
    elsewhere = []  # (method, seed) another bench process is running: two can share one work folder
    for seed in seeds:
        for method in ("reference", *[m for m in methods if m != "reference"]):
            path = folder / f"{method}-s{seed}.json"
            if not path.is_file():
                if not _claim(folder / f"{method}-s{seed}.lock"):
                    elsewhere.append(f"{method}-s{seed}")
                    continue
                try:
                    run = _pref_run(method, seed, budget, rm, eval_samples,
                                    curve_every if method == "rloo_rm" else 0, people, folder)
                    utils.atomic_write_bytes(path, json.dumps(run).encode())
                finally:
                    (folder / f"{method}-s{seed}.lock").unlink(missing_ok=True)
            run = json.loads(path.read_text())
            if run["history"] and "steps_wall_s" not in run["train"]:  # saved before steps_wall_s existed
                run["train"]["steps_wall_s"] = round(sum(r["time/step_s"] for r in run["history"]), 1)
            runs.setdefault(method, {})[seed] = run
    if elsewhere:
        raise BenchPending(f"{', '.join(elsewhere)} are being run by another bench process (see the .lock files in "
                           f"{folder}); everything else is saved. Run the same command again once they finish to "
                           "build the report.")
    table = {}
    for method, by_seed in runs.items():
        row = {}
        for seed, run in by_seed.items():
            ref = runs["reference"][seed]
            change = rlhf.compare(ref, run, seed=seed)
            rm_change = rlhf.compare({**ref, "scores": ref["reward_model_scores"]},
                                     {**run, "scores": run["reward_model_scores"]}, seed=seed)["reward"]
            row[f"seed{seed}"] = {
                **{k: round(run[k], 4) for k in ("reward_model", "reward", "judge", "kl", "distinct_2",
                                                 "perplexity", "length")},
                "judge_change": change["judge"], "reward_change": change["reward"], "reward_model_change": rm_change,
                "judge_win_rate": round(change["judge_win_rate"], 4), "top_opening": _top_opening(run["replies"]),
                "train": run["train"],
                "eval_wall_s": run["eval_wall_s"], "eval_cpu_s": run["eval_cpu_s"]}
        table[method] = row
    reference = runs["reference"][seeds[0]]
    k = reference["samples_per_person"]
    _, heldout = rlhf.split_situations(data.load_situations())
    heldout = heldout[:people]
    shown = [next(i for i, p in enumerate(heldout) if p.emotion == e) for e in dict.fromkeys(p.emotion for p in heldout)]
    samples = [{"emotion": heldout[i].emotion, "says": heldout[i].opening,
                **{m: runs[m][seeds[0]]["replies"][i * k] for m in runs}} for i in shown[:SAMPLE_PEOPLE]]
    report_path = Path(reward_model).parent / "report.json"
    weights = Path(reward_model) / "model.safetensors"
    agreement = {}  # on the reference's own samples: does each scorer rank replies as the judge does?
    for seed in seeds:
        ref = runs["reference"][seed]
        judged = ref["judge_scores"]
        agreement[f"seed{seed}"] = {name: _spearman(ref[key], judged) for name, key in
                                    (("reward_model", "reward_model_scores"), ("environment", "scores"))}
    return {"benchmark": "prefs", "budget_replies": budget, "seeds": list(seeds), "eval_samples": eval_samples,
            "heldout_people": len(reference["replies"]) // k, "reward_model": str(reward_model),
            "reward_model_sha256": hashlib.sha256(weights.read_bytes()).hexdigest() if weights.is_file() else None,
            "reward_model_command": json.loads(report_path.read_text()).get("command") if report_path.is_file()
            else None, "methods": table, "samples": samples,
            "spearman_with_judge_on_reference_samples": agreement,
            "overoptimisation": {f"rloo_rm-s{s}": [_first_reply_point(runs["reference"][s]), *runs["rloo_rm"][s]["curve"]]
                                 for s in seeds if "rloo_rm" in runs},
            "machine": machine_info(),
            "date": time.strftime("%Y-%m-%d")}


def main(args: argparse.Namespace) -> int:
    if args.what == "prefs":
        if not args.reward_model:
            raise SystemExit("bench prefs needs --reward-model DIR/model (train one: python -m camp train-reward)")
        try:
            result = prefs(args.work or "runs/bench-prefs", args.reward_model, budget=args.budget,
                           seeds=tuple(args.seeds or (0, 1)), eval_samples=args.eval_samples,
                           methods=tuple(args.methods or PREF_METHODS))
        except BenchPending as err:
            print(err)
            return 3
    elif args.what == "prefs-timing":
        if not args.reward_model:
            raise SystemExit("bench prefs-timing needs --reward-model DIR/model (train one: python -m camp "
                             "train-reward)")
        result = prefs_timing(args.reward_model, steps=args.steps or 3, budget=args.budget,
                              methods=tuple(args.methods or TRAINED_PREF_METHODS))
    elif args.what == "int8":
        result = int8()
    elif args.what == "env":
        result = env_speed()
    elif args.what == "policies":
        result = scripted_policies()
    elif args.what == "rl":
        result = rollout_speed()
    elif args.what == "class-weights":
        result = class_weights(**({"steps": args.steps} if args.steps else {}), batch_size=args.batch_size,
                               **({"lr": args.lr} if args.lr else {}), seeds=tuple(args.seeds or (0, 1)))
    elif args.what == "registers":
        result = registers(**({"steps": args.steps} if args.steps else {}), batch_size=args.batch_size,
                           **({"lr": args.lr} if args.lr else {}), seeds=tuple(args.seeds or (0, 1)))
    else:
        result = classifier(steps=args.steps or 400, batch_size=args.batch_size, lr=args.lr or 1e-4,
                            seeds=tuple(args.seeds or (0, 1, 2)))
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 0
