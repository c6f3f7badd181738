"""camp.rlhf's loop on the real SmolLM2-135M: guards, temperature, evaluation, and SIGKILL then resume."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from camp import data, lm, rlhf
from camp.utils import ConfigError


@pytest.fixture(scope="module")
def people():
    train, heldout = rlhf.split_situations(data.load_situations())
    return train, heldout


def _tiny(**overrides):
    return rlhf.RLHFConfig(**{"steps": 2, "batch_size": 2, "replies_per_person": 2, "n_minibatches": 1, "ppo_epochs": 1, "max_new_tokens": 6,
                              "progress": False, **overrides})


def test_response_logprobs_use_the_sampling_temperature(fresh_policy):
    policy = fresh_policy()
    batch = policy.generate(lm.chat_prompts(policy.tokenizer, ["I failed my exam."]), max_new_tokens=5,
                            do_sample=False)
    same, _, cold_logits = lm.response_logprobs(policy, batch, temperature=1.0)
    hot, _, _ = lm.response_logprobs(policy, batch, temperature=2.0)
    # at T = 2 the log-probs are those of softmax(logits / 2): recompute by hand from the T = 1 logits
    by_hand = torch.log_softmax(cold_logits / 2.0, -1).gather(-1, batch["response_ids"][..., None]).squeeze(-1)
    assert torch.allclose(hot, by_hand, atol=1e-5) and not torch.allclose(hot, same, atol=1e-3)


def test_nan_scores_stop_training_with_a_clear_error(people, fresh_policy):
    def nan_scores(replies, who):
        return np.full(len(replies), np.nan)

    policy = fresh_policy()
    with pytest.raises(FloatingPointError, match="NaN in, NaN out"):
        rlhf.train_rlhf(policy, policy.tokenizer, people[0], _tiny(), score_fn=nan_scores)


def test_kl_explosion_stops_training_with_a_clear_error(people, fresh_policy):
    policy = fresh_policy()

    def reward_long(replies, who):  # any signal will do; a huge lr makes the policy leave the reference fast
        return np.array([len(r) / 10 for r in replies])

    with pytest.raises(RuntimeError, match="drifted too far"):
        rlhf.train_rlhf(policy, policy.tokenizer, people[0], _tiny(steps=6, lr=0.5, kl_limit=0.5),
                        score_fn=reward_long)


def test_too_few_situations_are_refused(people, fresh_policy):
    policy = fresh_policy()
    with pytest.raises(ValueError, match="cannot fill a batch"):
        rlhf.train_rlhf(policy, policy.tokenizer, people[0][:1], _tiny(batch_size=4))


def test_evaluate_replies_measures_each_held_out_person(people, fresh_policy):
    policy = fresh_policy()
    result = rlhf.evaluate_replies(policy, policy.tokenizer, people[1][:3], max_new_tokens=8, batch_size=2)
    assert len(result["replies"]) == 3 and all(isinstance(r, str) for r in result["replies"])
    assert math.isfinite(result["reward"]) and 0.0 <= result["distinct_2"] <= 1.0
    assert result["perplexity"] > 1.0 and 0 < result["length"] <= 8
    # with the adapters untouched, the policy is the reference: same seed, same replies
    again = rlhf.evaluate_replies(policy, policy.tokenizer, people[1][:3], max_new_tokens=8, batch_size=2,
                                  reference=True)
    assert again["replies"] == result["replies"]
    assert 0.0 <= result["judge"] <= 1.0 and len(result["judge_scores"]) == len(result["scores"]) == 3
    assert rlhf.compare(again, result)["judge"]["mean"] == 0.0


def test_evaluate_replies_samples_each_person_several_times(people, fresh_policy):
    policy = fresh_policy()
    result = rlhf.evaluate_replies(policy, policy.tokenizer, people[1][:2], max_new_tokens=6, batch_size=3,
                                   samples_per_person=3)
    assert len(result["replies"]) == len(result["scores"]) == 6 and result["samples_per_person"] == 3
    assert len(set(result["replies"][:3])) > 1  # sampled, so a person's three replies differ
    with pytest.raises(ValueError, match="samples_per_person"):
        rlhf.evaluate_replies(policy, policy.tokenizer, people[1][:2], samples_per_person=0)


# ---------------------------------------------------------------------------------------------------- resume
def _cli(out, *extra):
    return [sys.executable, "-m", "camp", "train-rlhf", "--out", str(out), "--quick", "--steps", "4",
            "--batch-size", "2", "--replies-per-person", "2", "--n-minibatches", "1", "--max-new-tokens", "6", "--checkpoint-every", "1",
            "--seed", "3", "--no-progress", *extra]


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, kill_after_checkpoint):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(_cli(straight), check=True, capture_output=True, timeout=600)

    step = kill_after_checkpoint(_cli(killed), killed / "checkpoint.safetensors", min_step=2)
    assert 2 <= step < 4 and not (killed / "history.json").exists()

    subprocess.run(_cli(killed, "--resume"), check=True, capture_output=True, timeout=600)
    a = json.loads((straight / "history.json").read_text())
    b = json.loads((killed / "history.json").read_text())
    assert [h["step"] for h in b] == list(range(1, 5))
    for key in ("reward/score", "objective/kl", "objective/beta", "loss/policy", "loss/value"):
        assert [h[key] for h in a] == pytest.approx([h[key] for h in b], abs=1e-4), key


def test_bench_rl_reports_both_loops_on_the_same_work():
    from camp.course import bench

    result = bench.rollout_speed(batch_size=2, new_tokens=3, epochs=1, n_minibatches=1)
    for loop in ("camp", "naive"):
        assert result[loop]["rollout_tokens_per_s"] > 0 and result[loop]["update_samples_per_s"] > 0
    assert result["rollout_speedup"] == pytest.approx(
        result["camp"]["rollout_tokens_per_s"] / result["naive"]["rollout_tokens_per_s"], rel=0.02)


def test_one_process_is_required():
    rlhf.require_one_process(1)
    with pytest.raises(ConfigError, match="2 were started"):
        rlhf.require_one_process(2)


@pytest.mark.slow
def test_accelerate_launch_with_two_processes_is_refused_before_any_work(tmp_path):
    # Not yet multi-process: every rank stops at once with the reason, so none hangs waiting for another.
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
              "-m", "camp", "train-rlhf", "--out", str(tmp_path / "run"), "--quick", "--no-progress"]
    out = subprocess.run(launch, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "train_rlhf runs in one process, but 2 were started" in out.stderr, out.stderr[-2000:]
    assert not (tmp_path / "run").exists()  # refused before loading a model or writing anything
