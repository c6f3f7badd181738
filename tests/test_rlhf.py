"""The KL pieces of camp.rl and camp.rlhf's config and split, on hand-computed cases (the loop itself is
exercised in tests/test_rlhf_train.py)."""

import math

import pytest
import torch

from camp import data, rl, rlhf


def test_k1_and_k3_agree_on_average_but_k3_is_never_negative():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(50, generator=gen)
    p = torch.softmax(logits, 0)  # policy
    q = torch.softmax(logits + 0.3 * torch.randn(50, generator=gen), 0)  # a nearby reference, as in RLHF
    true_kl = (p * (p.log() - q.log())).sum().item()
    tokens = torch.multinomial(p, 200_000, replacement=True, generator=gen)  # samples from the policy
    k1 = rl.kl_penalty(p.log()[tokens], q.log()[tokens], "k1")
    k3 = rl.kl_penalty(p.log()[tokens], q.log()[tokens], "k3")
    assert k1.mean().item() == pytest.approx(true_kl, rel=0.05)  # both unbiased
    assert k3.mean().item() == pytest.approx(true_kl, rel=0.05)
    assert (k1 < 0).any() and (k3 >= 0).all()  # single k1 terms go negative, k3 terms never do
    assert k3.var().item() < k1.var().item()  # and when policy and reference are close, k3 is quieter
    with pytest.raises(ValueError, match="k1' or 'k3"):
        rl.kl_penalty(p, q, "k2")


def test_penalised_rewards_put_the_score_on_each_replys_last_real_token():
    kl = torch.tensor([[0.2, 0.4, 0.0], [1.0, 1.0, 1.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    got = rl.penalised_rewards(torch.tensor([2.0, -1.0]), kl, mask, beta=0.5)
    # reply 0: -0.1, -0.2 + 2 (its last real token is index 1), padding 0; reply 1: -0.5, -0.5, -0.5 - 1
    assert torch.allclose(got, torch.tensor([[-0.1, 1.8, 0.0], [-0.5, -0.5, -1.5]]))


def test_adaptive_controller_moves_beta_towards_the_target_and_caps_each_step():
    ctl = rl.AdaptiveKLController(0.1, target=4.0, horizon=100)
    ctl.update(current_kl=6.0, n_steps=10)  # error clip(6/4 - 1) = 0.2 -> beta * (1 + 0.2 * 10 / 100)
    assert ctl.value == pytest.approx(0.1 * 1.02)
    ctl.update(current_kl=3.0, n_steps=10)  # error -0.25 clipped to -0.2
    assert ctl.value == pytest.approx(0.1 * 1.02 * 0.98)
    ctl.update(current_kl=4.0, n_steps=10)  # on target: unchanged
    assert ctl.value == pytest.approx(0.1 * 1.02 * 0.98)
    fixed = rl.FixedKLController(0.3)
    fixed.update(100.0, 10)
    assert fixed.value == 0.3
    with pytest.raises(ValueError):
        rl.AdaptiveKLController(0.1, target=0.0, horizon=10)


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 6, "n_minibatches": 4}, "multiple of n_minibatches"),
    ({"kl_estimator": "k2"}, "kl_estimator"),
    ({"clip_range": -0.2}, "must be positive"),
    ({"kl_coef": -1.0}, "kl_coef"),
    ({"lr": 0.0}, "lr=0.0"),
    ({"batch_size": 8, "replies_per_person": 3}, "multiple of replies_per_person"),
    ({"replies_per_person": 1}, "loo_baseline=True needs"),
])
def test_bad_config_is_refused_with_the_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rlhf.RLHFConfig(**kwargs)


def test_leave_one_out_removes_what_the_person_sets_and_keeps_what_the_reply_adds():
    person = torch.tensor([5.0, 5.0, 5.0, -3.0, -3.0, -3.0])  # one easy and one hard person
    reply = torch.tensor([0.3, -0.1, 0.4, 0.3, -0.1, 0.4])  # the same three replies' own merit, for both
    got = rl.leave_one_out(person + reply, 3)
    assert torch.allclose(got[:3], got[3:])  # the person's level is gone
    assert torch.allclose(got.view(2, 3).sum(1), torch.zeros(2), atol=1e-6)  # zero-sum within each person
    assert torch.allclose(got[:3], torch.tensor([0.3 - 0.15, -0.1 - 0.35, 0.4 - 0.1]), atol=1e-6)


def test_held_out_situations_are_fixed_disjoint_and_cover_every_emotion():
    situations = data.load_situations()
    train, heldout = rlhf.split_situations(situations)
    assert len(train) + len(heldout) == len(situations)
    assert not {s.id for s in train} & {s.id for s in heldout}
    assert {s.emotion for s in heldout} == set(data.EMOTIONS)
    assert [s.id for s in rlhf.split_situations(situations)[1]] == [s.id for s in heldout]
    assert math.isclose(len(heldout) / len(situations), 0.2, abs_tol=0.01)
