"""`python -m camp bench prefs`: every method from the same reference, measured against it, cached per method and
seed, and the tables lesson 07 and the README print from it. A tiny run: 2 held-out people, a 4-reply budget."""

import json

import pytest

from camp.course import bench


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
    assert {json.loads(p.read_text())["method"] for p in (folder / "work").glob("*-s0.json")} == \
        {"reference", "best_of_4", "dpo_offline"}


@pytest.mark.slow
def test_a_second_run_reuses_what_finished(tiny, monkeypatch):
    folder, report = tiny

    def must_not_train(*args, **kwargs):
        raise AssertionError("a finished (method, seed) was run again")

    monkeypatch.setattr(bench, "_pref_run", must_not_train)
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
