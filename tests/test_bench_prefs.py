"""`python -m camp bench prefs`: every method from the same reference, measured against it, cached per method and
seed, and the tables lesson 07 and the README print from it. A tiny run: 2 held-out people, a 4-reply budget."""

import json

import pytest

from camp.course import bench
from camp.course.bench import preference


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from camp.reward_model import RewardModel

    folder = tmp_path_factory.mktemp("prefs")
    RewardModel.from_encoder("auto", seed=0).save(folder / "rm")  # untrained: the mechanics, not the numbers
    report = bench.prefs(str(folder / "work"), str(folder / "rm"), budget=4, seeds=(0,), eval_samples=1,
                         methods=("reference", "best_of_4", "dpo_offline"), people=2)
    return folder, report


@pytest.mark.slow
def test_each_method_is_measured_against_the_same_reference(tiny):
    folder, report = tiny
    assert list(report["methods"]) == ["reference", "best_of_4", "dpo_offline"]
    ref, best, dpo = (report["methods"][m]["seed0"] for m in ("reference", "best_of_4", "dpo_offline"))
    assert ref["judge_change"]["mean"] == 0.0 and ref["judge_win_rate"] == 0.5 and ref["kl"] == 0.0
    assert best["kl"] == pytest.approx(0.6363, abs=1e-3)  # log 4 - 3/4, the best-of-4 bound
    assert best["reward_model"] >= ref["reward_model"]  # picked by the reward model: never worse on it
    assert dpo["train"]["replies"] == 4 and dpo["train"]["steps"] == 1 and dpo["train"]["cpu_s"] > 0
    assert report["heldout_people"] == 2 and report["budget_replies"] == 4
    spearman = report["spearman_with_judge_on_reference_samples"]["seed0"]
    assert set(spearman) == {"reward_model", "environment"} and spearman["environment"]["n"] == 2
    opening = ref["top_opening"]  # the commonest first two words of its replies, and their share
    first_two = [" ".join(r.split()[:2]).lower() for r in json.loads((folder / "work" / "reference-s0.json")
                                                                          .read_text())["replies"]]
    assert opening["share"] == first_two.count(opening["words"]) / len(first_two)
    assert {json.loads(p.read_text())["method"] for p in (folder / "work").glob("*-s0.json")} == \
        {"reference", "best_of_4", "dpo_offline"}


@pytest.mark.slow
def test_a_second_run_reuses_what_finished(tiny, monkeypatch):
    folder, report = tiny

    def must_not_train(*args, **kwargs):
        raise AssertionError("a finished (method, seed) was run again")

    monkeypatch.setattr(preference, "pref_run", must_not_train)  # where `prefs` looks it up
    again = bench.prefs(str(folder / "work"), str(folder / "rm"), budget=4, seeds=(0,), eval_samples=1,
                        methods=("reference", "best_of_4", "dpo_offline"), people=2)
    assert again["methods"] == report["methods"]


@pytest.mark.slow
def test_tables_show_every_method_and_sample(tiny):
    _, report = tiny
    table = bench.prefs_table(report)
    assert table.count("\n") == 1 + 3  # header, rule, one row per method (one seed)
    assert "| best-of-4 (reward model) | 0 |" in table and "sampling only" in table
    samples = bench.prefs_samples(report)
    assert len(report["samples"]) == 1  # both people are sad: the first person of each emotion
    assert report["samples"][0]["says"] in samples and report["samples"][0]["dpo_offline"].replace("|", "/") in samples


def test_a_method_run_by_another_process_is_left_to_it(tmp_path, monkeypatch):
    # Two bench processes may share one work folder; each (method, seed) is claimed with a lock holding a pid.
    import os
    import subprocess
    import sys

    from camp.reward_model import RewardModel

    assert bench.claim(tmp_path / "a.lock") and (tmp_path / "a.lock").read_text() == str(os.getpid())
    assert not bench.claim(tmp_path / "a.lock")  # held by a live process (this one)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "b.lock").write_text(dead.stdout.strip())
    assert bench.claim(tmp_path / "b.lock")  # its holder is gone: a killed bench's run is taken over

    def must_not_train(*args, **kwargs):
        raise AssertionError("a (method, seed) claimed by another process was run here")

    monkeypatch.setattr(preference, "pref_run", must_not_train)  # where `prefs` looks it up
    RewardModel.from_encoder("auto", seed=0).save(tmp_path / "rm")
    for method in ("reference", "ppo_rm"):
        (tmp_path / f"{method}-s0.lock").write_text(str(os.getpid()))
    with pytest.raises(bench.BenchPending, match="reference-s0, ppo_rm-s0 are being run by another"):
        bench.prefs(str(tmp_path), str(tmp_path / "rm"), budget=4, seeds=(0,), methods=("reference", "ppo_rm"))


def test_each_trained_method_gets_the_same_budget():
    for method in bench.TRAINED_PREF_METHODS:
        cfg = bench.pref_config(method, seed=0, budget=480)
        assert cfg.steps * cfg.replies_per_step() == 480 if method.startswith("dpo") else \
            cfg.steps * cfg.batch_size == 480, method
    with pytest.raises(ValueError, match="does not train"):
        bench.pref_config("best_of_4", seed=0, budget=480)


@pytest.mark.slow
def test_timing_compares_steps_side_by_side(tmp_path):
    from camp.reward_model import RewardModel

    RewardModel.from_encoder("auto", seed=0).save(tmp_path / "rm")
    report = bench.prefs_timing(str(tmp_path / "rm"), steps=2, budget=8, methods=("ppo_env", "dpo_offline"))
    rows = report["methods"]
    assert rows["ppo_env"]["ratio_to_ppo_env"] == 1.0 and rows["dpo_offline"]["ratio_to_ppo_env"] > 0
    assert all(r["steps_timed"] == 1 and r["step_s"] > 0 for r in rows.values())  # warm-up step left out
    assert rows["ppo_env"]["budget_steps"] == rows["dpo_offline"]["budget_steps"] == 1  # 8 replies, or 4 pairs
    table = bench.prefs_timing_table(report)
    assert "| PPO, environment reward |" in table and "| 1.00 |" in table and table.count("\n") == 1 + len(rows)
    with pytest.raises(ValueError, match="at least 2"):
        bench.prefs_timing(str(tmp_path / "rm"), steps=1)


def test_the_curve_starts_at_the_reference_scored_like_its_checkpoints():
    # Checkpoints are measured on one reply per person; step 0 takes the reference's first reply to each person.
    reference = {"samples_per_person": 2, "reward_model_scores": [1.0, 9.0, 3.0, 9.0], "judge_scores": [0.1, 0.9, 0.3, 0.9],
                 "scores": [0.0, 5.0, 1.0, 5.0]}
    start = bench.first_reply_point(reference)
    assert start == {"step": 0, "kl": 0.0, "reward_model": 2.0, "judge": 0.2, "reward": 0.5}
    table = bench.prefs_curve_table({"overoptimisation": {"rloo_rm-s1": [start, {
        "step": 4, "kl": 2.25, "reward_model": 1.5, "judge": 0.125}]}})
    assert table.splitlines()[2:] == ["| RLOO, reward model, seed 1 | 0 | 0.00 | +2.000 | 0.200 |",
                                      "| RLOO, reward model, seed 1 | 4 | 1.50 | +1.500 | 0.125 |"]


@pytest.mark.slow
def test_class_weights_bench_trains_plain_and_weighted_runs():
    # `bench class-weights` (lesson 02 quotes benchmarks/class_weights.json): two runs per seed, same budget.
    report = bench.class_weights(steps=2, batch_size=8, seeds=(0,))
    assert set(report["runs"]) == {"plain", "weighted"} and report["test_size"] == 865
    for run in (report["runs"]["plain"]["seed0"], report["runs"]["weighted"]["seed0"]):
        assert 0.0 <= run["macro_f1"] <= 1.0 and set(run["recall"]) == set(report["train_counts"])
    assert report["runs"]["plain"]["seed0"] != report["runs"]["weighted"]["seed0"]  # the weights changed training


def test_a_run_stopped_by_the_drift_guard_is_measured_at_its_last_checkpoint(tmp_path):
    # On-policy DPO drifted past the guard at step 17 of 20 in the bench: the run is kept, measured as it stood
    # at step 16, and the table says so.
    import torch

    from camp import checkpoint as ckpt
    from camp import dpo

    ckpt.save_checkpoint(tmp_path / ckpt.FILE_NAME, torch.nn.Linear(2, 2), config={}, progress={"step": 16})
    calls = []

    def train(cfg, resume):
        calls.append((cfg.steps, resume))
        if len(calls) == 1:
            raise RuntimeError("step 17: ... it has drifted too far to trust.")
        return "policy", [{"step": s} for s in range(1, cfg.steps + 1)]

    cfg = dpo.DPOConfig(steps=20)
    policy, history, stopped = bench.guarded(train, cfg, False, tmp_path)
    assert calls == [(20, False), (16, True)] and len(history) == 16
    assert stopped["stopped"]["at_step"] == 17 and stopped["stopped"]["measured_at_step"] == 16
    with pytest.raises(RuntimeError, match="something else"):  # any other error still stops the bench
        bench.guarded(lambda c, r: (_ for _ in ()).throw(RuntimeError("something else")), cfg, False, tmp_path)
    with pytest.raises(RuntimeError, match="drifted"):  # and without a checkpoint there is nothing to measure
        bench.guarded(lambda c, r: (_ for _ in ()).throw(RuntimeError("it has drifted too far")), cfg, False,
                      tmp_path / "none")
    row = {"reward_model": 1.0, "reward": 0.0, "judge": 0.1, "kl": 1.0, "distinct_2": 0.5, "perplexity": 5.0,
           "judge_change": {"mean": 0.0, "ci95": [0.0, 0.0]}, "judge_win_rate": 0.5,
           "train": {"wall_s": 60.0, "steps_wall_s": 60.0, "cpu_s": 1.0, "replies": 384, **stopped}}
    assert "stopped by the drift guard at step 17 of 20" in bench.prefs_table({"methods": {"dpo_on_policy": {"seed0": row}}})


def test_lesson_07_and_the_readme_print_the_kept_bench_and_read_it_right():
    # benchmarks/prefs.json is `python -m camp bench prefs` of 2026-12-01. The tables in lesson 07's section 14
    # and in the README are its tables, figure for figure, and the reading's claims hold in it.
    import re
    from pathlib import Path

    from test_hygiene import _found, _numbers

    root = Path(__file__).resolve().parents[1]
    kept = json.loads((root / "benchmarks" / "prefs.json").read_text())
    cells = json.loads((root / "solutions" / "07_learning_from_preferences" / "07_learning_from_preferences.ipynb")
                       .read_text())["cells"]
    text = ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
    start = next(i for i, t in enumerate(text) if t.startswith("## 14 ·"))
    section = "\n".join(text[start:next(i for i, t in enumerate(text) if t.startswith("## Summary"))])
    readme = (root / "README.md").read_text()
    for table in (bench.prefs_table(kept), bench.prefs_samples(kept), bench.prefs_curve_table(kept)):
        assert table in section and table in readme
    timing = json.loads((root / "benchmarks" / "prefs_timing.json").read_text())  # `bench prefs-timing`, alone
    assert bench.prefs_timing_table(timing) in section and bench.prefs_timing_table(timing) in readme
    pool = _numbers(kept, []) + _numbers(timing, [])
    prose = re.sub(r"\|.*\|", "", section)  # the tables are checked whole above; now every figure in the prose
    missing = [f for f in re.findall(r"(?<![\w.\-/])[+-]?\d+\.\d+(?![\w/]|\.\w)", prose) if not _found(f, pool)]
    assert missing == [], missing
    methods = kept["methods"]
    trained = ("ppo_rm", "rloo_rm", "dpo_offline", "dpo_on_policy")
    # "No preference-trained method raised the judge with an interval clear of zero, on either seed"
    assert not [(m, s) for m in trained for s, row in methods[m].items() if row["judge_change"]["ci95"][0] > 0]
    # "three lowered it": best-of-4, DPO on human pairs and on-policy DPO, and no other
    lowered = {m for m, rows in methods.items() if any(r["judge_change"]["ci95"][1] < 0 for r in rows.values())}
    assert lowered == {"best_of_4", "dpo_offline", "dpo_on_policy"}
    # on-policy DPO was stopped by the drift guard on both seeds; nothing else was
    assert {m for m, rows in methods.items() for r in rows.values() if r["train"].get("stopped")} == {"dpo_on_policy"}
    # the reward model cannot rank the reference's replies as the judge does; the environment's reward can
    for by_scorer in kept["spearman_with_judge_on_reference_samples"].values():
        assert abs(by_scorer["reward_model"]["rho"]) < 0.1 < by_scorer["environment"]["rho"]
