"""Benchmarks behind the figures in the README: `python -m camp bench classifier | registers | class-weights | env |
policies | rl | prefs | prefs-timing | int8`.

Each choice maps to one function (`commands.COMMANDS`): `classifier`, `registers`, `class-weights` ->
`class_weights`, `env` -> `env_speed`, `policies` -> `scripted_policies`, `rl` -> `rollout_speed`, `prefs` ->
`prefs` (lesson 07: every way of learning from preferences against the reference, at an equal budget of training
replies), `prefs-timing` -> `prefs_timing`, `int8` -> `int8`. By module:

* `classifier`: camp's loop against Hugging Face Trainer; domain shift between the registers; class weights.
* `speed`: the environment's respond-mode throughput; RL rollouts and updates against a naive loop.
* `quality`: the scripted policies' returns; int8's perplexity cost, part by part.
* `preference`: the preference bench (`prefs`, `prefs_timing`), with its locks and report.
* `tables`: the Markdown tables the lessons and the README quote.
* `machine`: what a kept JSON records about the machine.
* `commands`: the table of choices and `main`, which `python -m camp bench` (and `python -m camp.course.bench`)
  calls.

Every public name is importable from here, as `bench.X`.
"""

from __future__ import annotations

from camp.course.bench.classifier import class_weights, classifier, registers
from camp.course.bench.commands import COMMANDS, main
from camp.course.bench.machine import machine_info
from camp.course.bench.preference import (
    PREF_METHODS,
    SAMPLE_PEOPLE,
    TRAINED_PREF_METHODS,
    BenchPending,
    claim,
    first_reply_point,
    guarded,
    pref_config,
    pref_run,
    prefs,
    prefs_timing,
)
from camp.course.bench.quality import int8, scripted_policies
from camp.course.bench.speed import env_speed, rollout_speed
from camp.course.bench.tables import (
    PREF_LABELS,
    class_weights_table,
    prefs_curve_table,
    prefs_samples,
    prefs_table,
    prefs_timing_table,
    registers_table,
    reward_table,
)

__all__ = [
    "COMMANDS", "PREF_LABELS", "PREF_METHODS", "SAMPLE_PEOPLE", "TRAINED_PREF_METHODS", "BenchPending",
    "class_weights", "class_weights_table", "classifier", "claim", "env_speed", "first_reply_point", "guarded",
    "int8", "machine_info", "main", "pref_config", "pref_run", "prefs", "prefs_curve_table", "prefs_samples",
    "prefs_table", "prefs_timing", "prefs_timing_table", "registers", "registers_table", "reward_table",
    "rollout_speed", "scripted_policies",
]
