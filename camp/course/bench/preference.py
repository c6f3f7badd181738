"""`bench prefs` and `bench prefs-timing` (lesson 07): every way of learning from preferences trained from the same
reference at an equal budget of training replies, measured against it on the held-out people; the locks that let
two bench processes share one work folder; the report. (The module is not called `prefs`: that name is the bench
function, `bench.prefs`.)"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from camp.course.bench.machine import machine_info

PREF_METHODS = ("reference", "best_of_4", "ppo_env", "ppo_rm", "rloo_rm", "dpo_offline", "dpo_on_policy")
SAMPLE_PEOPLE = 6  # the sample table: one reply per method for the first held-out person of each emotion
TRAINED_PREF_METHODS = ("ppo_env", "ppo_rm", "rloo_rm", "dpo_offline", "dpo_on_policy")


def pref_config(method: str, seed: int, budget: int, **overrides):
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
        cfg = pref_config(method, seed, budget, steps=steps)
        full_steps = pref_config(method, seed, budget).steps
        if method.startswith("dpo"):
            _, history = dpo.train_dpo(policy, train_people if cfg.source == "on_policy" else pairs, cfg,
                                       scorer=rm)
        else:
            _, history = rlhf.train_rlhf(policy, train_people, cfg,
                                         scorer=env.ReplyScorer() if method == "ppo_env" else rm)
        timed = [r["time/step_s"] for r in history[1:]]
        rows[method] = {"step_s": round(float(np.mean(timed)), 2), "steps_timed": len(timed),
                        "budget_steps": full_steps, "budget_minutes": round(float(np.mean(timed)) * full_steps / 60, 1)}
    base = rows.get("ppo_env", {}).get("step_s")
    for row in rows.values():
        row["ratio_to_ppo_env"] = round(row["step_s"] / base, 2) if base else None
    return {"benchmark": "prefs_timing", "budget_replies": budget, "seed": seed, "methods": rows,
            "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
            "machine": machine_info(), "date": time.strftime("%Y-%m-%d")}


def pref_run(method: str, seed: int, budget: int, rm, eval_samples: int, curve_every: int,
             people: int | None = None, work: Path | None = None) -> dict:
    """Train (or not) one method from the reference policy with `budget` training replies; measure it on the 72
    held-out people. Returns the evaluation plus training wall time, CPU time and history.

    With `work`, training checkpoints every step to `work/<method>-s<seed>.ckpt/` (and the over-optimisation
    curve's adapters beside them), so a bench killed mid-run continues from its last step. The training wall
    time is then the sum of the steps' own times, the same whether or not the run was interrupted."""
    import shutil

    from camp import data, evaluate, lm, rlhf, utils

    utils.set_seed(seed)
    policy = lm.PolicyWithValue.from_pretrained("auto")
    train_people, heldout = rlhf.split_situations(data.load_situations())
    heldout = heldout[:people]
    measure = dict(seed=seed, samples_per_person=eval_samples, scorers={"reward_model": rm})
    history, kept, train = [], {}, {"wall_s": 0.0, "cpu_s": 0.0, "replies": 0, "steps": 0}
    folder = work / f"{method}-s{seed}.ckpt" if work else None
    saved = {"checkpoint_dir": str(folder), "checkpoint_every": 1} if folder else {}
    resume = bool(folder) and (folder / "checkpoint.safetensors").is_file()
    wall, cpu = time.perf_counter(), time.process_time()
    if method in TRAINED_PREF_METHODS:  # the reference and best-of-4 train nothing
        cfg = pref_config(method, seed, budget, **saved)
        if method.startswith("dpo"):
            policy, history, stopped = _train_dpo(policy, cfg, rm, train_people, heldout, resume, folder)
            replies = len(history) * cfg.replies_per_step()
        else:
            policy, history, stopped, kept = _train_rl(method, policy, cfg, rm, train_people, curve_every, resume,
                                                       folder)
            replies = len(history) * cfg.batch_size
        train.update(replies=replies, steps=len(history), config=cfg.__dict__.copy(), **stopped)
    train.update(wall_s=round(time.perf_counter() - wall, 1), cpu_s=round(time.process_time() - cpu, 1))
    if history:  # resumption-proof: the steps' own times (setup aside)
        train.update(steps_wall_s=round(sum(r["time/step_s"] for r in history), 1),
                     resumed=resume)
    wall, cpu = time.perf_counter(), time.process_time()
    if method == "best_of_4":
        result = evaluate.evaluate_replies(policy, heldout, reference=True, best_of=4, best_of_scorer=rm,
                                           **measure)
    else:
        result = evaluate.evaluate_replies(policy, heldout, reference=method == "reference", **measure)
    result["eval_wall_s"], result["eval_cpu_s"] = round(time.perf_counter() - wall, 1), round(time.process_time() - cpu, 1)
    curve = _curve(policy, heldout, kept, seed, rm)
    if folder and folder.is_dir():
        shutil.rmtree(folder)  # the run is done; its JSON keeps everything the bench reports
    return {"method": method, "seed": seed, "train": train, "history": history, "curve": curve, **result}


def _train_rl(method: str, policy, cfg, rm, train_people: list, curve_every: int, resume: bool,
              folder: Path | None) -> tuple:
    """PPO or RLOO of `pref_run`, on the environment's reward or the reward model's. Every `curve_every` steps (0:
    never) the adapters are kept for the over-optimisation curve. Returns (policy, history, {"stopped": ...} or {},
    the kept adapters by step)."""
    from safetensors.torch import load_file, save_file

    from camp import env, rlhf

    kept = {}

    def keep(step: int, record: dict) -> None:  # adapters along the way, for the over-optimisation curve
        if curve_every and (step % curve_every == 0 or step == cfg.steps):
            kept[step] = policy.adapter_state()
            if folder:  # kept on disk too, for a bench that continues after a kill (step 1 comes before any
                folder.mkdir(parents=True, exist_ok=True)  # checkpoint has made the folder)
                save_file(kept[step], folder / f"curve-{step}.safetensors.tmp")
                os.replace(folder / f"curve-{step}.safetensors.tmp", folder / f"curve-{step}.safetensors")

    policy, history, stopped = guarded(lambda c, r: rlhf.train_rlhf(
        policy, train_people, c, resume=r,
        scorer=env.ReplyScorer() if method == "ppo_env" else rm, callback=keep), cfg, resume, folder)
    if folder:
        kept = {int(f.stem.split("-")[1].split(".")[0]): load_file(f) for f in folder.glob("curve-*.safetensors")}
    return policy, history, stopped, kept


def _train_dpo(policy, cfg, rm, train_people: list, heldout: list, resume: bool, folder: Path | None) -> tuple:
    """DPO of `pref_run`, on the human pairs (offline) or the policy's own samples ranked by the reward model
    (on-policy). Returns (policy, history, {"stopped": ...} or {})."""
    from camp import data, dpo

    pairs = dpo.training_pairs(data.load_preferences("train"), heldout)
    return guarded(lambda c, r: dpo.train_dpo(
        policy, train_people if c.source == "on_policy" else pairs, c, scorer=rm, resume=r),
        cfg, resume, folder)


def _curve(policy, heldout: list, kept: dict, seed: int, rm) -> list[dict]:
    """The over-optimisation curve: the policy with each kept step's adapters, one sample per person (enough)."""
    from camp import evaluate

    curve = []
    for step, weights in sorted(kept.items()):
        policy.load_adapter_state(weights)
        point = evaluate.evaluate_replies(policy, heldout, seed=seed, samples_per_person=1,
                                      scorers={"reward_model": rm})
        curve.append({"step": step, **{k: point[k] for k in ("reward_model", "judge", "reward", "kl", "distinct_2")},
                      "judge_scores": point["judge_scores"], "reward_model_scores": point["reward_model_scores"]})
    return curve


def guarded(train, cfg, resume: bool, folder: Path | None):
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


def claim(lock: Path) -> bool:
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


def first_reply_point(reference: dict) -> dict:
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
    from camp.reward_model import RewardModel

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    rm = RewardModel.load(reward_model)
    runs = _finished_runs(folder, rm, budget, seeds, eval_samples, methods, curve_every, people)
    reference = runs["reference"][seeds[0]]
    k = reference["samples_per_person"]
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
            else None, "methods": _method_rows(runs), "samples": _samples(runs, seeds[0], people),
            "spearman_with_judge_on_reference_samples": agreement,
            "overoptimisation": {f"rloo_rm-s{s}": [first_reply_point(runs["reference"][s]), *runs["rloo_rm"][s]["curve"]]
                                 for s in seeds if "rloo_rm" in runs},
            "machine": machine_info(),
            "date": time.strftime("%Y-%m-%d")}


def _finished_runs(folder: Path, rm, budget: int, seeds: tuple[int, ...], eval_samples: int,
                   methods: tuple[str, ...], curve_every: int, people: int | None) -> dict[str, dict[int, dict]]:
    """Every (method, seed) of `prefs`, the reference first, by method then seed: read from `folder` where saved
    there, else run (under a lock) and saved. Raises BenchPending, once all else is saved, when another process
    holds some."""
    from camp import utils

    runs: dict[str, dict[int, dict]] = {}
    elsewhere = []  # (method, seed) another bench process is running: two can share one work folder
    for seed in seeds:
        for method in ("reference", *[m for m in methods if m != "reference"]):
            path = folder / f"{method}-s{seed}.json"
            if not path.is_file():
                if not claim(folder / f"{method}-s{seed}.lock"):
                    elsewhere.append(f"{method}-s{seed}")
                    continue
                try:
                    run = pref_run(method, seed, budget, rm, eval_samples,
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
    return runs


def _method_rows(runs: dict[str, dict[int, dict]]) -> dict:
    """The report's row of each (method, seed): its scores, and its changes against the same seed's reference."""
    from camp import evaluate

    table = {}
    for method, by_seed in runs.items():
        row = {}
        for seed, run in by_seed.items():
            ref = runs["reference"][seed]
            change = evaluate.compare(ref, run, seed=seed)
            rm_change = evaluate.compare({**ref, "scores": ref["reward_model_scores"]},
                                     {**run, "scores": run["reward_model_scores"]}, seed=seed)["reward"]
            row[f"seed{seed}"] = {
                **{k: round(run[k], 4) for k in ("reward_model", "reward", "judge", "kl", "distinct_2",
                                                 "perplexity", "length")},
                "judge_change": change["judge"], "reward_change": change["reward"], "reward_model_change": rm_change,
                "judge_win_rate": round(change["judge_win_rate"], 4), "top_opening": _top_opening(run["replies"]),
                "train": run["train"],
                "eval_wall_s": run["eval_wall_s"], "eval_cpu_s": run["eval_cpu_s"]}
        table[method] = row
    return table


def _samples(runs: dict[str, dict[int, dict]], seed: int, people: int | None) -> list[dict]:
    """The sample table's rows: each method's first reply (of `seed`'s run) to the first held-out person of each
    emotion, at most SAMPLE_PEOPLE of them."""
    from camp import data, rlhf

    k = runs["reference"][seed]["samples_per_person"]
    _, heldout = rlhf.split_situations(data.load_situations())
    heldout = heldout[:people]
    shown = [next(i for i, p in enumerate(heldout) if p.emotion == e) for e in dict.fromkeys(p.emotion for p in heldout)]
    return [{"emotion": heldout[i].emotion, "says": heldout[i].opening,
             **{m: runs[m][seed]["replies"][i * k] for m in runs}} for i in shown[:SAMPLE_PEOPLE]]
