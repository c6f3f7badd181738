"""The training commands of `python -m camp`: train-classifier, train-rlhf, train-dpo and train-reward, each with
its flags (`add_parsers`) and what it runs. Models load inside the commands, so building the parser stays quick."""

from __future__ import annotations

import argparse
from pathlib import Path

from camp.utils import CampError


def _check_paths(args: argparse.Namespace) -> None:
    """Fail before any model loads when --model names a missing folder or --resume finds no checkpoint."""
    from camp import checkpoint

    if args.model.startswith((".", "/", "~")) and not Path(args.model).expanduser().is_dir():
        raise CampError(f"--model {args.model}: no such folder. Pass a folder written by save_pretrained, "
                        "a hub name, or auto.")
    saved = Path(args.out) / checkpoint.FILE_NAME
    if args.resume and not saved.is_file():
        raise CampError(f"--resume: no checkpoint at {saved}. Pass --out the folder of the run to continue, "
                        "or leave out --resume to start afresh.")


def _reward_scorer(spec: str | None):
    """The scorer a --reward or --reward-model flag names: "env" (the environment's reward) or "model:DIR" / DIR
    (a reward model saved by train-reward). Fails before minutes of training on a folder that is not one."""
    from camp import env

    if spec in (None, "env"):
        return env.ReplyScorer()
    folder = Path(spec.removeprefix("model:")).expanduser()
    if not (folder / "config.json").is_file():
        raise CampError(f"--reward {spec}: {folder} is not a saved reward model (no config.json). Train one with "
                        "`python -m camp train-reward --out DIR` and pass model:DIR/model, or pass env.")
    from camp.reward_model import RewardModel

    return RewardModel.load(folder)


def _train_classifier(args: argparse.Namespace) -> int:
    import json

    from accelerate import PartialState

    from camp import data, metrics, models, train, utils

    _check_paths(args)
    utils.set_seed(args.seed)
    emotions = data.load_emotions(args.source, verbose=False)
    for split, limit in {"train": args.train_limit, "validation": args.eval_limit, "test": args.eval_limit}.items():
        if limit:
            emotions[split] = emotions[split].select(range(min(limit, len(emotions[split]))))
    model, tokenizer = models.load_encoder(args.model, num_labels=len(data.EMOTIONS))
    preset = train.TrainConfig.quick if args.quick else train.TrainConfig
    cfg = preset(checkpoint_dir=args.out, progress=not args.no_progress, seed=args.seed,
                 **_overrides(args, CLASSIFIER_NUMBERS))
    model, history = train.train_classifier(model, tokenizer, emotions, cfg, resume=args.resume)
    if PartialState().is_main_process:
        result = {split: {k: v for k, v in metrics.evaluate(model, tokenizer, emotions[split]).items()
                          if k in ("accuracy", "macro_f1")} for split in ("validation", "test")}
        result.update(history=history, processes=PartialState().num_processes,
                      config={k: v for k, v in vars(args).items() if k != "func"})
        utils.atomic_write_bytes(Path(args.out) / "metrics.json", json.dumps(result, indent=2).encode())
        if args.save:
            model.save_pretrained(Path(args.out) / "model")
            tokenizer.save_pretrained(Path(args.out) / "model")
        print(json.dumps({k: result[k] for k in ("validation", "test", "processes")}))
    return 0


def _train_rlhf(args: argparse.Namespace) -> int:
    import json

    from accelerate import PartialState

    from camp import data, evaluate, lm, loop, rlhf, utils

    # Before minutes of model loading. cpu=True as train_rlhf's Accelerator has it on a CPU machine: Accelerate's
    # state is set once per process, and without it `accelerate launch` processes would each count themselves one.
    loop.require_one_process(PartialState(cpu=utils.get_device("auto").type == "cpu").num_processes)
    _check_paths(args)
    scorer = _reward_scorer(args.reward)  # a wrong folder fails before the policy loads
    utils.set_seed(args.seed)
    policy = lm.PolicyWithValue.from_pretrained(args.model)
    train_people, heldout = rlhf.split_situations(data.load_situations())
    preset = rlhf.RLHFConfig.quick if args.quick else rlhf.RLHFConfig
    overrides = _overrides(args, RLHF_NUMBERS)
    if args.no_kl:
        overrides.update(kl_coef=0.0, adaptive_kl=False)
    cfg = preset(checkpoint_dir=args.out, seed=args.seed, progress=not args.no_progress,
                 algorithm=args.algorithm, **overrides)
    if args.eval and PartialState().is_main_process:
        before = evaluate.evaluate_replies(policy, heldout, max_new_tokens=cfg.max_new_tokens,
                                       reference=True, samples_per_person=args.eval_samples)
    policy, history = rlhf.train_rlhf(policy, train_people, cfg, scorer=scorer, resume=args.resume)
    if PartialState().is_main_process:
        utils.atomic_write_bytes(Path(args.out) / "history.json", json.dumps(history, indent=2).encode())
        if args.eval:
            after = evaluate.evaluate_replies(policy, heldout, max_new_tokens=cfg.max_new_tokens,
                                          samples_per_person=args.eval_samples)
            result = {"before": before, "after": after, "change": evaluate.compare(before, after)}
            utils.atomic_write_bytes(Path(args.out) / "eval.json", json.dumps(result, indent=2).encode())
            print(json.dumps({**{k: {m: round(v, 3) for m, v in result[k].items() if isinstance(v, float)}
                                 for k in ("before", "after")}, "change": result["change"]}))
        policy.save_adapters(Path(args.out) / "adapters")
        print(json.dumps(history[-1]))
    return 0


def _train_dpo(args: argparse.Namespace) -> int:
    import json

    from camp import data, dpo, evaluate, lm, rlhf, utils

    _check_paths(args)
    if args.source == "on_policy" and not args.reward_model:
        raise CampError("--source on_policy needs --reward-model DIR (a folder saved by train-reward) to rank the "
                        "samples")
    scorer = _reward_scorer(args.reward_model) if args.source == "on_policy" else None
    utils.set_seed(args.seed)
    policy = lm.PolicyWithValue.from_pretrained(args.model)
    train_people, heldout = rlhf.split_situations(data.load_situations())
    preset = dpo.DPOConfig.quick if args.quick else dpo.DPOConfig
    cfg = preset(checkpoint_dir=args.out, seed=args.seed, progress=not args.no_progress, source=args.source,
                 **_overrides(args, DPO_NUMBERS))
    pairs = dpo.training_pairs(data.load_preferences("train"), heldout)
    if args.eval:
        before = evaluate.evaluate_replies(policy, heldout, reference=True,
                                       samples_per_person=args.eval_samples)
    policy, history = dpo.train_dpo(policy, pairs if args.source == "offline" else train_people, cfg,
                                    scorer=scorer, resume=args.resume)
    utils.atomic_write_bytes(Path(args.out) / "history.json", json.dumps(history, indent=2).encode())
    if args.eval:
        after = evaluate.evaluate_replies(policy, heldout, samples_per_person=args.eval_samples)
        result = {"before": before, "after": after, "change": evaluate.compare(before, after)}
        utils.atomic_write_bytes(Path(args.out) / "eval.json", json.dumps(result, indent=2).encode())
        print(json.dumps({"change": result["change"]}))
    policy.save_adapters(Path(args.out) / "adapters")
    print(json.dumps(history[-1]))
    return 0


def _train_reward(args: argparse.Namespace) -> int:
    import json
    import os
    import platform
    import time

    import torch
    from accelerate import PartialState

    from camp import data, preferences, utils
    from camp.reward_model import RewardConfig, RewardModel, train_reward_model

    _check_paths(args)
    pairs = {split: data.load_preferences(split) for split in data.SPLITS}
    preset = RewardConfig.quick if args.quick else RewardConfig
    cfg = preset(checkpoint_dir=args.out, progress=not args.no_progress, seed=args.seed,
                 **_overrides(args, REWARD_NUMBERS))
    start = time.perf_counter()
    checks = preferences.from_judge_checks(data.load_judge_checks())
    rm, history = train_reward_model(RewardModel.from_encoder(args.model, seed=args.seed), pairs["train"],
                                     pairs["validation"], cfg, resume=args.resume,
                                     monitor={"checks": checks, "test": pairs["test"]})
    if not PartialState().is_main_process:
        return 0
    wall = time.perf_counter() - start
    rm.save(Path(args.out) / "model")
    scorers = preferences.standard_scorers(rm, pairs["train"])
    result = {name: preferences.agreement_report(scorers, chosen, preferences.situations_of(chosen), seed=args.seed)
              for name, chosen in (("test", pairs["test"]), ("judge_checks", checks))}
    result.update(command="python -m camp train-reward " + " ".join(args.argv), train_wall_s=round(wall, 1),
                  history=history, config={k: v for k, v in vars(args).items() if k not in ("func", "argv")},
                  machine={"python": platform.python_version(), "torch": torch.__version__,
                           "cpus": os.cpu_count(), "device": str(utils.get_device("auto"))},
                  date=time.strftime("%Y-%m-%d"))
    text = json.dumps(result, indent=2).encode()
    utils.atomic_write_bytes(Path(args.out) / "report.json", text)
    if args.report:
        utils.atomic_write_bytes(args.report, text)
    for name in ("test", "judge_checks"):
        print(name, json.dumps({k: [round(v["agreement"], 3), [round(x, 3) for x in v["ci95"]]]
                                for k, v in result[name].items()}))
    return 0


# Config fields a training command can override, as (flag, type); the flag names the field with - for _.
CLASSIFIER_NUMBERS = (("max-steps", int), ("batch-size", int), ("grad-accum", int), ("checkpoint-every", int),
                      ("checkpoint-minutes", float), ("eval-every", int), ("lr", float), ("epochs", float))
RLHF_NUMBERS = (("steps", int), ("batch-size", int), ("n-minibatches", int), ("replies-per-person", int),
                ("max-new-tokens", int), ("checkpoint-every", int), ("lr", float), ("kl-coef", float),
                ("target-kl", float))

ALGORITHMS = ("ppo", "rloo", "grpo")  # camp.rlhf.ALGORITHMS, without importing torch to build the parser
DPO_NUMBERS = (("steps", int), ("batch-size", int), ("replies-per-person", int), ("dpo-epochs", int),
               ("beta", float), ("lr", float), ("min-margin", float), ("checkpoint-every", int))

REWARD_NUMBERS = (("max-steps", int), ("batch-size", int), ("epochs", float), ("eval-every", int), ("lr", float),
                  ("checkpoint-every", int), ("checkpoint-minutes", float))


def _overrides(args: argparse.Namespace, numbers: tuple) -> dict:
    """The config fields given on the command line (the others keep the preset's values)."""
    fields = (flag.replace("-", "_") for flag, _ in numbers)
    return {field: getattr(args, field) for field in fields if getattr(args, field) is not None}


def _training_parser(sub, name: str, help: str, out: str, model: str, config: str, numbers: tuple,
                     func) -> argparse.ArgumentParser:
    """What every training command shares: --out, --model, --quick, --resume, numeric config overrides, --seed."""
    p = sub.add_parser(name, help=help)
    p.add_argument("--out", required=True, help=out)
    p.add_argument("--model", default="auto", help=model)
    p.add_argument("--quick", action="store_true", help=f"use {config}.quick()")
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.safetensors")
    for flag, kind in numbers:
        p.add_argument(f"--{flag}", type=kind, help=f"overrides {config}.{flag.replace('-', '_')}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=func)
    return p


def add_parsers(sub) -> None:
    """Add the four training commands to `sub`, the `python -m camp` subparsers."""
    p = _training_parser(sub, "train-classifier", "fine-tune the emotion classifier (works under accelerate launch)",
                         "folder for checkpoint.safetensors and metrics.json",
                         "encoder: auto (MiniLM), a hub name or a folder", "TrainConfig", CLASSIFIER_NUMBERS,
                         _train_classifier)
    p.add_argument("--source", default="offline", choices=("auto", "hub", "offline"))
    p.add_argument("--save", action="store_true", help="also save the best model to --out/model")
    p.add_argument("--train-limit", type=int, help="use only the first N training examples")
    p.add_argument("--eval-limit", type=int, help="validate and test on the first N examples of each (quick checks)")
    p = _training_parser(sub, "train-rlhf", "PPO with a KL penalty on SmolLM2 + LoRA against the empathy environment",
                         "folder for checkpoint.safetensors, history.json and adapters/",
                         "policy: auto (SmolLM2-135M-Instruct), a hub name or a folder", "RLHFConfig", RLHF_NUMBERS,
                         _train_rlhf)
    p.add_argument("--no-kl", action="store_true", help="no KL penalty (kl_coef 0, not adaptive): watch it drift")
    p.add_argument("--algorithm", default="ppo", choices=ALGORITHMS, help="ppo (value head, GAE) or the "
                   "critic-free rloo / grpo (lesson 07)")
    p.add_argument("--reward", default="env", help="what scores the replies: env (the empathy environment) or "
                   "model:DIR (a reward model saved by train-reward, e.g. model:runs/rm/model)")
    _add_eval_flags(p, " (eval.json: reward, judge, distinct-2, perplexity, and the change with 95%% intervals)")
    p = _training_parser(sub, "train-dpo", "DPO on SmolLM2 + LoRA: the human pairs (offline) or best against worst "
                         "of the policy's own samples under a reward model (on_policy)",
                         "folder for checkpoint.safetensors, history.json and adapters/",
                         "policy: auto (SmolLM2-135M-Instruct), a hub name or a folder", "DPOConfig", DPO_NUMBERS,
                         _train_dpo)
    p.add_argument("--source", default="offline", choices=("offline", "on_policy"))
    p.add_argument("--reward-model", help="on_policy: a folder saved by train-reward (DIR/model) to rank samples")
    _add_eval_flags(p, " (eval.json)")
    p = _training_parser(sub, "train-reward", "train the reward model on the preference corpus (Bradley-Terry), "
                         "then report how often it and four other scorers prefer the chosen reply",
                         "folder for checkpoint.safetensors, model/ (a transformers folder) and report.json",
                         "encoder: auto (MiniLM), a hub name or a folder", "RewardConfig", REWARD_NUMBERS,
                         _train_reward)
    p.add_argument("--report", help="also write report.json here (benchmarks/reward_model.json)")


def _add_eval_flags(p: argparse.ArgumentParser, what: str) -> None:
    """--eval and --eval-samples of the language-model training commands."""
    p.add_argument("--eval", action="store_true", help=f"measure the 72 held-out people before and after{what}")
    p.add_argument("--eval-samples", type=int, default=4, help="replies per held-out person in --eval (default 4)")
