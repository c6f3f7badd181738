"""camp.dpo: the loss, on-policy pairs, the pair batch, the loop's guards, exact resume, and the train-dpo CLI."""

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from camp import data, dpo, lm, rlhf
from camp.utils import ConfigError


@pytest.fixture(scope="module")
def people():
    return rlhf.split_situations(data.load_situations())


@pytest.fixture(scope="module")
def pairs(people):
    return dpo.training_pairs(data.load_preferences("train"), people[1])


def _tiny(**overrides):
    return dpo.DPOConfig(**{"steps": 2, "batch_size": 2, "replies_per_person": 2, "max_new_tokens": 6,
                            "max_reply_tokens": 12, "progress": False, **overrides})


# ---------------------------------------------------------------------------------------------------- pieces
def test_dpo_loss_is_bradley_terry_on_the_log_ratios():
    pc, pr, rc, rr = torch.tensor([-3.0, -1.0]), torch.tensor([-2.0, -4.0]), torch.tensor([-2.5, -1.5]), \
        torch.tensor([-2.5, -3.0])
    by_hand = -F.logsigmoid(0.5 * ((pc - rc) - (pr - rr))).mean()
    assert dpo.dpo_loss(pc, pr, rc, rr, beta=0.5).item() == pytest.approx(by_hand.item())
    # raising the chosen reply's log-prob lowers the loss; raising the rejected one's raises it
    chosen = pc.clone().requires_grad_(True)
    rejected = pr.clone().requires_grad_(True)
    dpo.dpo_loss(chosen, rejected, rc, rr, beta=0.5).backward()
    assert (chosen.grad < 0).all() and (rejected.grad > 0).all()


def test_policy_equal_to_the_reference_gives_log_2_whatever_the_log_probs():
    logps = torch.tensor([-7.0, -1.0, -30.0])
    assert dpo.dpo_loss(logps, logps - 5, logps, logps - 5, beta=0.3).item() == pytest.approx(np.log(2))


def test_best_worst_pairs_pick_per_person_and_skip_ties():
    scores = [0.2, 0.9, 0.1, 0.5, 0.5, 0.5, 3.0, -1.0, 2.0]
    assert dpo.best_worst_pairs(scores, k=3) == [(1, 2), (6, 7)]
    assert dpo.best_worst_pairs(scores, k=3, min_margin=1.0) == [(6, 7)]
    with pytest.raises(ValueError, match="groups of k=2"):
        dpo.best_worst_pairs([1.0, 2.0, 3.0], k=2)


def test_offline_pairs_never_include_a_held_out_person(people, pairs):
    held = {s.id for s in people[1]}
    assert pairs and not {p.situation_id for p in pairs} & held
    assert len(pairs) < len(data.load_preferences("train"))


def test_pair_batch_scores_a_reply_as_the_generated_batch_does(fresh_policy):
    policy = fresh_policy()
    prompts = lm.chat_prompts(policy.tokenizer, ["My cat died this morning.", "I got the job!"])
    sampled = policy.generate(prompts, max_new_tokens=8, do_sample=False, sentences=0)
    batch = dpo.pair_batch(policy.tokenizer, prompts, sampled["texts"], ["Okay.", "Cool story."], policy.device)
    assert batch["query_ids"].shape[0] == 4 and batch["response_mask"][2:].sum() < batch["response_mask"][:2].sum()
    with torch.no_grad():
        ours = dpo.sequence_logps(policy, batch)[:2]
        lp, _, _ = lm.response_logprobs(policy, sampled)
    # the greedy replies re-tokenised from their text score as the sampled tokens did
    assert ours.tolist() == pytest.approx((lp * sampled["response_mask"]).sum(1).tolist(), abs=1e-3)


# ---------------------------------------------------------------------------------------------------- loop
def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="source='online'"):
        dpo.DPOConfig(source="online")
    with pytest.raises(ConfigError, match="replies_per_person=3"):
        dpo.DPOConfig(source="on_policy", batch_size=8, replies_per_person=3)


def test_offline_training_separates_the_pairs(fresh_policy, pairs):
    policy = fresh_policy()
    _, history = dpo.train_dpo(policy, pairs[:2], _tiny(steps=3, batch_size=2, lr=1e-3))
    assert history[0]["loss/dpo"] == pytest.approx(np.log(2), abs=1e-3)  # step 1 starts at the reference
    assert history[-1]["loss/dpo"] < history[0]["loss/dpo"] - 0.05
    assert history[-1]["rewards/margin"] > 0 and history[-1]["pairs"] == 2


def test_on_policy_pairs_come_from_the_scorer_and_ties_train_nothing(fresh_policy, people):
    policy = fresh_policy()
    seen = []

    def longer_is_better(replies, who):
        seen.append(list(replies))
        return np.array([len(r) for r in replies], dtype=float)

    _, history = dpo.train_dpo(policy, people[0], _tiny(source="on_policy", batch_size=4), scorer=longer_is_better)
    assert len(seen) == 2 and all(len(s) == 4 for s in seen)
    assert all(0 <= h["pairs"] <= 2 and "reward/score" in h and "objective/kl" in h for h in history)

    def all_equal(replies, who):
        return np.zeros(len(replies))

    _, history = dpo.train_dpo(fresh_policy(), people[0], _tiny(source="on_policy", batch_size=4), scorer=all_equal)
    assert [h["pairs"] for h in history] == [0, 0] and "loss/dpo" not in history[0]


def test_missing_inputs_are_refused_with_what_to_pass(fresh_policy, people):
    policy = fresh_policy()
    with pytest.raises(ConfigError, match="needs data"):
        dpo.train_dpo(policy, [], _tiny())
    with pytest.raises(ConfigError, match="trains on preference pairs"):
        dpo.train_dpo(policy, people[0], _tiny())
    with pytest.raises(ConfigError, match="needs a scorer"):
        dpo.train_dpo(policy, people[0], _tiny(source="on_policy"))


def test_nan_scores_and_drift_stop_with_clear_errors(fresh_policy, people, pairs):
    policy = fresh_policy()
    with pytest.raises(FloatingPointError, match="NaN in, NaN out"):
        dpo.train_dpo(policy, people[0], _tiny(source="on_policy"),
                      scorer=lambda replies, who: np.full(len(replies), np.nan))
    with pytest.raises(RuntimeError, match="drifted too far"):
        dpo.train_dpo(fresh_policy(), pairs[:8], _tiny(steps=6, lr=0.5, kl_limit=0.5))


# ---------------------------------------------------------------------------------------------------- resume
def _cli(out, *extra):
    return [sys.executable, "-m", "camp", "train-dpo", "--out", str(out), "--quick", "--steps", "4",
            "--batch-size", "2", "--checkpoint-every", "1", "--seed", "3", "--no-progress", *extra]


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, resumed_history_matches):
    resumed_history_matches(_cli, tmp_path, ("loss/dpo", "rewards/chosen", "rewards/rejected", "objective/logratio"),
                            abs_tol=1e-5)


def test_cli_on_policy_without_a_reward_model_says_what_to_pass(tmp_path, capsys):
    from camp.course import cli

    assert cli.main(["train-dpo", "--out", str(tmp_path / "r"), "--source", "on_policy"]) == 2
    assert "--reward-model DIR" in capsys.readouterr().err
    assert cli.main(["train-dpo", "--out", str(tmp_path / "r"), "--source", "on_policy",
                     "--reward-model", str(tmp_path)]) == 2
    assert "not a saved reward model" in capsys.readouterr().err
