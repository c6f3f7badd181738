"""`python -m camp bench WHAT`: the table from each WHAT to what it runs with the command line's flags, and `main`,
which prints (and with --out writes) the result's JSON."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from camp.course.bench.classifier import class_weights, classifier, registers
from camp.course.bench.preference import PREF_METHODS, TRAINED_PREF_METHODS, BenchPending, prefs, prefs_timing
from camp.course.bench.quality import int8, scripted_policies
from camp.course.bench.speed import env_speed, rollout_speed


def _prefs(args: argparse.Namespace) -> dict:
    if not args.reward_model:
        raise SystemExit("bench prefs needs --reward-model DIR/model (train one: python -m camp train-reward)")
    return prefs(args.work or "runs/bench-prefs", args.reward_model, budget=args.budget,
                 seeds=tuple(args.seeds or (0, 1)), eval_samples=args.eval_samples,
                 methods=tuple(args.methods or PREF_METHODS))


def _prefs_timing(args: argparse.Namespace) -> dict:
    if not args.reward_model:
        raise SystemExit("bench prefs-timing needs --reward-model DIR/model (train one: python -m camp "
                         "train-reward)")
    return prefs_timing(args.reward_model, steps=args.steps or 3, budget=args.budget,
                        methods=tuple(args.methods or TRAINED_PREF_METHODS))


def _class_weights(args: argparse.Namespace) -> dict:
    return class_weights(**({"steps": args.steps} if args.steps else {}), batch_size=args.batch_size,
                         **({"lr": args.lr} if args.lr else {}), seeds=tuple(args.seeds or (0, 1)))


def _registers(args: argparse.Namespace) -> dict:
    return registers(**({"steps": args.steps} if args.steps else {}), batch_size=args.batch_size,
                     **({"lr": args.lr} if args.lr else {}), seeds=tuple(args.seeds or (0, 1)))


def _classifier(args: argparse.Namespace) -> dict:
    return classifier(steps=args.steps or 400, batch_size=args.batch_size, lr=args.lr or 1e-4,
                      seeds=tuple(args.seeds or (0, 1, 2)))


# Each `bench` choice (camp.course.cli's parser lists the same names) and what it runs. The benches without
# flags run at their defaults.
COMMANDS: dict[str, Callable[[argparse.Namespace], dict]] = {
    "classifier": _classifier, "registers": _registers, "class-weights": _class_weights,
    "env": lambda args: env_speed(), "policies": lambda args: scripted_policies(), "rl": lambda args: rollout_speed(),
    "prefs": _prefs, "prefs-timing": _prefs_timing, "int8": lambda args: int8(),
}


def main(args: argparse.Namespace) -> int:
    """Run the bench `args.what` names and print its JSON; 3 (and what is missing) when `prefs` finds some
    (method, seed) still being run by another process."""
    try:
        result = COMMANDS[args.what](args)
    except BenchPending as err:
        print(err)
        return 3
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 0
