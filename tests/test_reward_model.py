"""The reward model (lesson 07): it learns, resumes exactly, saves as a transformers folder, refuses a wrong head,
and `python -m camp train-reward` writes the agreement report."""

import json

import numpy as np
import pytest
import torch
from conftest import ROOT
from transformers import AutoModelForSequenceClassification

from camp import data, models, preferences
from camp.course import cli
from camp.reward_model import RewardConfig, RewardModel, RewardModelError, train_reward_model


@pytest.fixture(scope="module")
def pairs():
    return {s: data.load_preferences(s) for s in data.SPLITS}


def _cfg(**kw) -> RewardConfig:
    # Batches of 4 pairs and tiny evaluations: these tests check the loop's mechanics, not what it learns.
    return RewardConfig.quick(**{"max_steps": 6, "eval_every": 2, "batch_size": 4, "eval_train_pairs": 4,
                                 "progress": False, **kw})


def test_training_moves_the_weights_and_lowers_the_training_loss(pairs):
    rm = RewardModel.from_encoder(seed=0)
    before = {k: v.clone() for k, v in rm.model.named_parameters()}
    easy = [p for p in pairs["train"] if p.kind == "cold"][:8]  # 8 pairs, seen again and again: must be fitted
    trained, history = train_reward_model(rm, easy, pairs["validation"][:4], _cfg(max_steps=12, eval_every=6,
                                                                                   batch_size=8, lr=2e-4))
    changed = [k for k, v in trained.model.named_parameters() if not torch.equal(v, before[k])]
    assert "classifier.weight" in changed and any("encoder" in k for k in changed)
    losses = [h["loss/train"] for h in history]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0] - 0.05  # the loss falls on pairs it keeps seeing
    assert {"train/accuracy", "eval/accuracy", "eval/loss", "time/pairs_per_s"} <= set(history[-1])


@pytest.mark.slow  # the full tier: resume tests
def test_resume_continues_exactly(pairs, tmp_path):
    val = pairs["validation"][:4]
    whole, h_whole = train_reward_model(RewardModel.from_encoder(seed=0), pairs["train"], val,
                                        _cfg(checkpoint_dir=str(tmp_path / "a"), checkpoint_every=2,
                                             checkpoint_minutes=0))

    class Stop(Exception):
        pass

    def stop_at_4(step, record):
        if step == 4:
            raise Stop

    cfg = _cfg(checkpoint_dir=str(tmp_path / "b"), checkpoint_every=2, checkpoint_minutes=0)
    with pytest.raises(Stop):
        train_reward_model(RewardModel.from_encoder(seed=0), pairs["train"], val, cfg, callback=stop_at_4)
    resumed, h_resumed = train_reward_model(RewardModel.from_encoder(seed=5), pairs["train"], val, cfg, resume=True)
    assert [h["eval/loss"] for h in h_resumed] == pytest.approx([h["eval/loss"] for h in h_whole], abs=1e-6)
    probe = ["I'm here.", "Whatever.", "Congratulations!"]
    assert np.allclose(whole.score_texts(["My dog died."] * 3, probe), resumed.score_texts(["My dog died."] * 3, probe),
                       atol=1e-5)


def test_saved_folder_loads_with_plain_transformers_and_scores_the_same(tmp_path):
    rm = RewardModel.from_encoder(seed=1)
    rm.save(tmp_path / "rm")
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm")
    assert plain.config.num_labels == 1
    people = data.load_judge_checks()[:3]
    replies = [c.better for c in people]
    assert np.allclose(RewardModel.load(tmp_path / "rm")(replies, people), rm(replies, people), atol=1e-5)
    rm.save(tmp_path / "rm")  # saving again over the old folder replaces it whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rm"]


def test_a_classifier_folder_is_refused_as_a_reward_model(tmp_path):
    model, tokenizer = models.load_encoder("auto", num_labels=6)
    model.save_pretrained(tmp_path / "clf")
    tokenizer.save_pretrained(tmp_path / "clf")
    with pytest.raises(RewardModelError, match="classifier with 6 labels .*sadness.*not a reward model"):
        RewardModel.load(tmp_path / "clf")
    with pytest.raises(RewardModelError, match="no config.json"):
        RewardModel.load(tmp_path / "nothing")


def test_scorer_shape_and_inputs_follow_the_model(pairs):
    rm = RewardModel.from_encoder(seed=0)
    situations = preferences.situations_of(pairs["test"][:4])
    scores = rm([p.chosen for p in pairs["test"][:4]], situations)
    assert scores.shape == (4,) and scores.dtype == np.float32
    with pytest.raises(ValueError, match="one reply per person"):
        rm(["a"], situations)


def test_cli_train_reward_writes_model_and_report(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["train-reward", "--out", str(out), "--quick", "--max-steps", "2", "--eval-every", "2",
                     "--batch-size", "4", "--no-progress", "--report", str(tmp_path / "bench.json")])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report == json.loads((tmp_path / "bench.json").read_text())
    for name, n in (("test", 83), ("judge_checks", 36)):
        assert set(report[name]) == {"reward model", "environment reward", "judge (attunement)", "length",
                                     "TF-IDF + LR"}
        for row in report[name].values():
            assert row["n"] == n and row["ci95"][0] <= row["agreement"] <= row["ci95"][1]
    assert report["test"]["length"]["agreement"] == pytest.approx(
        preferences.pairwise_accuracy([len(p.chosen) for p in data.load_preferences("test")],
                                      [len(p.rejected) for p in data.load_preferences("test")]))
    assert RewardModel.load(out / "model").model.config.num_labels == 1
    # resuming a finished run trains no further and reports again
    assert cli.main(["train-reward", "--out", str(out), "--quick", "--max-steps", "2", "--eval-every", "2",
                     "--batch-size", "4", "--no-progress", "--resume"]) == 0


def test_cli_resume_without_a_checkpoint_says_what_to_do(tmp_path, capsys):
    assert cli.main(["train-reward", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def _kept(name: str) -> dict:
    return json.loads((ROOT / "benchmarks" / name).read_text())


def test_lesson_07_and_the_readme_quote_the_kept_reward_benchmarks():
    # The tables in lesson 07 and the README are `bench.reward_table` of the kept JSON, figure for figure.
    from camp.course import bench

    notebook = json.loads((ROOT / "solutions" / "07_learning_from_preferences" /
                           "07_learning_from_preferences.ipynb").read_text())
    lesson = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown")
    readme = (ROOT / "README.md").read_text()
    current, first = bench.reward_table(_kept("reward_model.json")), bench.reward_table(_kept("reward_model_720.json"))
    assert current in lesson and current in readme
    indented = "\n".join("  " + line for line in first.splitlines())  # inside a bullet in the lesson
    assert indented in lesson and first in readme


def test_kept_reward_benchmark_says_what_the_lesson_claims():
    # Lesson 07 and the README read these facts off the kept full-mode run; the JSON must bear them out.
    report = _kept("reward_model.json")
    test, checks = report["test"], report["judge_checks"]
    rm = test["reward model"]
    assert rm["agreement"] >= 0.85 and rm["n"] == 83  # the goal, on the whole test split
    for hand in ("environment reward", "judge (attunement)"):
        assert rm["ci95"][0] > test[hand]["ci95"][1]  # ahead of both hand-built scorers, intervals apart
    assert checks["reward model"]["ci95"][0] <= checks["environment reward"]["agreement"]  # not shown apart there
    assert 0.40 <= test["length"]["agreement"] <= 0.60
    assert _kept("reward_model_720.json")["judge_checks"]["reward model"]["agreement"] == pytest.approx(28 / 36)


def test_lesson_07_stops_the_reward_model_where_the_kept_run_levelled_off():
    # Lesson 07's full mode trains three epochs, and section 4 says why with the kept five-epoch run's history:
    # validation accuracy at epoch 3 was never beaten later, while the training loss kept falling.
    notebook = json.loads((ROOT / "solutions" / "07_learning_from_preferences" /
                           "07_learning_from_preferences.ipynb").read_text())
    cells = ["".join(c["source"]) for c in notebook["cells"]]
    history = {h["epoch"]: h for h in _kept("reward_model.json")["history"]}
    at3, last = history[3.0], history[max(history)]
    assert all(h["eval/accuracy"] <= at3["eval/accuracy"] for h in history.values())
    assert last["train/loss"] < at3["train/loss"]
    text = next(c for c in cells if c.startswith("### Overfitting")).replace("\n", " ")
    assert f"reached {at3['eval/accuracy']:.3f} at epoch 3" in text
    assert f"training accuracy hit {at3['train/accuracy']:.3f}" in text
    assert f"training loss fell from {at3['train/loss']:.3f} to {last['train/loss']:.3f}" in text
    assert "RewardConfig(epochs=3)" in next(c for c in cells if "CFG = RewardConfig" in c)
