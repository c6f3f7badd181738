"""camp.rlhf's loop on the real SmolLM2-135M: guards, temperature, evaluation, and SIGKILL then resume."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from camp import data, evaluate, lm, rl, rlhf
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
        rlhf.train_rlhf(policy, people[0], _tiny(), scorer=nan_scores)


def test_kl_explosion_stops_training_with_a_clear_error(people, fresh_policy):
    policy = fresh_policy()

    def reward_long(replies, who):  # any signal will do; a huge lr makes the policy leave the reference fast
        return np.array([len(r) / 10 for r in replies])

    with pytest.raises(RuntimeError, match="drifted too far"):
        rlhf.train_rlhf(policy, people[0], _tiny(steps=6, lr=0.5, kl_limit=0.5), scorer=reward_long)


def test_too_few_situations_are_refused(people, fresh_policy):
    policy = fresh_policy()
    with pytest.raises(ValueError, match="cannot fill a batch"):
        rlhf.train_rlhf(policy, people[0][:1], _tiny(batch_size=4))


def test_evaluate_replies_measures_each_held_out_person(people, fresh_policy):
    policy = fresh_policy()
    result = evaluate.evaluate_replies(policy, people[1][:3], max_new_tokens=8, batch_size=2)
    assert len(result["replies"]) == 3 and all(isinstance(r, str) for r in result["replies"])
    assert math.isfinite(result["reward"]) and 0.0 <= result["distinct_2"] <= 1.0
    assert result["perplexity"] > 1.0 and 0 < result["length"] <= 8
    # with the adapters untouched, the policy is the reference: same seed, same replies
    again = evaluate.evaluate_replies(policy, people[1][:3], max_new_tokens=8, batch_size=2,
                                  reference=True)
    assert again["replies"] == result["replies"]
    assert 0.0 <= result["judge"] <= 1.0 and len(result["judge_scores"]) == len(result["scores"]) == 3
    assert evaluate.compare(again, result)["judge"]["mean"] == 0.0


def test_evaluate_replies_samples_each_person_several_times(people, fresh_policy):
    policy = fresh_policy()
    result = evaluate.evaluate_replies(policy, people[1][:2], max_new_tokens=6, batch_size=3,
                                   samples_per_person=3)
    assert len(result["replies"]) == len(result["scores"]) == 6 and result["samples_per_person"] == 3
    assert len(set(result["replies"][:3])) > 1  # sampled, so a person's three replies differ
    with pytest.raises(ValueError, match="samples_per_person"):
        evaluate.evaluate_replies(policy, people[1][:2], samples_per_person=0)


@pytest.mark.parametrize("algorithm", ["rloo", "grpo"])
def test_critic_free_algorithms_train_the_adapters_and_leave_the_value_head(people, fresh_policy, algorithm):
    policy = fresh_policy()
    head = policy.value_head.weight.detach().clone()
    lora = {k: v.detach().clone() for k, v in policy.peft.named_parameters() if "lora_B" in k}

    def longer_is_better(replies, who):
        return np.array([len(r) for r in replies], dtype=float)

    _, history = rlhf.train_rlhf(policy, people[0], _tiny(algorithm=algorithm, batch_size=4),
                                 scorer=longer_is_better)
    assert torch.equal(policy.value_head.weight, head)  # no critic: nothing trains the value head
    assert any(not torch.equal(v, lora[k]) for k, v in policy.peft.named_parameters() if "lora_B" in k)
    assert all("loss/value" not in h and math.isfinite(h["loss/policy"]) for h in history)


def test_critic_free_advantages_are_the_whole_reply_against_the_other_replies():
    scores, mask = torch.tensor([1.0, 3.0, 0.0, 0.0]), torch.tensor([[1.0, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 0]])
    kl = torch.full((4, 3), 0.2)
    for algorithm, baseline in (("rloo", rl.leave_one_out), ("grpo", rl.group_normalise)):
        cfg = _tiny(algorithm=algorithm, batch_size=4, scale_scores=False)
        advantages, _, _ = rlhf.token_advantages(scores, kl, torch.zeros_like(kl), mask, cfg, rl.RunningStd(), 0.5)
        total = scores - 0.5 * 0.2 * mask.sum(1)  # score minus beta * KL summed over each reply's tokens
        expected = baseline(total, 2)[:, None] * mask
        assert torch.allclose(advantages, expected), algorithm


def test_bad_algorithm_settings_are_refused():
    with pytest.raises(ConfigError, match="algorithm='a2c' must be one of ppo, rloo, grpo"):
        _tiny(algorithm="a2c")
    with pytest.raises(ConfigError, match="needs replies_per_person >= 2"):
        _tiny(algorithm="rloo", replies_per_person=1, loo_baseline=False)


def test_best_of_n_keeps_the_reply_the_scorer_likes_best(people, fresh_policy):
    policy = fresh_policy()
    candidates = []

    def longest(replies, who):
        candidates.append(list(replies))
        return np.array([len(r) for r in replies], dtype=float)

    result = evaluate.evaluate_replies(policy, people[1][:2], max_new_tokens=10, batch_size=6,
                                   reference=True, best_of=3, best_of_scorer=longest, scorers={"length": longest})
    offered = candidates[0]  # 2 people x 3 candidates, scored by best_of_scorer
    assert len(offered) == 6
    assert result["replies"] == [max(offered[:3], key=len), max(offered[3:], key=len)]
    assert result["kl"] == pytest.approx(math.log(3) - 2 / 3)  # the analytic bound, not a sample estimate
    assert result["length_scores"] == [float(len(r)) for r in result["replies"]]
    with pytest.raises(ValueError, match="best_of_scorer"):
        evaluate.evaluate_replies(policy, people[1][:2], best_of=3)


def test_an_untrained_policy_is_zero_kl_from_the_reference(people, fresh_policy):
    policy = fresh_policy()
    result = evaluate.evaluate_replies(policy, people[1][:2], max_new_tokens=8, batch_size=2)
    assert result["kl"] == pytest.approx(0.0, abs=1e-5)


# ---------------------------------------------------------------------------------------------------- resume
def _cli(out, *extra):
    return [sys.executable, "-m", "camp", "train-rlhf", "--out", str(out), "--quick", "--steps", "4",
            "--batch-size", "2", "--replies-per-person", "2", "--n-minibatches", "1", "--max-new-tokens", "6", "--checkpoint-every", "1",
            "--seed", "3", "--no-progress", *extra]


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, resumed_history_matches):
    resumed_history_matches(_cli, tmp_path, ("reward/score", "objective/kl", "objective/beta", "loss/policy",
                                             "loss/value"))


def test_bench_rl_reports_both_loops_on_the_same_work():
    from camp.course import bench

    result = bench.rollout_speed(batch_size=2, new_tokens=3, epochs=1, n_minibatches=1)
    for loop in ("camp", "naive"):
        assert result[loop]["rollout_tokens_per_s"] > 0 and result[loop]["update_samples_per_s"] > 0
    assert result["rollout_speedup"] == pytest.approx(
        result["camp"]["rollout_tokens_per_s"] / result["naive"]["rollout_tokens_per_s"], rel=0.02)


def test_cli_reward_flag_refuses_a_folder_that_is_not_a_reward_model(tmp_path, capsys):
    from camp.course import cli

    assert cli.main(["train-rlhf", "--out", str(tmp_path / "r"), "--algorithm", "rloo",
                     "--reward", f"model:{tmp_path}"]) == 2
    assert "is not a saved reward model" in capsys.readouterr().err and not (tmp_path / "r").exists()


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


def test_a_seeded_run_repeats_bit_for_bit_on_the_same_machine(people, fresh_policy):
    # The README's reproducibility note: with the same seed, thread count and library versions, a training run
    # repeats exactly (sampling, PPO update, KL controller); only the step times differ.
    from camp import utils

    def run():
        utils.set_seed(0)
        policy, history = rlhf.train_rlhf(fresh_policy(), people[0], _tiny(steps=2))
        return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in history], \
            policy.adapter_state()

    (first, first_state), (second, second_state) = run(), run()
    assert first == second
    assert first_state.keys() == second_state.keys()
    assert all(torch.equal(first_state[k], second_state[k]) for k in first_state)
