"""The benchmarks' Markdown tables, which lessons 02 and 07 and the README quote (tests compare them figure for
figure with the kept JSON under benchmarks/)."""

from __future__ import annotations

PREF_LABELS = {"reference": "reference", "best_of_4": "best-of-4 (reward model)", "ppo_env": "PPO, environment reward",
               "ppo_rm": "PPO, reward model", "rloo_rm": "RLOO, reward model", "dpo_offline": "DPO, human pairs",
               "dpo_on_policy": "DPO, on-policy pairs"}


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
